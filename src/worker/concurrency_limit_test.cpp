#include "worker/concurrency_limit.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace media_sync::worker {
namespace {

using namespace std::chrono_literals;
using Duration = ConcurrencyLimit::Duration;

constexpr uint64_t kSmall = 16 * 1024;

// A box behind a link: every upload takes the round trip, and once more
// than `capacity` are in flight they queue (latency grows in proportion),
// as a saturated server or uplink makes them.
struct SimulatedBox {
  Duration round_trip;
  int capacity;
  Duration LatencyWith(int in_flight) const {
    double queue = std::max(1.0, static_cast<double>(in_flight) / capacity);
    return std::chrono::duration_cast<Duration>(round_trip * queue);
  }
};

// Runs `rounds` windows: each starts as many uploads as the limit allows and
// ends them all after the box's latency at that concurrency.
void Drive(ConcurrencyLimit& limit, const SimulatedBox& box, int rounds,
           std::chrono::system_clock::time_point& now) {
  for (int round = 0; round < rounds; ++round) {
    const int in_flight = limit.limit();
    const Duration took = box.LatencyWith(in_flight);
    now += took;
    for (int i = 0; i < in_flight; ++i) limit.OnSuccess(kSmall, took, in_flight, now);
  }
}

ConcurrencyLimit Make(int ceiling, int initial = 4) {
  ConcurrencyLimit::Settings settings;
  settings.initial = initial;
  settings.ceiling = ceiling;
  return ConcurrencyLimit(settings);
}

TEST(ConcurrencyLimitTest, ADistantBoxThatKeepsUpGetsTheCeiling) {
  // 150 ms away, and the box could take far more than the ceiling.
  ConcurrencyLimit limit = Make(128);
  auto now = std::chrono::system_clock::time_point(1000s);
  Drive(limit, SimulatedBox{150ms, 1000}, 10, now);
  EXPECT_EQ(limit.limit(), 128);
  EXPECT_TRUE(limit.snapshot().slow_start) << "never saw the latency climb";
}

TEST(ConcurrencyLimitTest, SlowStartDoublesEachRound) {
  ConcurrencyLimit limit = Make(128);
  auto now = std::chrono::system_clock::time_point(1000s);
  EXPECT_EQ(limit.limit(), 4);
  Drive(limit, SimulatedBox{50ms, 1000}, 1, now);
  EXPECT_EQ(limit.limit(), 8);
  Drive(limit, SimulatedBox{50ms, 1000}, 1, now);
  EXPECT_EQ(limit.limit(), 16);
}

// Past what the box can take, every added upload only queues: the limit
// settles where the latency stays within the tolerance of the no-load one
// (twice the capacity), not at the ceiling, and not far below the capacity.
TEST(ConcurrencyLimitTest, ABoxThatSaturatesHoldsTheLimitNearItsCapacity) {
  ConcurrencyLimit limit = Make(512);
  auto now = std::chrono::system_clock::time_point(1000s);
  const SimulatedBox box{20ms, 40};
  Drive(limit, box, 200, now);
  int lowest = limit.limit();
  int highest = limit.limit();
  for (int i = 0; i < 100; ++i) {
    Drive(limit, box, 1, now);
    lowest = std::min(lowest, limit.limit());
    highest = std::max(highest, limit.limit());
  }
  EXPECT_FALSE(limit.snapshot().slow_start);
  EXPECT_GE(lowest, 40) << "below the box's capacity: the link idles";
  EXPECT_LE(highest, 2 * 40 + 8) << "past the tolerance: uploads only queue";
}

TEST(ConcurrencyLimitTest, LatencyClimbingShrinksTheLimitInProportion) {
  ConcurrencyLimit limit = Make(64, 64);
  auto now = std::chrono::system_clock::time_point(1000s);
  for (int i = 0; i < 64; ++i) limit.OnSuccess(kSmall, 10ms, 64, now);  // the floor: 10 ms
  ASSERT_EQ(limit.limit(), 64);
  // A round at four times the floor: twice the tolerance, so half the limit.
  for (int i = 0; i < 64; ++i) limit.OnSuccess(kSmall, 40ms, 64, now);
  EXPECT_EQ(limit.limit(), 32);
  EXPECT_NEAR(limit.snapshot().latency_ratio, 4.0, 1e-9);
  // Uploads that started before that change saw the old limit: not counted.
  for (int i = 0; i < 64; ++i) limit.OnSuccess(kSmall, 1000ms, 32, now);
  EXPECT_EQ(limit.limit(), 32);
  // However bad the round, one round at most halves it.
  now += 2s;
  for (int i = 0; i < 32; ++i) limit.OnSuccess(kSmall, 1000ms, 32, now);
  EXPECT_EQ(limit.limit(), 16);
}

// Sizes are compared with their own class: large uploads that take long
// because they are large do not read as a slow box.
TEST(ConcurrencyLimitTest, LargeUploadsAreJudgedAgainstLargeOnes) {
  ConcurrencyLimit limit = Make(128, 8);
  auto now = std::chrono::system_clock::time_point(1000s);
  for (int round = 0; round < 6; ++round) {
    const int in_flight = limit.limit();
    for (int i = 0; i < in_flight; ++i) {
      const bool large = i % 2 == 0;
      limit.OnSuccess(large ? 256ull << 20 : kSmall, large ? 4000ms : 20ms, in_flight, now);
    }
    now += 4s;
  }
  EXPECT_EQ(limit.limit(), 128);
  EXPECT_NEAR(limit.snapshot().latency_ratio, 1.0, 1e-9);
}

// A limit that a box does not use does not grow: it says nothing about what
// the box could take.
TEST(ConcurrencyLimitTest, AnUnusedLimitDoesNotGrow) {
  ConcurrencyLimit limit = Make(128, 16);
  auto now = std::chrono::system_clock::time_point(1000s);
  for (int i = 0; i < 200; ++i) limit.OnSuccess(kSmall, 50ms, 2, now);
  EXPECT_EQ(limit.limit(), 16);
}

// A box's first uploads pay for first contact (the bucket check the others
// wait on, new sessions): that first round teaches the floors without ending
// slow start; from the next round on, a round over the tolerance does.
TEST(ConcurrencyLimitTest, TheFirstRoundsFirstContactDoesNotEndSlowStart) {
  ConcurrencyLimit limit = Make(128);
  auto now = std::chrono::system_clock::time_point(1000s);
  const std::array<Duration, 4> first = {150ms, 450ms, 460ms, 470ms};
  now += 470ms;
  for (Duration took : first) limit.OnSuccess(kSmall, took, 4, now);
  EXPECT_EQ(limit.limit(), 4);
  EXPECT_TRUE(limit.snapshot().slow_start);
  Drive(limit, SimulatedBox{150ms, 1000}, 1, now);
  EXPECT_EQ(limit.limit(), 8) << "the next clean round doubles";
  // Later rounds over the tolerance are judged.
  now += 1s;
  for (int i = 0; i < 8; ++i) limit.OnSuccess(kSmall, 600ms, 8, now);
  EXPECT_EQ(limit.limit(), 4);
  EXPECT_FALSE(limit.snapshot().slow_start);
}

TEST(ConcurrencyLimitTest, AnOutageHalvesTheLimitAndEndsSlowStart) {
  ConcurrencyLimit limit = Make(128, 32);
  limit.OnFailure(std::chrono::system_clock::time_point(1000s));
  EXPECT_EQ(limit.limit(), 16);
  EXPECT_FALSE(limit.snapshot().slow_start);
  for (int i = 0; i < 10; ++i) limit.OnFailure(std::chrono::system_clock::time_point(1000s));
  EXPECT_EQ(limit.limit(), 1) << "never below one";
}

// The path itself got slower (another route): the limit first shrinks, then
// no-load samples teach the new floor, and the limit grows back.
TEST(ConcurrencyLimitTest, ALongerRoundTripIsLearnedAndTheLimitRecovers) {
  ConcurrencyLimit limit = Make(64);
  auto now = std::chrono::system_clock::time_point(1000s);
  Drive(limit, SimulatedBox{20ms, 1000}, 10, now);
  ASSERT_EQ(limit.limit(), 64);
  // From now on 100 ms, five times the floor.
  for (int i = 0; i < 400 && limit.limit() > 1; ++i)
    Drive(limit, SimulatedBox{100ms, 1000}, 1, now);
  EXPECT_LE(limit.limit(), 2);
  // Two floor windows of no-load samples later, the floor is 100 ms.
  for (int i = 0; i < 1000; ++i) {
    Drive(limit, SimulatedBox{100ms, 1000}, 1, now);
    if (limit.limit() == 64) break;
  }
  EXPECT_EQ(limit.limit(), 64);
}

TEST(ConcurrencyLimitTest, SizeClassesGrowByFactorsOfFour) {
  EXPECT_EQ(ConcurrencyLimit::SizeClass(0), 0);
  EXPECT_EQ(ConcurrencyLimit::SizeClass(64 * 1024), 0);
  EXPECT_EQ(ConcurrencyLimit::SizeClass(64 * 1024 + 1), 1);
  EXPECT_EQ(ConcurrencyLimit::SizeClass(256 * 1024), 1);
  EXPECT_EQ(ConcurrencyLimit::SizeClass(256 * 1024 + 1), 2);
  EXPECT_EQ(ConcurrencyLimit::SizeClass(UINT64_MAX), 15);
}

}  // namespace
}  // namespace media_sync::worker
