// The running service (`media-sync run`): N job threads, each with its own
// JobQueue (connection), taking jobs from the reliable queue and applying the
// pipeline's decisions; one maintenance thread with its QueueUpkeep keeping
// the lease (heartbeat), reaping dead workers, and promoting due retries. Job
// threads take nothing before the maintenance thread's first heartbeat
// registered the worker (retried while Redis is down), so no job ever sits in
// a processing list that reapers and drain counts cannot see.
//
// The worker knows which entries of its processing list its threads hold.
// An entry none of them holds on two checks in a row (lease/3 apart) is
// handed back to pending: a take whose reply was lost, or an acknowledgement
// that Redis lost when it restarted from an older snapshot. So every entry
// of the list is served within a lease, and `run --drain` ends.
//
// Outages shared by every worker cost no job a retry: a worker reaps others
// only after its own connection to Redis has held for a full lease (the
// others renew theirs within a second of Redis coming back), and a thread
// holding a job through a PostgreSQL outage lets go of it once a reaper has
// returned it to pending, so one job is never held twice.
//
// Shutdown has two steps: RequestStop() stops taking jobs and lets in-flight
// jobs finish; Cancel() aborts in-flight transfers, whose jobs are handed
// back to pending (multipart uploads aborted). Wait() returns when every
// thread has ended and the worker has deregistered.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/job_queue.h"
#include "core/pipeline.h"
#include "util/clock.h"
#include "util/liveness.h"
#include "util/mutex.h"
#include "worker/worker_metrics.h"

namespace media_sync::worker {

struct WorkerSettings {
  std::string worker_id;
  int concurrency = 32;
  std::chrono::milliseconds lease{30000};
  std::chrono::milliseconds outage_backoff_max{30000};
  bool drain = false;  // stop once no job is pending, delayed or held by any worker
};

// How the worker reaches its queue: each call makes one adapter with its own
// connection. `job_queue` is called once per job thread and once for the
// maintenance thread (which hands back entries no thread holds); `upkeep`
// once, for the maintenance thread.
struct QueueFactories {
  std::function<std::unique_ptr<JobQueue>()> job_queue;
  std::function<std::unique_ptr<QueueUpkeep>()> upkeep;
};

class Worker {
 public:
  // Borrows the pipeline, the metrics, the liveness registry and the clock
  // (all must outlive the worker). Every thread registers with `liveness`
  // and beats at each turn of its loop; each finished job is recorded in
  // `metrics` (the process's one count of outcomes, WorkerMetrics::ReadTotals)
  // and logged as one structured line. The maintenance thread's
  // schedule (heartbeats, reaping, hand-backs) and every backoff run on
  // `clock`.
  Worker(WorkerSettings settings, QueueFactories queues, const Pipeline& pipeline,
         WorkerMetrics& metrics, Liveness& liveness, Clock& clock = Clock::Real());
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

 private:
  void JobLoop(int index);
  // Returns once the first heartbeat registered this worker, or on stop.
  void WaitRegistered(const std::stop_token& stop);
  void MaintenanceLoop(const std::stop_token& stop);
  // Hands back the entries of this worker's list that no thread held on this
  // check nor on the previous one (`unheld`, updated). With `all`, every
  // entry no thread holds now (no job thread runs any more).
  Status HandBackUnheld(QueueUpkeep& upkeep, JobQueue& queue,
                        std::unordered_map<std::string, int>& unheld, bool all);
  void Hold(const Delivery& delivery);
  void LetGo(const Delivery& delivery);
  // Runs the pipeline until it decides; while it answers Hold, waits and
  // tries again, unless stopping (Release) or a reaper returned the job
  // meanwhile (nullopt: another worker serves it).
  std::optional<Decision> Decide(JobQueue& queue, const Delivery& delivery,
                                 StoreRouter::Ticket ticket);
  void Handle(JobQueue& queue, const Delivery& delivery, StoreRouter::Ticket ticket);
  // Applies a decision to the queue, retrying while Redis is down (until Cancel).
  void Apply(JobQueue& queue, const Delivery& delivery, const Decision& decision);
  std::chrono::milliseconds Jittered(std::chrono::milliseconds base) const;

  const WorkerSettings settings_;
  const QueueFactories queues_;
  const Pipeline& pipeline_;
  WorkerMetrics& metrics_;
  Liveness& liveness_;
  Clock& clock_;
  std::atomic<int> in_flight_{0};  // jobs the job threads hold (the drain waits for none)
  std::stop_source stop_taking_;
  std::stop_source cancel_;
  std::atomic<int> running_jobs_threads_{0};
  std::atomic<bool> finished_{false};
  Mutex registered_mutex_;
  std::condition_variable_any registered_changed_;
  bool registered_ GUARDED_BY(registered_mutex_) = false;
  Mutex held_mutex_;
  std::unordered_map<std::string, int> held_
      GUARDED_BY(held_mutex_);  // payload -> threads holding it
  std::vector<std::jthread> job_threads_;
  std::jthread maintenance_;
};

}  // namespace media_sync::worker
