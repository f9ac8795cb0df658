#include "worker/concurrency_limit.h"

#include <algorithm>
#include <cmath>

namespace media_sync::worker {
namespace {

constexpr uint64_t kFirstClassBytes = uint64_t{64} * 1024;
constexpr int kUnloadedInFlight = 4;     // samples that saw (next to) no queue of our own
constexpr double kUsedFraction = 0.75;   // a round that reached this share used its limit
constexpr double kLatencyAverage = 0.1;  // weight of a new sample in latency_seconds

double Seconds(ConcurrencyLimit::Duration duration) {
  return std::chrono::duration<double>(duration).count();
}

}  // namespace

ConcurrencyLimit::ConcurrencyLimit(Settings settings)
    : settings_(settings), limit_(std::clamp(settings.initial, 1, std::max(1, settings.ceiling))) {}

int ConcurrencyLimit::limit() const { return std::max(1, static_cast<int>(limit_)); }

int ConcurrencyLimit::SizeClass(uint64_t bytes) {
  int size_class = 0;
  for (uint64_t bound = kFirstClassBytes; bytes > bound && size_class < kClasses - 1; bound *= 4) {
    ++size_class;
  }
  return size_class;
}

double ConcurrencyLimit::FloorRatio(Floor& floor, Duration took, int in_flight) const {
  // At least a microsecond: a ratio needs a floor above zero.
  took = std::max<Duration>(took, std::chrono::microseconds(1));
  floor.least = floor.least ? std::min(*floor.least, took) : took;
  if (in_flight <= kUnloadedInFlight) {
    floor.unloaded[floor.next] = took;
    floor.next = (floor.next + 1) % floor.unloaded.size();
    floor.count = std::min(floor.count + 1, floor.unloaded.size());
  }
  Duration no_load = *floor.least;
  if (floor.count >= kEnoughUnloaded) {
    // A low percentile, not the least: one lucky sample on a noisy host
    // would make every later one look queued.
    std::array<Duration, kKeptUnloaded> kept = floor.unloaded;
    auto at = kept.begin() + static_cast<std::ptrdiff_t>(floor.count / 5);
    std::nth_element(kept.begin(), at, kept.begin() + static_cast<std::ptrdiff_t>(floor.count));
    no_load = *at;
  }
  return Seconds(took) / Seconds(no_load);
}

void ConcurrencyLimit::OnSuccess(uint64_t bytes, Duration took, int in_flight, TimePoint now) {
  double ratio = FloorRatio(floors_[SizeClass(bytes)], took, in_flight);
  latency_seconds_ = latency_seconds_ == 0
                         ? Seconds(took)
                         : latency_seconds_ + kLatencyAverage * (Seconds(took) - latency_seconds_);
  // An upload that started before the limit last changed saw the old one:
  // judging the new limit by it would count one change twice.
  if (now - took < changed_at_) return;
  ratios_.push_back(ratio);
  busiest_ = std::max(busiest_, in_flight);
  if (static_cast<int>(ratios_.size()) >= limit()) EndRound(now);
}

void ConcurrencyLimit::EndRound(TimePoint now) {
  // The median: a few uploads slowed by something else (a busy host) are
  // not the box queueing.
  auto middle = ratios_.begin() + static_cast<std::ptrdiff_t>(ratios_.size() / 2);
  std::nth_element(ratios_.begin(), middle, ratios_.end());
  const double ratio = *middle;
  const double ceiling = std::max(1, settings_.ceiling);
  const int before = limit();
  last_ratio_ = ratio;
  if (!judged_ && ratio > settings_.tolerance) {
    // A box's first round paid for first contact (the bucket check the
    // other uploads waited on, name lookups, session set-ups): it taught the
    // floors, it says nothing of a queue. The next round judges.
    judged_ = true;
    changed_at_ = now;
    ratios_.clear();
    busiest_ = 0;
    return;
  }
  judged_ = true;
  if (ratio > settings_.tolerance) {
    slow_start_ = false;
    limit_ *= std::max(0.5, settings_.tolerance / ratio);
  } else if (busiest_ >= kUsedFraction * limit_) {
    limit_ += slow_start_ ? limit_ : std::max(1.0, std::sqrt(limit_) / 2);
  }
  limit_ = std::clamp(limit_, 1.0, ceiling);
  if (limit() != before) changed_at_ = now;
  ratios_.clear();
  busiest_ = 0;
}

void ConcurrencyLimit::OnFailure(TimePoint now) {
  slow_start_ = false;
  limit_ = std::max(1.0, limit_ / 2);
  changed_at_ = now;
  ratios_.clear();
  busiest_ = 0;
}

ConcurrencyLimit::Snapshot ConcurrencyLimit::snapshot() const {
  return Snapshot{limit(), slow_start_, latency_seconds_, last_ratio_};
}

}  // namespace media_sync::worker
