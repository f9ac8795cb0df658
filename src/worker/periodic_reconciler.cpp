#include "worker/periodic_reconciler.h"

#include <spdlog/spdlog.h>

#include <random>
#include <utility>

namespace media_sync::worker {

PeriodicReconcilerSettings PeriodicReconcilerSettings::FromOptions(const config::Options& options) {
  PeriodicReconcilerSettings settings;
  settings.interval = options.reconcile_interval;
  settings.worker_id = options.worker_id;
  settings.reconcile.older_than = options.reconcile_older_than;
  return settings;
}

PeriodicReconciler::PeriodicReconciler(PeriodicReconcilerSettings settings,
                                       ReconcileSources sources, FleetLock& lock, Clock& clock)
    : settings_(std::move(settings)), clock_(clock), reconciler_(sources, clock), lock_(lock) {
  if (settings_.interval.count() <= 0) return;
  spdlog::info("periodic reconcile every {} s (lost jobs of rows older than {} s)",
               settings_.interval.count(), settings_.reconcile.older_than.count());
  thread_ = std::jthread([this](const std::stop_token& stop) { Loop(stop); });
}

PeriodicReconciler::~PeriodicReconciler() { Stop(); }

void PeriodicReconciler::Stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

void PeriodicReconciler::Loop(const std::stop_token& stop) {
  std::mt19937_64 random{std::random_device{}()};
  const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.interval);
  std::uniform_int_distribution<int64_t> jitter(
      0, static_cast<int64_t>(static_cast<double>(interval.count()) * settings_.jitter));
  while (!stop.stop_requested()) {
    if (clock_.SleepFor(interval + std::chrono::milliseconds(jitter(random)), stop)) return;
    RunOnce(stop);
  }
}

void PeriodicReconciler::RunOnce(const std::stop_token& stop) {
  auto acquired = lock_.TryAcquire(settings_.lock_ttl);
  if (!acquired) {
    spdlog::warn("reconcile: cannot take the lock: {}", acquired.error().message);
    return;
  }
  if (*acquired == FleetLock::Acquired::kRecentlyRun) {
    spdlog::debug("reconcile: another worker reconciled less than {} s ago; skipping",
                  settings_.interval.count() / 2);
    return;
  }
  if (*acquired == FleetLock::Acquired::kHeld) {
    auto holder = lock_.Holder();
    spdlog::debug("reconcile: lock held by {}; skipping this round",
                  holder && holder->has_value() ? **holder : std::string("another worker"));
    return;
  }

  spdlog::debug("reconcile: lock taken by {}", settings_.worker_id);
  auto keep_lock = [this]() -> Status {
    auto extended = lock_.Extend(settings_.lock_ttl);
    if (!extended) return extended.error();
    if (!*extended) return Error::Cancelled("the reconcile lock expired and was lost");
    return Ok();
  };
  auto report = reconciler_.Run(settings_.reconcile, stop, keep_lock);

  auto released = lock_.Release(std::chrono::duration_cast<std::chrono::milliseconds>(
      report ? settings_.interval / 2 : std::chrono::seconds(0)));
  if (!released) {
    spdlog::warn("reconcile: cannot release the lock (it expires by itself): {}",
                 released.error().message);
  }
  if (!report) {
    if (report.error().kind == ErrorKind::kCancelled && stop.stop_requested()) return;
    spdlog::warn("reconcile: {}", report.error().message);
    return;
  }
  if (report->enqueued.empty() && report->nothing_left_rows == 0) {
    spdlog::debug("reconcile: nothing lost ({} unsynced rows examined, {} still queued)",
                  report->rows_examined, report->still_queued);
  } else {
    spdlog::info(
        "reconcile: enqueued {} lost jobs ({} unsynced rows examined, {} still queued, {} with "
        "nothing left to sync){}",
        report->enqueued.size(), report->rows_examined, report->still_queued,
        report->nothing_left_rows, report->limit_reached ? "; limit reached" : "");
  }
  // A few examples each round; `media-sync reconcile --dry-run` lists them all.
  constexpr size_t kShown = 10;
  for (size_t i = 0; i < report->nothing_left.size() && i < kShown; ++i) {
    const UnsyncedFile& row = report->nothing_left[i];
    spdlog::warn(
        "reconcile: nothing left to sync for media_files row {} ({}, box {}): no local file, "
        "no object in storage",
        row.sha256, row.s3_key, row.storage_box_id.value_or("(default)"));
  }
}

}  // namespace media_sync::worker
