// FleetLock: at most one process of the fleet at a time runs a periodic
// task (the reconcile). The lock has a TTL, so a holder that dies frees it
// when the TTL ends; only its owner extends or releases it. Releasing can
// also start a quiet period during which every process's TryAcquire stands
// down: one run then serves the whole fleet for that long instead of one run
// per process. The real adapter is queue::ReconcileLock (Redis); unit tests
// use the in-memory double of core/test_doubles.h.
//
// Thread-safety: none; one per thread (the real one holds a connection).
// Errors: kOutage when the lock's store is unreachable; kConfiguration as
// the store's adapter says.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "core/result.h"

namespace media_sync {

class FleetLock {
 public:
  enum class Acquired {
    kYes,          // this owner holds the lock for `ttl`
    kHeld,         // another owner holds it
    kRecentlyRun,  // a run released it with a quiet period that has not ended
  };

  virtual ~FleetLock() = default;

  virtual Result<Acquired> TryAcquire(std::chrono::milliseconds ttl) = 0;
  // Pushes the TTL out to `ttl` from now; false when this owner no longer
  // holds the lock (it expired, and maybe another took it).
  virtual Result<bool> Extend(std::chrono::milliseconds ttl) = 0;
  // Frees the lock if this owner holds it; when `quiet` > 0, also starts a
  // quiet period that long. false when the lock was not this owner's
  // (nothing is changed then).
  virtual Result<bool> Release(std::chrono::milliseconds quiet) = 0;
  // The current holder, if any.
  virtual Result<std::optional<std::string>> Holder() = 0;
};

}  // namespace media_sync
