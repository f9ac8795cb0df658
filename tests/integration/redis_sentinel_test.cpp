// Redis behind Sentinel (docs/reliability.md, Failovers): a primary, one
// replica and three redis-sentinel processes on loopback ports
// (LocalStack::Params::redis_sentinel, master "media", down after 1 s). The
// worker and every subcommand reach Redis through the Sentinels only
// (REDIS_URL=redis+sentinel://...), and follow the master across a failover:
// the primary SIGKILLed, a failover forced while the old primary lives on,
// and a failover to a replica that missed the last writes.
//
// The tests share one stack, each waiting first until the Sentinels agree
// on a master with a streaming replica: a failover leaves the stack so, with
// the roles swapped, once a killed server is started again and the
// Sentinels have made it a replica.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config/urls.h"
#include "queue/redis_connection.h"
#include "support/cli_runner.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Env = std::map<std::string, std::string>;

[[maybe_unused]] const bool kOwnStacks = SkipSharedStack();

constexpr uint64_t kFileSize = 16 * 1024;

// The service ("redis" or "redis-replica") whose port the Sentinels name as master.
std::string MasterService(const LocalStack& stack) {
  auto port = stack.RedisMasterPort();
  if (port && std::to_string(*port) == stack.Get("STACK_REDIS_REPLICA_PORT")) {
    return "redis-replica";
  }
  return "redis";
}

std::string PortOf(const LocalStack& stack, const std::string& service) {
  return stack.Get(service == "redis" ? "STACK_REDIS_PORT" : "STACK_REDIS_REPLICA_PORT");
}

// What a server says its role is ("master", "slave"), empty when it does not answer.
std::string RoleOf(const LocalStack& stack, const std::string& service) {
  std::string out;
  if (RunStatus("redis-cli -p " + PortOf(stack, service) + " --raw ROLE 2>/dev/null", &out) != 0) {
    return "";
  }
  return out.substr(0, out.find('\n'));
}

class SentinelTest : public ::testing::Test {
 protected:
  // The shared stack, started on first use, whatever state its servers are in.
  static LocalStack& SharedSentinelStack() {
    static LocalStack* shared = nullptr;
    if (shared == nullptr) {
      shared = new LocalStack(LocalStack::Params{.redis_sentinel = true});
      ::testing::AddGlobalTestEnvironment(new StackStopper(shared));
    }
    return *shared;
  }

  // The shared stack, once the Sentinels agree on a master whose replica
  // streams from it.
  void UseSharedSentinelStack() {
    stack_ = &SharedSentinelStack();
    ASSERT_TRUE(WaitUntil([&] { return Settled(); }, 60s)) << "the Sentinels did not settle";
    stack_->Reset();
    media_ = std::make_unique<MediaFactory>(*stack_);
    media_->AddTwoBoxes();
  }

  // Every Sentinel names the same master, knows the two other Sentinels and
  // the replica (flags "slave" alone, link ok), and the replica streams from
  // that master: a failover can be agreed on and has a replica to promote.
  bool Settled() const {
    auto port = stack_->RedisMasterPort();
    if (!port) return false;
    std::string replica = MasterService(*stack_) == "redis" ? "redis-replica" : "redis";
    std::string info;
    if (RunStatus("redis-cli -p " + PortOf(*stack_, replica) + " INFO replication", &info) != 0 ||
        info.find("master_link_status:up") == std::string::npos ||
        info.find("master_port:" + std::to_string(*port)) == std::string::npos) {
      return false;
    }
    for (int index = 0; index < 3; ++index) {
      std::string master =
          stack_->SentinelCli(index, "--raw SENTINEL get-master-addr-by-name media");
      if (master.find("\n" + std::to_string(*port)) == std::string::npos) return false;
      std::string replicas = stack_->SentinelCli(index, "--raw SENTINEL replicas media");
      if (replicas.find("flags\nslave\n") == std::string::npos ||
          replicas.find("master-link-status\nok\n") == std::string::npos) {
        return false;
      }
      if (CountOccurrences(stack_->SentinelCli(index, "--raw SENTINEL sentinels media"),
                           "name\n") != 2) {
        return false;
      }
    }
    return true;
  }

  // Settings of the workers of a failover test: short backoff and lease (a
  // lost acknowledgement is served again once its worker's lease runs out),
  // and the periodic reconcile that finds jobs a failover lost (rows older
  // than 15 s: the test's rows are made before their jobs are pushed).
  Env WorkerEnv(const std::string& worker_id) const {
    return {{"WORKER_ID", worker_id},
            {"SYNC_CONCURRENCY", "2"},
            {"OUTAGE_BACKOFF_MAX_SECONDS", "1"},
            {"LEASE_SECONDS", "3"},
            {"RECONCILE_INTERVAL_SECONDS", "2"},
            {"RECONCILE_OLDER_THAN_SECONDS", "15"}};
  }

  // "127.0.0.1:<port>,..." of the three Sentinels.
  std::string SentinelAddresses() const {
    std::string addresses;
    std::istringstream ports(stack_->Get("STACK_SENTINEL_PORTS"));  // comma-separated
    for (std::string port; std::getline(ports, port, ',');) {
      addresses += (addresses.empty() ? "" : ",") + std::string("127.0.0.1:") + port;
    }
    return addresses;
  }

  // Waits until the Sentinels name a master other than `old_port`.
  bool WaitNewMaster(int old_port, std::chrono::milliseconds timeout) {
    return WaitUntil(
        [&] {
          auto port = stack_->RedisMasterPort();
          return port && *port != old_port;
        },
        timeout);
  }

  // Stops the workers, then lets one `run --drain` serve what a failover
  // left behind: jobs whose acknowledgement the new master never saw stay in
  // their worker's processing list until that worker's lease runs out, and
  // are then served again (already synced: nothing changes). Returns how many
  // deliveries found their job already synced, over every worker.
  int StopAndDrain(std::vector<std::unique_ptr<WorkerProcess>>& workers) {
    int already_synced = 0;
    for (auto& worker : workers) worker->Signal(SIGTERM);
    for (auto& worker : workers) {
      EXPECT_EQ(worker->WaitExit(30s), 0) << worker->Log();
      already_synced += CountOccurrences(worker->Log(), "outcome=already_synced");
    }
    WorkerProcess drain(*stack_, {{"WORKER_ID", "drain"}, {"LEASE_SECONDS", "3"}},
                        {"run", "--drain"});
    EXPECT_EQ(drain.WaitExit(60s), 0) << media_->QueueState() << drain.Log();
    already_synced += CountOccurrences(drain.Log(), "outcome=already_synced");
    EXPECT_TRUE(media_->QueuesEmpty()) << media_->QueueState();
    EXPECT_EQ(media_->Len("media:sync:failed"), 0)
        << stack_->RedisCli("LRANGE media:sync:failed 0 -1");
    return already_synced;
  }

  void ExpectWorkersFollowAFailover(bool kill_primary);

  LocalStack* stack_ = nullptr;
  std::unique_ptr<MediaFactory> media_;

 private:
  class StackStopper : public ::testing::Environment {
   public:
    explicit StackStopper(LocalStack* stack) : stack_(stack) {}
    void TearDown() override { delete stack_; }

   private:
    LocalStack* stack_;
  };
};

// Bad input: an unknown master name, Sentinels that cannot be reached and a
// malformed URL each get a message naming the problem; `run` refuses to
// start on a configuration error (exit 2) and waits out an outage.

// Unknown master: every Sentinel is asked, none knows it.
TEST_F(SentinelTest, AnUnknownMasterIsNamedAndRunRefusesToStart) {
  ASSERT_NO_FATAL_FAILURE(UseSharedSentinelStack());
  Env unknown = {
      {"REDIS_URL", "redis+sentinel://:s3cret-pw@" + SentinelAddresses() + "/no-such-master/0"}};
  CliOutcome status = RunCli(*stack_, "status", unknown);
  EXPECT_NE(status.code, 0);
  EXPECT_THAT(status.err, HasSubstr("no Sentinel knows a master 'no-such-master'"));
  EXPECT_THAT(status.err, HasSubstr(SentinelAddresses().substr(0, SentinelAddresses().find(','))));
  EXPECT_THAT(status.all(), ::testing::Not(HasSubstr("s3cret-pw")));
  WorkerProcess refused(*stack_, unknown);
  EXPECT_EQ(refused.WaitExit(20s), 2) << refused.Log();
  EXPECT_THAT(refused.Log(), HasSubstr("no Sentinel knows a master 'no-such-master'"));
}

// No Sentinel reachable: an outage, naming each Sentinel and its error.
TEST_F(SentinelTest, NoReachableSentinelIsAnOutageRunWaitsOut) {
  ASSERT_NO_FATAL_FAILURE(UseSharedSentinelStack());
  // Nothing listens on ports 1 and 2.
  Env unreachable = {{"REDIS_URL", "redis+sentinel://127.0.0.1:1,127.0.0.1:2/media/0"}};
  CliOutcome status = RunCli(*stack_, "status", unreachable);
  EXPECT_EQ(status.code, 1) << status.all();
  EXPECT_THAT(status.err, HasSubstr("no Sentinel answered for master 'media'"));
  EXPECT_THAT(status.err, HasSubstr("Sentinel 127.0.0.1:1: Connection refused"));
  EXPECT_THAT(status.err, HasSubstr("Sentinel 127.0.0.1:2: Connection refused"));
  WorkerProcess waiting(*stack_, unreachable);
  EXPECT_TRUE(
      WaitUntil([&] { return waiting.Log().find("keeps trying") != std::string::npos; }, 20s))
      << waiting.Log();
  EXPECT_TRUE(waiting.Running());
  waiting.Signal(SIGTERM);
  EXPECT_EQ(waiting.WaitExit(20s), 0) << waiting.Log();
}

// A Sentinel that is not one (the master itself) is skipped for the next.
TEST_F(SentinelTest, AServerThatIsNoSentinelIsSkippedForTheNext) {
  ASSERT_NO_FATAL_FAILURE(UseSharedSentinelStack());
  Env mixed = {{"REDIS_URL", "redis+sentinel://127.0.0.1:" + stack_->Get("STACK_REDIS_PORT") + "," +
                                 SentinelAddresses() + "/media/0"}};
  media_->PushRaw("{}");
  CliOutcome status = RunCli(*stack_, "status --json", mixed);
  EXPECT_EQ(status.code, 0) << status.all();
  // It reached the master: the job just pushed there is counted.
  Json report = Json::parse(status.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << status.out;
  EXPECT_EQ(report["queues"]["pending"], 1) << status.out;
}

// Malformed URLs: exit 2, the variable and the problem named.
struct MalformedSentinelUrl {
  std::string name;
  std::string url;
  std::string problem;
};

// Shown by its name in test output.
void PrintTo(const MalformedSentinelUrl& value, std::ostream* out) { *out << value.name; }

class SentinelUrlTest : public SentinelTest,
                        public ::testing::WithParamInterface<MalformedSentinelUrl> {};

// `config` only reads the settings: the Sentinels need not agree on anything.
TEST_P(SentinelUrlTest, IsAConfigurationErrorNamingTheProblem) {
  CliOutcome config = RunCli(SharedSentinelStack(), "config", {{"REDIS_URL", GetParam().url}});
  EXPECT_EQ(config.code, 2) << config.all();
  EXPECT_THAT(config.err, HasSubstr("REDIS_URL"));
  EXPECT_THAT(config.err, HasSubstr(GetParam().problem));
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, SentinelUrlTest,
    ::testing::Values(
        MalformedSentinelUrl{"NoMaster", "redis+sentinel://127.0.0.1:26379", "names no master"},
        MalformedSentinelUrl{"NoSentinel", "redis+sentinel:///media/0", "names no Sentinel"},
        MalformedSentinelUrl{"EmptySentinel", "redis+sentinel://h1:26379,,h2:26379/media",
                             "Sentinel 2 of the list is empty"},
        MalformedSentinelUrl{"PortNotANumber", "redis+sentinel://h1:port/media",
                             "Sentinel 1: port 'port' is not a number"}),
    [](const ::testing::TestParamInfo<MalformedSentinelUrl>& info) { return info.param.name; });

// Every subcommand works through the Sentinels: enqueue, status, failed,
// reconcile, run.
TEST_F(SentinelTest, EverySubcommandWorksThroughSentinels) {
  ASSERT_NO_FATAL_FAILURE(UseSharedSentinelStack());
  Json good = media_->Make(kFileSize, "box-a", 9001);
  Json lost = media_->Make(kFileSize, "box-a", 9002);  // a row whose job Redis never got
  std::string jobs_file = stack_->StateDir() + "/sentinel-jobs.jsonl";
  testing::Run("printf '%s\\n' " + ShellQuote(good.dump()) + " > " + ShellQuote(jobs_file));

  CliOutcome enqueue = RunCli(*stack_, "enqueue --jobs " + ShellQuote(jobs_file));
  EXPECT_EQ(enqueue.code, 0) << enqueue.all();
  EXPECT_EQ(media_->Len("media:sync:pending"), 1);
  media_->PushRaw("{not json");

  CliOutcome status = RunCli(*stack_, "status --json");
  EXPECT_EQ(status.code, 0) << status.all();
  Json report = Json::parse(status.out, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << status.out;
  EXPECT_EQ(report["queues"]["pending"], 2) << status.out;

  CliOutcome reconcile = RunCli(*stack_, "reconcile --older-than 0");
  EXPECT_EQ(reconcile.code, 0) << reconcile.all();
  EXPECT_EQ(media_->Len("media:sync:pending"), 3);

  WorkerProcess worker(*stack_, {{"WORKER_ID", "sentinel-drain"}}, {"run", "--drain"});
  EXPECT_EQ(worker.WaitExit(60s), 0) << worker.Log();
  media_->ExpectSyncedExactlyOnce({good, lost});

  CliOutcome failed = RunCli(*stack_, "failed list --json");
  EXPECT_EQ(failed.code, 0) << failed.all();
  EXPECT_THAT(failed.out, HasSubstr("not valid JSON"));
  CliOutcome purge = RunCli(*stack_, "failed purge --all --yes");
  EXPECT_EQ(purge.code, 0) << purge.all();
  EXPECT_EQ(media_->Len("media:sync:failed"), 0);
}

// The -READONLY path on its own: a connection whose master was demoted
// (made a replica without its clients being cut, as a proxy or a manual
// REPLICAOF does) gets READONLY, an outage, and its next call asks the
// Sentinels and runs on the new master. The periodic master check is off
// here, so nothing but the reply leads it there.
TEST_F(SentinelTest, AConnectionToADemotedMasterFollowsAfterReadonly) {
  ASSERT_NO_FATAL_FAILURE(UseSharedSentinelStack());
  auto address = config::ParseRedisUrl(stack_->Get("REDIS_URL"));
  ASSERT_TRUE(address.ok()) << address.error().message;
  queue::RedisOptions options;
  options.master_check_interval = 0ms;
  queue::RedisConnection connection(*address, options);
  ASSERT_TRUE(connection.Command({"SET", "media:sync:test:k", "1"}).ok());
  int old_port = *stack_->RedisMasterPort();
  EXPECT_THAT(connection.endpoint(), HasSubstr(":" + std::to_string(old_port)));
  std::string old_service = MasterService(*stack_);

  std::string reply = stack_->SentinelCli(0, "SENTINEL FAILOVER media");
  ASSERT_THAT(reply, HasSubstr("OK"));
  ASSERT_TRUE(WaitNewMaster(old_port, 30s));
  int new_port = *stack_->RedisMasterPort();
  // Demote the old master ourselves, before the Sentinels do (they would
  // also cut its clients: the connection would then see a reset instead).
  testing::Run("redis-cli -p " + std::to_string(old_port) + " REPLICAOF 127.0.0.1 " +
               std::to_string(new_port));
  ASSERT_TRUE(WaitUntil([&] { return RoleOf(*stack_, old_service) == "slave"; }, 10s));

  auto refused = connection.Command({"SET", "media:sync:test:k", "2"});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::kOutage);
  EXPECT_THAT(refused.error().message, HasSubstr("READONLY"));

  auto written = connection.Command({"SET", "media:sync:test:k", "3"});
  ASSERT_TRUE(written.ok()) << written.error().message;
  EXPECT_THAT(connection.endpoint(), HasSubstr(":" + std::to_string(new_port)));
  EXPECT_EQ(Trim(stack_->RedisCli("GET media:sync:test:k")), "3");

  // With the periodic check, a connection leaves a master the Sentinels
  // replaced without waiting for an error.
  queue::RedisConnection checking(*address, queue::RedisOptions{});
  ASSERT_TRUE(checking.Command({"PING"}).ok());
  EXPECT_THAT(checking.endpoint(), HasSubstr(":" + std::to_string(new_port)));
}

// While jobs flow through two workers, the primary is SIGKILLed (or a
// failover forced with SENTINEL FAILOVER, the old primary living on): the
// Sentinels promote the replica, the workers follow within seconds, and
// afterwards every job is synced exactly once, nothing failed, box
// counters are exact.
void SentinelTest::ExpectWorkersFollowAFailover(bool kill_primary) {
  ASSERT_NO_FATAL_FAILURE(UseSharedSentinelStack());
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  for (const char* id : {"ha-1", "ha-2"}) {
    workers.push_back(std::make_unique<WorkerProcess>(*stack_, WorkerEnv(id)));
    ASSERT_TRUE(media_->WaitRegistered(id, *workers.back())) << workers.back()->Log();
  }
  constexpr int kJobs = 40;
  std::vector<Json> jobs = media_->MakeMany(kJobs, kFileSize, "box-a", 1000);
  auto producer = std::make_unique<PacedProducer>(*stack_, jobs, 250ms);
  ASSERT_TRUE(WaitUntil([&] { return media_->SyncedRows() >= 10; }, 30s)) << media_->QueueState();

  const int old_port = *stack_->RedisMasterPort();
  const std::string old_service = MasterService(*stack_);
  const auto failed_over = Clock::now();
  if (kill_primary) {
    kill(stack_->Pid(old_service), SIGKILL);
  } else {
    ASSERT_THAT(stack_->SentinelCli(0, "SENTINEL FAILOVER media"), HasSubstr("OK"));
  }
  ASSERT_TRUE(WaitNewMaster(old_port, 30s));
  const auto switched = Clock::now();
  ASSERT_LT(producer->pushed(), kJobs) << "the producer finished before the failover";

  // A job queued on the new master: how long until a worker has synced it.
  Json marker = media_->Make(kFileSize, "box-a", 1999);
  media_->Push(marker);
  ASSERT_TRUE(
      WaitUntil([&] { return media_->ObjectStored(marker) && !media_->LocalExists(marker); }, 30s))
      << media_->QueueState();
  const auto followed = Clock::now();

  ASSERT_TRUE(WaitUntil([&] { return producer->pushed() == kJobs; }, 60s));
  jobs.push_back(marker);
  ASSERT_TRUE(
      WaitUntil([&] { return media_->SyncedRows() == static_cast<int64_t>(jobs.size()); }, 60s))
      << media_->QueueState() << workers[0]->Log();
  for (auto& worker : workers) EXPECT_TRUE(worker->Running()) << worker->Log();

  if (!kill_primary) {
    // The Sentinels demote the old primary once they see it still acting as
    // master; its own data is then replaced by the new master's.
    EXPECT_TRUE(WaitUntil([&] { return RoleOf(*stack_, old_service) == "slave"; }, 60s));
  }
  int redelivered = StopAndDrain(workers);
  media_->ExpectSyncedExactlyOnce(jobs);

  if (kill_primary) {
    // Back with its old data and its old role: the Sentinels make it a
    // replica of the new master, and the next test finds the stack settled.
    stack_->Start(old_service);
  }
  std::string prefix = kill_primary ? "sigkill" : "forced";
  Measure(prefix + "_master_switched_ms", Millis(switched - failed_over), "ms");
  Measure(prefix + "_new_job_synced_ms", Millis(followed - failed_over), "ms");
  Measure(prefix + "_jobs_redelivered", redelivered, "jobs");
}

TEST_F(SentinelTest, WorkersFollowAForcedFailoverWhileTheOldPrimaryLives) {
  ASSERT_NO_FATAL_FAILURE(ExpectWorkersFollowAFailover(/*kill_primary=*/false));
}

TEST_F(SentinelTest, WorkersFollowWhenThePrimaryIsKilled) {
  ASSERT_NO_FATAL_FAILURE(ExpectWorkersFollowAFailover(/*kill_primary=*/true));
}

// Writes lost on failover: with the replica frozen (and its link cut), jobs are pushed (with
// their rows) and a worker syncs some of them on the primary; the primary
// dies, and the Sentinels promote the replica that never saw them. The
// periodic reconcile finds the jobs the new master lacks and they are
// synced; nothing else is lost or counted twice.
TEST_F(SentinelTest, JobsAFailoverLostAreFoundByReconcile) {
  ASSERT_NO_FATAL_FAILURE(UseSharedSentinelStack());
  Env env = WorkerEnv("lost-writes");
  env["SYNC_CONCURRENCY"] = "1";
  env["RECONCILE_INTERVAL_SECONDS"] = "1";
  env["RECONCILE_OLDER_THAN_SECONDS"] = "0";
  WorkerProcess worker(*stack_, env);
  ASSERT_TRUE(media_->WaitRegistered("lost-writes", worker)) << worker.Log();

  // Before: jobs synced, acknowledged and replicated.
  std::vector<Json> before;
  for (int i = 0; i < 10; ++i) {
    before.push_back(media_->Make(kFileSize, "box-a", 3000 + i));
    media_->Push(before.back());
  }
  ASSERT_TRUE(WaitUntil([&] { return media_->SyncedRows() == 10 && media_->QueuesEmpty(); }, 30s))
      << media_->QueueState() << worker.Log();
  ASSERT_EQ(Trim(stack_->RedisCli("WAIT 1 5000")), "1");

  // Replication stops; the primary takes jobs the replica never sees.
  std::string old_service = MasterService(*stack_);
  const int old_port = *stack_->RedisMasterPort();
  // Frozen, the replica still receives what the kernel buffers for it: the
  // primary also closes its replication link, which the frozen replica
  // cannot open again.
  ScopedFreeze replica(stack_->Pid(old_service == "redis" ? "redis-replica" : "redis"));
  ASSERT_EQ(Trim(stack_->RedisCli("CLIENT KILL TYPE replica")), "1");
  // (Each row is made just before its job is pushed: the worker's reconcile
  // takes any older row without a job for a lost one.)
  std::vector<Json> unseen;
  for (int i = 0; i < 3; ++i) {
    unseen.push_back(media_->Make(kFileSize, "box-a", 3100 + i));
    media_->Push(unseen.back());
  }
  ASSERT_TRUE(WaitUntil([&] { return media_->SyncedRows() == 13; }, 30s)) << media_->QueueState();
  {
    ScopedFreeze paused(worker.pid());  // the rest stays unsynced until the failover is over
    for (const auto& job : media_->MakeMany(17, kFileSize, "box-a", 3103)) {
      unseen.push_back(job);
      media_->Push(job);
    }
    ASSERT_EQ(media_->Len("media:sync:pending"), 17);

    const auto killed = Clock::now();
    kill(stack_->Pid(old_service), SIGKILL);
    replica.Thaw();
    ASSERT_TRUE(WaitNewMaster(old_port, 30s));
    Measure("lost_writes_master_switched_ms", Millis(Clock::now() - killed), "ms");
    // The new master never saw those jobs: nothing is queued anywhere.
    ASSERT_TRUE(WaitUntil([&] { return stack_->TryRedisCli("PING").has_value(); }, 10s));
    EXPECT_EQ(media_->Len("media:sync:pending"), 0);
    Measure("lost_writes_jobs_missing_after_failover", 17, "jobs");
  }
  const auto resumed = Clock::now();
  std::vector<Json> all = before;
  all.insert(all.end(), unseen.begin(), unseen.end());
  ASSERT_TRUE(
      WaitUntil([&] { return media_->SyncedRows() == static_cast<int64_t>(all.size()); }, 60s))
      << media_->QueueState() << worker.Log();
  Measure("lost_writes_recovered_ms", Millis(Clock::now() - resumed), "ms");
  EXPECT_THAT(worker.Log(), HasSubstr("reconcile: enqueued"));
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitExit(30s), 0) << worker.Log();
  Measure("lost_writes_jobs_redelivered", CountOccurrences(worker.Log(), "outcome=already_synced"),
          "jobs");
  EXPECT_TRUE(WaitUntil([&] { return media_->QueuesEmpty(); }, 10s)) << media_->QueueState();
  EXPECT_EQ(media_->Len("media:sync:failed"), 0);
  media_->ExpectSyncedExactlyOnce(all);
}

}  // namespace
}  // namespace media_sync::testing
