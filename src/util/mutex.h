// A mutex that Clang's thread-safety analysis understands, and the
// annotations to state what it guards. libstdc++'s std::mutex carries no
// annotations, so members marked GUARDED_BY(mu_) are checked only when the
// mutex is this one. `make lint` runs clang-tidy with -Wthread-safety and
// fails on a finding: touching a guarded member without its lock, or calling
// a function that REQUIRES a lock without holding it.
//
//   Mutex mu_;
//   int count_ GUARDED_BY(mu_) = 0;
//   void Add() { MutexLock lock(mu_); ++count_; }
//
// Condition variables wait on the Mutex itself (std::condition_variable_any
// takes any lockable): `changed_.wait(lock, ...)` with a MutexLock. The
// analysis cannot see into a wait's predicate lambda; such a lambda starts
// with mu_.AssertHeld().
#pragma once

#include <mutex>

#if defined(__clang__)
#define MEDIA_SYNC_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define MEDIA_SYNC_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) MEDIA_SYNC_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY MEDIA_SYNC_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) MEDIA_SYNC_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) MEDIA_SYNC_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) MEDIA_SYNC_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) MEDIA_SYNC_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) MEDIA_SYNC_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) MEDIA_SYNC_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) MEDIA_SYNC_THREAD_ANNOTATION(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS MEDIA_SYNC_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace media_sync {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  // Tells the analysis the lock is held where it cannot see it (inside a
  // condition variable's predicate, which runs under the lock).
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope; lockable itself, so a condition variable can
// release and retake it while waiting.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // Lets go for a while (a call that must not run under the lock) and takes
  // the lock again.
  void Unlock() RELEASE() { unlock(); }
  void Relock() ACQUIRE() { lock(); }

  // For std::condition_variable_any only: the wait unlocks and relocks.
  void lock() NO_THREAD_SAFETY_ANALYSIS {
    mu_.lock();
    held_ = true;
  }
  void unlock() NO_THREAD_SAFETY_ANALYSIS {
    held_ = false;
    mu_.unlock();
  }

 private:
  Mutex& mu_;
  bool held_ = false;  // Unlock() may be the last word: then the destructor has nothing to do
};

}  // namespace media_sync
