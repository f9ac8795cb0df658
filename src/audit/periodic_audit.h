// PeriodicAudit: the background scrub of `media-sync run`, a StorageAuditor
// pass over every box every AUDIT_INTERVAL_SECONDS (off when 0), reporting
// only: problems go to the log and the metrics, never repaired (that is
// `media-sync audit --repair`, an operator's decision).
//
// One worker at a time: a pass runs under the Redis lock
// media:sync:audit:lock (queue::ReconcileLock's scripts under the audit's
// keys), renewed as it goes; released at the end of a full pass with a quiet
// period of half an interval, so the other workers' wake-ups stand down. A
// pass keeps its position in Redis (scope "scrub"), so a worker that stops
// or dies mid-pass leaves it to the next holder, which continues it.
//
// A bucket holding a paused box (`boxes pause`: under maintenance) is left
// out of the pass. A box that does not answer interrupts the pass; the next
// round continues it from where it stopped.
//
// Bounded rate: at most AUDIT_RATE objects (or rows) a second, and with
// AUDIT_DEEP the bytes read back take from SYNC_BANDWIDTH_LIMIT's cap like
// uploads do. Pages are 1000 keys, so a pass costs one ListObjectsV2 and one
// query per thousand objects (plus one GetObject each when deep).
//
// What every worker exports (AuditMetrics): the objects it checked and the
// problems it found (counters), and what the last full pass of the fleet
// found and when it ended (gauges read from Redis every minute or so).
//
// Thread-safety: Stop() may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "audit/storage_audit.h"
#include "catalog/pg_box_catalog.h"
#include "config/options.h"
#include "metrics/registry.h"
#include "queue/audit_progress.h"
#include "queue/reconcile_lock.h"

namespace media_sync::audit {

struct PeriodicAuditSettings {
  std::chrono::seconds interval{0};  // AUDIT_INTERVAL_SECONDS; 0: off
  int rate = 100;                    // AUDIT_RATE: objects per second
  bool deep = false;                 // AUDIT_DEEP
  // TTL of the lock, renewed during a pass: how long a crashed holder keeps
  // the others out.
  std::chrono::milliseconds lock_ttl{60000};
  // How often the gauges of the last full pass are read from Redis.
  std::chrono::milliseconds refresh{60000};
  std::string worker_id;  // the lock's owner
  config::RedisAddress redis;
  s3::S3Options defaults;  // MINIO_*, S3_*
  std::string database_conninfo;

  static PeriodicAuditSettings FromOptions(const config::Options& options);
};

// The scrub's metrics (names are a contract with deploy/).
class AuditMetrics {
 public:
  explicit AuditMetrics(metrics::Registry& registry);

  metrics::Counter& objects_checked;                    // by this process
  metrics::Family<metrics::Counter>& problems_found;    // {class}, by this process
  metrics::Family<metrics::Gauge>& last_pass_problems;  // {class}, the fleet's last full pass
  metrics::Gauge& last_pass_end;                        // unix time; 0: none yet
};

class PeriodicAudit {
 public:
  // Starts the thread when settings.interval > 0; otherwise does nothing.
  PeriodicAudit(PeriodicAuditSettings settings, AuditMetrics& metrics);
  ~PeriodicAudit();
  PeriodicAudit(const PeriodicAudit&) = delete;
  PeriodicAudit& operator=(const PeriodicAudit&) = delete;

  // Cancels a pass in progress (its position is kept) and joins the thread.
  void Stop();

 private:
  void Loop(const std::stop_token& stop);
  void RunPass(const std::stop_token& stop);
  // The gauges from the fleet's last full pass in Redis.
  void ReadLastPass();
  // Waits until the rate lets one more object be checked; renews the lock.
  Status Pace(const std::stop_token& stop);

  const PeriodicAuditSettings settings_;
  AuditMetrics& metrics_;
  // Used only on thread_.
  catalog::PgBoxCatalog catalog_;
  queue::ReconcileLock lock_;
  queue::AuditProgress progress_;
  std::chrono::steady_clock::time_point next_slot_{};
  std::chrono::steady_clock::time_point lock_renewed_{};
  std::mutex mu_;
  std::condition_variable_any wake_;
  std::jthread thread_;
};

}  // namespace media_sync::audit
