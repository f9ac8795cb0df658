// The worker's own decisions (taking, handing back, holding, applying,
// reaping, draining) over the in-memory queue double. The same behaviour
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
    settings_.lease = 600ms;
    settings_.outage_backoff_max = 50ms;
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
    worker_ =
        std::make_unique<Worker>(settings_, std::move(queues), *pipeline_, metrics_, liveness_);
    worker_->Start();
  }

  // Waits (bounded) for the drained worker to end; cancels it otherwise.
  bool Drained() {
    auto waited = std::async(std::launch::async, [this] { worker_->Wait(); });
    bool drained = waited.wait_for(kWait) == std::future_status::ready;
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
  EXPECT_EQ(worker_->stats().synced.load(), 5u);
}

TEST_F(WorkerTest, TakesNothingBeforeItsFirstHeartbeat) {
  queue_->SetUp(false);
  Push("waiting for Redis");
  Start();
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->heartbeats >= 2; }, kWait));
  queue_->SetUp(true);
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->acked.size() == 1; }, kWait));
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
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->acked.size() == 1; }, kWait));
  {
    std::lock_guard lock(queue_->mu);
    queue_->processing.push_front(payload);
    queue_->changed.notify_all();
  }
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->acked.size() == 2; }, kWait));
  // A job is counted after its acknowledgement: the counts are read once the
  // worker has stopped.
  worker_->RequestStop();
  worker_->Wait();
  EXPECT_EQ(queue_->released, std::vector<std::string>{payload});
  EXPECT_EQ(worker_->stats().synced.load(), 1u);
  EXPECT_EQ(worker_->stats().already_synced.load(), 1u);
  EXPECT_EQ(store_->uploads, 1);
}

// Entries its threads hold are never handed back, however long they take.
TEST_F(WorkerTest, NeverHandsBackAJobAThreadHolds) {
  catalog_.SetOutage(true);  // the thread holds its job
  std::string payload = Push("held through an outage");
  Start();
  // Several checks of the list pass while the job is held.
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->heartbeats >= 8; }, kWait));
  {
    std::lock_guard lock(queue_->mu);
    EXPECT_TRUE(queue_->released.empty());
    EXPECT_EQ(queue_->processing.size(), 1u);
  }
  catalog_.SetOutage(false);
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->acked.size() == 1; }, kWait));
  EXPECT_TRUE(Synced(payload));
  EXPECT_EQ(queue_->takes, 1);
}

// After an outage every lease may have lapsed: the worker reaps nobody until
// its own connection has held for a full lease, so workers that shared the
// outage renew their leases first.
TEST_F(WorkerTest, ReapsOnlyOnceItsOwnConnectionHeldForALease) {
  queue_->SetUp(false);
  Start();
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->heartbeats >= 2; }, kWait));
  queue_->SetUp(true);
  ASSERT_TRUE(queue_->WaitFor([this] { return !queue_->reap_times.empty(); }, kWait));
  std::lock_guard lock(queue_->mu);
  ASSERT_FALSE(queue_->heartbeat_times.empty());
  EXPECT_GE(queue_->reap_times.front() - queue_->heartbeat_times.front(), settings_.lease);
}

// A thread holding a job through a PostgreSQL outage lets go of it once a
// reaper returned it to pending (this worker's lease had lapsed), so one job
// is never held twice; the copy in pending is served once.
TEST_F(WorkerTest, LetsGoOfAHeldJobThatAReaperReturned) {
  settings_.concurrency = 1;
  catalog_.SetOutage(true);
  std::string payload = Push("reaped while held");
  Start();
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->processing.size() == 1; }, kWait));
  {
    std::lock_guard lock(queue_->mu);  // what a reaper does
    InMemoryQueueState::RemoveOne(queue_->processing, payload);
    queue_->pending.push_back(payload);
    queue_->changed.notify_all();
  }
  // The only thread let go of its copy, so it takes the returned one.
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->takes == 2; }, kWait));
  catalog_.SetOutage(false);
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->acked.size() == 1; }, kWait));
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
  ASSERT_TRUE(queue_->WaitFor([this] { return !queue_->redis_up; }, kWait));
  // Several maintenance rounds fail meanwhile.
  int before = 0;
  {
    std::lock_guard lock(queue_->mu);
    before = queue_->heartbeats;
  }
  ASSERT_TRUE(queue_->WaitFor([&] { return queue_->heartbeats >= before + 2; }, kWait));
  EXPECT_TRUE(Synced(payload));
  store_->after_upload = nullptr;
  queue_->SetUp(true);
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->acked.size() == 1; }, kWait));
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
  ASSERT_TRUE(queue_->WaitFor([this] { return queue_->processing.size() == 1; }, kWait));
  worker_->RequestStop();
  worker_->Wait();
  EXPECT_EQ(queue_->released, std::vector<std::string>{payload});
  EXPECT_EQ(queue_->pending.back(), payload) << "served next";
  EXPECT_TRUE(queue_->processing.empty());
  EXPECT_FALSE(queue_->lease) << "deregistered on exit";
}

}  // namespace
}  // namespace media_sync::worker
