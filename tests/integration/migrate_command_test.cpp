// `media-sync migrate` against the real stack: hundreds of objects move
// from one box to another with the migration SIGKILLed mid-run and started
// again, while a reader looks up random rows and fetches each object from
// the box its row names at that moment; every read succeeds, and rows,
// counters and objects are exact at the end.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "catalog/pg_box_catalog.h"
#include "config/options.h"
#include "core/hash.h"
#include "s3/s3_client.h"
#include "support/cli_runner.h"
#include "support/worker_harness.h"
#include "worker/box_registry.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class MigrateCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }
  config::Options StackOptions() const {
    auto env = stack_.Env();
    auto options = config::LoadOptions([env](std::string_view name) -> std::optional<std::string> {
      auto it = env.find(std::string(name));
      if (it == env.end()) return std::nullopt;
      return it->second;
    });
    EXPECT_TRUE(options.ok());
    return *options;
  }
  // `count` files synced to box-a.
  std::vector<Json> SyncedOnBoxA(int count) {
    std::vector<Json> jobs = media_.MakeMany(count, 1500, "box-a", 5000);
    media_.PushAll(jobs);
    WorkerProcess worker(stack_, {}, {"run", "--drain"});
    EXPECT_EQ(worker.WaitExit(120s), 0) << worker.Log();
    EXPECT_EQ(media_.SyncedRows("box-a"), count);
    return jobs;
  }
  int64_t RowBytes(const std::string& box) const {
    return std::stoll(Trim(
        stack_.Sql("SELECT coalesce(sum(file_size), 0) FROM media_files WHERE storage_box_id = '" +
                   box + "'")));
  }
  std::string PendingSourceCopies() const {
    return Trim(stack_.RedisCli("ZCARD media:sync:migrate:deletions"));
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

// Looks up random rows and fetches each object from the box the row names
// at that moment, until stopped; counts the reads and what went wrong.
class Reader {
 public:
  Reader(const config::Options& options, std::vector<Json> jobs)
      : catalog_(options.database_conninfo, 1), jobs_(std::move(jobs)) {
    auto boxes = catalog_.Boxes();
    EXPECT_TRUE(boxes.ok());
    if (!boxes.ok()) return;
    for (const auto& [box, endpoint] : *boxes) {
      auto settings = worker::BoxRegistry::OptionsForEndpoint(options.s3, endpoint);
      clients_.emplace(box, std::make_unique<s3::S3Client>(*settings, nullptr));
    }
    thread_ = std::jthread([this](const std::stop_token& stop) { Read(stop); });
  }
  void Stop() {
    if (!thread_.joinable()) return;
    thread_.request_stop();
    thread_.join();
  }
  int64_t reads() const { return reads_; }
  const std::vector<std::string>& failures() const { return failures_; }

 private:
  void Read(const std::stop_token& stop) {
    std::mt19937 random(42);
    while (!stop.stop_requested()) {
      const Json& job = jobs_[random() % jobs_.size()];
      const std::string sha256 = job["sha256"];
      auto rows = catalog_.RowsFor({sha256});
      if (!rows.ok() || rows->size() != 1 || !rows->front().box) {
        failures_.push_back(sha256 + ": no row");
        continue;
      }
      const std::string box = *rows->front().box;
      auto bytes = clients_.at(box)->GetObject(job["s3_key"]);
      if (!bytes.ok()) {
        failures_.push_back(sha256 + " on " + box + ": " + bytes.error().message);
      } else if (Sha256Hex(*bytes) != sha256) {
        failures_.push_back(sha256 + " on " + box + ": other bytes");
      }
      ++reads_;
    }
  }

  catalog::PgBoxCatalog catalog_;
  std::vector<Json> jobs_;
  std::map<std::string, std::unique_ptr<s3::S3Client>> clients_;
  std::atomic<int64_t> reads_{0};
  std::vector<std::string> failures_;  // read after Stop()
  std::jthread thread_;
};

TEST_F(MigrateCommandTest, MovesEveryObjectThroughAKillWhileEveryRowStaysReadable) {
  constexpr int kFiles = 600;
  std::vector<Json> jobs = SyncedOnBoxA(kFiles);
  const int64_t total = RowBytes("box-a");
  ASSERT_EQ(media_.UsedBytes("box-a"), total);
  Reader reader(StackOptions(), jobs);

  const std::vector<std::string> migrate = {
      "migrate", "--from", "box-a", "--to", "box-b", "--delete-after", "3s", "--concurrency", "4"};
  {
    WorkerProcess first(stack_, {}, migrate);
    ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows("box-b") >= kFiles / 4; }, 60s))
        << first.Log();
    first.Signal(SIGKILL);
    ASSERT_EQ(first.WaitExit(10s), 128 + SIGKILL);
  }
  // Killed mid-run: each row counted on the box it names, nothing lost.
  const int64_t moved = media_.SyncedRows("box-b");
  EXPECT_LT(moved, kFiles);
  EXPECT_EQ(media_.SyncedRows("box-a") + moved, kFiles);
  EXPECT_EQ(media_.UsedBytes("box-a"), RowBytes("box-a"));
  EXPECT_EQ(media_.UsedBytes("box-b"), RowBytes("box-b"));

  WorkerProcess second(stack_, {}, migrate);
  ASSERT_EQ(second.WaitExit(120s), 0) << second.Log();
  EXPECT_THAT(second.Log(), HasSubstr(" 0 failed"));
  // The source copies go once their grace is over, on a later run.
  ASSERT_TRUE(WaitUntil(
      [&] {
        CliOutcome again = RunCli(stack_, "migrate --from box-a --to box-b --delete-after 3s");
        return again.code == 0 && PendingSourceCopies() == "0";
      },
      30s))
      << PendingSourceCopies();
  reader.Stop();
  EXPECT_GT(reader.reads(), 100);
  EXPECT_EQ(reader.failures(), std::vector<std::string>{});

  EXPECT_EQ(media_.SyncedRows("box-b"), kFiles);
  EXPECT_EQ(media_.UsedBytes("box-a"), 0);
  EXPECT_EQ(media_.UsedBytes("box-b"), total);
  EXPECT_EQ(media_.ObjectKeys("box-a"), std::vector<std::string>{});
  EXPECT_EQ(media_.ObjectKeys("box-b").size(), static_cast<size_t>(kFiles));
  for (int i = 0; i < kFiles; i += 25) {
    Json moved_job = jobs[static_cast<size_t>(i)];
    moved_job["storage_box_id"] = "box-b";
    EXPECT_TRUE(media_.ObjectStored(moved_job)) << moved_job["s3_key"];
  }
  CliOutcome audit = RunCli(stack_, "audit");
  EXPECT_EQ(audit.code, 0) << audit.all();
}

TEST_F(MigrateCommandTest, ADryRunAndShardsCountWithoutChangingAnything) {
  std::vector<Json> jobs = SyncedOnBoxA(40);
  const int64_t total = RowBytes("box-a");
  CliOutcome dry = RunCli(stack_, "migrate --from box-a --to box-b --dry-run");
  ASSERT_EQ(dry.code, 0) << dry.all();
  EXPECT_EQ(dry.out,
            "would move 40 rows (" + std::to_string(total) + " bytes) from box-a to box-b\n");
  // Two shards split the rows between them, none twice.
  int64_t rows = 0;
  for (const char* shard : {"0/2", "1/2"}) {
    CliOutcome part =
        RunCli(stack_, std::string("migrate --from box-a --to box-b --dry-run --shard ") + shard);
    ASSERT_EQ(part.code, 0) << part.all();
    rows += std::stoll(part.out.substr(std::string("would move ").size()));
  }
  EXPECT_EQ(rows, 40);
  EXPECT_EQ(media_.SyncedRows("box-a"), 40);
  EXPECT_EQ(media_.ObjectKeys("box-b"), std::vector<std::string>{});
  EXPECT_EQ(PendingSourceCopies(), "0");
}

TEST_F(MigrateCommandTest, BadUsageIsRefusedWithTheReason) {
  CliOutcome same = RunCli(stack_, "migrate --from box-a --to box-a");
  EXPECT_EQ(same.code, 2) << same.all();
  EXPECT_THAT(same.err, HasSubstr("--from and --to name the same box"));
  CliOutcome unknown = RunCli(stack_, "migrate --from box-a --to nope");
  EXPECT_EQ(unknown.code, 2) << unknown.all();
  EXPECT_THAT(unknown.err, HasSubstr("no storage box nope"));
  CliOutcome grace = RunCli(stack_, "migrate --from box-a --to box-b --delete-after soon");
  EXPECT_EQ(grace.code, 2) << grace.all();
  EXPECT_THAT(grace.err, HasSubstr("--delete-after 'soon' is not a duration"));
  CliOutcome shard = RunCli(stack_, "migrate --from box-a --to box-b --shard 2/2");
  EXPECT_EQ(shard.code, 2) << shard.all();
  EXPECT_THAT(shard.err, HasSubstr("--shard '2/2' is not I/N"));
}

}  // namespace
}  // namespace media_sync::testing
