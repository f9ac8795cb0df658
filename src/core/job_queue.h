// The worker's view of the Redis reliable queue: JobQueue (one per job
// thread) and QueueUpkeep (the chores of a live worker, one per worker). The
// real adapters are queue::RedisJobQueue and queue::QueueMaintenance; unit
// tests use the in-memory doubles of core/test_doubles.h.
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
#include <vector>

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
  // pending (served next). Used on shutdown, and to hand back an entry of
  // this worker's list that none of its threads holds.
  virtual Status Release(const Delivery& delivery) = 0;

  // True while the delivery is still in this worker's processing list; false
  // once a reaper returned it to pending (this worker's lease had lapsed), so
  // another worker may be serving it.
  virtual Result<bool> Holds(const Delivery& delivery) = 0;
};

// The chores that keep the queue reliable, done by each live worker on its
// maintenance thread. Every step is atomic on the server, so any number of
// workers may run them at once. Not thread-safe: one per maintenance thread.
class QueueUpkeep {
 public:
  virtual ~QueueUpkeep() = default;

  // Registers the worker and renews its lease. Job threads take nothing
  // before the first one succeeded.
  virtual Status Heartbeat() = 0;
  // Returns the jobs of workers whose lease lapsed to pending (counting one
  // redelivery each); how many went back.
  virtual Result<int64_t> ReapDeadWorkers() = 0;
  // Moves retries whose due time has come to the head of pending; how many.
  virtual Result<int64_t> PromoteDueRetries() = 0;
  // Every entry of this worker's processing list, newest first (duplicates
  // included).
  virtual Result<std::vector<std::string>> OwnEntries() = 0;
  // True when no job is pending, delayed, or in any worker's processing list.
  virtual Result<bool> Idle() = 0;
  // Clean exit: unregisters the worker if its processing list is empty
  // (true); otherwise changes nothing (false).
  virtual Result<bool> Deregister() = 0;
};

}  // namespace media_sync
