// The chores of one live worker that keep the reliable queue reliable:
// its lease (heartbeat), returning dead workers' jobs, and moving due retries
// back to pending. Each live worker runs these on a timer thread with its own
// QueueMaintenance (own connection); running them on several workers at once
// is safe, because every step is one atomic Lua script.
//
// Contract with RedisJobQueue:
//   - Heartbeat() before the first Take, then at least every lease/3
//     (RecommendedHeartbeatInterval), so a slow Redis round trip never lets a
//     live worker's lease lapse. Take refuses to move a job while the lease
//     is missing, and registers the worker again with every job it moves.
//   - A worker whose heartbeat key is gone (expired or deleted) is dead: any
//     ReapDeadWorkers() returns its whole processing list to the head of
//     pending, oldest job served first, and counts one redelivery per job in
//     media:sync:redeliveries. The count reaches the pipeline through
//     Delivery::redeliveries, so a job that kills its worker every time
//     ends in the failed queue instead of looping forever.
//   - Deregister() on clean exit, after every job was acknowledged or
//     released.
//   - The worker compares OwnEntries() with the jobs its threads hold, and
//     hands back (RedisJobQueue::Release) an entry none of them holds: a take
//     whose reply was lost, or an acknowledgement Redis lost in a restart.
//
// Clocks: leases are TTLs kept by the Redis server; due times are compared
// with the server's TIME inside the scripts. No host clock matters.
//
// Thread-safety: none; one instance per thread.
// Errors: kOutage when Redis is unreachable (reconnects on the next call);
// kConfiguration for credentials, version (Redis ≥ 6.2) or wrong key types.
// Scripts touch keys they compute (processing:<id>), so the queue needs a
// single Redis server (or a cluster slot holding every media:sync: key).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "config/urls.h"
#include "core/job_queue.h"
#include "core/result.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

struct MaintenanceOptions {
  // How long a worker counts as alive after its last heartbeat. Its jobs are
  // served again by another worker at most this long (plus one reaping
  // period) after it died.
  std::chrono::milliseconds lease = std::chrono::seconds(30);
  RedisOptions redis;
};

class QueueMaintenance final : public QueueUpkeep {
 public:
  QueueMaintenance(config::RedisAddress address, std::string worker_id,
                   MaintenanceOptions options = {});

  QueueMaintenance(QueueMaintenance&&) noexcept = default;
  QueueMaintenance& operator=(QueueMaintenance&&) noexcept = default;

  Status Connect() { return connection_.Connect(); }

  // SET media:sync:worker:<id> {host, pid, started_at} PX lease and SADD the
  // id to media:sync:workers, atomically.
  Status Heartbeat() override;

  // For every registered worker without a heartbeat: RPUSH its processing
  // list onto pending (oldest ends at the head), HINCRBY each payload's
  // redelivery count, delete the list, SREM the id. Returns how many jobs went
  // back. This worker's own list is only touched if its own lease lapsed.
  Result<int64_t> ReapDeadWorkers() override;

  // Moves up to `limit` retries whose due time (server clock) has come from
  // media:sync:delayed to the head of pending, earliest due served first.
  // Returns how many moved.
  Result<int64_t> PromoteDueRetries(int64_t limit);
  Result<int64_t> PromoteDueRetries() override { return PromoteDueRetries(kPromoteBatch); }

  // LRANGE of this worker's processing list.
  Result<std::vector<std::string>> OwnEntries() override;

  // Pending and delayed are empty and every registered worker's processing
  // list is empty, read in one script.
  Result<bool> Idle() override;

  // Clean exit: if this worker's processing list is empty, deletes its
  // heartbeat and unregisters it, returning true. Otherwise changes nothing
  // and returns false: the jobs are still held (in-flight work of a forced
  // exit) and the reaper returns them once the lease runs out.
  Result<bool> Deregister() override;

  std::chrono::milliseconds RecommendedHeartbeatInterval() const { return options_.lease / 3; }
  const std::string& worker_id() const { return worker_id_; }

 private:
  static constexpr int64_t kPromoteBatch = 1000;

  RedisConnection connection_;
  std::string worker_id_;
  MaintenanceOptions options_;
  std::string heartbeat_info_;  // JSON, fixed for the life of the process
};

}  // namespace media_sync::queue
