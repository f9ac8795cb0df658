// An ObjectStore that makes sure its bucket exists before the first call
// (HeadBucket, then CreateBucket when missing, as the seed does), once per
// store. A failure to check (box down) is retried on the next call; a bucket
// that cannot be created is a configuration error of the box.
//
// Thread-safety: one check at a time, and never under a lock: callers that
// arrive while a check is in flight wait for that check and take its result,
// so a box that hangs costs every waiting job one timeout together, not one
// each in turn. A waiter whose stop is requested leaves at once (kCancelled).
// Bounding how many jobs may wait on one box is BoxRegistry's job.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <stop_token>

#include "core/object_store.h"
#include "util/mutex.h"

namespace media_sync::worker {

class BucketCreatingStore final : public ObjectStore {
 public:
  using EnsureBucket = std::function<Status(std::stop_token)>;

  BucketCreatingStore(std::shared_ptr<ObjectStore> store, EnsureBucket ensure_bucket)
      : store_(std::move(store)), ensure_bucket_(std::move(ensure_bucket)) {}

  Result<std::optional<ObjectInfo>> Stat(const std::string& key, std::stop_token stop) override {
    if (auto ready = Ready(stop); !ready) return ready.error();
    return store_->Stat(key, std::move(stop));
  }

  Result<ObjectInfo> Upload(const std::string& key, int fd, uint64_t size,
                            const std::string& sha256_hex, std::stop_token stop) override {
    if (auto ready = Ready(stop); !ready) return ready.error();
    return store_->Upload(key, fd, size, sha256_hex, std::move(stop));
  }

  std::optional<std::chrono::steady_clock::time_point> LastProgress() const override {
    return store_->LastProgress();
  }
  TransportCounts Transport() const override { return store_->Transport(); }

 private:
  Status Ready(const std::stop_token& stop) {
    MutexLock lock(mutex_);
    while (!ensured_ && checking_) {
      // Join the check in flight: its deadline is ours.
      const uint64_t joined = checks_;
      if (!done_.wait(lock, stop, [&] {
            mutex_.AssertHeld();
            return checks_ != joined;
          })) {
        return Error::Cancelled("stopped while waiting for the bucket check");
      }
      if (ensured_) return Ok();
      // A check abandoned by its own caller's stop says nothing about the box.
      if (last_failure_.kind != ErrorKind::kCancelled) return last_failure_;
    }
    if (ensured_) return Ok();
    checking_ = true;
    lock.Unlock();
    Status status = ensure_bucket_(stop);
    lock.Relock();
    checking_ = false;
    ++checks_;
    ensured_ = status.ok();
    if (!status.ok()) last_failure_ = status.error();
    done_.notify_all();
    return status;
  }

  std::shared_ptr<ObjectStore> store_;
  EnsureBucket ensure_bucket_;
  Mutex mutex_;
  std::condition_variable_any done_;
  bool ensured_ GUARDED_BY(mutex_) = false;
  bool checking_ GUARDED_BY(mutex_) = false;  // a check is in flight
  uint64_t checks_ GUARDED_BY(mutex_) = 0;    // checks finished so far
  Error last_failure_ GUARDED_BY(mutex_);     // of the last finished check
};

}  // namespace media_sync::worker
