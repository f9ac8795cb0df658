// Operator-side access to the queue for the CLI's status, failed-queue and
// enqueue commands, and the QueueCensus and JobProducer of the Monitor and
// the reconcile (core/queue_census.h). Speaks the same key layout as the
// workers (queue/queue_keys.h) and the seed's runbooks.
//
// Thread-safety: none; one instance per thread.
// Errors: kOutage when Redis is unreachable; kConfiguration for credentials,
// version (Redis >= 6.2) or a key of ours holding the wrong type.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "config/urls.h"
#include "core/queue_census.h"
#include "core/result.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

using QueueCounts = media_sync::QueueCounts;

class QueueAdmin final : public QueueCensus, public JobProducer {
 public:
  explicit QueueAdmin(config::RedisAddress address, RedisOptions options = {});

  Status Connect() { return connection_.Connect(); }

  // One consistent snapshot, taken in one script.
  Result<QueueCounts> Counts() override;

  // The job served next (the right end of pending), nullopt when empty.
  Result<std::optional<std::string>> OldestPending() override;

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
  Status Enqueue(std::span<const std::string> payloads) override;

  // LLEN media:sync:failed.
  Result<int64_t> FailedLength();

  // The failed entry at `index` (0 = newest), or nullopt past the end.
  Result<std::optional<std::string>> FailedEntryAt(int64_t index);

  // Moves each exact entry from failed to pending, each in one atomic step
  // (LREM failed 1 entry; only if that removed it, LPUSH pending entry), so an
  // entry another operator or worker moved meanwhile is neither duplicated
  // nor lost. The entry goes whole, failure fields included: the worker
  // retries it with a fresh budget (core/job.h, requeued_from_failed).
  // Returns, per entry, whether it was still there and moved. Scripts run in
  // batches; on an outage the earlier batches have moved.
  Result<std::vector<bool>> RequeueFailedEntries(std::span<const std::string> entries);

  // Removes each exact entry from failed once (LREM failed 1 entry); returns,
  // per entry, whether it was still there.
  Result<std::vector<bool>> DeleteFailedEntries(std::span<const std::string> entries);

  // Calls `visit` with every payload held in Redis: pending, delayed, every
  // processing list (registered workers and any media:sync:processing:* key)
  // and failed. Read in chunks of `chunk` (LRANGE, ZRANGE by rank, SCAN) so no
  // command holds the server long. Not a snapshot: an entry moving between
  // keys during the walk can be seen twice or missed, so callers that act on
  // an absence look twice.
  // `between_chunks`, when given, is called after every chunk; its error
  // ends the walk and is returned (callers stop there, or keep a lock).
  Status ForEachQueuedPayload(const std::function<void(std::string_view)>& visit,
                              int64_t chunk = 1000,
                              const std::function<Status()>& between_chunks = {});

  // ForEachQueuedPayload over the sha256 (lowercased) of every job and
  // failed entry; payloads that are not JSON objects with a string sha256
  // are skipped. Memory: one chunk.
  Status ForEachQueuedSha256(const std::function<void(std::string_view)>& visit,
                             const std::function<Status()>& between_chunks) override;

  // How many entries the queues hold (pending, delayed, failed, registered
  // workers' processing lists): a size hint for ForEachQueuedSha256's callers.
  Result<int64_t> QueuedEntries() override;

  // What `failed purge --all` asks about, read in one script: how many
  // entries the failed queue holds, and the newest few of them, by which
  // PurgeFailedSnapshot finds where they end.
  struct FailedSnapshot {
    int64_t count = 0;
    std::vector<std::string> newest;  // newest first, at most kSnapshotMarkers
  };
  static constexpr int64_t kSnapshotMarkers = 16;
  Result<FailedSnapshot> SnapshotFailed();

  // Deletes, in one script, the entries of `seen` still in the failed
  // queue, and no entry that failed since. Entries enter the queue only at
  // its head and leave from its tail (the runbook's RPOPLPUSH) or one by
  // one (requeue, purge), so those seen are the tail from the newest marker
  // still present (looked up from the tail: a newer identical entry is never
  // taken for it). Returns how many were deleted: fewer than seen.count when
  // some were requeued or purged meanwhile, 0 when none of the markers is
  // left (every entry seen is gone, or the newest ones all were moved one by
  // one: then nothing is deleted rather than a guess).
  Result<int64_t> PurgeFailedSnapshot(const FailedSnapshot& seen);

  // The sha256 (lowercased) of every job held in Redis, by
  // ForEachQueuedSha256, as a set: memory grows with the queues. For a few
  // lookups over queues of any length, see util/sha256_filter.h (reconcile).
  Result<std::unordered_set<std::string>> QueuedSha256s();

 private:
  RedisConnection connection_;
};

}  // namespace media_sync::queue
