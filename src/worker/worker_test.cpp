// The worker's own decisions (taking, handing back, holding, applying,
// reaping, draining) over the in-memory queue double, on simulated time: the
// maintenance thread's schedule and every backoff move only when a test
// advances the clock, so lease edges are crossed exactly. The same behaviour
// against real Redis is in tests/integration/worker_test.cpp and
// worker_faults_test.cpp.
#include "worker/worker.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <filesystem>
#include <future>

#include "core/test_doubles.h"
#include "metrics/registry.h"

namespace media_sync::worker {
namespace {

using namespace std::chrono_literals;
using doubles::FakeCatalog;
using doubles::FakeRouter;
using doubles::FakeStore;
using doubles::InMemoryQueueState;

constexpr auto kWait = 10s;  // bound of every wait; reached only on failure
// The maintenance thread's turn while Redis answers (kPromoteInterval).
constexpr auto kTurn = 500ms;

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::err);  // the worker logs every hold and job
    char pattern[] = "/tmp/worker-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto buffer = buffer::LocalBuffer::Create(dir_);
    ASSERT_TRUE(buffer.ok()) << buffer.error().message;
    buffer_.emplace(std::move(*buffer));
    pipeline_.emplace(router_, catalog_, *buffer_, PipelineSettings{3, 5s});
    settings_.worker_id = "w1";
    settings_.concurrency = 2;
    // Three turns of the maintenance thread: heartbeats and hand-back
    // checks every turn, reaping once a connection held for three.
    settings_.lease = 3 * kTurn;
    settings_.outage_backoff_max = 50ms;
    queue_->clock = &clock_;
  }
  void TearDown() override {
    worker_.reset();
    std::filesystem::remove_all(dir_);
    spdlog::set_level(spdlog::level::info);
  }

  // A job with its buffer file and catalog row, pushed onto pending.
  std::string Push(const std::string& content) {
    std::string payload = doubles::MakeBufferedJob(dir_, content, catalog_).dump();
    queue_->Push(payload);
    return payload;
  }

  void Start() {
    QueueFactories queues{
        [this] { return std::unique_ptr<JobQueue>(new doubles::InMemoryJobQueue(queue_)); },
        [this] { return std::unique_ptr<QueueUpkeep>(new doubles::InMemoryUpkeep(queue_)); }};
    worker_ = std::make_unique<Worker>(settings_, std::move(queues), *pipeline_, metrics_,
                                       liveness_, clock_);
    worker_->Start();
  }

  // One turn of the maintenance thread: the time moves on by `by`, and the
  // call returns once the threads that sleep on the clock (at least
  // `sleepers` of them) wait again.
  void Turn(std::chrono::milliseconds by = kTurn, size_t sleepers = 1) {
    clock_.Advance(by);
    ASSERT_TRUE(clock_.AwaitSleepers(sleepers)) << "a thread did not come back to its sleep";
  }

  // Turns the clock until `done` holds; false if it does not within kWait
  // (of real time).
  bool TurnUntil(const std::function<bool()>& done) {
    const auto give_up = std::chrono::steady_clock::now() + kWait;
    while (!done()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      // A thread that is not asleep on the clock (taking, or applying) is
      // not waited for: the time moves on by one turn regardless.
      clock_.AwaitSleepers(1, 50ms);
      clock_.Advance(kTurn);
    }
    return true;
  }
  // TurnUntil on the queue's state, read under its lock.
  bool TurnUntilQueue(const std::function<bool()>& done) {
    return TurnUntil([&] {
      std::lock_guard lock(queue_->mu);
      return done();
    });
  }

  // Turns the clock until the drained worker ended; cancels it otherwise.
  bool Drained() {
    auto waited = std::async(std::launch::async, [this] { worker_->Wait(); });
    bool drained = TurnUntil([&] { return waited.wait_for(0s) == std::future_status::ready; });
    if (!drained) worker_->Cancel();
    waited.get();
    return drained;
  }

  bool Synced(const std::string& payload) {
    std::lock_guard lock(catalog_.mu);
    return catalog_.synced.at(nlohmann::json::parse(payload)["sha256"].get<std::string>());
  }

  std::string dir_;
  std::shared_ptr<FakeStore> store_ = std::make_shared<FakeStore>();
  FakeRouter router_{store_};
  FakeCatalog catalog_;
  std::optional<buffer::LocalBuffer> buffer_;
  std::optional<Pipeline> pipeline_;
  metrics::Registry registry_;
  WorkerMetrics metrics_{registry_};
  Liveness liveness_;
  doubles::SimulatedClock clock_;
  std::shared_ptr<InMemoryQueueState> queue_ = std::make_shared<InMemoryQueueState>();
  WorkerSettings settings_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(WorkerTest, SyncsEveryJobAndEndsOnceDrained) {
  settings_.drain = true;
  std::vector<std::string> payloads;
  for (int i = 0; i < 5; ++i) payloads.push_back(Push("file " + std::to_string(i)));
  Start();
  ASSERT_TRUE(Drained());
  for (const auto& payload : payloads) EXPECT_TRUE(Synced(payload)) << payload;
  EXPECT_EQ(queue_->acked.size(), 5u);
  EXPECT_TRUE(queue_->processing.empty());
  EXPECT_FALSE(queue_->lease) << "deregistered on exit";
  EXPECT_EQ(metrics_.ReadTotals().synced, 5u);
}

TEST_F(WorkerTest, TakesNothingBeforeItsFirstHeartbeat) {
  queue_->SetUp(false);
  Push("waiting for Redis");
  Start();
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->heartbeats >= 2; }));
  queue_->SetUp(true);
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->acked.size() == 1; }));
  EXPECT_EQ(queue_->take_calls_without_lease, 0);
}

// A take whose reply was lost left the job in this worker's list with no
// thread holding it: the worker hands it back and serves it, and a drain
// ends instead of waiting for it forever.
TEST_F(WorkerTest, HandsBackAnEntryWhoseTakeReplyWasLost) {
  settings_.drain = true;
  queue_->lose_next_take_reply = true;
  std::string payload = Push("lost on the wire");
  Start();
  ASSERT_TRUE(Drained());
  EXPECT_TRUE(Synced(payload));
  EXPECT_EQ(queue_->released, std::vector<std::string>{payload});
  EXPECT_EQ(queue_->acked, std::vector<std::string>{payload});
  EXPECT_TRUE(queue_->processing.empty());
}

// Redis restarted from a snapshot older than an acknowledgement: the
// acknowledged job is back in the list. It is handed back and found synced.
TEST_F(WorkerTest, ServesAgainAnEntryWhoseAcknowledgementRedisLost) {
  std::string payload = Push("acknowledged, then restored");
  Start();
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->acked.size() == 1; }));
  {
    std::lock_guard lock(queue_->mu);
    queue_->processing.push_front(payload);
    queue_->changed.notify_all();
  }
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->acked.size() == 2; }));
  // A job is counted after its acknowledgement: the counts are read once the
  // worker has stopped.
  worker_->RequestStop();
  worker_->Wait();
  EXPECT_EQ(queue_->released, std::vector<std::string>{payload});
  EXPECT_EQ(metrics_.ReadTotals().synced, 1u);
  EXPECT_EQ(metrics_.ReadTotals().already_synced, 1u);
  EXPECT_EQ(store_->uploads, 1);
}

// An entry of its list that no thread holds is handed back on the second
// check in a row, one turn (lease/3) after the first, and not before.
TEST_F(WorkerTest, HandsBackAnUnheldEntryOnItsSecondCheckExactly) {
  Start();
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->lease; }));
  ASSERT_TRUE(clock_.AwaitSleepers(1));
  // A take whose reply never came: in the list, held by no thread.
  std::string payload = doubles::MakeBufferedJob(dir_, "taken, reply lost", catalog_).dump();
  {
    std::lock_guard lock(queue_->mu);
    queue_->processing.push_front(payload);
  }
  Turn();  // the first check that sees it
  {
    std::lock_guard lock(queue_->mu);
    EXPECT_TRUE(queue_->released.empty()) << "handed back on the first check";
  }
  Turn();  // the second check
  {
    std::lock_guard lock(queue_->mu);
    EXPECT_EQ(queue_->released, std::vector<std::string>{payload});
  }
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->acked.size() == 1; }));
  EXPECT_TRUE(Synced(payload));
}

// Entries its threads hold are never handed back, however long they take.
TEST_F(WorkerTest, NeverHandsBackAJobAThreadHolds) {
  settings_.concurrency = 1;
  catalog_.SetOutage(true);  // the thread holds its job
  std::string payload = Push("held through an outage");
  Start();
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->processing.size() == 1; }));
  // Three leases: nine checks of the list pass while the job is held (the
  // holding thread sleeps on the clock between its attempts).
  for (int turn = 0; turn < 9; ++turn) Turn(kTurn, 2);
  {
    std::lock_guard lock(queue_->mu);
    EXPECT_GE(queue_->heartbeats, 9);
    EXPECT_TRUE(queue_->released.empty());
    EXPECT_EQ(queue_->processing.size(), 1u);
  }
  catalog_.SetOutage(false);
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->acked.size() == 1; }));
  EXPECT_TRUE(Synced(payload));
  EXPECT_EQ(queue_->takes, 1);
}

// After an outage every lease may have lapsed: the worker reaps nobody until
// its own connection has held for a full lease, so workers that shared the
// outage renew their leases first; and then at once.
TEST_F(WorkerTest, ReapsOnlyOnceItsOwnConnectionHeldForALease) {
  queue_->SetUp(false);
  Start();
  ASSERT_TRUE(clock_.AwaitSleepers(1));  // the first heartbeat failed
  queue_->SetUp(true);
  Turn(1000ms);  // back after an outage's wait: connected from here
  auto reaped = [this] {
    std::lock_guard lock(queue_->mu);
    return !queue_->reap_times.empty();
  };
  {
    std::lock_guard lock(queue_->mu);
    ASSERT_EQ(queue_->heartbeat_times.size(), 1u);
  }
  Turn();
  EXPECT_FALSE(reaped()) << "reaped one turn after reconnecting";
  Turn();
  EXPECT_FALSE(reaped()) << "reaped before the connection held for a lease";
  Turn();
  ASSERT_TRUE(reaped()) << "not reaped once the connection held for a lease";
  std::lock_guard lock(queue_->mu);
  EXPECT_EQ(queue_->reap_times.front() - queue_->heartbeat_times.front(), settings_.lease);
}

// A thread holding a job through a PostgreSQL outage lets go of it once a
// reaper returned it to pending (this worker's lease had lapsed), so one job
// is never held twice; the copy in pending is served once.
TEST_F(WorkerTest, LetsGoOfAHeldJobThatAReaperReturned) {
  settings_.concurrency = 1;
  catalog_.SetOutage(true);
  std::string payload = Push("reaped while held");
  Start();
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->processing.size() == 1; }));
  {
    std::lock_guard lock(queue_->mu);  // what a reaper does
    InMemoryQueueState::RemoveOne(queue_->processing, payload);
    queue_->pending.push_back(payload);
    queue_->changed.notify_all();
  }
  // The only thread let go of its copy, so it takes the returned one.
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->takes == 2; }));
  catalog_.SetOutage(false);
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->acked.size() == 1; }));
  worker_->RequestStop();
  worker_->Wait();
  EXPECT_EQ(queue_->acked, std::vector<std::string>{payload});
  EXPECT_TRUE(queue_->released.empty());
  EXPECT_TRUE(queue_->failed.empty());
  EXPECT_TRUE(queue_->delayed.empty());
  EXPECT_TRUE(Synced(payload));
}

// Redis is down when the outcome is ready: the worker keeps it until Redis
// takes it, and the job costs no retry.
TEST_F(WorkerTest, KeepsAnOutcomeUntilRedisTakesIt) {
  store_->after_upload = [this] { queue_->SetUp(false); };
  std::string payload = Push("uploaded just before Redis went away");
  Start();
  ASSERT_TRUE(TurnUntilQueue([this] { return !queue_->redis_up; }));
  // Several maintenance rounds fail meanwhile.
  int before = 0;
  {
    std::lock_guard lock(queue_->mu);
    before = queue_->heartbeats;
  }
  ASSERT_TRUE(TurnUntilQueue([&] { return queue_->heartbeats >= before + 2; }));
  EXPECT_TRUE(Synced(payload));
  store_->after_upload = nullptr;
  queue_->SetUp(true);
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->acked.size() == 1; }));
  EXPECT_TRUE(queue_->delayed.empty());
  EXPECT_TRUE(queue_->released.empty());
  EXPECT_EQ(queue_->takes, 1);
}

// Stopping while a job is held through an outage hands it back to the head
// of pending.
TEST_F(WorkerTest, StopReleasesAHeldJobToPending) {
  settings_.concurrency = 1;
  catalog_.SetOutage(true);
  std::string payload = Push("held at shutdown");
  Start();
  ASSERT_TRUE(TurnUntilQueue([this] { return queue_->processing.size() == 1; }));
  worker_->RequestStop();
  worker_->Wait();
  EXPECT_EQ(queue_->released, std::vector<std::string>{payload});
  EXPECT_EQ(queue_->pending.back(), payload) << "served next";
  EXPECT_TRUE(queue_->processing.empty());
  EXPECT_FALSE(queue_->lease) << "deregistered on exit";
}

}  // namespace
}  // namespace media_sync::worker
