#include "worker/box_registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "util/liveness.h"

namespace media_sync::worker {
namespace {

using namespace std::chrono_literals;

// See the header: how long a job beyond the cap waits for a slot.
constexpr auto kAnswerWindow = 1s;  // answered this recently: busy, not hung
constexpr auto kRecheck = 250ms;    // a job waiting for a slot looks at the box again
constexpr auto kSilentWait = 100ms;
constexpr int kDiscovery = 2;  // takes beyond the limits while a box in use may hang
constexpr auto kMinDeferral = 1s;
constexpr auto kInUse = 5s;  // a box with a job this recently counts in AwaitIntake
constexpr int kMinSpare = 2;

std::string Display(const std::string& name) { return name.empty() ? "(default)" : name; }

void Add(TransportCounts& total, const TransportCounts& more) {
  total.requests += more.requests;
  total.connections += more.connections;
  total.tls_handshakes += more.tls_handshakes;
}

std::string DownReason(const std::string& name) {
  return "Storage box " + Display(name) + " is down";
}

// A paused box's job is due again after a quarter of the pause so far,
// between 5 s and 30 s: a short pause ends quickly for its jobs, and a long
// one does not cycle every job through the workers every few seconds.
constexpr auto kMinPauseDeferral = std::chrono::milliseconds(5s);
constexpr auto kMaxPauseDeferral = std::chrono::milliseconds(30s);

}  // namespace

BoxRegistry::BoxRegistry(s3::S3Options defaults, Catalog& catalog, StoreFactory factory,
                         Settings settings, Clock clock)
    : defaults_(std::move(defaults)),
      catalog_(catalog),
      factory_(std::move(factory)),
      settings_(settings),
      clock_(std::move(clock)) {}

Result<s3::S3Options> BoxRegistry::OptionsForEndpoint(const s3::S3Options& defaults,
                                                      const std::string& endpoint) {
  s3::S3Options options = defaults;
  std::string rest = endpoint;
  if (rest.rfind("https://", 0) == 0) {
    options.secure = true;
    rest = rest.substr(8);
  } else if (rest.rfind("http://", 0) == 0) {
    options.secure = false;
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    return Error::Configuration("unsupported scheme in storage box endpoint '" + endpoint + "'");
  }
  rest = rest.substr(0, rest.find('/'));
  if (rest.empty()) return Error::Configuration("empty storage box endpoint '" + endpoint + "'");
  options.endpoint = rest;
  return options;
}

std::optional<StoreRouter::TimePoint> BoxRegistry::DownUntil(const BoxId& box) {
  MutexLock lock(mu_);
  return DownUntilLocked(Name(box), clock_(), /*may_probe=*/true);
}

std::optional<StoreRouter::TimePoint> BoxRegistry::DownUntilLocked(const std::string& name,
                                                                   TimePoint now, bool may_probe) {
  auto it = boxes_.find(name);
  if (it == boxes_.end() || !it->second.down_until) return std::nullopt;
  Box& entry = it->second;
  if (now < *entry.down_until) return entry.down_until;
  auto retry = now + std::min<std::chrono::milliseconds>(entry.backoff, std::chrono::seconds(5));
  if (entry.probing_since && now < *entry.probing_since + settings_.probe_timeout) return retry;
  if (!may_probe) return retry;
  entry.probing_since = now;  // this caller's job probes the box
  return std::nullopt;
}

void BoxRegistry::Retire(Box& entry) {
  if (entry.store) Add(entry.retired, entry.store->Transport());
}

ConcurrencyLimit::Settings BoxRegistry::LimitSettings() const {
  ConcurrencyLimit::Settings limit;
  limit.ceiling = std::max(1, settings_.max_in_flight);
  limit.initial = std::min(settings_.initial_limit, limit.ceiling);
  limit.tolerance = settings_.latency_tolerance;
  return limit;
}

BoxRegistry::Load& BoxRegistry::LoadOf(const std::string& name) {
  auto found = loads_.find(name);
  if (found != loads_.end()) return found->second;
  return loads_.try_emplace(name, LimitSettings()).first->second;
}

StoreRouter::Slot BoxRegistry::TakeSlot(const std::string& name, Load& load, TimePoint now) {
  auto held = load.started.insert(now);
  load.last_admitted = now;
  const int in_flight = static_cast<int>(load.started.size());
  // The connections this thread opens while it holds the slot are not the
  // box's latency (core/object_store.h): measured on the thread that takes
  // the slot, counted when the same thread gives it back.
  const std::thread::id taker = std::this_thread::get_id();
  const std::chrono::nanoseconds setup_before = ConnectionSetupOnThisThread();
  return Slot(
      [this, name, held, in_flight, taker, setup_before](std::optional<uint64_t> bytes_if_ok) {
        const std::chrono::nanoseconds setup = std::this_thread::get_id() == taker
                                                   ? ConnectionSetupOnThisThread() - setup_before
                                                   : std::chrono::nanoseconds{0};
        GiveBack(name, held, in_flight, setup, bytes_if_ok);
      });
}

void BoxRegistry::GiveBack(const std::string& name, std::multiset<TimePoint>::iterator held,
                           int in_flight, std::chrono::nanoseconds setup,
                           std::optional<uint64_t> bytes_if_ok) {
  int grown = 0;
  std::condition_variable_any* freed = nullptr;
  {
    MutexLock lock(mu_);
    Load& load = LoadOf(name);
    const TimePoint now = clock_();
    if (bytes_if_ok) {
      const int before = load.limit.limit();
      const auto took = now - *held;
      load.limit.OnSuccess(*bytes_if_ok,
                           std::max<ConcurrencyLimit::Duration>(
                               took - std::chrono::duration_cast<ConcurrencyLimit::Duration>(setup),
                               ConcurrencyLimit::Duration{0}),
                           in_flight, now);
      const ConcurrencyLimit::Snapshot after = load.limit.snapshot();
      grown = std::max(0, after.limit - before);
      if (after.limit != before) {
        spdlog::debug("storage box {}: limit {} -> {} (latency {:.0f} ms, {:.2f}x the no-load)",
                      Display(name), before, after.limit, after.latency_seconds * 1000,
                      after.latency_ratio);
      }
    }
    load.started.erase(held);
    freed = &load.slot_freed;
  }
  // One slot freed, and as many more as the limit grew by.
  for (int i = 0; i <= grown; ++i) {
    freed->notify_one();
    intake_room_.notify_one();
  }
}

bool BoxRegistry::Answering(const std::string& name, const Load& load, TimePoint now) {
  if (load.last_answer && now - *load.last_answer < kAnswerWindow) return true;
  auto box = boxes_.find(name);
  if (box == boxes_.end() || !box->second.store) return false;
  auto moved = box->second.store->LastProgress();
  return moved && std::chrono::steady_clock::now() - *moved < kAnswerWindow;
}

size_t BoxRegistry::EffectiveLimit(const Load& load, bool answering) const {
  if (settings_.max_in_flight <= 0) return SIZE_MAX;
  auto limit = static_cast<size_t>(load.limit.limit());
  if (answering) return limit;
  const int threads = settings_.threads > 0 ? settings_.threads : settings_.max_in_flight;
  return std::min(limit, static_cast<size_t>(std::max(1, threads / 2)));
}

bool BoxRegistry::InUse(const Load& load, TimePoint now) {
  return !load.started.empty() || load.waiting > 0 || now - load.last_admitted < kInUse;
}

bool BoxRegistry::Suspected(const std::string& name, const Load& load, TimePoint now) {
  return !load.started.empty() && now - *load.started.begin() >= kAnswerWindow &&
         !Answering(name, load, now);
}

int BoxRegistry::LimitsInUse(TimePoint now) {
  int limits = 0;
  for (const auto& [name, load] : loads_) {
    if (InUse(load, now)) limits += load.limit.limit();
  }
  return std::max(limits, std::min(settings_.initial_limit, settings_.max_in_flight));
}

int BoxRegistry::IntakeBudget(TimePoint now) {
  const int limits = LimitsInUse(now);
  int budget = limits + Spare(limits);
  // A box in use may hang: room to find the jobs of the others meanwhile.
  for (const auto& [name, load] : loads_) {
    if (Suspected(name, load, now)) return budget + kDiscovery;
  }
  return budget;
}

bool BoxRegistry::OthersInUse(const std::string& name, TimePoint now) {
  for (const auto& [other, load] : loads_) {
    if (other != name && InUse(load, now)) return true;
  }
  return false;
}

int BoxRegistry::Spare(int limits) const { return std::max(kMinSpare, limits / 4); }

int BoxRegistry::Held() {
  int held = intake_;
  for (const auto& [name, load] : loads_) held += static_cast<int>(load.started.size());
  return held;
}

std::optional<StoreRouter::Ticket> BoxRegistry::AwaitIntake(const std::stop_token& stop,
                                                            std::chrono::milliseconds max_wait) {
  if (settings_.max_in_flight <= 0) return Ticket();
  {
    MutexLock lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + max_wait;
    bool room = intake_room_.wait_until(lock, stop, deadline, [&] {
      mu_.AssertHeld();
      return Held() < IntakeBudget(clock_());
    });
    if (!room) return std::nullopt;
    ++intake_;
  }
  // Turned into a slot by Admit (Succeeded): the jobs held stay as many.
  // Given back without one: room for another take.
  return Ticket([this](std::optional<uint64_t> into_slot) {
    {
      MutexLock lock(mu_);
      --intake_;
    }
    if (!into_slot) intake_room_.notify_one();
  });
}

StoreRouter::Admission BoxRegistry::Admit(const BoxId& box, const std::stop_token& stop,
                                          Ticket ticket) {
  Admission admission;
  {
    MutexLock lock(mu_);
    admission = AdmitLocked(Name(box), stop);
  }
  // After the lock (the ticket takes it to give itself back), and after the
  // slot counts: the jobs held never look fewer than they are.
  if (admission.slot) {
    ticket.Succeeded(0);
  } else {
    ticket.Reset();
  }
  return admission;
}

StoreRouter::Admission BoxRegistry::AdmitLocked(const std::string& name,
                                                const std::stop_token& stop) {
  if (auto paused = paused_.find(name); paused != paused_.end()) {
    const TimePoint now = clock_();
    auto deferral = std::clamp(
        std::chrono::duration_cast<std::chrono::milliseconds>(now - paused->second.since) / 4,
        kMinPauseDeferral, kMaxPauseDeferral);
    return Admission{now + deferral,
                     "Storage box " + Display(name) + " is paused: " + paused->second.reason,
                     Slot()};
  }
  Load& load = LoadOf(name);
  std::optional<std::chrono::steady_clock::time_point> give_up;
  struct Waiting {
    int& count;
    bool counted = false;
    void Start() {
      if (!counted) ++count;
      counted = true;
    }
    ~Waiting() {
      if (counted) --count;
    }
  } waiting{load.waiting};
  while (true) {
    const TimePoint now = clock_();
    const bool answering = Answering(name, load, now);
    const size_t limit = EffectiveLimit(load, answering);
    const bool free_slot = load.started.size() < limit;
    if (auto down_until = DownUntilLocked(name, now, /*may_probe=*/free_slot)) {
      return Admission{down_until, DownReason(name), Slot()};
    }
    // Shutting down: the job's first call ends at once and hands it back.
    if (free_slot || stop.stop_requested()) {
      return Admission{std::nullopt, "", TakeSlot(name, load, now)};
    }

    // Busy, not hung (it answered within the last second, or its oldest job
    // has not been in flight for a second yet, and no other box's jobs wait
    // behind this one's): wait for the next free slot, unless enough jobs
    // wait for this box already and the others must not wait behind them.
    if (const bool others = OthersInUse(name, now);
        !Suspected(name, load, now) && (answering || !others)) {
      if (waiting.counted || !others || load.waiting < Spare(LimitsInUse(now))) {
        waiting.Start();
        Liveness::Beat();  // waiting for a slot is not a stall
        load.slot_freed.wait_for(mu_, stop, kRecheck, [&] {
          mu_.AssertHeld();
          const TimePoint at = clock_();
          return load.started.size() < EffectiveLimit(load, Answering(name, load, at)) ||
                 DownUntilLocked(name, at, false).has_value();
        });
        continue;
      }
      return Admission{now + kMinDeferral,
                       "Storage box " + Display(name) + " has " +
                           std::to_string(load.started.size()) + " jobs in flight (its limit " +
                           std::to_string(limit) + ") and " + std::to_string(load.waiting) +
                           " waiting",
                       Slot()};
    }

    if (!give_up) give_up = std::chrono::steady_clock::now() + kSilentWait;
    bool woken = load.slot_freed.wait_until(mu_, stop, *give_up, [&] {
      mu_.AssertHeld();
      return load.started.size() < EffectiveLimit(load, Answering(name, load, clock_())) ||
             DownUntilLocked(name, clock_(), false).has_value();
    });
    if (woken || stop.stop_requested()) continue;

    // Still full and silent: come back after as long as its oldest job has
    // been in flight, so a hang costs fewer turns the longer it lasts.
    const TimePoint after = clock_();
    auto oldest =
        std::chrono::duration_cast<std::chrono::milliseconds>(after - *load.started.begin());
    auto wait = std::max<std::chrono::milliseconds>(
        std::min<std::chrono::milliseconds>(oldest, settings_.max_backoff), kMinDeferral);
    return Admission{after + wait,
                     "Storage box " + Display(name) + " has " +
                         std::to_string(load.started.size()) + " jobs in flight and has not " +
                         (load.last_answer ? "answered for a second" : "answered yet") +
                         " (half the job threads at most while it is silent, BOX_MAX_IN_FLIGHT " +
                         "at most in all)",
                     Slot()};
  }
}

Result<std::shared_ptr<ObjectStore>> BoxRegistry::ForBox(const BoxId& box) {
  const std::string name = Name(box);
  {
    MutexLock lock(mu_);
    auto it = boxes_.find(name);
    if (name.empty()) {
      if (it == boxes_.end() || !it->second.store || it->second.reread) {
        auto store = factory_(defaults_);
        if (!store) return store.error();
        Box& entry = boxes_[name];
        Retire(entry);
        entry.endpoint = defaults_.endpoint;
        entry.store = *store;
        entry.reread = false;
        return *store;
      }
      return it->second.store;
    }
    if (it != boxes_.end() && it->second.store && !it->second.reread &&
        clock_() < it->second.fetched_at + settings_.refresh) {
      return it->second.store;
    }
  }

  auto endpoint = catalog_.BoxEndpoint(name);
  MutexLock lock(mu_);
  auto it = boxes_.find(name);
  if (!endpoint) {
    // The catalog is down: a box we already know keeps working.
    if (it != boxes_.end() && it->second.store) return it->second.store;
    return endpoint.error();
  }
  if (!endpoint->has_value()) {
    if (it != boxes_.end()) boxes_.erase(it);
    return Error::JobRetryable("Unknown storage box " + name).As(FaultClass::kUnknownBox);
  }
  Box& entry = boxes_[name];
  if (!entry.store || entry.endpoint != **endpoint || entry.reread) {
    auto options = OptionsForEndpoint(defaults_, **endpoint);
    if (!options) return options.error().Wrap("storage box " + name);
    auto store = factory_(*options);
    if (!store) return store.error();
    Retire(entry);
    if (entry.store && entry.endpoint != **endpoint) {
      spdlog::info("storage box {}: endpoint changed from {} to {}", name, entry.endpoint,
                   **endpoint);
      entry.down_until.reset();
      entry.probing_since.reset();
      entry.backoff = std::chrono::milliseconds(0);
      // Another server, another path: its limit is learned anew.
      LoadOf(name).limit = ConcurrencyLimit(LimitSettings());
    }
    entry.endpoint = **endpoint;
    entry.store = *store;
  }
  entry.reread = false;
  entry.fetched_at = clock_();
  return entry.store;
}

void BoxRegistry::ReportFailure(const BoxId& box, const Error& error) {
  MutexLock lock(mu_);
  Load& load = LoadOf(Name(box));
  if (error.kind == ErrorKind::kOutage) load.limit.OnFailure(clock_());
  // Jobs waiting for one of the box's slots now defer instead.
  load.slot_freed.notify_all();
  Box& entry = boxes_[Name(box)];
  entry.backoff = entry.backoff.count() == 0 ? settings_.first_backoff
                                             : std::min<std::chrono::milliseconds>(
                                                   entry.backoff * 2, settings_.max_backoff);
  entry.down_until = clock_() + entry.backoff;
  entry.probing_since.reset();
  entry.last_error = error.message;
  if (error.kind == ErrorKind::kConfiguration) {
    entry.reread = true;
    spdlog::error(
        "storage box {} is unusable until its configuration is fixed: {} (checking "
        "again in {} ms)",
        Display(Name(box)), error.message, entry.backoff.count());
  } else {
    spdlog::warn("storage box {} is down: {} (checking again in {} ms)", Display(Name(box)),
                 error.message, entry.backoff.count());
  }
}

void BoxRegistry::ReportSuccess(const BoxId& box) {
  MutexLock lock(mu_);
  LoadOf(Name(box)).last_answer = clock_();
  auto it = boxes_.find(Name(box));
  if (it == boxes_.end()) return;
  Box& entry = it->second;
  if (entry.down_until) spdlog::info("storage box {} is back up", Display(Name(box)));
  entry.down_until.reset();
  entry.probing_since.reset();
  entry.backoff = std::chrono::milliseconds(0);
}

void BoxRegistry::AbandonProbe(const BoxId& box) {
  MutexLock lock(mu_);
  auto it = boxes_.find(Name(box));
  if (it != boxes_.end()) it->second.probing_since.reset();
}

void BoxRegistry::SetPaused(const std::map<std::string, std::string>& reasons) {
  MutexLock lock(mu_);
  const TimePoint now = clock_();
  std::map<std::string, Paused> paused;
  for (const auto& [name, reason] : reasons) {
    auto before = paused_.find(name);
    paused[name] = Paused{reason, before != paused_.end() ? before->second.since : now};
  }
  paused_ = std::move(paused);
}

std::vector<BoxRegistry::BoxState> BoxRegistry::States() {
  MutexLock lock(mu_);
  std::vector<BoxState> states;
  for (const auto& [name, entry] : boxes_) {
    std::string endpoint = name.empty() ? defaults_.endpoint : entry.endpoint;
    BoxState state;
    state.name = name;
    state.endpoint = endpoint;
    state.up = !entry.down_until.has_value();
    if (entry.down_until) state.error = entry.last_error;
    state.transport = entry.retired;
    if (entry.store) Add(state.transport, entry.store->Transport());
    const Load& load = LoadOf(name);
    ConcurrencyLimit::Snapshot limit = load.limit.snapshot();
    state.limit = settings_.max_in_flight > 0 ? limit.limit : 0;
    state.in_flight = static_cast<int>(load.started.size());
    state.waiting = load.waiting;
    state.latency_seconds = limit.latency_seconds;
    state.latency_ratio = limit.latency_ratio;
    states.push_back(std::move(state));
  }
  return states;
}

}  // namespace media_sync::worker
