// Monitor: the periodic reads behind /metrics, /readyz and `status`, on a
// thread of its own so that no scrape or probe ever calls a service.
// Every `interval` it
//   - reads the queue depths, live workers and the oldest pending job
//     (QueueCensus) into the queue gauges;
//   - pings PostgreSQL, checks MEDIA_BUFFER_PATH, and takes the storage
//     boxes' states from the BoxRegistry;
//   - publishes this process's synced files and bytes and its job faults
//     by class per minute, the seconds it ran, and its view of the boxes
//     (FleetReports), for `status` and the web console;
//   - reads the boxes an operator paused (PausedBoxes) into the registry.
// Readiness() and Health() answer from what the last round found. Its
// schedule runs on the Clock it is given.
//
// Thread-safety: Readiness() and Health() may be called from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/fleet_reports.h"
#include "core/queue_census.h"
#include "metrics/http_endpoint.h"
#include "util/clock.h"
#include "util/liveness.h"
#include "util/mutex.h"
#include "worker/box_registry.h"
#include "worker/worker_metrics.h"

namespace media_sync::worker {

struct MonitorSettings {
  std::string worker_id;
  std::string buffer_path;                        // MEDIA_BUFFER_PATH
  std::chrono::milliseconds interval{5000};       // between rounds
  std::chrono::milliseconds stall_limit{120000};  // HEALTH_STALL_SECONDS
  // What the catalog lacks for its queries to stay fast (an index missing:
  // catalog::SchemaAdvice), asked every `schema_every` rounds; shown in
  // /readyz's body without making it unready. Optional.
  std::function<std::vector<std::string>()> schema_advice;
  int schema_every = 12;
};

// What the Monitor reads and writes in the store the workers share, made
// by `run` (queue::QueueAdmin, queue::FleetStats, queue::BoxPauses, each with
// its own connection) and owned by the Monitor: used by one thread at a time
// (the paused boxes by Start(), then everything by the monitor's thread).
struct MonitorSources {
  std::unique_ptr<QueueCensus> queue;
  std::unique_ptr<FleetReports> reports;
  std::unique_ptr<PausedBoxes> pauses;
};

class Monitor {
 public:
  // Owns the sources; borrows the rest, which must outlive the monitor.
  // `ping_database` is one cheap round trip to PostgreSQL.
  Monitor(MonitorSettings settings, MonitorSources sources, WorkerMetrics& metrics,
          BoxRegistry& boxes, std::function<Status()> ping_database, Liveness& liveness,
          Clock& clock = Clock::Real());
  ~Monitor();  // stops the thread
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // Reads the paused boxes once before the thread starts, so that the
  // worker's first jobs already obey them (a Redis that does not answer
  // costs its timeout; the thread reads them again every round).
  void Start();

  // /readyz: ready when Redis and PostgreSQL answered, the buffer is usable
  // and at least one storage box is up (or none has been used yet). The body
  // names every part and what is wrong with it.
  metrics::Probe Readiness() const;
  // /healthz: healthy while no registered thread has gone `stall_limit`
  // without progress; the body names the stalled threads.
  metrics::Probe Health() const;

 private:
  struct Part {
    bool up = false;
    std::string error = "not checked yet";
  };
  void Loop(const std::stop_token& stop);
  void Round();
  // The paused boxes (`media-sync boxes pause`) into the registry and the
  // metrics; kept as they were while Redis does not answer.
  void ReadPauses();
  // Each box's limit, latency and wire counts into the metrics, every
  // kGaugeEvery (no call to any service): fresh enough to follow a limit
  // as it adapts.
  void PublishBoxes();

  const MonitorSettings settings_;
  const MonitorSources sources_;
  WorkerMetrics& metrics_;
  BoxRegistry& boxes_;
  std::function<Status()> ping_database_;
  Liveness& liveness_;
  Clock& clock_;

  uint64_t reported_files_ = 0;  // monitor thread only
  uint64_t reported_bytes_ = 0;
  // Job faults by class label as last reported; monitor thread only.
  std::map<std::string, uint64_t> reported_failed_;
  std::map<std::string, uint64_t> reported_retried_;
  std::map<std::string, TransportCounts> published_transport_;  // monitor thread only
  // Since when this process ran without that being reported yet.
  std::optional<std::chrono::system_clock::time_point> running_since_;
  std::map<std::string, BoxPause> paused_;                       // monitor thread only
  std::set<std::pair<std::string, std::string>> paused_series_;  // {box, reason} set to 1

  mutable Mutex mu_;
  Part redis_ GUARDED_BY(mu_);
  Part postgres_ GUARDED_BY(mu_);
  Part buffer_ GUARDED_BY(mu_);
  std::vector<BoxRegistry::BoxState> box_states_ GUARDED_BY(mu_);
  std::vector<std::string> schema_advice_ GUARDED_BY(mu_);
  int rounds_ = 0;  // monitor thread only

  std::jthread thread_;
};

}  // namespace media_sync::worker
