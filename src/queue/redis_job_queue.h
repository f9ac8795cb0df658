// The real JobQueue (src/core/job_queue.h): a reliable queue on Redis ≥ 6.2
// for one worker id. Key layout in queue/queue_keys.h.
//
// Take moves the oldest pending job into this worker's processing list and
// registers the worker in media:sync:workers, in one Lua script, and only
// while the worker's heartbeat (its lease) exists: so a job is always in
// exactly one Redis list while a worker holds it, a reaper can always find
// that list, and a worker the reapers count as dead (lease lapsed, or not
// yet registered) takes nothing. Ack, Delay, Fail and Release are each one
// Lua script, so the job leaves the processing list and lands in its next
// place in one atomic step; a crash between the two cannot lose or
// duplicate it.
//
// A job whose worker looked dead (its heartbeat expired) may have been
// returned to pending by another worker's reaper (QueueMaintenance) while
// this worker still held it. The copy in pending is then the job's one live
// copy, so:
//   Delay, Fail, Release  do nothing when the payload is no longer in this
//                         worker's processing list (return Ok, log a warning):
//                         adding it to delayed/failed/pending would make a
//                         second copy.
//   Ack                   still clears the payload's redelivery count: the
//                         outcome is recorded, and the pipeline's idempotent
//                         record step makes the returned copy a no-op.
// LREM removes one copy only: two identical payloads held at once (a
// duplicate job) are acknowledged one by one.
//
// A Take whose reply is lost on the wire after the server moved the job (a
// network failure mid-reply) cannot know the job: it sits in this worker's
// processing list with no thread holding it. The worker finds such entries
// (QueueMaintenance::OwnEntries against what its threads hold) and hands
// them back with Release. Reading the redelivery count is best effort for
// the same reason: once the job is ours, Take hands it out even if that read
// fails (count 0, warning logged).
//
// Redelivery counts (media:sync:redeliveries) are cleared by Ack and Fail. A
// Delay whose payload differs from the delivered one (the pipeline rewrote
// retry_count) clears the old payload's count, since the new payload starts
// its own history; a Delay of an unchanged payload keeps it. Release keeps it.
//
// Due times: Delay converts `due` into a delay relative to this host's clock
// and the script adds it to the Redis server's clock (TIME). Every score in
// media:sync:delayed is therefore on one clock, and workers with skewed clocks
// agree on when a retry is due (QueueMaintenance::PromoteDueRetries uses TIME
// as well).
//
// Thread-safety: none; one RedisJobQueue per worker thread (each has its own
// connection). Several instances may share one worker id: they share its
// processing list and its heartbeat.
// Errors: kOutage when Redis is unreachable or times out (the object
// reconnects on the next call); kConfiguration for rejected credentials, a
// Redis older than 6.2, or a key of ours holding the wrong type.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "config/urls.h"
#include "core/job_queue.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

class RedisJobQueue final : public JobQueue {
 public:
  RedisJobQueue(config::RedisAddress address, std::string worker_id, RedisOptions options = {});

  RedisJobQueue(RedisJobQueue&&) noexcept = default;
  RedisJobQueue& operator=(RedisJobQueue&&) noexcept = default;

  // Connects now (otherwise the first call does), to report a bad address,
  // credentials or server version at start-up.
  Status Connect() { return connection_.Connect(); }

  // Moves the oldest pending job into processing:<id> (see above). When none
  // is pending, waits up to `wait` for one (a wait of zero does not block),
  // with a blocking BLMOVE of pending onto itself that changes nothing, and
  // tries once more. Then reads the payload's redelivery count. kOutage when
  // this worker holds no lease: QueueMaintenance::Heartbeat() must come
  // first, and again before the lease runs out.
  Result<std::optional<Delivery>> Take(std::chrono::milliseconds wait) override;
  Status Ack(const Delivery& delivery) override;
  Status Delay(const Delivery& delivery, const std::string& payload,
               std::chrono::system_clock::time_point due) override;
  Status Fail(const Delivery& delivery, const std::string& entry) override;
  Status Release(const Delivery& delivery) override;
  // LPOS of the payload in processing:<id>.
  Result<bool> Holds(const Delivery& delivery) override;

  const std::string& worker_id() const { return worker_id_; }

 private:
  // Runs a move-out-of-processing script; logs when the job was gone.
  Status RunMoveScript(const LuaScript& script, std::string_view action,
                       std::initializer_list<std::string_view> keys,
                       std::initializer_list<std::string_view> args);

  // The take script: the delivery with its redelivery count, nullopt when
  // none is pending.
  Result<std::optional<Delivery>> TakeNow();

  RedisConnection connection_;
  std::string worker_id_;
  std::string processing_key_;
  std::string heartbeat_key_;
};

}  // namespace media_sync::queue
