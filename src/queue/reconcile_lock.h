// ReconcileLock: at most one process at a time reconciles. Reconcile is
// idempotent, but two at once would double the scans and could both push a
// job the other has just pushed. The lock is one Redis string with a TTL,
//   SET media:sync:reconcile:lock <owner> NX PX <ttl>,
// so a holder that dies frees it when the TTL ends. Only its owner extends
// or releases it, each with a compare-and-set script. Releasing can also
// leave media:sync:reconcile:done for a while, which makes every process's
// next TryAcquire stand down: one run then serves the whole fleet for that
// long instead of one run per process.
//
// The same lock, under keys of its own (LockKeys), keeps the background
// audit of stored data to one worker at a time.
//
// Thread-safety: none; one instance per thread (it owns a connection).
// Errors: those of RedisConnection (kOutage, kConfiguration).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "config/urls.h"
#include "core/result.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

inline constexpr std::string_view kReconcileLockKey = "media:sync:reconcile:lock";
inline constexpr std::string_view kReconcileDoneKey = "media:sync:reconcile:done";

// The two keys of one lock: the lock itself and its quiet-period marker.
struct LockKeys {
  std::string lock{kReconcileLockKey};
  std::string done{kReconcileDoneKey};
};

class ReconcileLock {
 public:
  enum class Acquired {
    kYes,          // this owner holds the lock for `ttl`
    kHeld,         // another owner holds it
    kRecentlyRun,  // a run released it with a quiet period that has not ended
  };

  ReconcileLock(config::RedisAddress address, std::string owner, RedisOptions options = {},
                LockKeys keys = {});

  Result<Acquired> TryAcquire(std::chrono::milliseconds ttl);
  // Pushes the TTL out to `ttl` from now; false when this owner no longer
  // holds the lock (it expired, and maybe another took it).
  Result<bool> Extend(std::chrono::milliseconds ttl);
  // Deletes the lock if this owner holds it; when `quiet` > 0, also marks a
  // run as done for that long (see the header comment). false when the lock
  // was not this owner's (nothing is changed then).
  Result<bool> Release(std::chrono::milliseconds quiet = std::chrono::milliseconds(0));
  // The current holder, if any.
  Result<std::optional<std::string>> Holder();

  const std::string& owner() const { return owner_; }

 private:
  RedisConnection connection_;
  std::string owner_;
  LockKeys keys_;
};

}  // namespace media_sync::queue
