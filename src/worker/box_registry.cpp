#include "worker/box_registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace media_sync::worker {
namespace {

using namespace std::chrono_literals;

// See the header: how long a job beyond the cap waits for a slot.
constexpr auto kAnswerWindow = 1s;  // answered this recently: busy, not hung
constexpr auto kBusyWait = 1s;
constexpr auto kSilentWait = 100ms;
constexpr auto kMinDeferral = 1s;

std::string Display(const std::string& name) { return name.empty() ? "(default)" : name; }

std::string DownReason(const std::string& name) {
  return "Storage box " + Display(name) + " is down";
}

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

StoreRouter::Slot BoxRegistry::TakeSlot(const std::string& name, TimePoint now) {
  auto held = loads_[name].started.insert(now);
  return Slot([this, name, held] {
    {
      MutexLock lock(mu_);
      loads_[name].started.erase(held);
    }
    slot_freed_.notify_all();
  });
}

StoreRouter::Admission BoxRegistry::Admit(const BoxId& box, const std::stop_token& stop) {
  const std::string name = Name(box);
  const size_t cap =
      settings_.max_in_flight > 0 ? static_cast<size_t>(settings_.max_in_flight) : SIZE_MAX;
  MutexLock lock(mu_);
  Load& load = loads_[name];
  std::optional<std::chrono::steady_clock::time_point> give_up;
  while (true) {
    const TimePoint now = clock_();
    const bool free_slot = load.started.size() < cap;
    if (auto down_until = DownUntilLocked(name, now, /*may_probe=*/free_slot)) {
      return Admission{down_until, DownReason(name), Slot()};
    }
    // Shutting down: the job's first call ends at once and hands it back.
    if (free_slot || stop.stop_requested()) return Admission{std::nullopt, "", TakeSlot(name, now)};

    if (!give_up) {
      bool answering = load.last_answer && now - *load.last_answer < kAnswerWindow;
      give_up = std::chrono::steady_clock::now() +
                (answering ? std::chrono::milliseconds(kBusyWait) : kSilentWait);
    }
    bool woken = slot_freed_.wait_until(lock, stop, *give_up, [&] {
      mu_.AssertHeld();
      return load.started.size() < cap || DownUntilLocked(name, clock_(), false).has_value();
    });
    if (woken || stop.stop_requested()) continue;

    // Still full: come back after as long as its oldest job has been in
    // flight, so a hang costs fewer turns the longer it lasts.
    const TimePoint after = clock_();
    auto oldest =
        std::chrono::duration_cast<std::chrono::milliseconds>(after - *load.started.begin());
    auto wait = std::max<std::chrono::milliseconds>(
        std::min<std::chrono::milliseconds>(oldest, settings_.max_backoff), kMinDeferral);
    return Admission{after + wait,
                     "Storage box " + Display(name) + " has " +
                         std::to_string(load.started.size()) +
                         " jobs in flight, as many as BOX_MAX_IN_FLIGHT allows",
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
    if (entry.store && entry.endpoint != **endpoint) {
      spdlog::info("storage box {}: endpoint changed from {} to {}", name, entry.endpoint,
                   **endpoint);
      entry.down_until.reset();
      entry.probing_since.reset();
      entry.backoff = std::chrono::milliseconds(0);
    }
    entry.endpoint = **endpoint;
    entry.store = *store;
  }
  entry.reread = false;
  entry.fetched_at = clock_();
  return entry.store;
}

void BoxRegistry::ReportFailure(const BoxId& box, const Error& error) {
  // Jobs waiting for one of the box's slots now defer instead.
  struct Notify {
    std::condition_variable_any& cv;
    ~Notify() { cv.notify_all(); }
  } notify{slot_freed_};
  MutexLock lock(mu_);
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
  loads_[Name(box)].last_answer = clock_();
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

std::vector<BoxRegistry::BoxState> BoxRegistry::States() {
  MutexLock lock(mu_);
  std::vector<BoxState> states;
  for (const auto& [name, entry] : boxes_) {
    std::string endpoint = name.empty() ? defaults_.endpoint : entry.endpoint;
    states.push_back(BoxState{name, endpoint, !entry.down_until.has_value(),
                              entry.down_until ? entry.last_error : std::string()});
  }
  return states;
}

}  // namespace media_sync::worker
