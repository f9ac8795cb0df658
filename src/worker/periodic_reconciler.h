// PeriodicReconciler: the reconcile of `media-sync run`, every
// RECONCILE_INTERVAL_SECONDS (off when 0). One thread wakes every interval
// (plus up to a tenth of it at random, so a fleet started together spreads
// out), takes the FleetLock (the Redis ReconcileLock in `run`), runs a
// Reconciler pass, and releases the lock, marking the round done for half
// an interval so the other workers' wake-ups in that time stand down. While
// a pass runs, its lock TTL is renewed between steps; a pass that loses its
// lock stops before pushing. A pass that failed leaves no quiet period: the
// next worker's wake-up tries again.
//
// Construct it after the worker started; Stop() (or destruction) before the
// worker stops: a pass in progress is cancelled (a HeadObject in flight
// returns at once).
//
// Thread-safety: Stop() may be called from any thread, once or more.
#pragma once

#include <chrono>
#include <stop_token>
#include <string>
#include <thread>

#include "config/options.h"
#include "core/fleet_lock.h"
#include "util/clock.h"
#include "worker/reconciler.h"

namespace media_sync::worker {

struct PeriodicReconcilerSettings {
  std::chrono::seconds interval{0};  // RECONCILE_INTERVAL_SECONDS; 0: off
  // TTL of the lock, renewed between steps of a pass: how long a crashed
  // holder keeps the others out.
  std::chrono::milliseconds lock_ttl{60000};
  std::string worker_id;  // the lock's owner, named in the log
  // Each wait is the interval plus up to this part of it, at random.
  double jitter = 0.1;
  ReconcileSettings reconcile;  // older_than RECONCILE_OLDER_THAN_SECONDS, limit 10000

  static PeriodicReconcilerSettings FromOptions(const config::Options& options);
};

class PeriodicReconciler {
 public:
  // Starts the thread when settings.interval > 0; otherwise does nothing.
  // Borrows the sources, the lock and the clock, which must outlive it; the
  // sources and the lock are used on its thread only.
  PeriodicReconciler(PeriodicReconcilerSettings settings, ReconcileSources sources, FleetLock& lock,
                     Clock& clock = Clock::Real());
  ~PeriodicReconciler();
  PeriodicReconciler(const PeriodicReconciler&) = delete;
  PeriodicReconciler& operator=(const PeriodicReconciler&) = delete;

  // Cancels a pass in progress and joins the thread.
  void Stop();

 private:
  void Loop(const std::stop_token& stop);
  void RunOnce(const std::stop_token& stop);

  const PeriodicReconcilerSettings settings_;
  Clock& clock_;
  // Used only on thread_ (neither is thread-safe).
  Reconciler reconciler_;
  FleetLock& lock_;
  std::jthread thread_;
};

}  // namespace media_sync::worker
