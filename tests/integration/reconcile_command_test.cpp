// `media-sync reconcile` and the periodic reconcile of `media-sync run`
// against the real stack: exactly the jobs Redis lost are enqueued, a second
// run enqueues nothing, rows with nothing left to sync are reported, and one
// worker at a time holds the reconcile lock.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <memory>
#include <set>

#include "catalog/pg_catalog.h"
#include "config/options.h"
#include "core/job.h"
#include "queue/queue_admin.h"
#include "queue/reconcile_lock.h"
#include "s3/s3_object_store.h"
#include "support/cli_runner.h"
#include "support/worker_harness.h"
#include "util/fd.h"
#include "worker/box_registry.h"
#include "worker/periodic_reconciler.h"

namespace media_sync::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

class ReconcileCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  std::string Sha(const Json& job) const { return job["sha256"].get<std::string>(); }
  // Created two hours ago: older than the default --older-than of an hour.
  void Age(const Json& job) {
    stack_.Sql("UPDATE media_files SET created_at = now() - interval '2 hours' WHERE sha256 = '" +
               Sha(job) + "'");
  }
  std::multiset<std::string> PendingShas() const {
    std::multiset<std::string> shas;
    for (const Json& job : media_.PendingJobs()) shas.insert(Sha(job));
    return shas;
  }
  bool Synced(const Json& job) const {
    return Trim(stack_.Sql("SELECT synced_at IS NOT NULL FROM media_files WHERE sha256 = '" +
                           Sha(job) + "'")) == "t";
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
  // Puts the job's file into box-b's bucket, as a worker that crashed after
  // the upload would have left it.
  void StoreOnBoxB(const Json& job) {
    auto box = worker::BoxRegistry::OptionsForEndpoint(
        StackOptions().s3, "http://" + stack_.Get("STACK_S3_2_ENDPOINT"));
    ASSERT_TRUE(box.ok());
    s3::S3ObjectStore store(*box);
    ASSERT_TRUE(store.EnsureBucket().ok());
    UniqueFd fd(open(job["local_path"].get<std::string>().c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    auto stored =
        store.Upload(job["s3_key"].get<std::string>(), fd.get(), job["file_size"].get<uint64_t>(),
                     job["sha256"].get<std::string>(), {});
    ASSERT_TRUE(stored.ok()) << stored.error().message;
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

TEST_F(ReconcileCommandTest, EnqueuesExactlyTheLostJobsAndReportsRowsWithNothingLeft) {
  Json pending = media_.Make(1000, "box-a", 31);
  media_.Push(pending);
  Json delayed = media_.Make(1100, "box-a", 32);
  stack_.RedisCli("ZADD media:sync:delayed 99999999999999 " + ShellQuote(delayed.dump()));
  Json processing = media_.Make(1200, "box-b", 33);
  // A processing list of a worker no longer registered: found by its key.
  stack_.RedisCli("LPUSH media:sync:processing:gone-worker " + ShellQuote(processing.dump()));
  Json failed = media_.Make(1300, "box-b", 34);
  stack_.RedisCli(
      "LPUSH media:sync:failed " +
      ShellQuote(FailedEntry(failed.dump(), "Size mismatch", 4, std::chrono::system_clock::now())));
  Json lost_local = media_.Make(1400, "box-a", 35);
  Json lost_object = media_.Make(1500, "box-b", 36);
  ASSERT_NO_FATAL_FAILURE(StoreOnBoxB(lost_object));
  fs::remove(lost_object["local_path"].get<std::string>());
  Json nothing_left = media_.Make(1600, "box-a", 37);
  fs::remove(nothing_left["local_path"].get<std::string>());
  Json young = media_.Make(1700, "box-a", 38);  // its producer may not have pushed it yet
  Json synced = media_.Make(1800, "box-a", 39);
  stack_.Sql("UPDATE media_files SET synced_at = now() WHERE sha256 = '" + Sha(synced) + "'");
  for (const Json& job :
       {pending, delayed, processing, failed, lost_local, lost_object, nothing_left, synced}) {
    Age(job);
  }

  CliOutcome dry = RunCli(stack_, "reconcile --dry-run");
  ASSERT_EQ(dry.code, 0) << dry.all();
  EXPECT_THAT(dry.out, HasSubstr("would enqueue  " + Sha(lost_local)));
  EXPECT_THAT(dry.out, HasSubstr(Sha(lost_local) + "  " + lost_local["s3_key"].get<std::string>() +
                                 "  box box-a  (local file)"));
  EXPECT_THAT(dry.out,
              HasSubstr(Sha(lost_object) + "  " + lost_object["s3_key"].get<std::string>() +
                        "  box box-b  (object in storage)"));
  EXPECT_THAT(dry.out, HasSubstr("nothing left to sync: 1 rows"));
  EXPECT_THAT(dry.out, HasSubstr("  " + Sha(nothing_left) + "  " +
                                 nothing_left["s3_key"].get<std::string>() + "  box box-a"));
  EXPECT_THAT(dry.out, HasSubstr("would enqueue 2 lost jobs; 7 unsynced rows older than 3600 s "
                                 "examined, 4 still queued in Redis, 1 with nothing left"));
  for (const Json& job : {pending, delayed, processing, failed, young, synced}) {
    EXPECT_THAT(dry.out, Not(HasSubstr(Sha(job))));
  }
  EXPECT_EQ(PendingShas(), std::multiset<std::string>{Sha(pending)});

  CliOutcome first = RunCli(stack_, "reconcile");
  ASSERT_EQ(first.code, 0) << first.all();
  EXPECT_THAT(first.out, HasSubstr("enqueued 2 lost jobs"));
  EXPECT_THAT(first.out, HasSubstr(Sha(nothing_left)));
  EXPECT_EQ(PendingShas(),
            (std::multiset<std::string>{Sha(pending), Sha(lost_local), Sha(lost_object)}));
  for (const Json& job : media_.PendingJobs()) {
    ASSERT_TRUE(ParseJob(job.dump()).ok()) << job.dump();
    EXPECT_EQ(job["local_path"], stack_.BufferDir() + "/" + job["s3_key"].get<std::string>());
  }

  CliOutcome second = RunCli(stack_, "reconcile");
  ASSERT_EQ(second.code, 0) << second.all();
  EXPECT_THAT(second.out, HasSubstr("enqueued 0 lost jobs; 7 unsynced rows older than 3600 s "
                                    "examined, 6 still queued in Redis, 1 with nothing left"));
  EXPECT_EQ(media_.PendingJobs().size(), 3u);

  // The other rows were skipped only because their jobs were in Redis.
  stack_.RedisCli("DEL media:sync:delayed media:sync:processing:gone-worker media:sync:failed");
  CliOutcome after_loss = RunCli(stack_, "reconcile");
  ASSERT_EQ(after_loss.code, 0) << after_loss.all();
  EXPECT_THAT(after_loss.out, HasSubstr("enqueued 3 lost jobs"));
  EXPECT_EQ(PendingShas(),
            (std::multiset<std::string>{Sha(pending), Sha(lost_local), Sha(lost_object),
                                        Sha(delayed), Sha(processing), Sha(failed)}));

  WorkerProcess worker(stack_, {}, {"run", "--drain"});
  ASSERT_EQ(worker.WaitExit(180s), 0) << worker.Log();
  EXPECT_THAT(worker.Log(), HasSubstr("failed 0"));
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  for (const Json& job : {pending, delayed, processing, failed, lost_local, lost_object}) {
    EXPECT_TRUE(Synced(job)) << job["s3_key"];
  }
  EXPECT_TRUE(media_.ObjectStored(lost_object));
  EXPECT_FALSE(Synced(nothing_left));
  EXPECT_FALSE(Synced(young));

  CliOutcome last = RunCli(stack_, "reconcile");
  ASSERT_EQ(last.code, 0) << last.all();
  EXPECT_THAT(last.out, HasSubstr("enqueued 0 lost jobs; 1 unsynced rows older than 3600 s "
                                  "examined, 0 still queued in Redis, 1 with nothing left"));
  EXPECT_EQ(media_.PendingJobs().size(), 0u);

  // --older-than takes the young row in, as a lost one.
  CliOutcome all_ages = RunCli(stack_, "reconcile --older-than 0");
  EXPECT_THAT(all_ages.out, HasSubstr("enqueued 1 lost jobs"));
  EXPECT_EQ(PendingShas(), std::multiset<std::string>{Sha(young)});
}

TEST_F(ReconcileCommandTest, LimitCapsOneRunAndTheNextRunsGoOnPastQueuedRows) {
  std::set<std::string> lost;
  for (int i = 0; i < 5; ++i) {
    Json job = media_.Make(100 + i, "box-a", 40 + i);
    Age(job);
    lost.insert(Sha(job));
  }
  CliOutcome first = RunCli(stack_, "reconcile --limit 2");
  ASSERT_EQ(first.code, 0) << first.all();
  EXPECT_THAT(first.out, HasSubstr("enqueued 2 lost jobs"));
  EXPECT_THAT(first.out, HasSubstr("limit of 2 reached"));
  EXPECT_THAT(RunCli(stack_, "reconcile --limit 2").out, HasSubstr("enqueued 2 lost jobs"));
  EXPECT_THAT(RunCli(stack_, "reconcile --limit 2").out, HasSubstr("enqueued 1 lost jobs"));
  EXPECT_THAT(RunCli(stack_, "reconcile --limit 2").out, HasSubstr("enqueued 0 lost jobs"));
  auto shas = PendingShas();
  EXPECT_EQ(std::set<std::string>(shas.begin(), shas.end()), lost);
  EXPECT_EQ(shas.size(), 5u);
}

TEST_F(ReconcileCommandTest, NeedsDatabaseUrl) {
  CliOutcome outcome = RunCli(stack_, "reconcile", {{"DATABASE_URL", ""}});
  EXPECT_EQ(outcome.code, 2);
  EXPECT_THAT(outcome.err, HasSubstr("DATABASE_URL"));
}

TEST_F(ReconcileCommandTest, PeriodicReconcileInRunPicksUpALostJob) {
  Json lost = media_.Make(4000, "box-b", 50);
  Age(lost);
  WorkerProcess worker(stack_, {{"RECONCILE_INTERVAL_SECONDS", "1"}}, {"run"});
  ASSERT_TRUE(WaitUntil([&] { return Synced(lost); }, 60s)) << worker.Log();
  EXPECT_TRUE(media_.ObjectStored(lost));
  worker.Signal(SIGTERM);
  ASSERT_EQ(worker.WaitExit(60s), 0) << worker.Log();
  EXPECT_THAT(worker.Log(), HasSubstr("periodic reconcile every 1 s"));
  EXPECT_THAT(worker.Log(), HasSubstr("reconcile: enqueued 1 lost jobs"));
}

// A backlog: 200,000 entries in Redis make one read of the queues last
// longer than the lock's TTL (300 ms here, 60 s in production). The pass
// renews its lock while it reads, so it is not cancelled, and the lost job
// is recovered during the backlog; its sha256s are held in a bounded filter.
TEST_F(ReconcileCommandTest, APassLongerThanTheLockKeepsItAndRecoversTheLostJob) {
  Json lost = media_.Make(3000, "box-a", 52);
  Age(lost);
  stack_.RedisCli(
      "EVAL " +
      ShellQuote("for i = 1, tonumber(ARGV[1]) do redis.call('LPUSH', KEYS[1], "
                 "'{\"sha256\":\"' .. string.format('%064x', i) .. '\",\"error\":\"old\"}') "
                 "end return 1") +
      " 1 media:sync:failed 200000");
  ASSERT_EQ(media_.Len("media:sync:failed"), 200000);

  config::Options options = StackOptions();
  catalog::PgCatalog catalog(options.database_conninfo, {});
  auto factory = [](const s3::S3Options& box) -> Result<std::shared_ptr<ObjectStore>> {
    return std::shared_ptr<ObjectStore>(std::make_shared<s3::S3ObjectStore>(box));
  };
  worker::BoxRegistry stores(options.s3, catalog, factory, {});
  auto buffer = buffer::LocalBuffer::Create(options.buffer_path);
  ASSERT_TRUE(buffer.ok());
  worker::PeriodicReconcilerSettings settings;
  settings.interval = 1s;
  settings.lock_ttl = 300ms;
  settings.worker_id = "backlog-reconciler";
  queue::QueueAdmin queue(options.redis);
  queue::ReconcileLock lock(options.redis, settings.worker_id);
  worker::PeriodicReconciler reconciler(settings, {queue, queue, catalog, stores, *buffer}, lock);
  EXPECT_TRUE(WaitUntil([&] { return PendingShas().count(Sha(lost)) == 1; }, 60s))
      << "the lost job was never enqueued";
  reconciler.Stop();
  EXPECT_EQ(media_.Len("media:sync:failed"), 200000);
}

// Two would-be holders of the lock (workers' reconcile runners).
class ReconcileLockTest : public ReconcileCommandTest {
 protected:
  using Acquired = queue::ReconcileLock::Acquired;

  void SetUp() override {
    ReconcileCommandTest::SetUp();
    auto address = config::ParseRedisUrl(stack_.Get("REDIS_URL"));
    ASSERT_TRUE(address.ok());
    a_ = std::make_unique<queue::ReconcileLock>(*address, "worker-a");
    b_ = std::make_unique<queue::ReconcileLock>(*address, "worker-b");
  }

  std::unique_ptr<queue::ReconcileLock> a_;
  std::unique_ptr<queue::ReconcileLock> b_;
};

TEST_F(ReconcileLockTest, HasOneOwnerAndOnlyTheOwnerExtendsOrReleasesIt) {
  ASSERT_EQ(*a_->TryAcquire(10s), Acquired::kYes);
  EXPECT_EQ(*b_->TryAcquire(10s), Acquired::kHeld);
  EXPECT_FALSE(*b_->Extend(10s));
  EXPECT_FALSE(*b_->Release(0ms));
  EXPECT_EQ(*a_->Holder(), std::optional<std::string>("worker-a"));
  EXPECT_EQ(Trim(stack_.RedisCli("GET media:sync:reconcile:lock")), "worker-a");
  EXPECT_TRUE(*a_->Extend(10s));
  EXPECT_TRUE(*a_->Release(0ms));
  EXPECT_EQ(*a_->Holder(), std::nullopt);
  EXPECT_EQ(Trim(stack_.RedisCli("EXISTS media:sync:reconcile:lock")), "0");
}

// A holder that never releases (it died) frees the lock when its TTL ends.
TEST_F(ReconcileLockTest, AHolderThatNeverReleasesFreesItWhenItsTtlEnds) {
  ASSERT_EQ(*b_->TryAcquire(300ms), Acquired::kYes);
  EXPECT_EQ(*a_->TryAcquire(10s), Acquired::kHeld);
  ASSERT_TRUE(WaitUntil([&] { return *a_->TryAcquire(10s) == Acquired::kYes; }, 5s));
  EXPECT_FALSE(*b_->Release(0ms));  // b's lock expired: a's is not b's to delete
  EXPECT_EQ(*a_->Holder(), std::optional<std::string>("worker-a"));
}

// A release with a quiet period makes the next round stand down.
TEST_F(ReconcileLockTest, AReleaseWithAQuietPeriodMakesTheNextRoundStandDown) {
  ASSERT_EQ(*a_->TryAcquire(10s), Acquired::kYes);
  EXPECT_TRUE(*a_->Release(10s));
  EXPECT_EQ(*b_->TryAcquire(10s), Acquired::kRecentlyRun);
  EXPECT_EQ(*a_->Holder(), std::nullopt);
}

TEST_F(ReconcileCommandTest, TwoWorkersReconcileOneAtATime) {
  Json lost = media_.Make(2500, "box-a", 51);
  Age(lost);
  // An operator's reconcile holds the lock: neither worker may run.
  stack_.RedisCli("SET media:sync:reconcile:lock operator-run PX 120000");
  WorkerProcess one(stack_, {{"RECONCILE_INTERVAL_SECONDS", "1"}},
                    {"run", "--worker-id", "reconciler-one"});
  WorkerProcess two(stack_, {{"RECONCILE_INTERVAL_SECONDS", "1"}},
                    {"run", "--worker-id", "reconciler-two"});
  const std::string held = "reconcile: lock held by operator-run";
  ASSERT_TRUE(WaitUntil(
      [&] {
        return one.Log().find(held) != std::string::npos &&
               two.Log().find(held) != std::string::npos;
      },
      30s))
      << one.Log() << two.Log();
  EXPECT_FALSE(Synced(lost));
  EXPECT_EQ(media_.Len("media:sync:pending"), 0);

  stack_.RedisCli("DEL media:sync:reconcile:lock");
  ASSERT_TRUE(WaitUntil([&] { return Synced(lost); }, 60s)) << one.Log() << two.Log();
  one.Signal(SIGTERM);
  two.Signal(SIGTERM);
  ASSERT_EQ(one.WaitExit(60s), 0) << one.Log();
  ASSERT_EQ(two.WaitExit(60s), 0) << two.Log();

  const std::string enqueued = "reconcile: enqueued 1 lost jobs";
  EXPECT_EQ(CountOccurrences(one.Log(), enqueued) + CountOccurrences(two.Log(), enqueued), 1)
      << one.Log() << two.Log();
  EXPECT_EQ(media_.UsedBytes("box-a"), 2500);  // synced once
  EXPECT_EQ(Trim(stack_.RedisCli("EXISTS media:sync:reconcile:lock")), "0");
}

}  // namespace
}  // namespace media_sync::testing
