// Fault guarantees of `media-sync run` (docs/contract.md §2: no job lost, no media
// lost, exactly-once effects, outages cost nothing, graceful shutdown),
// proven with the worker as a child process against the real Redis,
// PostgreSQL and two s3rver storage boxes, while those servers are frozen
// (SIGSTOP), restarted, or the worker itself is killed.
//
// A SIGSTOPped server keeps accepting TCP connections (the kernel completes
// the handshake) but never answers: exactly a box that hangs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <map>
#include <source_location>
#include <string>
#include <thread>
#include <vector>

#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

using Env = std::map<std::string, std::string>;

constexpr uint64_t kMiB = 1ull << 20;

class WorkerFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  // `count` files of `size` bytes for `box`, with rows; not pushed yet.
  std::vector<Json> MakeJobs(int count, const std::string& box, uint64_t first_seed,
                             uint64_t size) {
    std::vector<Json> jobs;
    for (int i = 0; i < count; ++i) jobs.push_back(media_.Make(size, box, first_seed + i));
    return jobs;
  }

  // Acknowledgement follows the database commit: wait for it, then check
  // that nothing is left anywhere and nothing failed.
  void ExpectQueuesDrainedWithoutFailures(
      WorkerProcess& worker, std::source_location at = std::source_location::current()) {
    ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
    EXPECT_TRUE(WaitUntil([&] { return media_.QueuesEmpty(); }, 20s))
        << media_.QueueState() << worker.Log();
    EXPECT_EQ(media_.Len("media:sync:failed"), 0)
        << stack_.RedisCli("LRANGE media:sync:failed 0 -1");
  }

  // SIGTERM with nothing in flight: a clean exit 0.
  void StopIdleWorker(WorkerProcess& worker,
                      std::source_location at = std::source_location::current()) {
    ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
    worker.Signal(SIGTERM);
    EXPECT_EQ(worker.WaitExit(15s), 0) << worker.Log();
  }

  void ExpectRestartCostsNothing(const std::string& service, uint64_t first_seed);

  // box-b's server frozen, then the jobs pushed (box-b's first, or each
  // box-b job before its box-a one when `interleave`): box-a's jobs all sync
  // within `bound` (waited for up to `wait`; the time is kept as
  // box_a_jobs_ms), none of box-b's does and none fails. Thawed, box-b's
  // sync within `after`, and every job is synced once.
  void ExpectBoxAUnhinderedByAHangingBoxB(WorkerProcess& worker, const std::vector<Json>& jobs_a,
                                          const std::vector<Json>& jobs_b, bool interleave,
                                          std::chrono::milliseconds wait,
                                          std::chrono::milliseconds bound,
                                          std::chrono::milliseconds after);
  // box-b back: its jobs all sync within `within`, nothing is left or failed,
  // every job of both boxes is synced once, and the idle worker stops.
  void ExpectBoxBCatchesUp(WorkerProcess& worker, const std::vector<Json>& jobs_a,
                           const std::vector<Json>& jobs_b, std::chrono::milliseconds within);

  // How many parts of multipart uploads in progress box-a's s3rver has
  // received whole: an upload is under way. Read from s3rver's own files,
  // since s3rver answers neither ListParts nor ListMultipartUploads: it keeps
  // an upload under <bucket>/._S3rver_uploads/<upload id>/<part number>, and
  // writes <part number>.md5 once that part was received whole.
  int CompletedPartsInProgress() const {
    std::error_code ignored;
    int parts = 0;
    for (std::filesystem::recursive_directory_iterator
             it(stack_.StateDir() + "/s3/" + stack_.Get("MINIO_BUCKET") + "/._S3rver_uploads",
                ignored),
         end;
         it != end; it.increment(ignored)) {
      if (it->path().extension() == ".md5") ++parts;
    }
    return parts;
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

// Guarantee 1 (no job lost), 2 (no media lost) and 3 (exactly once): a worker
// SIGKILLed part-way through a multipart upload, with its other job threads
// hanging on the frozen server, loses nothing. Its jobs return once its lease
// lapses and another worker syncs each of them once, the large one whole.
TEST_F(WorkerFaultsTest, JobsOfAWorkerKilledMidUploadAreSyncedOnceByAnother) {
  constexpr int kConcurrency = 4;
  Json large = media_.Make(120 * kMiB, "box-a", 99, "mp4");
  std::vector<Json> small = MakeJobs(8, "box-a", 100, 64 * 1024);
  const Env settings = {{"LEASE_SECONDS", "2"},
                        {"S3_MULTIPART_THRESHOLD", "5MiB"},
                        {"S3_PART_SIZE", "5MiB"},
                        {"S3_PART_PARALLELISM", "1"}};
  Env killed_settings = settings;
  killed_settings["WORKER_ID"] = "a";
  killed_settings["SYNC_CONCURRENCY"] = std::to_string(kConcurrency);
  // Every slot may hang on the one box here (by default a box gets half).
  killed_settings["BOX_MAX_IN_FLIGHT"] = std::to_string(kConcurrency);
  // The frozen server must hold every job until the kill.
  killed_settings["S3_LOW_SPEED_SECONDS"] = "60";
  WorkerProcess killed(stack_, killed_settings);
  ASSERT_TRUE(media_.WaitRegistered("a", killed)) << killed.Log();

  media_.Push(large);
  ASSERT_TRUE(WaitUntil([&] { return CompletedPartsInProgress() >= 1; }, 30s))
      << media_.QueueState() << killed.Log();
  int64_t held = 0;
  {
    ScopedFreeze storage(stack_.Pid("s3"));
    media_.PushAll(small);
    // Every job thread has a job: the large upload and three small ones,
    // all hanging on the frozen server.
    ASSERT_TRUE(
        WaitUntil([&] { return media_.Len("media:sync:processing:a") == kConcurrency; }, 20s))
        << media_.QueueState() << killed.Log();
    killed.Signal(SIGKILL);
    ASSERT_EQ(killed.WaitExit(10s), 128 + SIGKILL);
    held = media_.Len("media:sync:processing:a");
  }
  ASSERT_EQ(held, kConcurrency);
  // Asked once the server answers again: the worker was killed before it
  // could complete the upload, so an object here was there before the freeze.
  ASSERT_FALSE(media_.ObjectExists(large)) << "the upload finished before the freeze";

  // `run --drain` waits only for its own jobs, so the rescuer starts once the
  // dead worker's lease (2 s) has lapsed and its jobs are up for grabs.
  ASSERT_TRUE(WaitUntil([&] { return !media_.HeartbeatAlive("a"); }, 10s));
  Env rescuer_settings = settings;
  rescuer_settings["WORKER_ID"] = "b";
  WorkerProcess rescuer(stack_, rescuer_settings, {"run", "--drain"});
  ASSERT_EQ(rescuer.WaitExit(60s), 0) << rescuer.Log();

  EXPECT_THAT(rescuer.Log(),
              HasSubstr("returned " + std::to_string(held) + " jobs of dead workers to pending"));
  EXPECT_THAT(rescuer.Log(), HasSubstr("summary: synced 9, already synced 0, failed 0"));
  std::vector<Json> all = small;
  all.push_back(large);
  media_.ExpectSyncedExactlyOnce(all);
  EXPECT_TRUE(media_.QueuesEmpty()) << media_.QueueState();
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
}

// Guarantee 4: a storage server frozen for far longer than the whole retry
// budget of a job (1 retry after 1 s, each attempt timing out in 2 s) delays
// the jobs and burns nothing.
TEST_F(WorkerFaultsTest, FrozenStorageLongerThanTheRetryBudgetFailsNothing) {
  constexpr int kConcurrency = 2;
  auto jobs = MakeJobs(12, "box-a", 200, 32 * 1024);
  WorkerProcess worker(stack_, {{"WORKER_ID", "frozen-s3"},
                                {"SYNC_CONCURRENCY", std::to_string(kConcurrency)},
                                {"RETRY_DELAY_SECONDS", "1"},
                                {"MAX_RETRIES", "1"},
                                {"S3_LOW_SPEED_SECONDS", "2"},
                                {"OUTAGE_BACKOFF_MAX_SECONDS", "2"}});
  ASSERT_TRUE(media_.WaitRegistered("frozen-s3", worker)) << worker.Log();

  {
    ScopedFreeze storage(stack_.Pid("s3"));
    auto frozen_at = std::chrono::steady_clock::now();
    media_.PushAll(jobs);
    // At most kConcurrency jobs can hit the server before it is marked down;
    // each later report is a single probe after a backoff. Two probes beyond
    // the first batch: the outage has lasted several timeouts and backoffs,
    // well past the 1 retry × 1 s (+2 s per attempt) a job fault would get.
    const std::string down_report = "storage box box-a is down";
    ASSERT_TRUE(WaitUntil(
        [&] { return CountOccurrences(worker.Log(), down_report) >= kConcurrency + 2; }, 45s))
        << media_.QueueState() << worker.Log();
    EXPECT_GT(std::chrono::steady_clock::now() - frozen_at, 5s);
    EXPECT_EQ(media_.Len("media:sync:failed"), 0) << worker.Log();
    EXPECT_EQ(media_.SyncedRows(), 0);
  }

  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 12; }, 30s))
      << media_.QueueState() << worker.Log();
  ExpectQueuesDrainedWithoutFailures(worker);
  media_.ExpectSyncedExactlyOnce(jobs);
  StopIdleWorker(worker);
}

// Restarts `service` while a producer keeps feeding jobs: every job is synced
// exactly once afterwards and none reached the failed queue.
void WorkerFaultsTest::ExpectRestartCostsNothing(const std::string& service, uint64_t first_seed) {
  // 80 jobs, one per 60 ms: about 5 s of arrivals, against a restart of ~2 s
  // that starts once the first jobs are synced.
  constexpr int kJobs = 80;
  auto jobs = MakeJobs(kJobs, "box-a", first_seed, 16 * 1024);
  const std::string worker_id = service + "-restart";
  WorkerProcess worker(
      stack_,
      {{"WORKER_ID", worker_id}, {"SYNC_CONCURRENCY", "2"}, {"OUTAGE_BACKOFF_MAX_SECONDS", "2"}});
  ASSERT_TRUE(media_.WaitRegistered(worker_id, worker)) << worker.Log();

  PacedProducer producer(stack_, jobs, 100ms);
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() >= 5; }, 30s)) << worker.Log();
  stack_.Restart(service);
  // The restart only proves something if jobs kept arriving after it.
  ASSERT_LT(producer.pushed(), kJobs) << "the producer finished before the restart did";

  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == kJobs; }, 45s))
      << media_.QueueState() << worker.Log();
  ExpectQueuesDrainedWithoutFailures(worker);
  media_.ExpectSyncedExactlyOnce(jobs);
  EXPECT_TRUE(worker.Running()) << worker.Log();
  StopIdleWorker(worker);
}

void WorkerFaultsTest::ExpectBoxAUnhinderedByAHangingBoxB(
    WorkerProcess& worker, const std::vector<Json>& jobs_a, const std::vector<Json>& jobs_b,
    bool interleave, std::chrono::milliseconds wait, std::chrono::milliseconds bound,
    std::chrono::milliseconds after) {
  const auto per_box_a = static_cast<int64_t>(jobs_a.size());
  {
    ScopedFreeze box_b(stack_.Pid("s3-2"));
    if (interleave) {
      for (size_t i = 0; i < jobs_a.size(); ++i) {
        media_.Push(jobs_b[i]);
        media_.Push(jobs_a[i]);
      }
    } else {
      media_.PushAll(jobs_b);
      media_.PushAll(jobs_a);
    }
    auto pushed_at = std::chrono::steady_clock::now();
    ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows("box-a") == per_box_a; }, wait))
        << media_.QueueState() << worker.Log();
    const int64_t took_ms = Millis(std::chrono::steady_clock::now() - pushed_at);
    RecordProperty("box_a_jobs_ms", std::to_string(took_ms));
    EXPECT_LT(took_ms, bound.count())
        << "box-a's " << per_box_a << " jobs took " << took_ms << " ms next to a box that hangs";
    EXPECT_EQ(media_.SyncedRows("box-b"), 0);
    EXPECT_EQ(media_.Len("media:sync:failed"), 0) << worker.Log();
  }

  ExpectBoxBCatchesUp(worker, jobs_a, jobs_b, after);
}

void WorkerFaultsTest::ExpectBoxBCatchesUp(WorkerProcess& worker, const std::vector<Json>& jobs_a,
                                           const std::vector<Json>& jobs_b,
                                           std::chrono::milliseconds within) {
  ASSERT_TRUE(WaitUntil(
      [&] { return media_.SyncedRows("box-b") == static_cast<int64_t>(jobs_b.size()); }, within))
      << media_.QueueState() << worker.Log();
  ExpectQueuesDrainedWithoutFailures(worker);
  std::vector<Json> all = jobs_a;
  all.insert(all.end(), jobs_b.begin(), jobs_b.end());
  media_.ExpectSyncedExactlyOnce(all);
  StopIdleWorker(worker);
}

// Guarantee 4: PostgreSQL restarted under a flowing queue holds the jobs in
// flight; none fails, none is counted twice.
TEST_F(WorkerFaultsTest, PostgresRestartWhileJobsFlowFailsNothing) {
  ASSERT_NO_FATAL_FAILURE(ExpectRestartCostsNothing("postgres", 300));
}

// Guarantee 4: Redis restarted under a flowing queue (its append-only file
// keeps the lists): the worker reconnects and every job is synced once.
TEST_F(WorkerFaultsTest, RedisRestartWhileJobsFlowFailsNothing) {
  ASSERT_NO_FATAL_FAILURE(ExpectRestartCostsNothing("redis", 400));
}

// Guarantee 4: while box-b is down, box-a's jobs all complete; box-b's wait,
// unharmed, and complete once it is back.
TEST_F(WorkerFaultsTest, JobsOfAHealthyBoxCompleteWhileAnotherBoxIsDown) {
  constexpr int kPerBox = 10;
  std::vector<Json> jobs_a = MakeJobs(kPerBox, "box-a", 500, 16 * 1024);
  std::vector<Json> jobs_b = MakeJobs(kPerBox, "box-b", 600, 16 * 1024);
  WorkerProcess worker(stack_, {{"WORKER_ID", "one-box-down"},
                                {"SYNC_CONCURRENCY", "4"},
                                {"S3_LOW_SPEED_SECONDS", "2"},
                                {"OUTAGE_BACKOFF_MAX_SECONDS", "2"}});
  ASSERT_TRUE(media_.WaitRegistered("one-box-down", worker)) << worker.Log();

  {
    ScopedFreeze box_b(stack_.Pid("s3-2"));
    for (int i = 0; i < kPerBox; ++i) {
      media_.Push(jobs_b[i]);
      media_.Push(jobs_a[i]);
    }
    ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows("box-a") == kPerBox; }, 30s))
        << media_.QueueState() << worker.Log();
    // Still frozen here: none of box-b's jobs can have completed, none failed.
    EXPECT_EQ(media_.SyncedRows("box-b"), 0);
    EXPECT_EQ(media_.Len("media:sync:failed"), 0) << worker.Log();
    for (const auto& job : jobs_b) EXPECT_TRUE(media_.LocalExists(job)) << job["local_path"];
  }

  ExpectBoxBCatchesUp(worker, jobs_a, jobs_b, 30s);
}

// Guarantee 4: a box that hangs must not tie up the in-flight slots. Box-b's
// jobs are queued first, so every slot starts on a hung request; if each
// box-b job kept a slot until its 3 s timeout, box-a's jobs behind them could
// not finish before 40 jobs / 4 slots × 3 s = 30 s. Marking the box down
// costs one timeout (3 s) and then a single probing slot.
TEST_F(WorkerFaultsTest, AHangingBoxDoesNotTieUpTheInFlightSlots) {
  constexpr int kPerBox = 40;
  constexpr int kConcurrency = 4;
  constexpr auto kTimeout = 3s;
  // Well below the 30 s that hung slots would need, well above the ~4 s expected.
  constexpr auto kBound = 4 * kTimeout;
  std::vector<Json> jobs_b = MakeJobs(kPerBox, "box-b", 700, 4 * 1024);
  std::vector<Json> jobs_a = MakeJobs(kPerBox, "box-a", 800, 4 * 1024);
  WorkerProcess worker(stack_, {{"WORKER_ID", "hanging-box"},
                                {"SYNC_CONCURRENCY", std::to_string(kConcurrency)},
                                {"S3_LOW_SPEED_SECONDS", std::to_string(kTimeout.count())},
                                {"OUTAGE_BACKOFF_MAX_SECONDS", "2"}});
  ASSERT_TRUE(media_.WaitRegistered("hanging-box", worker)) << worker.Log();

  ExpectBoxAUnhinderedByAHangingBoxB(worker, jobs_a, jobs_b, /*interleave=*/false, 60s, kBound,
                                     30s);
}

// Guarantee 4, from the first second of a hang: box-b stops answering before
// the worker ever reached it (so even its bucket check hangs), and its jobs
// arrive together with box-a's. Detecting the hang takes one S3 timeout
// (20 s here); meanwhile box-b may tie up only its share of the slots, and
// its first contact only one check, so box-a's jobs finish far sooner.
TEST_F(WorkerFaultsTest, ABoxHangingFromItsFirstContactDoesNotHoldBackTheOthers) {
  constexpr int kPerBox = 20;
  constexpr auto kTimeout = 20s;
  constexpr auto kBound = 8s;  // box-a's jobs alone take about 1 s
  std::vector<Json> jobs_b = MakeJobs(kPerBox, "box-b", 1100, 4 * 1024);
  std::vector<Json> jobs_a = MakeJobs(kPerBox, "box-a", 1200, 4 * 1024);
  WorkerProcess worker(stack_, {{"WORKER_ID", "first-contact-hang"},
                                {"SYNC_CONCURRENCY", "4"},
                                {"S3_CONNECT_TIMEOUT_SECONDS", std::to_string(kTimeout.count())},
                                {"S3_LOW_SPEED_SECONDS", std::to_string(kTimeout.count())},
                                {"OUTAGE_BACKOFF_MAX_SECONDS", "2"}});
  ASSERT_TRUE(media_.WaitRegistered("first-contact-hang", worker)) << worker.Log();

  // Thawed, the check in flight is answered and box-b's jobs follow.
  ExpectBoxAUnhinderedByAHangingBoxB(worker, jobs_a, jobs_b, /*interleave=*/true, kTimeout, kBound,
                                     45s);
}

// Guarantee 4 (and 1): the buffer volume re-created under a running worker.
// Moved away and made anew, the directory is picked up without a restart:
// jobs for files written into the new one sync, none is taken for missing
// (a single missing verdict would fail it: MAX_RETRIES=0). While no
// directory is there at all, jobs are held, not failed.
TEST_F(WorkerFaultsTest, ABufferDirectoryReplacedUnderARunningWorkerIsPickedUp) {
  namespace fs = std::filesystem;
  const std::string buffer = stack_.BufferDir();
  WorkerProcess worker(stack_, {{"WORKER_ID", "buffer-replaced"},
                                {"SYNC_CONCURRENCY", "2"},
                                {"MAX_RETRIES", "0"},
                                {"OUTAGE_BACKOFF_MAX_SECONDS", "1"}});
  ASSERT_TRUE(media_.WaitRegistered("buffer-replaced", worker)) << worker.Log();
  // The worker has looked into the first directory.
  std::vector<Json> all = {media_.Make(4096, "box-a", 1300)};
  media_.Push(all.front());
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 1; }, 20s))
      << media_.QueueState() << worker.Log();

  fs::rename(buffer, buffer + ".old");
  std::vector<Json> replaced = MakeJobs(10, "box-a", 1400, 4096);  // into a new directory
  media_.PushAll(replaced);
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 11; }, 30s))
      << media_.QueueState() << worker.Log();
  EXPECT_EQ(media_.Len("media:sync:failed"), 0) << worker.Log();
  all.insert(all.end(), replaced.begin(), replaced.end());

  // No directory at all for a while (its files are elsewhere, not yet in
  // place): the jobs wait for it.
  fs::rename(buffer, buffer + ".older");
  std::vector<Json> waiting = MakeJobs(4, "box-a", 1500, 4096);
  fs::rename(buffer, buffer + ".away");
  media_.PushAll(waiting);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return worker.Log().find("holding job: Media buffer unavailable") != std::string::npos;
      },
      20s))
      << media_.QueueState() << worker.Log();
  EXPECT_EQ(media_.Len("media:sync:failed"), 0) << worker.Log();
  EXPECT_EQ(media_.SyncedRows(), 11);
  fs::rename(buffer + ".away", buffer);
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 15; }, 30s))
      << media_.QueueState() << worker.Log();
  all.insert(all.end(), waiting.begin(), waiting.end());

  ExpectQueuesDrainedWithoutFailures(worker);
  media_.ExpectSyncedExactlyOnce(all);
  fs::remove_all(buffer + ".old");
  fs::remove_all(buffer + ".older");
  StopIdleWorker(worker);
}

// Guarantee 1: an entry of a worker's own processing list that none of its
// threads holds is served within a lease. Here a previous process with the
// same WORKER_ID left it (as does a take whose reply was lost on the wire);
// the worker's own lease stays live, so no reaper would ever return it, and
// `run --drain` used to wait for it forever.
TEST_F(WorkerFaultsTest, AnEntryNoThreadHoldsIsHandedBackAndADrainEnds) {
  Json job = media_.Make(32 * 1024, "box-a", 1100);
  stack_.RedisCli("LPUSH media:sync:processing:same-id " + ShellQuote(job.dump()));
  stack_.RedisCli("SADD media:sync:workers same-id");
  WorkerProcess worker(stack_, {{"WORKER_ID", "same-id"}, {"LEASE_SECONDS", "2"}},
                       {"run", "--drain"});
  ASSERT_EQ(worker.WaitExit(30s), 0) << media_.QueueState() << worker.Log();
  EXPECT_THAT(worker.Log(), HasSubstr("handed back a job in media:sync:processing:same-id"));
  EXPECT_THAT(worker.Log(), HasSubstr("summary: synced 1, already synced 0, failed 0"));
  media_.ExpectSyncedExactlyOnce({job});
  EXPECT_TRUE(media_.QueuesEmpty()) << media_.QueueState();
}

// Guarantee 3: Redis restarted from a snapshot older than an acknowledgement
// holds the synced job in the worker's list again. It is handed back and
// found synced: nothing is counted twice, nothing fails.
TEST_F(WorkerFaultsTest, AnAcknowledgementRedisLostCostsARepeatedJobOnly) {
  Json job = media_.Make(32 * 1024, "box-a", 1200);
  WorkerProcess worker(stack_, {{"WORKER_ID", "restored"}, {"LEASE_SECONDS", "2"}});
  ASSERT_TRUE(media_.WaitRegistered("restored", worker)) << worker.Log();
  media_.Push(job);
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 1 && media_.QueuesEmpty(); }, 20s))
      << media_.QueueState() << worker.Log();

  stack_.RedisCli("LPUSH media:sync:processing:restored " + ShellQuote(job.dump()));
  ASSERT_TRUE(WaitUntil(
      [&] { return worker.Log().find("outcome=already_synced") != std::string::npos; }, 20s))
      << media_.QueueState() << worker.Log();
  ExpectQueuesDrainedWithoutFailures(worker);
  media_.ExpectSyncedExactlyOnce({job});
  StopIdleWorker(worker);
}

// Guarantee 4: a Redis outage longer than the lease, during a PostgreSQL
// outage, parks nothing. Every lease lapses while Redis is gone; when it
// comes back, one worker reconnects a second before the other (backoff
// jitter does that; here the other is frozen for that second). The first
// must not reap the second: MAX_RETRIES=0 would park each reaped job as
// "Worker lease expired". The jobs held through both outages sync once.
TEST_F(WorkerFaultsTest, ASharedRedisOutageLongerThanTheLeaseParksNothing) {
  auto jobs = MakeJobs(6, "box-a", 1300, 16 * 1024);
  const Env common = {{"LEASE_SECONDS", "2"},
                      {"MAX_RETRIES", "0"},
                      {"SYNC_CONCURRENCY", "2"},
                      {"OUTAGE_BACKOFF_MAX_SECONDS", "1"}};
  Env first_env = common;
  first_env["WORKER_ID"] = "first";
  Env second_env = common;
  second_env["WORKER_ID"] = "second";
  WorkerProcess first(stack_, first_env);
  WorkerProcess second(stack_, second_env);
  ASSERT_TRUE(media_.WaitRegistered("first", first)) << first.Log();
  ASSERT_TRUE(media_.WaitRegistered("second", second)) << second.Log();

  stack_.Stop("postgres");
  media_.PushAll(jobs);
  // Each thread of both workers holds a job, waiting for PostgreSQL.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return media_.Len("media:sync:processing:first") == 2 &&
               media_.Len("media:sync:processing:second") == 2;
      },
      20s))
      << media_.QueueState() << first.Log() << second.Log();

  stack_.Stop("redis");
  {
    ScopedFreeze late(second.pid());
    // The outage itself: three leases long, so every heartbeat key expires.
    std::this_thread::sleep_for(6s);
    stack_.Start("redis");
    ASSERT_TRUE(WaitUntil([&] { return media_.HeartbeatAlive("first"); }, 20s)) << first.Log();
    std::this_thread::sleep_for(1s);  // the second worker reconnects later
  }
  ASSERT_TRUE(WaitUntil([&] { return media_.HeartbeatAlive("second"); }, 20s)) << second.Log();

  stack_.Start("postgres");
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 6; }, 60s))
      << media_.QueueState() << first.Log() << second.Log();
  ExpectQueuesDrainedWithoutFailures(first);
  media_.ExpectSyncedExactlyOnce(jobs);
  EXPECT_THAT(first.Log(), Not(HasSubstr("jobs of dead workers")));
  StopIdleWorker(first);
  StopIdleWorker(second);
}

// Guarantee 7 (and 2): SIGTERM with no grace during a multipart upload exits 0
// at once, hands the job back to pending unchanged, leaves no object under its
// key and the local file in place; the job then syncs normally.
TEST_F(WorkerFaultsTest, SigtermDuringMultipartUploadHandsTheJobBack) {
  constexpr uint64_t kSize = 120 * kMiB;
  Json job = media_.Make(kSize, "box-a", 900, "mp4");
  const Env multipart = {
      {"S3_MULTIPART_THRESHOLD", "5MiB"}, {"S3_PART_SIZE", "5MiB"}, {"S3_PART_PARALLELISM", "1"}};
  Env env = multipart;
  env["WORKER_ID"] = "multipart";
  env["SHUTDOWN_GRACE_SECONDS"] = "0";
  WorkerProcess worker(stack_, env);
  ASSERT_TRUE(media_.WaitRegistered("multipart", worker)) << worker.Log();
  media_.Push(job);

  // One part stored, so the upload is under way (24 parts in all).
  ASSERT_TRUE(WaitUntil([&] { return CompletedPartsInProgress() >= 1; }, 30s))
      << media_.QueueState() << worker.Log();
  ASSERT_FALSE(media_.ObjectExists(job)) << "the upload finished before the signal";
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitExit(5s), 0) << worker.Log();

  EXPECT_EQ(media_.ListEntries("media:sync:pending"), std::vector<std::string>{job.dump()})
      << media_.QueueState();
  EXPECT_EQ(media_.ProcessingKeys(), "");
  EXPECT_EQ(media_.DelayedCount(), 0);
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  EXPECT_FALSE(media_.ObjectExists(job)) << "a partial upload became the object";
  EXPECT_TRUE(media_.LocalExists(job));
  EXPECT_EQ(media_.SyncedRows(), 0);
  EXPECT_EQ(media_.ReservedBytes("box-a"), static_cast<int64_t>(kSize));

  // What was handed back is whole: the next worker syncs it.
  WorkerProcess next(stack_, multipart, {"run", "--drain"});
  ASSERT_EQ(next.WaitExit(60s), 0) << next.Log();
  media_.ExpectSyncedExactlyOnce(std::vector<Json>{job});
}

// Guarantee 7: a second SIGTERM hands in-flight jobs back at once, even with
// a long grace period and a request that would hang far longer.
TEST_F(WorkerFaultsTest, SecondSigtermHandsBackAtOnce) {
  Json job = media_.Make(64 * 1024, "box-a", 1000);
  WorkerProcess worker(stack_, {{"WORKER_ID", "two-signals"},
                                {"SHUTDOWN_GRACE_SECONDS", "60"},
                                // Neither the grace nor a timeout can end the job soon.
                                {"S3_LOW_SPEED_SECONDS", "60"}});
  ASSERT_TRUE(media_.WaitRegistered("two-signals", worker)) << worker.Log();

  ScopedFreeze storage(stack_.Pid("s3"));
  media_.Push(job);
  ASSERT_TRUE(WaitUntil([&] { return media_.Len("media:sync:processing:two-signals") == 1; }, 10s))
      << media_.QueueState() << worker.Log();

  worker.Signal(SIGTERM);
  // Two signals sent back to back may merge into one: wait until the first
  // was taken.
  ASSERT_TRUE(WaitUntil(
      [&] { return worker.Log().find("finishing in-flight jobs") != std::string::npos; }, 10s))
      << worker.Log();
  ASSERT_TRUE(worker.Running()) << worker.Log();
  ASSERT_EQ(media_.Len("media:sync:processing:two-signals"), 1);

  worker.Signal(SIGTERM);
  auto signalled_at = std::chrono::steady_clock::now();
  auto code = worker.WaitExit(5s);
  auto took = std::chrono::steady_clock::now() - signalled_at;
  EXPECT_EQ(code, 0) << (code ? "exit " : "still running ")
                     << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                     << " ms after the second signal\n"
                     << worker.Log();
  EXPECT_EQ(media_.ListEntries("media:sync:pending"), std::vector<std::string>{job.dump()})
      << media_.QueueState();
  EXPECT_EQ(media_.ProcessingKeys(), "");
  EXPECT_TRUE(media_.LocalExists(job));
  EXPECT_EQ(media_.SyncedRows(), 0);
}

}  // namespace
}  // namespace media_sync::testing
