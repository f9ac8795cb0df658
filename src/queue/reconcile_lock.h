// ReconcileLock: the FleetLock (core/fleet_lock.h) of the reconcile, in
// Redis. Reconcile is idempotent, but two at once would double the scans and
// could both push a job the other has just pushed. The lock is one Redis
// string with a TTL,
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
#include "core/fleet_lock.h"
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

class ReconcileLock final : public FleetLock {
 public:
  ReconcileLock(config::RedisAddress address, std::string owner, RedisOptions options = {},
                LockKeys keys = {});

  Result<Acquired> TryAcquire(std::chrono::milliseconds ttl) override;
  Result<bool> Extend(std::chrono::milliseconds ttl) override;
  // Deletes the lock if this owner holds it; with a `quiet` period, also
  // sets its done key (media:sync:reconcile:done) for that long.
  Result<bool> Release(std::chrono::milliseconds quiet) override;
  Result<std::optional<std::string>> Holder() override;

  const std::string& owner() const { return owner_; }

 private:
  RedisConnection connection_;
  std::string owner_;
  LockKeys keys_;
};

}  // namespace media_sync::queue
