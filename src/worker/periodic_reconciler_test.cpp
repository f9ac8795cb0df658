// The periodic reconcile's schedule and its lock, over in-memory doubles on
// simulated time: a pass exactly every interval, only under the fleet's
// lock, a quiet period only after a pass that succeeded, and nothing pushed
// by a pass that lost its lock. Against real Redis, with two workers, it is
// tests/integration/reconcile_command_test.cpp.
#include "worker/periodic_reconciler.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "core/test_doubles.h"

namespace media_sync::worker {
namespace {

using namespace std::chrono_literals;
using doubles::FakeRouter;
using doubles::FakeStore;
using doubles::FakeUnsyncedRows;
using doubles::InMemoryFleetLock;
using doubles::InMemoryQueueCensus;
using doubles::SimulatedClock;

constexpr auto kInterval = 300s;

class PeriodicReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::err);  // every pass and stand-down is logged
    char pattern[] = "/tmp/periodic-reconciler-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto buffer = buffer::LocalBuffer::Create(dir_);
    ASSERT_TRUE(buffer.ok()) << buffer.error().message;
    buffer_.emplace(std::move(*buffer));
    settings_.interval = kInterval;
    settings_.jitter = 0;  // every pass exactly one interval after the last
    settings_.worker_id = "w1";
    settings_.reconcile.older_than = 1h;
  }
  void TearDown() override {
    reconciler_.reset();
    std::filesystem::remove_all(dir_);
    spdlog::set_level(spdlog::level::info);
  }

  void Start() {
    reconciler_ = std::make_unique<PeriodicReconciler>(
        settings_, ReconcileSources{queue_, queue_, rows_, router_, *buffer_}, lock_, clock_);
    ASSERT_TRUE(clock_.AwaitSleepers(1)) << "the thread does not wait for its first interval";
  }
  // Moves the time on; returns once the thread waits for its next round.
  void Advance(std::chrono::milliseconds by) {
    clock_.Advance(by);
    ASSERT_TRUE(clock_.AwaitSleepers(1)) << "the thread did not come back to its wait";
  }

  // A row whose job Redis lost, with its file in the buffer.
  UnsyncedFile AddLost(const std::string& content) {
    UnsyncedFile row = rows_.Add(content, 2h);
    std::filesystem::path path = dir_ + "/" + row.s3_key;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    return row;
  }
  size_t Enqueued() {
    std::lock_guard lock(queue_.mu);
    return queue_.enqueued.size();
  }
  int Acquires() {
    std::lock_guard lock(lock_.mu);
    return lock_.acquires;
  }

  std::string dir_;
  SimulatedClock clock_;
  InMemoryQueueCensus queue_;
  FakeUnsyncedRows rows_{clock_};
  std::shared_ptr<FakeStore> store_ = std::make_shared<FakeStore>();
  FakeRouter router_{store_};
  InMemoryFleetLock lock_{clock_, "w1"};
  std::optional<buffer::LocalBuffer> buffer_;
  PeriodicReconcilerSettings settings_;
  std::unique_ptr<PeriodicReconciler> reconciler_;
};

TEST_F(PeriodicReconcilerTest, RunsAPassEveryIntervalUnderTheLockAndNotBefore) {
  AddLost("lost by a failover");
  Start();
  Advance(kInterval - 1ms);
  EXPECT_EQ(Acquires(), 0) << "a pass before the interval ended";
  EXPECT_EQ(Enqueued(), 0u);

  Advance(1ms);
  EXPECT_EQ(Acquires(), 1);
  EXPECT_EQ(Enqueued(), 1u);
  {
    std::lock_guard lock(lock_.mu);
    EXPECT_GE(lock_.extends, 1) << "the lock was not renewed during the pass";
    EXPECT_FALSE(lock_.holder.has_value()) << "the lock was not released";
    // Done for half an interval: the fleet's other wake-ups stand down.
    EXPECT_EQ(lock_.releases, std::vector<std::chrono::milliseconds>{kInterval / 2});
  }

  // The next pass finds the job it pushed in Redis and pushes nothing.
  Advance(kInterval);
  EXPECT_EQ(Acquires(), 2);
  EXPECT_EQ(Enqueued(), 1u);
}

TEST_F(PeriodicReconcilerTest, StandsDownWhileAnotherWorkerHoldsTheLock) {
  AddLost("lost");
  {
    std::lock_guard lock(lock_.mu);
    lock_.holder = "w2";
    lock_.expires_at = clock_.Now() + 2 * kInterval;
  }
  Start();
  Advance(kInterval);
  EXPECT_EQ(Acquires(), 1);
  EXPECT_EQ(Enqueued(), 0u);
  std::lock_guard lock(queue_.mu);
  EXPECT_EQ(queue_.walks, 0) << "Redis read without the lock";
}

TEST_F(PeriodicReconcilerTest, StandsDownInTheQuietPeriodOfAnotherWorkersPass) {
  AddLost("lost");
  {
    std::lock_guard lock(lock_.mu);
    lock_.quiet_until = clock_.Now() + kInterval + 1ms;
  }
  Start();
  Advance(kInterval);
  EXPECT_EQ(Enqueued(), 0u);
  Advance(kInterval);  // the quiet period is over
  EXPECT_EQ(Enqueued(), 1u);
}

TEST_F(PeriodicReconcilerTest, APassThatLosesItsLockPushesNothing) {
  AddLost("lost");
  lock_.lose_on_extend = true;
  Start();
  Advance(kInterval);
  EXPECT_EQ(Acquires(), 1);
  EXPECT_EQ(Enqueued(), 0u);
  std::lock_guard lock(lock_.mu);
  // Released without a quiet period (it is not its lock any more anyway).
  EXPECT_EQ(lock_.releases, std::vector<std::chrono::milliseconds>{0ms});
}

// A pass that failed leaves no quiet period: the next wake-up, this
// worker's or another's, tries again.
TEST_F(PeriodicReconcilerTest, AFailedPassLeavesNoQuietPeriod) {
  AddLost("lost");
  {
    std::lock_guard lock(queue_.mu);
    queue_.outage = true;
  }
  Start();
  Advance(kInterval);
  {
    std::lock_guard lock(lock_.mu);
    EXPECT_EQ(lock_.releases, std::vector<std::chrono::milliseconds>{0ms});
    EXPECT_FALSE(lock_.holder.has_value());
  }
  {
    std::lock_guard lock(queue_.mu);
    queue_.outage = false;
  }
  Advance(kInterval);
  EXPECT_EQ(Acquires(), 2);
  EXPECT_EQ(Enqueued(), 1u);
}

TEST_F(PeriodicReconcilerTest, StopEndsTheWaitAtOnce) {
  Start();
  auto stopped = std::async(std::launch::async, [this] { reconciler_->Stop(); });
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready) << "Stop waited for the interval";
  EXPECT_EQ(Acquires(), 0);
}

}  // namespace
}  // namespace media_sync::worker
