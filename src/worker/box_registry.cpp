#include "worker/box_registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace media_sync::worker {
namespace {

std::string Display(const std::string& name) { return name.empty() ? "(default)" : name; }

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
  std::lock_guard lock(mu_);
  auto it = boxes_.find(Name(box));
  if (it == boxes_.end() || !it->second.down_until) return std::nullopt;
  Box& entry = it->second;
  TimePoint now = clock_();
  if (now < *entry.down_until) return entry.down_until;
  if (entry.probing_since && now < *entry.probing_since + settings_.probe_timeout) {
    return now + std::min<std::chrono::milliseconds>(entry.backoff, std::chrono::seconds(5));
  }
  entry.probing_since = now;  // this caller's job probes the box
  return std::nullopt;
}

Result<std::shared_ptr<ObjectStore>> BoxRegistry::ForBox(const BoxId& box) {
  const std::string name = Name(box);
  {
    std::lock_guard lock(mu_);
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
  std::lock_guard lock(mu_);
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
  std::lock_guard lock(mu_);
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
  std::lock_guard lock(mu_);
  auto it = boxes_.find(Name(box));
  if (it == boxes_.end()) return;
  Box& entry = it->second;
  if (entry.down_until) spdlog::info("storage box {} is back up", Display(Name(box)));
  entry.down_until.reset();
  entry.probing_since.reset();
  entry.backoff = std::chrono::milliseconds(0);
}

void BoxRegistry::AbandonProbe(const BoxId& box) {
  std::lock_guard lock(mu_);
  auto it = boxes_.find(Name(box));
  if (it != boxes_.end()) it->second.probing_since.reset();
}

std::vector<BoxRegistry::BoxState> BoxRegistry::States() {
  std::lock_guard lock(mu_);
  std::vector<BoxState> states;
  for (const auto& [name, entry] : boxes_) {
    std::string endpoint = name.empty() ? defaults_.endpoint : entry.endpoint;
    states.push_back(BoxState{name, endpoint, !entry.down_until.has_value(),
                              entry.down_until ? entry.last_error : std::string()});
  }
  return states;
}

}  // namespace media_sync::worker
