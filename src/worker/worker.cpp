#include "worker/worker.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <random>

#include "queue/queue_admin.h"
#include "queue/queue_maintenance.h"
#include "queue/redis_job_queue.h"
#include "util/log.h"

namespace media_sync::worker {
namespace {

using namespace std::chrono_literals;
using Action = Decision::Action;
using Outcome = Decision::Outcome;

constexpr auto kTakeWait = 1000ms;        // how often an idle thread rechecks for stop
constexpr auto kFirstBackoff = 250ms;     // first wait after an outage, doubled each time
constexpr auto kPromoteInterval = 500ms;  // due retries reach pending within this

// Doubling backoff for one thread's view of an outage.
class Backoff {
 public:
  explicit Backoff(std::chrono::milliseconds max) : max_(max) {}
  std::chrono::milliseconds Next() {
    current_ = current_.count() == 0 ? kFirstBackoff : std::min(current_ * 2, max_);
    return current_;
  }
  void Reset() { current_ = 0ms; }

 private:
  std::chrono::milliseconds max_;
  std::chrono::milliseconds current_{0};
};

std::string_view ActionName(Action action) {
  switch (action) {
    case Action::kAck:
      return "ack";
    case Action::kDelay:
      return "delay";
    case Action::kFail:
      return "fail";
    case Action::kRelease:
      return "release";
    case Action::kHold:
      return "hold";
  }
  return "?";
}

// One line per finished delivery, at a level that says whether anyone must act.
void LogOutcome(const Decision& decision, std::chrono::steady_clock::duration took) {
  spdlog::level::level_enum level = spdlog::level::info;
  switch (decision.outcome) {
    case Outcome::kRetryScheduled:
      level = spdlog::level::warn;
      break;
    case Outcome::kFailed:
      level = spdlog::level::err;
      break;
    case Outcome::kBoxDown:
      level = spdlog::level::debug;
      break;
    default:
      break;
  }
  if (!decision.note.empty()) level = std::max(level, spdlog::level::warn);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  bool fault = decision.outcome == Outcome::kRetryScheduled || decision.outcome == Outcome::kFailed;
  LogEvent(
      level, "job",
      {{"outcome", std::string(OutcomeLabel(decision.outcome))},
       {"sha256", decision.sha256},
       {"box", BoxLabel(decision.storage_box_id)},
       {"size", std::to_string(decision.file_size), true},
       {"uploaded", std::to_string(decision.bytes_uploaded), true},
       {"duration_ms", std::to_string(millis), true},
       {"key", decision.s3_key},
       {"class", fault ? std::string(ToString(decision.fault)) : std::string()},
       {"error", decision.outcome == Outcome::kSynced || decision.outcome == Outcome::kAlreadySynced
                     ? std::string()
                     : decision.message},
       {"note", decision.note}});
}

}  // namespace

Worker::Worker(WorkerSettings settings, const Pipeline& pipeline, WorkerMetrics& metrics,
               Liveness& liveness)
    : settings_(std::move(settings)), pipeline_(pipeline), metrics_(metrics), liveness_(liveness) {}

Worker::~Worker() {
  Cancel();
  Wait();
}

void Worker::Start() {
  running_jobs_threads_ = settings_.concurrency;
  maintenance_ = std::jthread([this](const std::stop_token& stop) { MaintenanceLoop(stop); });
  for (int i = 0; i < settings_.concurrency; ++i) {
    job_threads_.emplace_back([this, i] { JobLoop(i); });
  }
}

void Worker::RequestStop() { stop_taking_.request_stop(); }

void Worker::Cancel() {
  stop_taking_.request_stop();
  cancel_.request_stop();
}

void Worker::Wait() {
  for (auto& thread : job_threads_) {
    if (thread.joinable()) thread.join();
  }
  if (maintenance_.joinable()) {
    maintenance_.request_stop();
    maintenance_.join();
  }
}

bool Worker::SleepFor(std::chrono::milliseconds duration, const std::stop_token& token) {
  std::mutex mutex;
  std::condition_variable_any wake;
  std::unique_lock lock(mutex);
  return wake.wait_for(lock, token, duration, [] { return false; }) || token.stop_requested();
}

std::chrono::milliseconds Worker::Jittered(std::chrono::milliseconds base) const {
  // Full jitter in [base/2, base]: workers that lost a server together do not
  // come back in lockstep.
  thread_local std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int64_t> spread(base.count() / 2, base.count());
  return std::chrono::milliseconds(spread(random));
}

void Worker::WaitRegistered(const std::stop_token& stop) {
  std::unique_lock lock(registered_mutex_);
  while (!registered_ && !stop.stop_requested()) {
    Liveness::Beat();  // waiting for Redis is not a stall
    registered_changed_.wait_for(lock, stop, 1000ms, [&] { return registered_; });
  }
}

void Worker::JobLoop(int index) {
  auto registration = liveness_.Register("job-" + std::to_string(index));
  queue::RedisJobQueue queue(settings_.redis, settings_.worker_id, settings_.redis_options);
  Backoff backoff(settings_.outage_backoff_max);
  std::stop_token stop = stop_taking_.get_token();
  WaitRegistered(stop);
  while (!stop.stop_requested()) {
    Liveness::Beat();
    auto taken = queue.Take(kTakeWait);
    if (!taken) {
      auto wait = Jittered(backoff.Next());
      if (index == 0) {
        spdlog::warn("queue unavailable: {} (retrying in {} ms)", taken.error().message,
                     wait.count());
      }
      SleepFor(wait, stop);
      continue;
    }
    backoff.Reset();
    if (!taken->has_value()) continue;
    ++stats_.in_flight;
    metrics_.jobs_in_flight.Add(1);
    Handle(queue, **taken);
    metrics_.jobs_in_flight.Add(-1);
    --stats_.in_flight;
  }
  if (--running_jobs_threads_ == 0) finished_ = true;
}

void Worker::Handle(JobQueue& queue, const Delivery& delivery) {
  auto started = std::chrono::steady_clock::now();
  Backoff backoff(settings_.outage_backoff_max);
  Decision decision;
  while (true) {
    Liveness::Beat();
    decision = pipeline_.Process(delivery, cancel_.get_token());
    if (decision.action != Action::kHold) break;
    // PostgreSQL or the catalog is down: everything would fail the same way,
    // so this thread keeps its job and waits instead of churning the queue.
    auto wait = Jittered(backoff.Next());
    spdlog::warn("holding job: {} (retrying in {} ms)", decision.message, wait.count());
    if (SleepFor(wait, stop_taking_.get_token())) {
      decision.action = Action::kRelease;
      decision.outcome = Outcome::kCancelled;
      break;
    }
  }
  Apply(queue, delivery, decision);

  switch (decision.outcome) {
    case Outcome::kSynced:
      ++stats_.synced;
      break;
    case Outcome::kAlreadySynced:
      ++stats_.already_synced;
      break;
    case Outcome::kRetryScheduled:
      ++stats_.retries_scheduled;
      break;
    case Outcome::kFailed:
      ++stats_.failed;
      break;
    case Outcome::kBoxDown:
      ++stats_.deferred;
      break;
    case Outcome::kCancelled:
    case Outcome::kServiceDown:
      ++stats_.released;
      break;
  }
  stats_.bytes_uploaded += decision.bytes_uploaded;
  metrics_.RecordOutcome(decision, std::chrono::system_clock::now());
  LogOutcome(decision, std::chrono::steady_clock::now() - started);
}

void Worker::Apply(JobQueue& queue, const Delivery& delivery, const Decision& decision) {
  Backoff backoff(settings_.outage_backoff_max);
  while (true) {
    Liveness::Beat();
    Status status;
    switch (decision.action) {
      case Action::kAck:
        status = queue.Ack(delivery);
        break;
      case Action::kDelay:
        status = queue.Delay(delivery, decision.payload, decision.due);
        break;
      case Action::kFail:
        status = queue.Fail(delivery, decision.payload);
        break;
      case Action::kRelease:
      case Action::kHold:
        status = queue.Release(delivery);
        break;
    }
    if (status) return;
    // The outcome is recorded (or safe to redo): keep it until Redis takes it.
    // On a forced stop the job stays in our processing list, and the reaper
    // hands it to another worker once our lease lapses.
    auto wait = Jittered(backoff.Next());
    spdlog::warn("cannot {} job: {} (retrying in {} ms)", ActionName(decision.action),
                 status.error().message, wait.count());
    if (SleepFor(wait, cancel_.get_token())) return;
  }
}

void Worker::MaintenanceLoop(const std::stop_token& stop) {
  auto registration = liveness_.Register("maintenance");
  queue::MaintenanceOptions options;
  options.lease = settings_.lease;
  options.redis = settings_.redis_options;
  queue::QueueMaintenance maintenance(settings_.redis, settings_.worker_id, options);
  queue::QueueAdmin admin(settings_.redis, settings_.redis_options);
  auto heartbeat_every = maintenance.RecommendedHeartbeatInterval();
  auto reap_every = std::max<std::chrono::milliseconds>(settings_.lease / 4, 1000ms);
  auto last_heartbeat = std::chrono::steady_clock::time_point();
  auto last_reap = std::chrono::steady_clock::time_point();
  bool redis_down = false;

  while (!stop.stop_requested()) {
    Liveness::Beat();
    auto now = std::chrono::steady_clock::now();
    Status status;
    if (now - last_heartbeat >= heartbeat_every) {
      status = maintenance.Heartbeat();
      if (status) {
        last_heartbeat = now;
        std::lock_guard lock(registered_mutex_);
        if (!registered_) {
          registered_ = true;  // the job threads may take from now on
          registered_changed_.notify_all();
        }
      }
    }
    if (status && !finished_) {
      if (auto promoted = maintenance.PromoteDueRetries(); !promoted) {
        status = promoted.error();
      } else if (*promoted > 0) {
        spdlog::debug("{} due retries moved to pending", *promoted);
      }
    }
    if (status && now - last_reap >= reap_every) {
      if (auto reaped = maintenance.ReapDeadWorkers(); !reaped) {
        status = reaped.error();
      } else {
        last_reap = now;
        if (*reaped > 0) spdlog::warn("returned {} jobs of dead workers to pending", *reaped);
      }
    }
    if (status && settings_.drain && !stop_taking_.stop_requested()) {
      auto counts = admin.Counts();
      if (!counts) {
        status = counts.error();
      } else if (counts->pending == 0 && counts->delayed == 0 && stats_.in_flight == 0) {
        // Drained: nothing pending or delayed and nothing held by any
        // worker. A dead worker's jobs count as held until the reaper returns
        // them to pending when its lease runs out; a live worker's jobs may
        // still come back as retries.
        bool held = counts->processing > 0;
        if (!held) {
          spdlog::info("queue drained: stopping");
          stop_taking_.request_stop();
        }
      }
    }
    if (!status) {
      if (!redis_down) spdlog::warn("maintenance: {}", status.error().message);
      redis_down = true;
      // A Redis that comes back may have lost the lease (restarted without
      // its data): renew it first thing, the job threads take nothing without.
      last_heartbeat = std::chrono::steady_clock::time_point();
    } else if (redis_down) {
      spdlog::info("maintenance: Redis is back");
      redis_down = false;
    }
    SleepFor(redis_down ? 1000ms : kPromoteInterval, stop);
  }

  // Every job thread has ended: deregister, unless jobs are still held
  // (a forced stop during a Redis outage); the reaper returns those later.
  auto deregistered = maintenance.Deregister();
  if (!deregistered) {
    spdlog::warn("could not deregister: {}", deregistered.error().message);
  } else if (!*deregistered) {
    spdlog::warn(
        "jobs still held in media:sync:processing:{}: they return to pending when the "
        "lease runs out",
        settings_.worker_id);
  }
}

}  // namespace media_sync::worker
