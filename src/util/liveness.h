// Liveness: is every long-running thread of the process still making
// progress? Each thread registers itself and beats whenever it gets
// somewhere (a loop turn, a byte sent or received); a thread whose last
// beat is older than a limit is stalled, and /healthz says so.
//
// Beat() is a static call that finds the calling thread's registration, so
// code deep in a call (the S3 client's transfer progress) can report
// progress without being handed anything.
//
// Thread-safety: every call is safe from any thread. A Registration must be
// destroyed on the thread that made it, before the Liveness.
#pragma once

#include <atomic>
#include <chrono>
#include <list>
#include <string>
#include <vector>

#include "util/mutex.h"

namespace media_sync {

class Liveness {
  struct Slot {
    std::string name;
    std::atomic<int64_t> last_beat_ns{0};  // steady_clock
  };

 public:
  class Registration {
   public:
    Registration(Liveness* owner, Slot* slot);
    ~Registration();
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

   private:
    Liveness* const owner_;
    Slot* const slot_;
  };

  // Registers the calling thread under `name` and beats once; unregisters
  // when the returned object goes.
  Registration Register(std::string name);

  // Marks progress of the calling thread, if it is registered (else no-op).
  static void Beat();

  // Names of the registered threads whose last beat is older than `limit`,
  // with how long ago they beat.
  struct Stall {
    std::string name;
    std::chrono::milliseconds since;
  };
  std::vector<Stall> Stalled(std::chrono::milliseconds limit) const;

 private:
  void Unregister(Slot* slot);

  mutable Mutex mu_;
  std::list<Slot> slots_ GUARDED_BY(mu_);  // a list: slots never move
};

}  // namespace media_sync
