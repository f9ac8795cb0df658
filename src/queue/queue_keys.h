// The Redis key layout of the reliable queue, in one place (docs/contract.md §1, §3,
// src/core/job_queue.h). Producers, the API service and the operators'
// runbooks know the first two keys: never rename them.
#pragma once

#include <string>
#include <string_view>

namespace media_sync::queue {

// List. Producers LPUSH one JSON job each; workers take from the right, so the
// right end is the head of the queue (served next).
inline constexpr std::string_view kPendingKey = "media:sync:pending";
// List. Parked entries are LPUSHed; `RPOPLPUSH media:sync:failed
// media:sync:pending` (the runbook) requeues the oldest one.
inline constexpr std::string_view kFailedKey = "media:sync:failed";
// Sorted set of payloads scored by due time, in milliseconds since the epoch
// on the Redis server's clock.
inline constexpr std::string_view kDelayedKey = "media:sync:delayed";
// Hash payload -> how many times the reaper returned that payload to pending
// because its worker died holding it.
inline constexpr std::string_view kRedeliveriesKey = "media:sync:redeliveries";
// Set of worker ids that may hold jobs (registered by their first heartbeat).
inline constexpr std::string_view kWorkersKey = "media:sync:workers";

// Hash storage_box_id ("" for MINIO_ENDPOINT) -> JSON of the latest report
// of a worker on that box: {endpoint, up, error, worker, reported_at}.
inline constexpr std::string_view kBoxHealthKey = "media:sync:boxes";
// media:sync:throughput:<unix minute>: hash of what all workers synced in
// that minute, {files, bytes}, and of the part of it reported at second s
// of the minute, {files:<s>, bytes:<s>}; and up:<s> = 1 when a worker ran
// during second s. Expires after kThroughputRetention.
inline constexpr std::string_view kThroughputKeyPrefix = "media:sync:throughput:";

inline constexpr std::string_view kProcessingKeyPrefix = "media:sync:processing:";
inline constexpr std::string_view kHeartbeatKeyPrefix = "media:sync:worker:";

// Kept beside the code that uses them: media:sync:upload:* (redis_upload_journal.h),
// media:sync:reconcile:* (reconcile_lock.h), media:sync:audit:* (audit_progress.h),
// media:sync:paused (box_pauses.h).

// media:sync:processing:<worker-id>: list of the jobs one worker holds, newest
// at the left.
std::string ProcessingKey(std::string_view worker_id);
// media:sync:worker:<worker-id>: the worker's lease; a string with a TTL whose
// value is a JSON object {host, pid, started_at}.
std::string HeartbeatKey(std::string_view worker_id);

// A worker id that is unique across hosts and restarts: "<host>-<pid>-<random>".
std::string MakeWorkerId();

}  // namespace media_sync::queue
