#include "worker/worker.h"

#include <spdlog/spdlog.h>

#include <random>

#include "util/log.h"

namespace media_sync::worker {
namespace {

using namespace std::chrono_literals;
using Action = Decision::Action;
using Outcome = Decision::Outcome;

// How often an idle thread rechecks for stop: a drain ends this soon after
// the queue is found empty.
constexpr auto kTakeWait = 250ms;
// How long a thread waits for room to take a job before it beats and waits
// again (a stop ends the wait at once).
constexpr auto kIntakeWait = 1000ms;
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

Worker::Worker(WorkerSettings settings, QueueFactories queues, const Pipeline& pipeline,
               WorkerMetrics& metrics, Liveness& liveness, Clock& clock)
    : settings_(std::move(settings)),
      queues_(std::move(queues)),
      pipeline_(pipeline),
      metrics_(metrics),
      liveness_(liveness),
      clock_(clock) {}

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

std::chrono::milliseconds Worker::Jittered(std::chrono::milliseconds base) const {
  // Full jitter in [base/2, base]: workers that lost a server together do not
  // come back in lockstep.
  thread_local std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int64_t> spread(base.count() / 2, base.count());
  return std::chrono::milliseconds(spread(random));
}

void Worker::WaitRegistered(const std::stop_token& stop) {
  MutexLock lock(registered_mutex_);
  while (!registered_ && !stop.stop_requested()) {
    Liveness::Beat();  // waiting for Redis is not a stall
    registered_changed_.wait_for(lock, stop, 1000ms, [&] {
      registered_mutex_.AssertHeld();
      return registered_;
    });
  }
}

void Worker::JobLoop(int index) {
  auto registration = liveness_.Register("job-" + std::to_string(index));
  std::unique_ptr<JobQueue> queue = queues_.job_queue();
  Backoff backoff(settings_.outage_backoff_max);
  std::stop_token stop = stop_taking_.get_token();
  WaitRegistered(stop);
  while (!stop.stop_requested()) {
    Liveness::Beat();
    // Room for one more job first: while the boxes in use are full, taking
    // more would only hold jobs that wait (StoreRouter::AwaitIntake).
    std::optional<StoreRouter::Ticket> ticket = pipeline_.AwaitIntake(stop, kIntakeWait);
    if (!ticket) continue;
    auto taken = queue->Take(kTakeWait);
    if (!taken) {
      auto wait = Jittered(backoff.Next());
      if (index == 0) {
        spdlog::warn("queue unavailable: {} (retrying in {} ms)", taken.error().message,
                     wait.count());
      }
      clock_.SleepFor(wait, stop);
      continue;
    }
    backoff.Reset();
    if (!taken->has_value()) continue;
    const Delivery& delivery = **taken;
    Hold(delivery);
    ++in_flight_;
    metrics_.jobs_in_flight.Add(1);
    Handle(*queue, delivery, std::move(*ticket));
    metrics_.jobs_in_flight.Add(-1);
    --in_flight_;
    LetGo(delivery);
  }
  if (--running_jobs_threads_ == 0) finished_ = true;
}

void Worker::Hold(const Delivery& delivery) {
  MutexLock lock(held_mutex_);
  ++held_[delivery.payload];
}

void Worker::LetGo(const Delivery& delivery) {
  MutexLock lock(held_mutex_);
  auto it = held_.find(delivery.payload);
  if (it != held_.end() && --it->second == 0) held_.erase(it);
}

std::optional<Decision> Worker::Decide(JobQueue& queue, const Delivery& delivery,
                                       StoreRouter::Ticket ticket) {
  // A take that was waiting when the stop came starts no new work.
  if (stop_taking_.stop_requested()) return Decision::Release("stopping: handed back untouched");
  Backoff backoff(settings_.outage_backoff_max);
  while (true) {
    Liveness::Beat();
    // The ticket goes with the first attempt only: a job held through an
    // outage comes back as one the process holds already.
    Decision decision = pipeline_.Process(delivery, cancel_.get_token(),
                                          std::exchange(ticket, StoreRouter::Ticket()));
    if (decision.action != Action::kHold) return decision;
    // PostgreSQL or the catalog is down: everything would fail the same way,
    // so this thread keeps its job and waits instead of churning the queue.
    auto wait = Jittered(backoff.Next());
    spdlog::warn("holding job: {} (retrying in {} ms)", decision.message, wait.count());
    if (clock_.SleepFor(wait, stop_taking_.get_token())) {
      decision.action = Action::kRelease;
      decision.outcome = Outcome::kCancelled;
      return decision;
    }
    // A hold can outlast this worker's lease (Redis was out of reach for
    // this worker alone): once a reaper returned the job, another worker
    // serves it, and holding on would make two holders of one job.
    if (auto holds = queue.Holds(delivery); holds && !*holds) {
      spdlog::warn(
          "let go of a held job: a reaper returned it to pending while this worker's lease had "
          "lapsed ({})",
          decision.message);
      return std::nullopt;
    }
  }
}

void Worker::Handle(JobQueue& queue, const Delivery& delivery, StoreRouter::Ticket ticket) {
  auto started = clock_.Now();
  std::optional<Decision> decided = Decide(queue, delivery, std::move(ticket));
  // Let go (a reaper returned it): another worker serves it, and counts it.
  if (!decided) return;
  const Decision& decision = *decided;
  Apply(queue, delivery, decision);
  metrics_.RecordOutcome(decision, clock_.WallNow());
  LogOutcome(decision, clock_.Now() - started);
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
    if (clock_.SleepFor(wait, cancel_.get_token())) return;
  }
}

void Worker::MaintenanceLoop(const std::stop_token& stop) {
  auto registration = liveness_.Register("maintenance");
  std::unique_ptr<QueueUpkeep> upkeep = queues_.upkeep();
  std::unique_ptr<JobQueue> hand_back = queues_.job_queue();
  const auto check_every = std::max<std::chrono::milliseconds>(settings_.lease / 3, 100ms);
  const auto reap_every = std::max<std::chrono::milliseconds>(settings_.lease / 4, 1000ms);
  auto last_heartbeat = std::chrono::steady_clock::time_point();
  auto last_reap = std::chrono::steady_clock::time_point();
  auto last_check = std::chrono::steady_clock::time_point();
  // Since when every call to Redis succeeded (unset while it fails).
  std::optional<std::chrono::steady_clock::time_point> connected_since;
  std::unordered_map<std::string, int> unheld;  // seen on the last check
  bool registered = false;
  bool redis_down = false;

  while (!stop.stop_requested()) {
    Liveness::Beat();
    auto now = clock_.Now();
    Status status;
    if (now - last_heartbeat >= check_every) {
      status = upkeep->Heartbeat();
      if (status && !registered) {
        registered = true;
        MutexLock lock(registered_mutex_);
        registered_ = true;  // the job threads may take from now on
        registered_changed_.notify_all();
      }
      if (status) last_heartbeat = now;
    }
    if (status && !connected_since) connected_since = now;
    if (status && !finished_) {
      if (auto promoted = upkeep->PromoteDueRetries(); !promoted) {
        status = promoted.error();
      } else if (*promoted > 0) {
        spdlog::debug("{} due retries moved to pending", *promoted);
      }
    }
    // Only a worker whose own connection held for a full lease may judge
    // others dead: after an outage every worker's lease may have lapsed, and
    // each renews its own within a second of reconnecting.
    if (status && now - last_reap >= reap_every && now - *connected_since >= settings_.lease) {
      if (auto reaped = upkeep->ReapDeadWorkers(); !reaped) {
        status = reaped.error();
      } else {
        last_reap = now;
        if (*reaped > 0) spdlog::warn("returned {} jobs of dead workers to pending", *reaped);
      }
    }
    if (status && registered && now - last_check >= check_every) {
      status = HandBackUnheld(*upkeep, *hand_back, unheld, false);
      if (status) last_check = now;
    }
    if (status && settings_.drain && !stop_taking_.stop_requested() && in_flight_ == 0) {
      // Drained: nothing pending or delayed and nothing held by any worker.
      // A dead worker's jobs count as held until the reaper returns them to
      // pending when its lease runs out; a live worker's jobs may still come
      // back as retries.
      if (auto idle = upkeep->Idle(); !idle) {
        status = idle.error();
      } else if (*idle) {
        spdlog::info("queue drained: stopping");
        stop_taking_.request_stop();
      }
    }
    if (!status) {
      if (!redis_down) spdlog::warn("maintenance: {}", status.error().message);
      redis_down = true;
      // A Redis that comes back may have lost the lease (restarted without
      // its data): renew it first thing, the job threads take nothing without.
      last_heartbeat = std::chrono::steady_clock::time_point();
      connected_since.reset();
      unheld.clear();
    } else if (redis_down) {
      spdlog::info("maintenance: Redis is back");
      redis_down = false;
    }
    clock_.SleepFor(redis_down ? 1000ms : kPromoteInterval, stop);
  }

  // Every job thread has ended, so no thread holds anything: hand back what
  // is left in the list (jobs whose release failed during an outage), then
  // deregister. Should Redis still be down, the reaper returns them once the
  // lease runs out.
  Status handed_back = HandBackUnheld(*upkeep, *hand_back, unheld, true);
  auto deregistered = handed_back ? upkeep->Deregister() : Result<bool>(handed_back.error());
  if (!deregistered) {
    spdlog::warn("could not deregister: {}", deregistered.error().message);
  } else if (!*deregistered) {
    spdlog::warn(
        "jobs still held in media:sync:processing:{}: they return to pending when the "
        "lease runs out",
        settings_.worker_id);
  }
}

Status Worker::HandBackUnheld(QueueUpkeep& upkeep, JobQueue& queue,
                              std::unordered_map<std::string, int>& unheld, bool all) {
  // The list first, then what the threads hold: a job taken in between is
  // not in the list read; one finished in between looks unheld once only.
  auto entries = upkeep.OwnEntries();
  if (!entries) return entries.error();
  std::unordered_map<std::string, int> now_unheld;
  for (const auto& entry : *entries) ++now_unheld[entry];
  {
    MutexLock lock(held_mutex_);
    for (const auto& [payload, threads] : held_) {
      auto it = now_unheld.find(payload);
      if (it == now_unheld.end()) continue;
      it->second -= threads;
      if (it->second <= 0) now_unheld.erase(it);
    }
  }
  for (auto it = now_unheld.begin(); it != now_unheld.end();) {
    // Unheld twice in a row: a take in progress is held within
    // microseconds of its reply, long before the next check.
    int seen_before = 0;
    if (auto before = unheld.find(it->first); before != unheld.end()) seen_before = before->second;
    int copies = all ? it->second : std::min(it->second, seen_before);
    for (int i = 0; i < copies; ++i) {
      if (Status released = queue.Release(Delivery{it->first, 0}); !released) return released;
      spdlog::warn("handed back a job in media:sync:processing:{} that no thread held",
                   settings_.worker_id);
    }
    it->second -= copies;
    it = it->second > 0 ? std::next(it) : now_unheld.erase(it);
  }
  unheld = std::move(now_unheld);
  return Ok();
}

}  // namespace media_sync::worker
