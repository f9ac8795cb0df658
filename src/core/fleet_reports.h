// What each worker's Monitor tells the fleet and the operator through the
// store the workers share, beside the queue (FleetReports: this process's
// syncs and job faults per minute and the seconds it ran, for `status`'s
// throughput and the web console's failures by class; its
// view of each storage box, for `status`'s box list), and what operators
// tell the workers there (PausedBoxes: `media-sync boxes pause`). The real
// adapters are queue::FleetStats and queue::BoxPauses; unit tests use the
// in-memory doubles of core/test_doubles.h.
//
// Thread-safety: none; one per thread (the real ones hold a connection).
// Errors: kOutage when the store is unreachable; kConfiguration as its
// adapter says.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/result.h"

namespace media_sync {

// One worker's view of one storage box, as `status` lists it.
struct BoxReport {
  std::string box;  // storage_box_id; "" for MINIO_ENDPOINT
  std::string endpoint;
  bool up = true;
  std::string error;  // why it is down
  std::string worker;
  std::string reported_at;  // ISO 8601 UTC
  // The reporting worker's adaptive concurrency for the box (0: no limit).
  int limit = 0;
  int in_flight = 0;
  double latency_seconds = 0;  // its recent uploads' moving average
};

class FleetReports {
 public:
  virtual ~FleetReports() = default;

  // One report of a worker: it ran from `ran_from` to `now`, and synced
  // `files` and `bytes` since its last report.
  virtual Status ReportRound(uint64_t files, uint64_t bytes,
                             std::chrono::system_clock::time_point ran_from,
                             std::chrono::system_clock::time_point now) = 0;
  // Adds a worker's job faults to the fleet's counters of the minute `now`
  // falls in, by class label: parked in the failed queue (`failed`) and
  // retried (`retried`).
  virtual Status AddFaults(const std::map<std::string, uint64_t>& failed,
                           const std::map<std::string, uint64_t>& retried,
                           std::chrono::system_clock::time_point now) = 0;
  // Replaces the reports of these boxes (other boxes' reports stay).
  virtual Status ReportBoxes(const std::vector<BoxReport>& reports) = 0;
};

// A storage box an operator paused: its jobs wait until it is resumed.
struct BoxPause {
  std::string reason;
  std::string by;  // who paused it (user@host)
  std::string at;  // when (ISO 8601 UTC)
};

class PausedBoxes {
 public:
  virtual ~PausedBoxes() = default;

  // Every paused box, by storage_box_id ("" for MINIO_ENDPOINT).
  virtual Result<std::map<std::string, BoxPause>> List() = 0;
};

}  // namespace media_sync
