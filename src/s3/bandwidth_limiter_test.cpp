#include "s3/bandwidth_limiter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <latch>
#include <stop_token>
#include <thread>

namespace media_sync::s3 {
namespace {

using std::chrono::milliseconds;
using TimePoint = TokenBucket::TimePoint;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;

// Takes as much as the bucket grants at each step of `step` from `start`
// to `end`, asking for `wanted` bytes each time; returns the bytes granted.
uint64_t TakeGreedily(TokenBucket& bucket, TimePoint start, TimePoint end,
                      std::chrono::nanoseconds step, uint64_t wanted) {
  uint64_t granted = 0;
  for (TimePoint now = start; now <= end; now += step) {
    while (uint64_t n = bucket.Take(wanted, now)) granted += n;
  }
  return granted;
}

TEST(TokenBucketTest, GrantsAreSizedForTheRate) {
  const TimePoint t0;
  EXPECT_EQ(TokenBucket(100 * kMiB, t0).max_grant(), 64u * 1024) << "curl's upload buffer";
  EXPECT_EQ(TokenBucket(100 * kMiB, t0).burst(), 5 * kMiB) << "a twentieth of a second";
  EXPECT_EQ(TokenBucket(640 * kKiB, t0).max_grant(), 10u * 1024) << "a 64th of a second";
  EXPECT_EQ(TokenBucket(640 * kKiB, t0).burst(), 32u * 1024);
  EXPECT_EQ(TokenBucket(10, t0).max_grant(), 1u);
  EXPECT_EQ(TokenBucket(10, t0).burst(), 1u);
}

TEST(TokenBucketTest, StartsWithItsBurstAndThenWaitsForTheRate) {
  const TimePoint t0;
  TokenBucket bucket(1 * kMiB, t0);  // 16 KiB grants, 52,428-byte burst
  uint64_t first = 0;
  while (uint64_t n = bucket.Take(kMiB, t0)) first += n;
  // The whole burst, plus the last grant's debt.
  EXPECT_GE(first, bucket.burst());
  EXPECT_LE(first, bucket.burst() + bucket.max_grant());
  EXPECT_EQ(bucket.Take(1, t0), 0u);
  const TimePoint ready = bucket.ReadyAt(t0);
  EXPECT_GT(ready, t0);
  EXPECT_EQ(bucket.Take(1, ready - std::chrono::microseconds(50)), 0u) << "not yet";
  EXPECT_EQ(bucket.Take(1, ready), 1u) << "ready when it said";
}

TEST(TokenBucketTest, ASmallRequestTakesOnlyWhatItAsks) {
  const TimePoint t0;
  TokenBucket bucket(1 * kMiB, t0);
  EXPECT_EQ(bucket.Take(100, t0), 100u);
  EXPECT_EQ(bucket.Take(0, t0), 0u);
  EXPECT_EQ(bucket.Take(kMiB, t0), bucket.max_grant());
}

TEST(TokenBucketTest, LongRunRateStaysWithinTheCap) {
  const TimePoint t0;
  const uint64_t rate = 100 * kMiB;
  TokenBucket bucket(rate, t0);
  // Ten seconds of a caller that always wants more, looking every 100 µs.
  const uint64_t granted =
      TakeGreedily(bucket, t0, t0 + std::chrono::seconds(10), std::chrono::microseconds(100), kMiB);
  const uint64_t ideal = 10 * rate;
  EXPECT_LE(granted, ideal + bucket.burst() + bucket.max_grant());
  EXPECT_GE(granted, ideal - bucket.max_grant());
}

TEST(TokenBucketTest, IdleTimeSavesNoMoreThanTheBurst) {
  const TimePoint t0;
  TokenBucket bucket(1 * kMiB, t0);
  while (bucket.Take(kMiB, t0) > 0) {
  }
  // An hour idle, then everything the bucket gives at once.
  const TimePoint later = t0 + std::chrono::hours(1);
  uint64_t saved = 0;
  while (uint64_t n = bucket.Take(kMiB, later)) saved += n;
  EXPECT_LE(saved, bucket.burst() + bucket.max_grant());
  EXPECT_GE(saved, bucket.burst());
}

TEST(TokenBucketTest, DebtIsPaidBeforeTheNextGrant) {
  const TimePoint t0;
  TokenBucket bucket(64 * kKiB, t0);  // 1 KiB grants, 3,276-byte burst
  while (bucket.Take(kMiB, t0) > 0) {
  }
  // In debt by up to one grant: the next byte comes once the debt is paid
  // and one token more has accrued, within a grant's time (1/64 s).
  const TimePoint ready = bucket.ReadyAt(t0);
  EXPECT_GE(ready - t0, std::chrono::microseconds(15));
  EXPECT_LE(ready - t0, milliseconds(16) + std::chrono::microseconds(100));
}

TEST(TokenBucketTest, AClockThatGoesBackGrantsNothingExtra) {
  const TimePoint t0 = TimePoint() + std::chrono::seconds(5);
  TokenBucket bucket(1 * kMiB, t0);
  while (bucket.Take(kMiB, t0) > 0) {
  }
  EXPECT_EQ(bucket.Take(1, t0 - std::chrono::seconds(1)), 0u);
  EXPECT_GE(bucket.ReadyAt(t0 - std::chrono::seconds(1)), t0);
}

TEST(BandwidthLimiterTest, GrantsAtOnceFromAFullBucket) {
  BandwidthLimiter limiter(100 * kMiB);
  EXPECT_EQ(limiter.Acquire(1000, {}), 1000u);
  EXPECT_EQ(limiter.Acquire(1u << 20, {}), 64u * 1024);
  EXPECT_EQ(limiter.Acquire(0, {}), 0u);
}

TEST(BandwidthLimiterTest, AStopAlreadyRequestedGrantsNothing) {
  BandwidthLimiter limiter(100 * kMiB);
  std::stop_source stop;
  stop.request_stop();
  EXPECT_EQ(limiter.Acquire(1000, stop.get_token()), 0u);
}

// A limiter of 1 byte/s: once the waiter took the one byte the bucket holds,
// its next is a second away, and the stop request cuts that wait short. If
// the stop did not end the wait, the call would grant its byte a second
// later and the test would fail.
TEST(BandwidthLimiterTest, AStopRequestEndsAWait) {
  BandwidthLimiter limiter(1);
  std::stop_source stop;
  std::latch emptied(1);
  size_t first = 0;
  size_t second = 99;
  std::jthread waiter([&] {
    first = limiter.Acquire(1, {});
    emptied.count_down();
    second = limiter.Acquire(1, stop.get_token());
  });
  emptied.wait();
  stop.request_stop();
  waiter.join();
  EXPECT_EQ(first, 1u);
  EXPECT_EQ(second, 0u);
}

TEST(BandwidthLimiterTest, ForProcessIsOneLimiterOrNone) {
  EXPECT_EQ(BandwidthLimiter::ForProcess(0), nullptr);
  BandwidthLimiter* first = BandwidthLimiter::ForProcess(3 * kMiB);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(BandwidthLimiter::ForProcess(5 * kMiB), first);
  EXPECT_EQ(first->bytes_per_second(), 3 * kMiB);
}

}  // namespace
}  // namespace media_sync::s3
