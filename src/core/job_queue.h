// The pipeline's view of the Redis reliable queue. The real adapter is
// queue::RedisJobQueue; unit tests use an in-memory double.
//
// Keys (docs/contract.md §1, §3):
//   media:sync:pending                 list, producers LPUSH, we take from the right
//   media:sync:processing:<worker-id>  list, jobs this worker holds
//   media:sync:worker:<worker-id>      heartbeat key with a TTL (the lease)
//   media:sync:delayed                 sorted set of payloads scored by due time (ms)
//   media:sync:failed                  list, parked entries LPUSHed
//   media:sync:redeliveries            hash payload -> times a dead worker's lease returned it
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/result.h"

namespace media_sync {

struct Delivery {
  std::string payload;       // the raw job exactly as it sits in the processing list
  int64_t redeliveries = 0;  // how often a dead worker's lease handed it back
};

// Not thread-safe: each worker thread owns one queue (one connection).
// All errors are kOutage (Redis unreachable) unless stated otherwise.
class JobQueue {
 public:
  virtual ~JobQueue() = default;

  // Moves the oldest pending job into this worker's processing list, waiting
  // up to `wait`. nullopt when none arrived in time. Only a registered
  // worker (live lease) takes: kOutage otherwise.
  virtual Result<std::optional<Delivery>> Take(std::chrono::milliseconds wait) = 0;

  // The job's outcome is recorded: remove it from the processing list.
  virtual Status Ack(const Delivery& delivery) = 0;

  // Atomically: remove from processing, add `payload` (the job, maybe with a
  // new retry_count) to the delayed set, due at `due`.
  virtual Status Delay(const Delivery& delivery, const std::string& payload,
                       std::chrono::system_clock::time_point due) = 0;

  // Atomically: remove from processing, LPUSH `entry` onto the failed queue.
  virtual Status Fail(const Delivery& delivery, const std::string& entry) = 0;

  // Atomically: remove from processing, put the job back at the head of
  // pending (served next). Used on shutdown.
  virtual Status Release(const Delivery& delivery) = 0;
};

}  // namespace media_sync
