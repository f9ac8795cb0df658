// The metrics of `media-sync run` (names and labels are a contract with the
// dashboards and alerts in deploy/): what the job threads record per job,
// and the gauges the Monitor sets from its periodic reads. Label values are
// bounded: outcomes, fault classes, queue names and storage box ids.
//
// Thread-safety: all members may be used from any thread.
#pragma once

#include <chrono>
#include <cstdint>

#include "core/pipeline.h"
#include "metrics/registry.h"

namespace media_sync::worker {

class WorkerMetrics {
 public:
  explicit WorkerMetrics(metrics::Registry& registry);

  // One finished delivery: its outcome, faults, bytes, durations.
  void RecordOutcome(const Decision& decision, std::chrono::system_clock::time_point now);

  // What this process's deliveries came to so far, read from the counters
  // RecordOutcome keeps: the one count of outcomes, which the Monitor
  // reports as throughput and `run --drain` prints as its summary.
  struct Totals {
    uint64_t synced = 0;
    uint64_t already_synced = 0;
    uint64_t retries_scheduled = 0;
    uint64_t failed = 0;
    uint64_t deferred = 0;  // waiting for a storage box that is down
    uint64_t bytes_uploaded = 0;
    // Job faults by class label (core/result.h: "missing_file", ...):
    // parked in the failed queue, and retries scheduled.
    std::map<std::string, uint64_t> failed_by_class;
    std::map<std::string, uint64_t> retried_by_class;
  };
  Totals ReadTotals() const;

  metrics::Gauge& jobs_in_flight;
  metrics::Family<metrics::Gauge>& queue_jobs;  // {queue}
  metrics::Gauge& oldest_pending_age;
  metrics::Gauge& live_workers;
  metrics::Family<metrics::Gauge>& box_up;  // {box}
  // 1 while an operator has the box paused, with the pause's reason.
  metrics::Family<metrics::Gauge>& box_paused;  // {box, reason}
  // Each box's adaptive concurrency (worker/concurrency_limit.h), {box}.
  metrics::Family<metrics::Gauge>& box_limit;
  metrics::Family<metrics::Gauge>& box_in_flight;
  metrics::Family<metrics::Gauge>& box_latency;
  metrics::Family<metrics::Gauge>& box_latency_ratio;
  // What each box's S3 calls cost on the wire, {box}.
  metrics::Family<metrics::Counter>& s3_requests;
  metrics::Family<metrics::Counter>& s3_connections;
  metrics::Family<metrics::Counter>& s3_tls_handshakes;
  metrics::Gauge& redis_up;
  metrics::Gauge& postgres_up;
  metrics::Gauge& buffer_up;
  // Bytes of resumed multipart uploads found stored and not sent again.
  metrics::Counter& resumed_bytes;

 private:
  metrics::Family<metrics::Counter>& jobs_;           // {outcome}
  metrics::Family<metrics::Counter>& faults_;         // {outcome, class}
  metrics::Family<metrics::Counter>& bytes_;          // {box}
  metrics::Family<metrics::Counter>& files_;          // {box}
  metrics::Family<metrics::Histogram>& upload_time_;  // {box}
  metrics::Histogram& job_time_;
};

// The metric label of a job's box: its id, or "default" for MINIO_ENDPOINT.
std::string BoxLabel(const std::optional<std::string>& storage_box_id);
// The outcome label: synced, already_synced, retry, failed, deferred, released.
std::string_view OutcomeLabel(Decision::Outcome outcome);

}  // namespace media_sync::worker
