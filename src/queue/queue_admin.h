// Operator-side access to the queue for the CLI's status, failed-queue and
// enqueue commands. Speaks the same key layout as the workers
// (queue/queue_keys.h) and the seed's runbooks.
//
// Thread-safety: none; one instance per thread.
// Errors: kOutage when Redis is unreachable; kConfiguration for credentials,
// version (Redis >= 6.2) or a key of ours holding the wrong type.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/urls.h"
#include "core/result.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

// One consistent snapshot (taken in one script).
struct QueueCounts {
  int64_t pending = 0;
  int64_t delayed = 0;
  int64_t failed = 0;
  int64_t processing = 0;  // sum over registered workers
  // Registered workers (media:sync:workers) -> jobs in their processing list.
  // A dead worker stays here until a live worker reaps it.
  std::map<std::string, int64_t> processing_by_worker;
  std::vector<std::string> live_workers;  // registered and heartbeat present, sorted
};

class QueueAdmin {
 public:
  explicit QueueAdmin(config::RedisAddress address, RedisOptions options = {});

  Status Connect() { return connection_.Connect(); }

  Result<QueueCounts> Counts();

  // Due time of the earliest retry in media:sync:delayed (Redis server's
  // clock); nullopt when no retry waits.
  Result<std::optional<std::chrono::system_clock::time_point>> NextDue();

  // Raw failed entries, newest first (index 0 failed last): LRANGE start
  // start+count-1. Empty when the range is past the end.
  Result<std::vector<std::string>> ListFailed(int64_t start, int64_t count);

  // The seed's runbook, `count` times: RPOPLPUSH media:sync:failed
  // media:sync:pending (oldest failure first, queued behind pending jobs).
  // Stops early when the failed queue is empty; returns how many moved.
  Result<int64_t> RequeueFailed(int64_t count);

  // Deletes every failed entry; returns how many there were.
  Result<int64_t> PurgeFailed();

  // LPUSHes the payloads onto pending as a producer does, pipelined in
  // batches; payloads[0] is served first among them. Not atomic as a whole:
  // on an outage a prefix of the batches may have been queued.
  Status Enqueue(std::span<const std::string> payloads);

 private:
  RedisConnection connection_;
};

}  // namespace media_sync::queue
