// What the workers tell each other and the operator through Redis, beside
// the queue itself: how much they synced per minute (for `status`'s recent
// throughput) and how each storage box looked when last used (for `status`'s
// box list); the Monitor's FleetReports (core/fleet_reports.h). Also the
// reads `status` needs: the oldest pending job and the jobs a worker holds.
//
// Thread-safety: none; one instance per thread.
// Errors: as RedisConnection (kOutage when Redis is unreachable).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/urls.h"
#include "core/fleet_reports.h"
#include "core/result.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

// Minute buckets are kept this long.
inline constexpr std::chrono::hours kThroughputRetention{2};

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

  // Replaces the reports of these boxes (other boxes' reports stay).
  Status ReportBoxes(const std::vector<BoxReport>& reports) override;
  Result<std::vector<BoxReport>> BoxReports();

  // The job served next (the right end of pending), nullopt when empty.
  Result<std::optional<std::string>> OldestPending();
  // Up to `limit` payloads from a worker's processing list, newest first.
  Result<std::vector<std::string>> Held(const std::string& worker_id, int64_t limit);

 private:
  RedisConnection connection_;
};

}  // namespace media_sync::queue
