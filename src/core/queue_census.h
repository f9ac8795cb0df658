// The whole queue as the Monitor and the reconcile see it: every worker's
// keys and the failed queue, read (QueueCensus), and lost jobs put back as a
// producer would (JobProducer). The worker's own view is core/job_queue.h.
// The real adapter of both is queue::QueueAdmin; unit tests use the
// in-memory double of core/test_doubles.h.
//
// Thread-safety: none; one per thread (the real one holds a connection).
// Errors: kOutage when Redis is unreachable; kConfiguration for credentials,
// the server's version, or a key of ours holding the wrong type.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace media_sync {

// One consistent snapshot of the queues.
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

class QueueCensus {
 public:
  virtual ~QueueCensus() = default;

  virtual Result<QueueCounts> Counts() = 0;

  // The job served next (the right end of pending); nullopt when none is
  // pending.
  virtual Result<std::optional<std::string>> OldestPending() = 0;

  // How many entries the queues hold (pending, delayed, failed, registered
  // workers' processing lists): a size hint for ForEachQueuedSha256's
  // callers.
  virtual Result<int64_t> QueuedEntries() = 0;

  // Calls `visit` with the sha256 (lowercased) of every job and failed
  // entry held in Redis (pending, delayed, every processing list, failed),
  // read in bounded chunks; payloads that are not JSON objects with a string
  // sha256 are skipped. Not a snapshot: an entry moving between keys during
  // the walk can be seen twice or missed, so a caller that acts on an
  // absence looks twice. `between_chunks`, when set, is called after every
  // chunk; its error ends the walk and is returned.
  virtual Status ForEachQueuedSha256(const std::function<void(std::string_view)>& visit,
                                     const std::function<Status()>& between_chunks) = 0;
};

class JobProducer {
 public:
  virtual ~JobProducer() = default;

  // Pushes the payloads onto pending as the platform's producers do (LPUSH);
  // payloads[0] is served first among them. Not atomic as a whole: on an
  // outage a prefix of them may have been queued.
  virtual Status Enqueue(std::span<const std::string> payloads) = 0;
};

}  // namespace media_sync
