#include "worker/concurrency_limit.h"

#include <algorithm>
#include <cmath>

namespace media_sync::worker {
namespace {

constexpr uint64_t kFirstClassBytes = 64 * 1024;
constexpr int kUnloadedInFlight = 2;     // samples that saw no queue of our own
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

double ConcurrencyLimit::FloorRatio(Floor& floor, Duration took, int in_flight,
                                    TimePoint now) const {
  // At least a microsecond: a ratio needs a floor above zero.
  took = std::max<Duration>(took, std::chrono::microseconds(1));
  if (floor.window_start == TimePoint{}) floor.window_start = now;
  if (now - floor.window_start >= settings_.floor_window) {
    // A window of no-load samples all above the floor: the path itself got
    // slower. Learn it.
    if (floor.unloaded_now && floor.unloaded_before) {
      Duration unloaded = std::min(*floor.unloaded_now, *floor.unloaded_before);
      if (floor.least && unloaded > *floor.least) floor.least = unloaded;
    }
    floor.unloaded_before = floor.unloaded_now;
    floor.unloaded_now.reset();
    floor.window_start = now;
  }
  if (in_flight <= kUnloadedInFlight) {
    floor.unloaded_now = floor.unloaded_now ? std::min(*floor.unloaded_now, took) : took;
  }
  floor.least = floor.least ? std::min(*floor.least, took) : took;
  return Seconds(took) / Seconds(*floor.least);
}

void ConcurrencyLimit::OnSuccess(uint64_t bytes, Duration took, int in_flight, TimePoint now) {
  double ratio = FloorRatio(floors_[SizeClass(bytes)], took, in_flight, now);
  latency_seconds_ = latency_seconds_ == 0
                         ? Seconds(took)
                         : latency_seconds_ + kLatencyAverage * (Seconds(took) - latency_seconds_);
  // An upload that started before the limit last changed saw the old one:
  // judging the new limit by it would count one change twice.
  if (now - took < changed_at_) return;
  ++samples_;
  ratio_sum_ += ratio;
  busiest_ = std::max(busiest_, in_flight);
  if (samples_ >= limit()) EndRound(now);
}

void ConcurrencyLimit::EndRound(TimePoint now) {
  const double ratio = ratio_sum_ / samples_;
  const double ceiling = std::max(1, settings_.ceiling);
  const int before = limit();
  last_ratio_ = ratio;
  if (ratio > settings_.tolerance) {
    slow_start_ = false;
    limit_ *= std::max(0.5, settings_.tolerance / ratio);
  } else if (busiest_ >= kUsedFraction * limit_) {
    limit_ += slow_start_ ? limit_ : std::max(1.0, std::sqrt(limit_) / 2);
  }
  limit_ = std::clamp(limit_, 1.0, ceiling);
  if (limit() != before) changed_at_ = now;
  samples_ = 0;
  ratio_sum_ = 0;
  busiest_ = 0;
}

void ConcurrencyLimit::OnFailure(TimePoint now) {
  slow_start_ = false;
  limit_ = std::max(1.0, limit_ / 2);
  changed_at_ = now;
  samples_ = 0;
  ratio_sum_ = 0;
  busiest_ = 0;
}

ConcurrencyLimit::Snapshot ConcurrencyLimit::snapshot() const {
  return Snapshot{limit(), slow_start_, latency_seconds_, last_ratio_};
}

}  // namespace media_sync::worker
