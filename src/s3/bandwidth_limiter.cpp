#include "s3/bandwidth_limiter.h"

#include <algorithm>
#include <cmath>

namespace media_sync::s3 {
namespace {

constexpr uint64_t kMaxGrantBytes = uint64_t{64} * 1024;
constexpr uint64_t kGrantsPerSecond = 64;
constexpr uint64_t kBurstsPerSecond = 20;

}  // namespace

TokenBucket::TokenBucket(uint64_t bytes_per_second, TimePoint now)
    : rate_(std::max<uint64_t>(bytes_per_second, 1)),
      max_grant_(std::clamp<uint64_t>(rate_ / kGrantsPerSecond, 1, kMaxGrantBytes)),
      burst_(std::max(max_grant_, rate_ / kBurstsPerSecond)),
      tokens_(static_cast<double>(burst_)),
      last_(now) {}

double TokenBucket::TokensAt(TimePoint now) const {
  if (now <= last_) return tokens_;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  return std::min(static_cast<double>(burst_), tokens_ + elapsed * static_cast<double>(rate_));
}

uint64_t TokenBucket::Take(uint64_t wanted, TimePoint now) {
  tokens_ = TokensAt(now);
  last_ = std::max(last_, now);
  if (wanted == 0 || tokens_ < 1.0) return 0;
  const uint64_t granted = std::min(wanted, max_grant_);
  tokens_ -= static_cast<double>(granted);
  return granted;
}

TokenBucket::TimePoint TokenBucket::ReadyAt(TimePoint now) const {
  const double tokens = TokensAt(now);
  if (tokens >= 1.0) return now;
  // Rounded up, and a nanosecond more against rounding in TokensAt, so that
  // at ReadyAt the bucket holds its one token.
  const double wait_ns = std::ceil((1.0 - tokens) * 1e9 / static_cast<double>(rate_)) + 1;
  return std::max(now, last_) + std::chrono::nanoseconds(static_cast<int64_t>(wait_ns));
}

BandwidthLimiter::BandwidthLimiter(uint64_t bytes_per_second)
    : rate_(bytes_per_second), bucket_(bytes_per_second, std::chrono::steady_clock::now()) {}

size_t BandwidthLimiter::Acquire(size_t wanted, const std::stop_token& stop) {
  if (wanted == 0) return 0;
  MutexLock lock(mutex_);
  while (!stop.stop_requested()) {
    const auto now = std::chrono::steady_clock::now();
    if (uint64_t granted = bucket_.Take(wanted, now); granted > 0) {
      return static_cast<size_t>(granted);
    }
    stop_or_ready_.wait_until(lock, stop, bucket_.ReadyAt(now), [] { return false; });
  }
  return 0;
}

BandwidthLimiter* BandwidthLimiter::ForProcess(uint64_t bytes_per_second) {
  if (bytes_per_second == 0) return nullptr;
  static auto* limiter = new BandwidthLimiter(bytes_per_second);  // lives as long as the process
  return limiter;
}

}  // namespace media_sync::s3
