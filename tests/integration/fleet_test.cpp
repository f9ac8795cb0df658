// A fleet: several `media-sync run` processes, each with its own WORKER_ID,
// against one Redis, one PostgreSQL and two storage boxes (the strict
// gateway's s3rver and the second s3rver). Nothing but Redis coordinates
// them: each job is taken by one worker, the drain ends for all of them
// once the queue is empty, and a worker killed mid-run has its jobs served
// by the others after its lease. The throughput for 1, 2 and 4 workers is
// printed as [  MEASURE ] lines (docs/reliability.md).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <memory>
#include <source_location>
#include <string>
#include <vector>

#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The N of the summary line's "synced N" (0 when missing).
int64_t SyncedBy(const std::string& log) {
  auto at = log.find("summary: synced ");
  if (at == std::string::npos) return 0;
  return std::stoll(log.substr(at + 16));
}

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  // Half the jobs for each box; pushed in one LPUSH.
  std::vector<Json> QueueJobs(int count, uint64_t size, uint64_t first_seed) {
    std::vector<Json> jobs = media_.MakeMany(count / 2, size, "box-a", first_seed);
    for (auto& job : media_.MakeMany(count - count / 2, size, "box-b", first_seed + 100000)) {
      jobs.push_back(std::move(job));
    }
    media_.PushAll(jobs);
    return jobs;
  }

  // Every job synced once (rows, both boxes' counters, objects, local
  // files) and nothing left in any queue.
  void ExpectSyncedExactlyOnce(const std::vector<Json>& jobs,
                               std::source_location at = std::source_location::current()) {
    ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
    media_.ExpectSyncedExactlyOnce(jobs, at);
    EXPECT_TRUE(media_.QueuesEmpty()) << media_.QueueState();
    EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

// Throughput against the number of workers: the same 80 jobs (40 per box)
// drained by 1, 2 or 4 processes of one job in flight each, so the fleet,
// not one process's threads, makes the concurrency. Each job is synced by
// exactly one of them (the summaries add up), and every process's drain
// ends. The time counts from the first process's start to the last one's
// exit (start-up and the drain's last check included).
class FleetThroughputTest : public FleetTest, public ::testing::WithParamInterface<int> {};

TEST_P(FleetThroughputTest, EveryJobIsSyncedOnceByOneOfTheWorkers) {
  constexpr int kJobs = 80;
  constexpr uint64_t kSize = 256 * 1024;
  const int workers = GetParam();
  std::vector<Json> jobs = QueueJobs(kJobs, kSize, 7000 + 1000 * workers);
  auto started = Clock::now();
  std::vector<std::unique_ptr<WorkerProcess>> fleet;
  for (int i = 0; i < workers; ++i) {
    fleet.push_back(std::make_unique<WorkerProcess>(
        stack_,
        std::map<std::string, std::string>{
            {"WORKER_ID", "fleet-" + std::to_string(workers) + "-" + std::to_string(i)},
            {"SYNC_CONCURRENCY", "1"}},
        std::vector<std::string>{"run", "--drain"}));
  }
  int64_t synced = 0;
  int took_jobs = 0;
  for (auto& worker : fleet) {
    EXPECT_EQ(worker->WaitExit(120s), 0) << worker->Log();
    synced += SyncedBy(worker->Log());
    if (SyncedBy(worker->Log()) > 0) ++took_jobs;
  }
  double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  EXPECT_EQ(synced, kJobs);
  if (workers > 1) {
    EXPECT_GE(took_jobs, 2);
  }
  ExpectSyncedExactlyOnce(jobs);
  Measure("fleet_files_per_second_" + std::to_string(workers) + "_workers",
          static_cast<int64_t>(kJobs / seconds), "files/s");
}

INSTANTIATE_TEST_SUITE_P(Workers, FleetThroughputTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::to_string(info.param) + "Workers";
                         });

// A worker of three is SIGKILLed while it holds jobs: the two others,
// draining, count its jobs as held until its lease runs out, a reaper of
// theirs returns them to pending, they serve them, and both drains end.
TEST_F(FleetTest, AKilledWorkersJobsAreServedByTheOthersBeforeTheirDrainEnds) {
  std::vector<Json> jobs = QueueJobs(60, 1024 * 1024, 20000);
  auto settings = [](const std::string& id) {
    return std::map<std::string, std::string>{
        {"WORKER_ID", id}, {"SYNC_CONCURRENCY", "4"}, {"LEASE_SECONDS", "3"}};
  };
  WorkerProcess victim(stack_, settings("fleet-victim"));
  ASSERT_TRUE(WaitUntil(
      [&] { return media_.Len("media:sync:processing:fleet-victim") > 0 || !victim.Running(); },
      30s))
      << victim.Log();
  WorkerProcess one(stack_, settings("fleet-one"), {"run", "--drain"});
  WorkerProcess two(stack_, settings("fleet-two"), {"run", "--drain"});
  ASSERT_TRUE(WaitUntil(
      [&] {
        return media_.SyncedRows() >= 10 && media_.Len("media:sync:processing:fleet-victim") > 0;
      },
      30s))
      << victim.Log();
  victim.Signal(SIGKILL);
  EXPECT_EQ(victim.WaitExit(10s), 128 + SIGKILL);

  EXPECT_EQ(one.WaitExit(120s), 0) << one.Log();
  EXPECT_EQ(two.WaitExit(120s), 0) << two.Log();
  EXPECT_THAT(one.Log() + two.Log(), HasSubstr("jobs of dead workers to pending"));
  ExpectSyncedExactlyOnce(jobs);
}

}  // namespace
}  // namespace media_sync::testing
