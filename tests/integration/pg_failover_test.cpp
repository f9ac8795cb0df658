// PostgreSQL failover (docs/reliability.md, Failovers): a primary and a
// streaming standby made with pg_basebackup -R, both Debian's PostgreSQL 15
// (LocalStack::Params::postgres_standby). DATABASE_URL names both with
// target_session_attrs=read-write, libpq's own multi-host form. While jobs
// flow, the primary stops and the standby is promoted: the worker holds its
// jobs while no primary answers (no retry spent, nothing failed), finds the
// new primary by itself, and every job is synced exactly once: a
// transaction cut by the stop is redone on the new primary, and the box
// counters move only where the row changed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

[[maybe_unused]] const bool kOwnStack = SkipSharedStack();

TEST(PgFailoverTest, JobsSyncOnceAcrossAPromotedStandby) {
  LocalStack stack(LocalStack::Params{.postgres_standby = true});
  MediaFactory media(stack);
  media.AddTwoBoxes();
  EXPECT_THAT(stack.Get("DATABASE_URL"), HasSubstr("target_session_attrs=read-write"));

  constexpr int kJobs = 40;
  std::vector<Json> jobs = media.MakeMany(kJobs, 16 * 1024, "box-a", 5000);

  WorkerProcess worker(stack, {{"WORKER_ID", "pg-failover"},
                               {"SYNC_CONCURRENCY", "4"},
                               {"OUTAGE_BACKOFF_MAX_SECONDS", "1"}});
  PacedProducer producer(stack, jobs, 250ms);
  ASSERT_TRUE(WaitUntil([&] { return media.SyncedRows() >= 8; }, 30s)) << worker.Log();

  const auto stopped = Clock::now();
  stack.Stop("postgres");  // fast shutdown: open transactions are cut
  ASSERT_LT(producer.pushed(), kJobs) << "the jobs were all queued before the primary stopped";
  stack.Promote("postgres-standby");
  const auto promoted = Clock::now();
  const int64_t synced_at_promotion = media.SyncedRows();
  ASSERT_TRUE(WaitUntil([&] { return media.SyncedRows() > synced_at_promotion; }, 30s))
      << worker.Log();
  const auto resumed = Clock::now();

  ASSERT_TRUE(WaitUntil([&] { return media.SyncedRows() == kJobs; }, 60s)) << worker.Log();
  EXPECT_TRUE(WaitUntil([&] { return media.Len("media:sync:pending") == 0; }, 10s));
  EXPECT_EQ(media.Len("media:sync:failed"), 0);
  EXPECT_EQ(media.DelayedCount(), 0);
  // Every job synced once: rows, counters, objects, local files.
  media.ExpectSyncedExactlyOnce(jobs);
  // The new primary is the former standby.
  EXPECT_EQ(Trim(stack.Sql("SELECT pg_is_in_recovery()")), "f");
  EXPECT_EQ(Trim(stack.Sql("SELECT current_setting('port')")),
            stack.Get("STACK_POSTGRES_STANDBY_PORT"));

  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitExit(30s), 0) << worker.Log();
  std::string log = worker.Log();
  EXPECT_THAT(log, HasSubstr("PostgreSQL unavailable"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("outcome=failed")));
  Measure("pg_promotion_ms", Millis(promoted - stopped), "ms");
  Measure("pg_first_sync_after_stop_ms", Millis(resumed - stopped), "ms");
}

}  // namespace
}  // namespace media_sync::testing
