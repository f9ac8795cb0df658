// A job whose values PostgreSQL would refuse, among good jobs that share its
// group commit: it ends in the failed queue with an error that says why,
// the good jobs sync, and `run --drain` around it ends. Against real Redis,
// PostgreSQL and s3rver, with enough jobs in flight that the syncs share
// transactions.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr int kGoodJobs = 15;

class PoisonedJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  // The good jobs and `poisoned` pushed together, then one drain with as
  // many jobs in flight as there are jobs: it must end, within a bound.
  std::string DrainAround(const std::string& poisoned, std::vector<Json>& good) {
    good = media_.MakeMany(kGoodJobs, 4096, "box-b", 300);
    std::vector<Json> jobs(good.begin(), good.begin() + kGoodJobs / 2);
    media_.PushAll(jobs);
    media_.PushRaw(poisoned);
    jobs.assign(good.begin() + kGoodJobs / 2, good.end());
    media_.PushAll(jobs);
    WorkerProcess worker(stack_,
                         {{"SYNC_CONCURRENCY", std::to_string(kGoodJobs + 1)},
                          {"RETRY_DELAY_SECONDS", "0"},
                          {"LOG_LEVEL", "info"}},
                         {"run", "--drain"});
    auto code = worker.WaitExit(120s);
    EXPECT_EQ(code, 0) << "the drain did not end: " << media_.QueueState() << "\n" << worker.Log();
    return worker.Log();
  }

  // The poisoned job parked once, whole, with `error` in its entry.
  void ExpectParked(const std::string& poisoned, const std::string& error) {
    std::vector<Json> failed = media_.FailedEntries();
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_THAT(failed[0]["error"].get<std::string>(), HasSubstr(error));
    EXPECT_TRUE(failed[0].contains("failed_at"));
    const Json job = Json::parse(poisoned);
    for (const auto& [field, value] : job.items()) {
      if (field != "retry_count") {
        EXPECT_EQ(failed[0][field], value) << field;
      }
    }
    EXPECT_EQ(media_.Len("media:sync:pending"), 0);
    EXPECT_EQ(media_.DelayedCount(), 0);
    EXPECT_EQ(media_.ProcessingKeys(), "");
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

// Valid JSON whose box holds a NUL: refused at the door, before its upload.
TEST_F(PoisonedJobTest, ABoxWithANulByteIsRefusedAndTheDrainEnds) {
  Json job = media_.Make(4096, "box-a", 299);
  job["storage_box_id"] = std::string("box-a\0x", 7);
  const std::string poisoned = job.dump();
  ASSERT_THAT(poisoned, HasSubstr(R"("storage_box_id":"box-a\u0000x")"));
  std::vector<Json> good;
  std::string log = DrainAround(poisoned, good);

  ExpectParked(poisoned,
               "Invalid job: storage_box_id must not hold control characters "
               "(U+0000 at byte 5)");
  EXPECT_FALSE(media_.ObjectExists(job));  // nothing uploaded for it
  EXPECT_TRUE(media_.LocalExists(job));
  media_.ExpectSyncedExactlyOnce(good);
  EXPECT_THAT(log, HasSubstr("summary: synced " + std::to_string(kGoodJobs) + ", "));
}

// A job no check at the door can refuse: its box's counter would pass the
// range of bigint, so PostgreSQL refuses the statement of its transaction
// (SQLSTATE 22003). Only that job fails; the jobs sharing the transaction
// are committed again without it.
TEST_F(PoisonedJobTest, AJobWhoseSyncPostgresRefusesFailsAloneAndTheOthersSync) {
  Json job = media_.Make(4096, "box-a", 298);
  const int64_t near_the_end = std::numeric_limits<int64_t>::max() - 1000;
  stack_.Sql("UPDATE storage_boxes SET used_bytes = " + std::to_string(near_the_end) +
             " WHERE id = 'box-a'");
  const std::string poisoned = job.dump();
  std::vector<Json> good;
  std::string log = DrainAround(poisoned, good);

  ASSERT_NO_FATAL_FAILURE(
      ExpectParked(poisoned, "PostgreSQL refused the values: ERROR:  bigint out of range"));
  EXPECT_THAT(media_.FailedEntries()[0]["error"].get<std::string>(), HasSubstr("SQLSTATE 22003"));
  // Not recorded: its row unsynced, its box's counter as it was, its file kept.
  EXPECT_EQ(Trim(stack_.Sql("SELECT synced_at IS NULL FROM media_files WHERE sha256 = '" +
                            job["sha256"].get<std::string>() + "'")),
            "t");
  EXPECT_EQ(media_.UsedBytes("box-a"), near_the_end);
  EXPECT_TRUE(media_.LocalExists(job));
  media_.ExpectSyncedExactlyOnce(good);
  EXPECT_THAT(log, HasSubstr("summary: synced " + std::to_string(kGoodJobs) + ", "));
}

}  // namespace
}  // namespace media_sync::testing
