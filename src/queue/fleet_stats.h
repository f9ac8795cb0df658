// What the workers tell each other and the operator through Redis, beside
// the queue itself: how much they synced and which job faults they met per
// minute (for `status`'s recent throughput and the web console's 24-hour
// chart and failures by class) and how each storage box looked when last
// used (for `status`'s box list): the Monitor's FleetReports
// (core/fleet_reports.h). Also the reads `status`, the web console and the
// metrics need: the oldest pending job, the jobs a worker holds, the
// workers' leases and the multipart uploads in progress.
//
// Thread-safety: none; one instance per thread.
// Errors: as RedisConnection (kOutage when Redis is unreachable).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/urls.h"
#include "core/fleet_reports.h"
#include "core/result.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

// Minute buckets are kept this long: the web console charts the last 24
// hours, and an hour more covers a clock that differs between hosts.
inline constexpr std::chrono::hours kThroughputRetention{25};

using BoxReport = media_sync::BoxReport;

struct Throughput {
  uint64_t files = 0;
  uint64_t bytes = 0;
  std::chrono::seconds window{0};  // the span the sums cover
  // Of `window`, the seconds during which at least one worker ran: the
  // time the files took, so a rate is files / running, not files / window
  // (a worker that started a minute ago ran one minute of the last five).
  std::chrono::seconds running{0};
};

// What the whole fleet did in one minute.
struct MinuteActivity {
  int64_t minute = 0;  // minutes since the Unix epoch
  uint64_t files = 0;  // synced
  uint64_t bytes = 0;  // uploaded
  // Job faults by class label (core/result.h: "missing_file", ...): the jobs
  // parked in the failed queue, and the retries scheduled.
  std::map<std::string, uint64_t> failed;
  std::map<std::string, uint64_t> retried;
};

// A worker's lease as it wrote it (queue_keys.h, HeartbeatKey).
struct WorkerLease {
  std::string host;
  int64_t pid = 0;
  std::string started_at;  // ISO 8601 UTC
};

// A multipart upload in progress, as the upload journal records it
// (queue/redis_upload_journal.h): what the server acknowledged so far.
struct UploadProgress {
  std::string name;  // <endpoint>/<bucket>/<key>
  uint64_t part_size = 0;
  int parts = 0;              // acknowledged
  uint64_t bytes_stored = 0;  // their sizes summed
};

class FleetStats final : public FleetReports {
 public:
  explicit FleetStats(config::RedisAddress address, RedisOptions options = {});

  // One report of a worker: it ran from `ran_from` to `now` (marked by the
  // second, at most kThroughputRetention back), and synced `files` and
  // `bytes` since its last report, which are added to the counters of the
  // minute and the second `now` falls in. One round trip.
  Status ReportRound(uint64_t files, uint64_t bytes, std::chrono::system_clock::time_point ran_from,
                     std::chrono::system_clock::time_point now) override;
  // Sums over the `minutes` whole minutes before the one `now` is in, and
  // that minute so far; `window` says how long that is, `running` how much
  // of it a worker ran.
  Result<Throughput> RecentThroughput(int minutes, std::chrono::system_clock::time_point now);
  // The same over the `seconds` seconds up to `now` (at most an hour),
  // counted by the second at which the workers reported them.
  Result<Throughput> LastSeconds(int seconds, std::chrono::system_clock::time_point now);

  // Adds job faults to the counters of the minute `now` falls in, by class
  // label: parked in the failed queue (`failed`) and retried (`retried`).
  // Nothing to add is no round trip.
  Status AddFaults(const std::map<std::string, uint64_t>& failed,
                   const std::map<std::string, uint64_t>& retried,
                   std::chrono::system_clock::time_point now) override;
  // One entry per minute, oldest first: the `minutes` whole minutes before
  // the one `now` is in, then that minute so far (minutes + 1 entries; a
  // minute nobody wrote is all zeros). One pipelined round trip.
  Result<std::vector<MinuteActivity>> Activity(int minutes,
                                               std::chrono::system_clock::time_point now);

  // Replaces the reports of these boxes (other boxes' reports stay).
  Status ReportBoxes(const std::vector<BoxReport>& reports) override;
  Result<std::vector<BoxReport>> BoxReports();

  // The job served next (the right end of pending), nullopt when empty.
  Result<std::optional<std::string>> OldestPending();
  // Up to `limit` payloads from a worker's processing list, newest first.
  Result<std::vector<std::string>> Held(const std::string& worker_id, int64_t limit);
  // The leases of these workers, in order; nullopt for one whose lease
  // expired (or that never wrote one).
  Result<std::vector<std::optional<WorkerLease>>> Leases(const std::vector<std::string>& ids);
  // The multipart uploads the journal records, at most `limit` of them (read
  // with SCAN, whose cost grows with the number of keys in the database).
  Result<std::vector<UploadProgress>> Uploads(size_t limit);

 private:
  RedisConnection connection_;
};

}  // namespace media_sync::queue
