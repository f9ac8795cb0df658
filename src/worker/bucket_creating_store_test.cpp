#include "worker/bucket_creating_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace media_sync::worker {
namespace {

using namespace std::chrono_literals;

class NullStore : public ObjectStore {
 public:
  Result<std::optional<ObjectInfo>> Stat(const std::string&, std::stop_token) override {
    ++stats;
    return std::optional<ObjectInfo>();
  }
  Result<ObjectInfo> Upload(const std::string&, int, uint64_t, const std::string&,
                            std::stop_token) override {
    return ObjectInfo{};
  }
  std::atomic<int> stats{0};
};

// A bucket check that hangs until the test lets it answer, like a box that
// accepts connections and never replies until its timeout.
class HangingCheck {
 public:
  Status operator()(std::stop_token) {
    std::unique_lock lock(mutex_);
    ++started_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return answer_.has_value(); });
    return *answer_;
  }
  void Answer(Status status) {
    std::lock_guard lock(mutex_);
    answer_ = std::move(status);
    changed_.notify_all();
  }
  void Reset() {
    std::lock_guard lock(mutex_);
    answer_.reset();
  }
  int started() {
    std::lock_guard lock(mutex_);
    return started_;
  }
  bool WaitStarted(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 10s, [&] { return started_ >= count; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<Status> answer_;
  int started_ = 0;
};

// Jobs reaching a box whose first check hangs all wait for that one check
// and share its outcome: one timeout for all, not one each in turn.
TEST(BucketCreatingStoreTest, ConcurrentFirstCallsShareOneCheckInFlight) {
  auto inner = std::make_shared<NullStore>();
  HangingCheck check;
  BucketCreatingStore store(inner, [&](std::stop_token stop) { return check(stop); });

  constexpr int kCallers = 8;
  std::atomic<int> arriving{0};
  std::atomic<int> outages{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&] {
      ++arriving;
      auto stat = store.Stat("k", {});
      if (!stat.ok() && stat.error().kind == ErrorKind::kOutage) ++outages;
    });
  }
  ASSERT_TRUE(check.WaitStarted(1));
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (arriving.load() < kCallers && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_EQ(arriving.load(), kCallers);
  check.Answer(Error::Outage("HeadBucket: Timeout was reached"));
  for (auto& caller : callers) caller.join();

  // A caller that arrived after the check ended may run the next one; but
  // one check each, in turn, is what a hanging box must never cost.
  EXPECT_LT(check.started(), kCallers) << "each caller ran its own check";
  EXPECT_EQ(outages.load(), kCallers);
  EXPECT_EQ(inner->stats.load(), 0);

  // The failure is not remembered: the next call checks again, and once the
  // bucket is there no call checks any more.
  const int checks = check.started();
  check.Reset();
  std::thread next([&] { EXPECT_TRUE(store.Stat("k", {}).ok()); });
  ASSERT_TRUE(check.WaitStarted(checks + 1));
  check.Answer(Ok());
  next.join();
  EXPECT_TRUE(store.Stat("k", {}).ok());
  EXPECT_EQ(check.started(), checks + 1);
  EXPECT_EQ(inner->stats.load(), 2);
}

// A caller waiting for someone else's check leaves at once when it is told
// to stop, however long that check hangs.
TEST(BucketCreatingStoreTest, AWaiterLeavesOnStop) {
  auto inner = std::make_shared<NullStore>();
  HangingCheck check;
  BucketCreatingStore store(inner, [&](std::stop_token stop) { return check(stop); });
  std::thread first([&] { (void)store.Stat("k", {}); });
  ASSERT_TRUE(check.WaitStarted(1));

  // Whether the stop comes before or during the wait, the answer is the same.
  std::stop_source stop;
  std::promise<Result<std::optional<ObjectInfo>>> waited;
  std::thread waiter([&] { waited.set_value(store.Stat("k", stop.get_token())); });
  stop.request_stop();
  auto outcome = waited.get_future();
  bool left = outcome.wait_for(10s) == std::future_status::ready;
  check.Answer(Ok());  // lets everything end, whatever happened
  first.join();
  waiter.join();
  ASSERT_TRUE(left) << "the waiter stayed until the check ended";
  auto result = outcome.get();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, ErrorKind::kCancelled);
  EXPECT_EQ(check.started(), 1);
}

}  // namespace
}  // namespace media_sync::worker
