// The running service (`media-sync run`): N job threads, each with its own
// Redis connection, taking jobs from the reliable queue and applying the
// pipeline's decisions; one maintenance thread keeping the lease (heartbeat),
// reaping dead workers, and promoting due retries. Job threads take nothing
// before the maintenance thread's first heartbeat registered the worker
// (retried while Redis is down), so no job ever sits in a processing list
// that reapers and drain counts cannot see.
//
// Shutdown has two steps: RequestStop() stops taking jobs and lets in-flight
// jobs finish; Cancel() aborts in-flight transfers, whose jobs are handed
// back to pending (multipart uploads aborted). Wait() returns when every
// thread has ended and the worker has deregistered.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "config/options.h"
#include "core/pipeline.h"
#include "queue/redis_connection.h"
#include "util/liveness.h"
#include "worker/worker_metrics.h"

namespace media_sync::worker {

struct WorkerStats {
  std::atomic<uint64_t> synced{0};
  std::atomic<uint64_t> already_synced{0};
  std::atomic<uint64_t> retries_scheduled{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> deferred{0};  // waiting for a storage box that is down
  std::atomic<uint64_t> released{0};
  std::atomic<uint64_t> bytes_uploaded{0};
  std::atomic<int> in_flight{0};
};

struct WorkerSettings {
  config::RedisAddress redis;
  queue::RedisOptions redis_options;
  std::string worker_id;
  int concurrency = 32;
  std::chrono::milliseconds lease{30000};
  std::chrono::milliseconds outage_backoff_max{30000};
  bool drain = false;  // stop once no job is pending, delayed or held by any worker
};

class Worker {
 public:
  // Borrows the pipeline, the metrics and the liveness registry (all must
  // outlive the worker). Every thread registers with `liveness` and beats
  // at each turn of its loop; each finished job is recorded in `metrics`
  // and logged as one structured line.
  Worker(WorkerSettings settings, const Pipeline& pipeline, WorkerMetrics& metrics,
         Liveness& liveness);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Start();
  // Stop taking jobs; in-flight jobs run to completion.
  void RequestStop();
  // Abort in-flight work: jobs are handed back to pending.
  void Cancel();
  // True once every job thread has ended (after a stop or, in drain mode,
  // when the queue is drained).
  bool Finished() const { return finished_.load(); }
  // Joins every thread. Safe to call once.
  void Wait();

  const WorkerStats& stats() const { return stats_; }

 private:
  void JobLoop(int index);
  // Returns once the first heartbeat registered this worker, or on stop.
  void WaitRegistered(const std::stop_token& stop);
  void MaintenanceLoop(const std::stop_token& stop);
  void Handle(JobQueue& queue, const Delivery& delivery);
  // Applies a decision to the queue, retrying while Redis is down (until Cancel).
  void Apply(JobQueue& queue, const Delivery& delivery, const Decision& decision);
  // Sleeps up to `duration`; returns early (true) when `token` asks to stop.
  static bool SleepFor(std::chrono::milliseconds duration, const std::stop_token& token);
  std::chrono::milliseconds Jittered(std::chrono::milliseconds base) const;

  const WorkerSettings settings_;
  const Pipeline& pipeline_;
  WorkerMetrics& metrics_;
  Liveness& liveness_;
  WorkerStats stats_;
  std::stop_source stop_taking_;
  std::stop_source cancel_;
  std::atomic<int> running_jobs_threads_{0};
  std::atomic<bool> finished_{false};
  std::mutex registered_mutex_;
  std::condition_variable_any registered_changed_;
  bool registered_ = false;  // guarded by registered_mutex_
  std::vector<std::jthread> job_threads_;
  std::jthread maintenance_;
};

}  // namespace media_sync::worker
