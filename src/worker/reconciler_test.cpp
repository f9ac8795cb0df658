// The reconcile's decisions over in-memory doubles of the queue, the
// catalog's unsynced rows and the stores, on simulated time: which rows have
// lost their jobs, where their bytes are, what a second look keeps, and that
// nothing is pushed unless a pass got that far. The same against real
// Redis, PostgreSQL and S3 is tests/integration/reconcile_command_test.cpp.
#include "worker/reconciler.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/job.h"
#include "core/test_doubles.h"

namespace media_sync::worker {
namespace {

using namespace std::chrono_literals;
using doubles::FakeRouter;
using doubles::FakeStore;
using doubles::FakeUnsyncedRows;
using doubles::InMemoryQueueCensus;
using doubles::SimulatedClock;
using Source = LostJob::Source;

constexpr auto kOld = 2h;  // older than the threshold of every test

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/reconciler-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto buffer = buffer::LocalBuffer::Create(dir_);
    ASSERT_TRUE(buffer.ok()) << buffer.error().message;
    buffer_.emplace(std::move(*buffer));
    reconciler_.emplace(ReconcileSources{queue_, queue_, rows_, router_, *buffer_}, clock_);
    settings_.older_than = 1h;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The row's file in the buffer, at <buffer>/<s3_key>.
  void WriteLocal(const UnsyncedFile& row, const std::string& content) {
    std::filesystem::path path = dir_ + "/" + row.s3_key;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
  }
  // The row's object in the store.
  void Store(const UnsyncedFile& row) {
    std::lock_guard lock(store_->mu);
    store_->objects[row.s3_key] = {ObjectInfo{row.file_size, row.sha256, "etag"}, ""};
  }
  // A job of the row as producers push it, with its sha256 as given.
  static std::string JobOf(const UnsyncedFile& row, const std::string& sha256) {
    return nlohmann::json{{"sha256", sha256}, {"s3_key", row.s3_key}}.dump();
  }
  static std::string JobOf(const UnsyncedFile& row) { return JobOf(row, row.sha256); }

  static std::vector<std::string> Shas(const std::vector<LostJob>& lost) {
    std::vector<std::string> shas;
    for (const auto& job : lost) shas.push_back(job.row.sha256);
    return shas;
  }
  std::vector<std::string> EnqueuedShas() {
    std::lock_guard lock(queue_.mu);
    std::vector<std::string> shas;
    for (const auto& payload : queue_.enqueued) {
      shas.push_back(nlohmann::json::parse(payload)["sha256"].get<std::string>());
    }
    return shas;
  }

  std::string dir_;
  SimulatedClock clock_;
  InMemoryQueueCensus queue_;
  FakeUnsyncedRows rows_{clock_};
  std::shared_ptr<FakeStore> store_ = std::make_shared<FakeStore>();
  FakeRouter router_{store_};
  std::optional<buffer::LocalBuffer> buffer_;
  std::optional<Reconciler> reconciler_;
  ReconcileSettings settings_;
};

TEST_F(ReconcilerTest, EnqueuesOnlyTheRowsWhoseJobsAreNowhereInRedis) {
  auto pending = rows_.Add("pending", kOld);
  auto delayed = rows_.Add("delayed", kOld);
  auto held = rows_.Add("held by a worker", kOld);
  auto failed = rows_.Add("failed", kOld);
  auto local = rows_.Add("lost, in the buffer", kOld + 2s);  // oldest first
  auto stored = rows_.Add("lost, in storage", kOld + 1s);
  auto gone = rows_.Add("lost, nowhere", kOld);
  {
    std::lock_guard lock(queue_.mu);
    queue_.pending.push_front(JobOf(pending));
    queue_.delayed.push_back(JobOf(delayed));
    queue_.processing["w1"].push_front(JobOf(held));
    // A hash in capitals is the same job.
    std::string upper = failed.sha256;
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    queue_.failed.push_back(JobOf(failed, upper));
  }
  WriteLocal(local, "lost, in the buffer");
  Store(stored);

  auto report = reconciler_->Run(settings_);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->rows_examined, 7);
  EXPECT_EQ(report->still_queued, 4);
  EXPECT_EQ(report->appeared_meanwhile, 0);
  ASSERT_EQ(Shas(report->enqueued), (std::vector<std::string>{local.sha256, stored.sha256}));
  EXPECT_EQ(report->enqueued[0].source, Source::kLocalFile);
  EXPECT_EQ(report->enqueued[1].source, Source::kStoredObject);
  ASSERT_EQ(report->nothing_left.size(), 1u);
  EXPECT_EQ(report->nothing_left[0].sha256, gone.sha256);
  EXPECT_EQ(report->nothing_left_rows, 1);
  EXPECT_FALSE(report->limit_reached);

  // Pushed as producers push them, the local file where the buffer keeps it,
  // queued now.
  EXPECT_EQ(EnqueuedShas(), (std::vector<std::string>{local.sha256, stored.sha256}));
  std::lock_guard lock(queue_.mu);
  auto job = ParseJob(queue_.enqueued[0]);
  ASSERT_TRUE(job.ok()) << job.error().message;
  EXPECT_EQ(job->local_path, dir_ + "/" + local.s3_key);
  EXPECT_EQ(job->storage_box_id, local.storage_box_id);
  EXPECT_EQ(job->file_size, local.file_size);
  EXPECT_EQ(job->queued_at, clock_.WallNow());
}

TEST_F(ReconcilerTest, AsksOnlyForRowsOlderThanTheThreshold) {
  settings_.older_than = 3600s;
  auto old_enough = rows_.Add("created an hour and a second ago", 3601s);
  rows_.Add("created a second short of an hour ago", 3599s);
  WriteLocal(old_enough, "created an hour and a second ago");

  auto report = reconciler_->Run(settings_);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(Shas(report->enqueued), std::vector<std::string>{old_enough.sha256});
  std::lock_guard lock(rows_.mu);
  EXPECT_EQ(rows_.asked_older_than, (std::vector<int>{3600, 3600}));  // a page, then the end
}

// Redis is not frozen while it is read: a job moving between keys during the
// first read is found by the second, and is not pushed twice.
TEST_F(ReconcilerTest, AJobThatTurnsUpBetweenTheTwoLooksIsNotPushed) {
  auto moving = rows_.Add("moving between keys", kOld);
  auto lost = rows_.Add("lost", kOld);
  WriteLocal(moving, "moving between keys");
  WriteLocal(lost, "lost");
  queue_.before_walk = [&] {
    std::lock_guard lock(queue_.mu);
    if (queue_.walks == 2) queue_.delayed.push_back(JobOf(moving));
  };

  auto report = reconciler_->Run(settings_);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(Shas(report->enqueued), std::vector<std::string>{lost.sha256});
  EXPECT_EQ(report->appeared_meanwhile, 1);
  EXPECT_EQ(report->still_queued, 1);
  EXPECT_EQ(EnqueuedShas(), std::vector<std::string>{lost.sha256});
}

TEST_F(ReconcilerTest, StopsAtTheLimitOldestFirstAndSaysSo) {
  settings_.limit = 2;
  auto oldest = rows_.Add("oldest", kOld + 2s);
  auto older = rows_.Add("older", kOld + 1s);
  auto old = rows_.Add("old", kOld);
  for (const auto& [row, content] :
       {std::pair{oldest, "oldest"}, std::pair{older, "older"}, std::pair{old, "old"}}) {
    WriteLocal(row, content);
  }
  auto report = reconciler_->Run(settings_);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_TRUE(report->limit_reached);
  EXPECT_EQ(EnqueuedShas(), (std::vector<std::string>{oldest.sha256, older.sha256}));
}

TEST_F(ReconcilerTest, ADryRunDecidesAndPushesNothing) {
  auto lost = rows_.Add("lost", kOld);
  WriteLocal(lost, "lost");
  settings_.dry_run = true;
  auto report = reconciler_->Run(settings_);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(Shas(report->enqueued), std::vector<std::string>{lost.sha256});
  EXPECT_TRUE(EnqueuedShas().empty());
  std::lock_guard lock(queue_.mu);
  EXPECT_EQ(queue_.walks, 1) << "a dry run needs no second look";
}

// A box that cannot be asked may hold the object: the job goes back, and
// the worker defers it while the box is down.
TEST_F(ReconcilerTest, ARowWhoseBoxCannotBeAskedIsEnqueuedUnchecked) {
  auto lost = rows_.Add("on a box that is down", kOld);
  store_->outage = true;
  auto report = reconciler_->Run(settings_);
  ASSERT_TRUE(report.ok()) << report.error().message;
  ASSERT_EQ(report->enqueued.size(), 1u);
  EXPECT_EQ(report->enqueued[0].source, Source::kUnchecked);
  EXPECT_EQ(report->enqueued[0].note, "connection refused");
  EXPECT_EQ(EnqueuedShas(), std::vector<std::string>{lost.sha256});
}

// Rows are read a page at a time to the end; the report keeps the first
// thousand rows with nothing left and counts the rest.
TEST_F(ReconcilerTest, PagesThroughEveryRowAndKeepsTheReportBounded) {
  for (int i = 0; i < 2500; ++i) rows_.Add("nowhere " + std::to_string(i), kOld);
  auto report = reconciler_->Run(settings_);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->rows_examined, 2500);
  EXPECT_EQ(report->nothing_left_rows, 2500);
  EXPECT_EQ(report->nothing_left.size(), 1000u);
  EXPECT_TRUE(report->enqueued.empty());
  std::lock_guard lock(rows_.mu);
  EXPECT_EQ(rows_.pages, 4) << "three pages of up to 1000 rows, then the empty one";
}

TEST_F(ReconcilerTest, ACheckpointErrorOrAStopEndsThePassBeforeAnythingIsPushed) {
  auto lost = rows_.Add("lost", kOld);
  WriteLocal(lost, "lost");
  int calls = 0;
  auto lost_lock = [&]() -> Status {
    // The first read's chunks pass; the lock is lost before the second look.
    if (++calls > 2) return Error::Cancelled("the reconcile lock expired and was lost");
    return Ok();
  };
  auto report = reconciler_->Run(settings_, {}, lost_lock);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().message, "the reconcile lock expired and was lost");
  EXPECT_GT(calls, 2);

  std::stop_source stop;
  stop.request_stop();
  auto stopped = reconciler_->Run(settings_, stop.get_token());
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().kind, ErrorKind::kCancelled);
  EXPECT_TRUE(EnqueuedShas().empty());
}

TEST_F(ReconcilerTest, RedisOrPostgreSqlDownIsTheirOutageAndPushesNothing) {
  auto lost = rows_.Add("lost", kOld);
  WriteLocal(lost, "lost");
  queue_.outage = true;
  auto redis_down = reconciler_->Run(settings_);
  ASSERT_FALSE(redis_down.ok());
  EXPECT_EQ(redis_down.error().kind, ErrorKind::kOutage);

  queue_.outage = false;
  rows_.outage = true;
  auto postgres_down = reconciler_->Run(settings_);
  ASSERT_FALSE(postgres_down.ok());
  EXPECT_EQ(postgres_down.error().kind, ErrorKind::kOutage);
  EXPECT_TRUE(EnqueuedShas().empty());
}

}  // namespace
}  // namespace media_sync::worker
