// The Redis reliable queue against a real redis-server: ordering, atomic
// moves, lease reaping, due retries, outages, credentials and versions.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/urls.h"
#include "queue/queue_admin.h"
#include "queue/queue_keys.h"
#include "queue/queue_maintenance.h"
#include "queue/redis_connection.h"
#include "queue/redis_job_queue.h"
#include "support/local_stack.h"

namespace media_sync::queue {
namespace {

using ::media_sync::testing::SharedStack;
using ::media_sync::testing::WaitUntil;
using namespace std::chrono_literals;

config::RedisAddress StackRedis() {
  config::RedisAddress address;
  address.host = "127.0.0.1";
  address.port = std::stoi(SharedStack().Get("STACK_REDIS_PORT"));
  return address;
}

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// redis-cli output for a list: one element per line.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return lines;
}

std::vector<std::string> ListOf(std::string_view key) {
  return Lines(SharedStack().RedisCli("LRANGE " + std::string(key) + " 0 -1"));
}

int64_t LengthOf(std::string_view key) {
  return std::stoll(SharedStack().RedisCli("LLEN " + std::string(key)));
}

// A port on loopback with nothing listening on it.
int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  int port = ntohs(address.sin_port);
  close(fd);
  return port;
}

MaintenanceOptions WithLease(std::chrono::milliseconds lease) {
  MaintenanceOptions options;
  options.lease = lease;
  return options;
}

// Registers `worker_id` with a live lease, as a worker's first heartbeat does
// before its job threads take anything.
void Register(const std::string& worker_id, const config::RedisAddress& address = StackRedis()) {
  QueueMaintenance lease(address, worker_id, WithLease(600s));
  Status registered = lease.Heartbeat();
  ASSERT_TRUE(registered.ok()) << registered.error().message;
}

// `worker_id` with a lease of 300 ms and a reaper with one of 30 s, both
// registered by a first heartbeat.
struct LapsingLease {
  explicit LapsingLease(const std::string& worker_id)
      : id(worker_id),
        worker(StackRedis(), worker_id, WithLease(300ms)),
        reaper(StackRedis(), "reaper", WithLease(30s)) {
    EXPECT_TRUE(worker.Heartbeat().ok());
    EXPECT_TRUE(reaper.Heartbeat().ok());
  }

  // The worker's heartbeat key expired (waited for 5 s at most).
  bool Lapsed() const {
    return WaitUntil(
        [&] { return Trim(SharedStack().RedisCli("EXISTS " + HeartbeatKey(id))) == "0"; }, 5s);
  }

  std::string id;
  QueueMaintenance worker;
  QueueMaintenance reaper;
};

// A queue for a registered worker.
RedisJobQueue Registered(const std::string& worker_id) {
  Register(worker_id);
  return RedisJobQueue(StackRedis(), worker_id);
}

// A redis-server of the test's own (for faults that must not touch the
// shared stack: SIGSTOP, a unix socket, a server that comes up late).
class OwnRedis {
 public:
  explicit OwnRedis(int port) : port_(port) {
    char pattern[] = "/tmp/media-sync-own-redis-XXXXXX";
    dir_ = mkdtemp(pattern);
    socket_ = dir_ + "/redis.sock";
    ::media_sync::testing::Run(
        "redis-server --port " + std::to_string(port_) +
        " --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --unixsocket " + socket_ +
        " --pidfile " + dir_ + "/redis.pid --logfile " + dir_ + "/redis.log --dir " + dir_);
    bool up = WaitUntil(
        [&] {
          return ::media_sync::testing::RunStatus("redis-cli -p " + std::to_string(port_) +
                                                  " ping >/dev/null 2>&1") == 0;
        },
        10s);
    EXPECT_TRUE(up) << "own redis-server did not come up on port " << port_;
    pid_ = std::stoi(::media_sync::testing::Run("cat " + dir_ + "/redis.pid"));
  }
  ~OwnRedis() {
    if (pid_ > 0) {
      kill(pid_, SIGCONT);
      kill(pid_, SIGKILL);
      WaitUntil([&] { return kill(pid_, 0) != 0; }, 5s);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  OwnRedis(const OwnRedis&) = delete;
  OwnRedis& operator=(const OwnRedis&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& socket_path() const { return socket_; }
  config::RedisAddress Address() const {
    config::RedisAddress address;
    address.host = "127.0.0.1";
    address.port = port_;
    return address;
  }

 private:
  int port_;
  pid_t pid_ = 0;
  std::string dir_;
  std::string socket_;
};

// Answers the first request of one client with an INFO reply claiming an old
// version: enough to meet the version check at connect.
class OldVersionServer {
 public:
  explicit OldVersionServer(std::string version) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    listen(listener_, 1);
    socklen_t length = sizeof address;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    server_ = std::thread([this, version] { Serve(version); });
  }
  ~OldVersionServer() {
    server_.join();
    close(listener_);
  }
  int port() const { return port_; }

 private:
  void Serve(const std::string& version) {
    pollfd waiting{listener_, POLLIN, 0};
    if (poll(&waiting, 1, 10000) != 1) return;
    int client = accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    char request[4096];
    if (read(client, request, sizeof request) > 0) {
      std::string info = "# Server\r\nredis_version:" + version + "\r\n";
      std::string reply = "$" + std::to_string(info.size()) + "\r\n" + info + "\r\n";
      (void)!write(client, reply.data(), reply.size());
    }
    pollfd closing{client, POLLIN, 0};
    poll(&closing, 1, 5000);  // until the client hangs up
    close(client);
  }

  int listener_ = -1;
  int port_ = 0;
  std::thread server_;
};

// Sets a password on the shared server for one test and always takes it away.
class RequirePassGuard {
 public:
  explicit RequirePassGuard(std::string password) : password_(std::move(password)) {
    SharedStack().RedisCli("CONFIG SET requirepass " + password_);
  }
  ~RequirePassGuard() {
    SharedStack().RedisCli("-a " + password_ + " --no-auth-warning CONFIG SET requirepass \"\"");
  }

 private:
  std::string password_;
};

class RedisQueueTest : public ::testing::Test {
 protected:
  void SetUp() override { SharedStack().RedisCli("FLUSHALL"); }

  // Producers LPUSH, as the processor service does.
  static void Produce(const std::vector<std::string>& payloads) {
    for (const auto& payload : payloads) {
      SharedStack().RedisCli("LPUSH " + std::string(kPendingKey) + " " + payload);
    }
  }

  static Delivery MustTake(RedisJobQueue& queue) {
    auto taken = queue.Take(1s);
    EXPECT_TRUE(taken.ok()) << (taken.ok() ? "" : taken.error().message);
    EXPECT_TRUE(taken.ok() && taken->has_value());
    return taken.ok() && taken->has_value() ? **taken : Delivery{};
  }
};

TEST_F(RedisQueueTest, TakeServesOldestFirstAndMovesIntoProcessing) {
  Produce({"job-1", "job-2", "job-3"});
  RedisJobQueue queue = Registered("w1");

  Delivery first = MustTake(queue);
  EXPECT_EQ(first.payload, "job-1");
  EXPECT_EQ(first.redeliveries, 0);
  EXPECT_EQ(LengthOf(kPendingKey), 2);
  EXPECT_EQ(ListOf(ProcessingKey("w1")), std::vector<std::string>({"job-1"}));

  EXPECT_EQ(MustTake(queue).payload, "job-2");
  EXPECT_EQ(MustTake(queue).payload, "job-3");
  EXPECT_EQ(LengthOf(kPendingKey), 0);
  EXPECT_EQ(ListOf(ProcessingKey("w1")), std::vector<std::string>({"job-3", "job-2", "job-1"}));
}

TEST_F(RedisQueueTest, TakeOnEmptyQueueWaitsAndReturnsNothing) {
  RedisJobQueue queue = Registered("w1");
  auto started = std::chrono::steady_clock::now();
  auto taken = queue.Take(300ms);
  auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(taken.ok()) << taken.error().message;
  EXPECT_FALSE(taken->has_value());
  EXPECT_GE(waited, 250ms);

  auto immediate = queue.Take(0ms);
  ASSERT_TRUE(immediate.ok()) << immediate.error().message;
  EXPECT_FALSE(immediate->has_value());
}

TEST_F(RedisQueueTest, TakeWakesUpWhenAJobArrives) {
  RedisJobQueue queue = Registered("w1");
  // Produces only once Take is blocked on the server, so the test proves the
  // blocking wait wakes up rather than finding the job already there.
  std::atomic<bool> saw_blocked{false};
  std::thread producer([&] {
    saw_blocked = WaitUntil(
        [] {
          return SharedStack().RedisCli("INFO clients").find("blocked_clients:1") !=
                 std::string::npos;
        },
        4s);
    Produce({"late-job"});
  });
  auto taken = queue.Take(5s);
  producer.join();
  EXPECT_TRUE(saw_blocked);
  ASSERT_TRUE(taken.ok()) << taken.error().message;
  ASSERT_TRUE(taken->has_value());
  EXPECT_EQ((*taken)->payload, "late-job");
}

TEST_F(RedisQueueTest, AckRemovesExactlyOneCopy) {
  Produce({"same", "same"});
  RedisJobQueue queue = Registered("w1");
  Delivery first = MustTake(queue);
  MustTake(queue);
  ASSERT_EQ(LengthOf(ProcessingKey("w1")), 2);
  SharedStack().RedisCli("HSET " + std::string(kRedeliveriesKey) + " same 2");

  ASSERT_TRUE(queue.Ack(first).ok());
  EXPECT_EQ(ListOf(ProcessingKey("w1")), std::vector<std::string>({"same"}));
  EXPECT_EQ(Trim(SharedStack().RedisCli("HEXISTS " + std::string(kRedeliveriesKey) + " same")),
            "0");
}

TEST_F(RedisQueueTest, TakeReportsRedeliveryCount) {
  Produce({"flaky"});
  SharedStack().RedisCli("HSET " + std::string(kRedeliveriesKey) + " flaky 3");
  RedisJobQueue queue = Registered("w1");
  EXPECT_EQ(MustTake(queue).redeliveries, 3);
}

TEST_F(RedisQueueTest, DelayMovesIntoDelayedSetScoredOnServerClock) {
  Produce({"job"});
  RedisJobQueue queue = Registered("w1");
  Delivery delivery = MustTake(queue);
  SharedStack().RedisCli("HSET " + std::string(kRedeliveriesKey) + " job 1");

  ASSERT_TRUE(queue.Delay(delivery, "job-retry-1", std::chrono::system_clock::now() + 10s).ok());
  EXPECT_EQ(LengthOf(ProcessingKey("w1")), 0);
  EXPECT_EQ(LengthOf(kPendingKey), 0);
  auto server_time = Lines(SharedStack().RedisCli("TIME"));
  int64_t server_ms = std::stoll(server_time[0]) * 1000 + std::stoll(server_time[1]) / 1000;
  std::string score =
      Trim(SharedStack().RedisCli("ZSCORE " + std::string(kDelayedKey) + " job-retry-1"));
  ASSERT_FALSE(score.empty());
  int64_t due_in = static_cast<int64_t>(std::stod(score)) - server_ms;
  EXPECT_GT(due_in, 8000);
  EXPECT_LE(due_in, 10000);
  // A rewritten payload starts its own history: the old count is gone.
  EXPECT_EQ(Trim(SharedStack().RedisCli("HEXISTS " + std::string(kRedeliveriesKey) + " job")), "0");
}

TEST_F(RedisQueueTest, FailParksEntryAndClearsProcessing) {
  Produce({"bad", "good"});
  RedisJobQueue queue = Registered("w1");
  Delivery bad = MustTake(queue);
  MustTake(queue);
  SharedStack().RedisCli("HSET " + std::string(kRedeliveriesKey) + " bad 4");

  ASSERT_TRUE(queue.Fail(bad, "bad-entry").ok());
  EXPECT_EQ(ListOf(ProcessingKey("w1")), std::vector<std::string>({"good"}));
  EXPECT_EQ(ListOf(kFailedKey), std::vector<std::string>({"bad-entry"}));
  EXPECT_EQ(Trim(SharedStack().RedisCli("HEXISTS " + std::string(kRedeliveriesKey) + " bad")), "0");
}

TEST_F(RedisQueueTest, ReleasePutsJobAtHeadOfPending) {
  Produce({"first", "second", "third"});
  RedisJobQueue queue = Registered("w1");
  Delivery first = MustTake(queue);

  ASSERT_TRUE(queue.Release(first).ok());
  EXPECT_EQ(LengthOf(ProcessingKey("w1")), 0);
  EXPECT_EQ(MustTake(queue).payload, "first");
  EXPECT_EQ(MustTake(queue).payload, "second");
}

TEST_F(RedisQueueTest, MovesOfAReapedJobAddNoSecondCopy) {
  Produce({"reaped"});
  RedisJobQueue queue = Registered("w1");
  Delivery delivery = MustTake(queue);
  // Another worker's reaper returned it meanwhile.
  SharedStack().RedisCli("LMOVE " + ProcessingKey("w1") + " " + std::string(kPendingKey) +
                         " LEFT RIGHT");
  SharedStack().RedisCli("HSET " + std::string(kRedeliveriesKey) + " reaped 1");

  ASSERT_TRUE(queue.Delay(delivery, "reaped", std::chrono::system_clock::now()).ok());
  ASSERT_TRUE(queue.Fail(delivery, "entry").ok());
  ASSERT_TRUE(queue.Release(delivery).ok());
  EXPECT_EQ(ListOf(kPendingKey), std::vector<std::string>({"reaped"}));
  EXPECT_EQ(Trim(SharedStack().RedisCli("ZCARD " + std::string(kDelayedKey))), "0");
  EXPECT_EQ(LengthOf(kFailedKey), 0);
  EXPECT_EQ(Trim(SharedStack().RedisCli("HGET " + std::string(kRedeliveriesKey) + " reaped")), "1");

  // Ack still clears the count: the outcome was recorded.
  ASSERT_TRUE(queue.Ack(delivery).ok());
  EXPECT_EQ(Trim(SharedStack().RedisCli("HEXISTS " + std::string(kRedeliveriesKey) + " reaped")),
            "0");
  EXPECT_EQ(ListOf(kPendingKey), std::vector<std::string>({"reaped"}));
}

// --- registration ----------------------------------------------------------------

// A worker takes nothing before its first heartbeat: a job moved into its
// list then, and the worker SIGKILLed, would sit where no reaper and no
// drain count ever look.
TEST_F(RedisQueueTest, NoJobIsTakenBeforeTheFirstHeartbeat) {
  Produce({"early"});
  RedisJobQueue queue(StackRedis(), "unregistered");
  for (auto wait : {0ms, 200ms}) {
    auto taken = queue.Take(wait);
    ASSERT_FALSE(taken.ok()) << "took "
                             << (taken.ok() && taken->has_value() ? (*taken)->payload : "");
    EXPECT_EQ(taken.error().kind, ErrorKind::kOutage);
    EXPECT_NE(taken.error().message.find("holds no lease"), std::string::npos)
        << taken.error().message;
  }
  EXPECT_EQ(ListOf(kPendingKey), std::vector<std::string>({"early"}));
  EXPECT_EQ(LengthOf(ProcessingKey("unregistered")), 0);

  Register("unregistered");
  EXPECT_EQ(MustTake(queue).payload, "early");
}

// A slow worker whose lease lapsed is taken for dead: a reaper returns its
// jobs and deregisters it. Alive after all, it takes nothing until its next
// heartbeat registers it again, so nothing lands in a list no reaper sees.
TEST_F(RedisQueueTest, AWorkerWhoseLeaseLapsedTakesNothingUntilItsNextHeartbeat) {
  Produce({"first", "second"});
  LapsingLease lease("slow");
  RedisJobQueue slow(StackRedis(), "slow");
  EXPECT_EQ(MustTake(slow).payload, "first");
  ASSERT_TRUE(lease.Lapsed()) << "the lease never lapsed";
  auto reaped = lease.reaper.ReapDeadWorkers();
  ASSERT_TRUE(reaped.ok()) << reaped.error().message;
  EXPECT_EQ(*reaped, 1);

  auto taken = slow.Take(0ms);
  EXPECT_FALSE(taken.ok()) << "a deregistered worker took "
                           << (taken.ok() && taken->has_value() ? (*taken)->payload : "nothing");
  // Were it SIGKILLed now, every job is where a take finds it.
  EXPECT_EQ(LengthOf(ProcessingKey("slow")), 0);
  EXPECT_EQ(ListOf(kPendingKey), std::vector<std::string>({"second", "first"}));

  ASSERT_TRUE(lease.worker.Heartbeat().ok());
  EXPECT_EQ(MustTake(slow).payload, "first");
  EXPECT_EQ(Trim(SharedStack().RedisCli("SISMEMBER " + std::string(kWorkersKey) + " slow")), "1");
}

// The take registers its worker in the same step as the move: even with the
// registry entry gone (whatever removed it), the jobs the worker holds are
// found by a reaper once its lease lapses.
TEST_F(RedisQueueTest, TakeRegistersItsWorkerWithTheMove) {
  Produce({"job"});
  RedisJobQueue queue = Registered("w1");
  SharedStack().RedisCli("SREM " + std::string(kWorkersKey) + " w1");
  EXPECT_EQ(MustTake(queue).payload, "job");
  EXPECT_EQ(Trim(SharedStack().RedisCli("SISMEMBER " + std::string(kWorkersKey) + " w1")), "1");

  SharedStack().RedisCli("DEL " + HeartbeatKey("w1"));  // SIGKILLed, its lease gone
  QueueMaintenance reaper(StackRedis(), "reaper");
  ASSERT_TRUE(reaper.Heartbeat().ok());
  auto reaped = reaper.ReapDeadWorkers();
  ASSERT_TRUE(reaped.ok()) << reaped.error().message;
  EXPECT_EQ(*reaped, 1);
  EXPECT_EQ(ListOf(kPendingKey), std::vector<std::string>({"job"}));
}

// --- maintenance -------------------------------------------------------------

TEST_F(RedisQueueTest, HeartbeatRegistersWorkerWithLeaseAndInfo) {
  QueueMaintenance maintenance(StackRedis(), "w1", WithLease(30s));
  ASSERT_TRUE(maintenance.Heartbeat().ok());
  int64_t ttl = std::stoll(SharedStack().RedisCli("PTTL " + HeartbeatKey("w1")));
  EXPECT_GT(ttl, 25000);
  EXPECT_LE(ttl, 30000);
  EXPECT_EQ(Trim(SharedStack().RedisCli("SISMEMBER " + std::string(kWorkersKey) + " w1")), "1");
  std::string info = SharedStack().RedisCli("GET " + HeartbeatKey("w1"));
  EXPECT_NE(info.find("\"pid\":" + std::to_string(getpid())), std::string::npos) << info;
  EXPECT_NE(info.find("\"host\""), std::string::npos) << info;
  EXPECT_NE(info.find("\"started_at\""), std::string::npos) << info;
}

TEST_F(RedisQueueTest, ReaperReturnsDeadWorkersJobsInOrderAndSparesLiveOnes) {
  Produce({"a", "b", "c", "d", "e"});
  QueueMaintenance dead_lease(StackRedis(), "dead", WithLease(30s));
  QueueMaintenance live_lease(StackRedis(), "live", WithLease(30s));
  ASSERT_TRUE(dead_lease.Heartbeat().ok());
  ASSERT_TRUE(live_lease.Heartbeat().ok());
  RedisJobQueue dead(StackRedis(), "dead");
  RedisJobQueue live(StackRedis(), "live");
  EXPECT_EQ(MustTake(dead).payload, "a");
  EXPECT_EQ(MustTake(dead).payload, "b");
  EXPECT_EQ(MustTake(live).payload, "c");
  SharedStack().RedisCli("HSET " + std::string(kRedeliveriesKey) + " b 1");

  SharedStack().RedisCli("DEL " + HeartbeatKey("dead"));  // the worker died
  auto returned = live_lease.ReapDeadWorkers();
  ASSERT_TRUE(returned.ok()) << returned.error().message;
  EXPECT_EQ(*returned, 2);

  // Back at the head, oldest first, ahead of jobs never taken.
  RedisJobQueue next = Registered("next");
  Delivery again_a = MustTake(next);
  Delivery again_b = MustTake(next);
  EXPECT_EQ(again_a.payload, "a");
  EXPECT_EQ(again_a.redeliveries, 1);
  EXPECT_EQ(again_b.payload, "b");
  EXPECT_EQ(again_b.redeliveries, 2);
  EXPECT_EQ(MustTake(next).payload, "d");

  EXPECT_EQ(LengthOf(ProcessingKey("dead")), 0);
  EXPECT_EQ(Trim(SharedStack().RedisCli("SISMEMBER " + std::string(kWorkersKey) + " dead")), "0");
  EXPECT_EQ(ListOf(ProcessingKey("live")), std::vector<std::string>({"c"}));
  EXPECT_EQ(Trim(SharedStack().RedisCli("SISMEMBER " + std::string(kWorkersKey) + " live")), "1");

  // Nothing left to reap: a second pass returns nothing.
  auto again = live_lease.ReapDeadWorkers();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
}

TEST_F(RedisQueueTest, ReaperReturnsJobsOfAWorkerWhoseLeaseExpired) {
  Produce({"x", "y"});
  LapsingLease lease("short");
  RedisJobQueue queue(StackRedis(), "short");
  MustTake(queue);
  MustTake(queue);

  // While the lease holds, nothing is reaped.
  auto early = lease.reaper.ReapDeadWorkers();
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(*early, 0);

  ASSERT_TRUE(lease.Lapsed()) << "the lease never expired";
  auto reaped = lease.reaper.ReapDeadWorkers();
  ASSERT_TRUE(reaped.ok());
  EXPECT_EQ(*reaped, 2);
  EXPECT_EQ(ListOf(kPendingKey), std::vector<std::string>({"y", "x"}));  // x at the head
}

TEST_F(RedisQueueTest, AJobThatKillsItsWorkerEveryTimeCountsUp) {
  Produce({"poison"});
  QueueMaintenance reaper(StackRedis(), "reaper", WithLease(30s));
  ASSERT_TRUE(reaper.Heartbeat().ok());
  for (int round = 0; round < 3; ++round) {
    std::string id = "victim-" + std::to_string(round);
    QueueMaintenance victim_lease(StackRedis(), id, WithLease(30s));
    ASSERT_TRUE(victim_lease.Heartbeat().ok());
    RedisJobQueue victim(StackRedis(), id);
    EXPECT_EQ(MustTake(victim).redeliveries, round);
    SharedStack().RedisCli("DEL " + HeartbeatKey(id));
    auto reaped = reaper.ReapDeadWorkers();
    ASSERT_TRUE(reaped.ok());
    EXPECT_EQ(*reaped, 1);
  }
  RedisJobQueue survivor = Registered("survivor");
  EXPECT_EQ(MustTake(survivor).redeliveries, 3);
}

TEST_F(RedisQueueTest, PromoteDueRetriesMovesOnlyDueEntriesEarliestFirst) {
  Produce({"fresh"});
  RedisJobQueue queue = Registered("w1");
  Produce({"retry-1-late", "retry-2-early", "retry-0-future"});
  // Takes "fresh" and the three retries to be, then delays them.
  Delivery fresh = MustTake(queue);
  Delivery late = MustTake(queue);
  Delivery early = MustTake(queue);
  Delivery future = MustTake(queue);
  auto now = std::chrono::system_clock::now();
  ASSERT_TRUE(queue.Delay(late, "retry-1-late", now - 1s).ok());
  ASSERT_TRUE(queue.Delay(early, "retry-2-early", now - 2s).ok());
  ASSERT_TRUE(queue.Delay(future, "retry-0-future", now + 1h).ok());
  ASSERT_TRUE(queue.Release(fresh).ok());

  QueueMaintenance maintenance(StackRedis(), "w1");
  auto promoted = maintenance.PromoteDueRetries(100);
  ASSERT_TRUE(promoted.ok()) << promoted.error().message;
  EXPECT_EQ(*promoted, 2);
  EXPECT_EQ(Trim(SharedStack().RedisCli("ZRANGE " + std::string(kDelayedKey) + " 0 -1")),
            "retry-0-future");
  // Due retries go to the head, the earliest due first, then what was waiting.
  EXPECT_EQ(MustTake(queue).payload, "retry-2-early");
  EXPECT_EQ(MustTake(queue).payload, "retry-1-late");
  EXPECT_EQ(MustTake(queue).payload, "fresh");
}

TEST_F(RedisQueueTest, PromoteDueRetriesHonoursLimit) {
  for (int i = 0; i < 5; ++i) {
    SharedStack().RedisCli("ZADD " + std::string(kDelayedKey) + " " + std::to_string(i) + " due-" +
                           std::to_string(i));
  }
  QueueMaintenance maintenance(StackRedis(), "w1");
  auto promoted = maintenance.PromoteDueRetries(3);
  ASSERT_TRUE(promoted.ok());
  EXPECT_EQ(*promoted, 3);
  EXPECT_EQ(LengthOf(kPendingKey), 3);
  EXPECT_EQ(Trim(SharedStack().RedisCli("ZCARD " + std::string(kDelayedKey))), "2");
}

TEST_F(RedisQueueTest, DeregisterOnlyWithAnEmptyProcessingList) {
  Produce({"held"});
  QueueMaintenance maintenance(StackRedis(), "w1");
  ASSERT_TRUE(maintenance.Heartbeat().ok());
  RedisJobQueue queue(StackRedis(), "w1");
  Delivery held = MustTake(queue);

  auto refused = maintenance.Deregister();
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(*refused);
  EXPECT_EQ(Trim(SharedStack().RedisCli("EXISTS " + HeartbeatKey("w1"))), "1");
  EXPECT_EQ(Trim(SharedStack().RedisCli("SISMEMBER " + std::string(kWorkersKey) + " w1")), "1");

  ASSERT_TRUE(queue.Release(held).ok());
  auto done = maintenance.Deregister();
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(*done);
  EXPECT_EQ(Trim(SharedStack().RedisCli("EXISTS " + HeartbeatKey("w1"))), "0");
  EXPECT_EQ(Trim(SharedStack().RedisCli("SISMEMBER " + std::string(kWorkersKey) + " w1")), "0");
}

// --- outages -------------------------------------------------------------------

TEST_F(RedisQueueTest, UnreachableServerIsAnOutageNamingTheAddress) {
  config::RedisAddress nowhere;
  nowhere.host = "127.0.0.1";
  nowhere.port = UnusedPort();
  RedisJobQueue queue(nowhere, "w1");
  auto taken = queue.Take(100ms);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().kind, ErrorKind::kOutage);
  EXPECT_NE(taken.error().message.find("Redis at 127.0.0.1:" + std::to_string(nowhere.port)),
            std::string::npos)
      << taken.error().message;
  Delivery delivery{"job", 0};
  EXPECT_EQ(queue.Ack(delivery).error().kind, ErrorKind::kOutage);
  QueueMaintenance maintenance(nowhere, "w1");
  EXPECT_EQ(maintenance.Heartbeat().error().kind, ErrorKind::kOutage);
}

TEST_F(RedisQueueTest, SameObjectWorksAgainAfterRedisRestart) {
  Produce({"before"});
  RedisJobQueue queue = Registered("w1");
  EXPECT_EQ(MustTake(queue).payload, "before");

  SharedStack().Restart("redis");  // the data is gone, the port is the same
  Produce({"after"});
  // The lease went with the data: the worker's maintenance registers again.
  QueueMaintenance lease(StackRedis(), "w1");
  ASSERT_TRUE(WaitUntil([&] { return lease.Heartbeat().ok(); }, 5s));
  // The first call may find the old socket closed (an outage, reported as
  // such); the object must reconnect by itself.
  std::optional<Delivery> delivered;
  std::vector<ErrorKind> failures;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto taken = queue.Take(100ms);
        if (!taken.ok()) failures.push_back(taken.error().kind);
        if (taken.ok() && taken->has_value()) delivered = **taken;
        return delivered.has_value();
      },
      5s));
  EXPECT_EQ(delivered->payload, "after");
  EXPECT_LE(failures.size(), 1u);
  for (ErrorKind kind : failures) EXPECT_EQ(kind, ErrorKind::kOutage);
}

TEST_F(RedisQueueTest, SameObjectWorksOnceAServerComesUp) {
  int port = UnusedPort();
  config::RedisAddress address;
  address.host = "127.0.0.1";
  address.port = port;
  RedisJobQueue queue(address, "w1");
  auto down = queue.Take(0ms);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().kind, ErrorKind::kOutage);

  OwnRedis server(port);
  QueueAdmin admin(address);
  std::vector<std::string> jobs = {"arrived"};
  ASSERT_TRUE(admin.Enqueue(jobs).ok());
  Register("w1", address);
  auto up = queue.Take(0ms);
  ASSERT_TRUE(up.ok()) << up.error().message;
  ASSERT_TRUE(up->has_value());
  EXPECT_EQ((*up)->payload, "arrived");
}

TEST_F(RedisQueueTest, HungServerTimesOutAsAnOutageAndRecovers) {
  OwnRedis server(UnusedPort());
  RedisOptions options;
  options.command_timeout = 300ms;
  RedisJobQueue queue(server.Address(), "w1", options);
  ASSERT_TRUE(queue.Connect().ok());
  Register("w1", server.Address());

  ASSERT_EQ(kill(server.pid(), SIGSTOP), 0);
  auto started = std::chrono::steady_clock::now();
  auto taken = queue.Take(200ms);
  auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().kind, ErrorKind::kOutage);
  EXPECT_LT(waited, 3s);
  // Reconnecting to a stopped server times out as well.
  EXPECT_EQ(queue.Ack({"job", 0}).error().kind, ErrorKind::kOutage);

  ASSERT_EQ(kill(server.pid(), SIGCONT), 0);
  auto back = queue.Take(0ms);
  EXPECT_TRUE(back.ok()) << back.error().message;
}

TEST_F(RedisQueueTest, ConnectsOverUnixSocket) {
  OwnRedis server(UnusedPort());
  config::RedisAddress address;
  address.host = "";
  address.unix_socket = server.socket_path();
  QueueAdmin admin(address);
  std::vector<std::string> jobs = {"over-socket"};
  ASSERT_TRUE(admin.Enqueue(jobs).ok());
  Register("w1", address);
  RedisJobQueue queue(address, "w1");
  auto taken = queue.Take(0ms);
  ASSERT_TRUE(taken.ok()) << taken.error().message;
  ASSERT_TRUE(taken->has_value());
  EXPECT_EQ((*taken)->payload, "over-socket");

  config::RedisAddress missing = address;
  missing.unix_socket = server.socket_path() + ".missing";
  RedisJobQueue lost(missing, "w1");
  auto error = lost.Take(0ms);
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(error.error().kind, ErrorKind::kOutage);
  EXPECT_NE(error.error().message.find("Redis at unix:" + missing.unix_socket), std::string::npos)
      << error.error().message;
}

TEST_F(RedisQueueTest, SelectsTheConfiguredDatabase) {
  config::RedisAddress address = StackRedis();
  address.db = 5;
  QueueAdmin admin(address);
  std::vector<std::string> jobs = {"in-db-5"};
  ASSERT_TRUE(admin.Enqueue(jobs).ok());
  EXPECT_EQ(Trim(SharedStack().RedisCli("-n 5 LRANGE " + std::string(kPendingKey) + " 0 -1")),
            "in-db-5");
  EXPECT_EQ(LengthOf(kPendingKey), 0);
}

// --- credentials and version ------------------------------------------------------

TEST_F(RedisQueueTest, WrongPasswordIsAConfigurationErrorThatNeverQuotesIt) {
  RequirePassGuard guard("right-secret-4711");
  config::RedisAddress address = StackRedis();
  address.password = "wrong-secret-0815";
  RedisJobQueue queue(address, "w1");
  auto taken = queue.Take(0ms);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().kind, ErrorKind::kConfiguration);
  EXPECT_EQ(taken.error().message.find("wrong-secret-0815"), std::string::npos)
      << taken.error().message;
  EXPECT_NE(taken.error().message.find("rejected the credentials"), std::string::npos)
      << taken.error().message;

  config::RedisAddress anonymous = StackRedis();
  RedisJobQueue unauthenticated(anonymous, "w1");
  auto refused = unauthenticated.Take(0ms);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::kConfiguration);

  address.password = "right-secret-4711";
  Register("w1", address);
  RedisJobQueue allowed(address, "w1");
  auto ok = allowed.Take(0ms);
  EXPECT_TRUE(ok.ok()) << ok.error().message;
}

TEST_F(RedisQueueTest, AuthenticatesAsAclUser) {
  SharedStack().RedisCli("ACL SETUSER queue-user on '>user-secret-1234' '~*' '&*' +@all");
  config::RedisAddress address = StackRedis();
  address.username = "queue-user";
  address.password = "user-secret-1234";
  Register("w1", address);
  RedisJobQueue queue(address, "w1");
  auto taken = queue.Take(0ms);
  EXPECT_TRUE(taken.ok()) << taken.error().message;

  address.password = "not-the-user-secret";
  RedisJobQueue wrong(address, "w1");
  auto refused = wrong.Take(0ms);
  SharedStack().RedisCli("ACL DELUSER queue-user");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::kConfiguration);
  EXPECT_EQ(refused.error().message.find("not-the-user-secret"), std::string::npos);
  EXPECT_NE(refused.error().message.find("queue-user"), std::string::npos)
      << refused.error().message;
}

TEST_F(RedisQueueTest, AcceptsTheStackServerVersion) {
  RedisConnection connection(StackRedis(), {});
  ASSERT_TRUE(connection.Connect().ok());
  EXPECT_TRUE(IsSupportedRedisVersion(connection.server_version())) << connection.server_version();
}

TEST_F(RedisQueueTest, RefusesRedisOlderThan62) {
  OldVersionServer old_server("6.0.16");
  config::RedisAddress address;
  address.host = "127.0.0.1";
  address.port = old_server.port();
  RedisJobQueue queue(address, "w1");
  Status connected = queue.Connect();
  ASSERT_FALSE(connected.ok());
  EXPECT_EQ(connected.error().kind, ErrorKind::kConfiguration);
  EXPECT_NE(connected.error().message.find("Redis 6.2 or newer required (found 6.0.16)"),
            std::string::npos)
      << connected.error().message;
}

// --- admin -----------------------------------------------------------------------

TEST_F(RedisQueueTest, AdminCountsEveryPlace) {
  Produce({"p1", "p2", "p3", "p4"});
  SharedStack().RedisCli("ZADD " + std::string(kDelayedKey) + " 5000 d1 9000 d2");
  SharedStack().RedisCli("LPUSH " + std::string(kFailedKey) + " f1");
  QueueMaintenance live_lease(StackRedis(), "live");
  QueueMaintenance dead_lease(StackRedis(), "dead");
  ASSERT_TRUE(live_lease.Heartbeat().ok());
  ASSERT_TRUE(dead_lease.Heartbeat().ok());
  RedisJobQueue live(StackRedis(), "live");
  RedisJobQueue dead(StackRedis(), "dead");
  MustTake(live);
  MustTake(live);
  MustTake(dead);
  SharedStack().RedisCli("DEL " + HeartbeatKey("dead"));

  QueueAdmin admin(StackRedis());
  auto counts = admin.Counts();
  ASSERT_TRUE(counts.ok()) << counts.error().message;
  EXPECT_EQ(counts->pending, 1);
  EXPECT_EQ(counts->delayed, 2);
  EXPECT_EQ(counts->failed, 1);
  EXPECT_EQ(counts->processing, 3);
  EXPECT_EQ(counts->processing_by_worker,
            (std::map<std::string, int64_t>{{"dead", 1}, {"live", 2}}));
  EXPECT_EQ(counts->live_workers, std::vector<std::string>({"live"}));

  auto due = admin.NextDue();
  ASSERT_TRUE(due.ok());
  ASSERT_TRUE(due->has_value());
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>((*due)->time_since_epoch()),
            5000ms);
}

TEST_F(RedisQueueTest, AdminNextDueIsEmptyWithoutRetries) {
  QueueAdmin admin(StackRedis());
  auto due = admin.NextDue();
  ASSERT_TRUE(due.ok());
  EXPECT_FALSE(due->has_value());
}

// Scores anyone may write: one past the clock's range (year 5138, or before
// 1677) reads as the clock's last or first time instead of overflowing.
TEST_F(RedisQueueTest, AdminNextDueBeyondTheClocksRangeIsItsEdge) {
  QueueAdmin admin(StackRedis());
  SharedStack().RedisCli("ZADD " + std::string(kDelayedKey) + " 99999999999999 far-future");
  auto due = admin.NextDue();
  ASSERT_TRUE(due.ok()) << due.error().message;
  ASSERT_TRUE(due->has_value());
  EXPECT_EQ(**due, std::chrono::system_clock::time_point::max());

  SharedStack().RedisCli("ZADD " + std::string(kDelayedKey) + " -99999999999999 far-past");
  due = admin.NextDue();
  ASSERT_TRUE(due.ok()) << due.error().message;
  ASSERT_TRUE(due->has_value());
  EXPECT_EQ(**due, std::chrono::system_clock::time_point::min());
}

TEST_F(RedisQueueTest, AdminEnqueueKeepsOrderAcrossBatches) {
  std::vector<std::string> jobs;
  for (int i = 0; i < 1203; ++i) jobs.push_back("job-" + std::to_string(i));
  QueueAdmin admin(StackRedis());
  ASSERT_TRUE(admin.Enqueue(jobs).ok());
  EXPECT_EQ(LengthOf(kPendingKey), 1203);
  RedisJobQueue queue = Registered("w1");
  for (int i : {0, 1, 2}) EXPECT_EQ(MustTake(queue).payload, jobs[static_cast<size_t>(i)]);
  // The last one is at the tail.
  EXPECT_EQ(Trim(SharedStack().RedisCli("LINDEX " + std::string(kPendingKey) + " 0")), "job-1202");
}

TEST_F(RedisQueueTest, AdminFailedQueueListRequeueAndPurge) {
  RedisJobQueue queue = Registered("w1");
  Produce({"j1", "j2", "j3"});
  for (const char* entry : {"e1", "e2", "e3"}) {
    ASSERT_TRUE(queue.Fail(MustTake(queue), entry).ok());
  }
  QueueAdmin admin(StackRedis());
  auto newest_two = admin.ListFailed(0, 2);
  ASSERT_TRUE(newest_two.ok());
  EXPECT_EQ(*newest_two, std::vector<std::string>({"e3", "e2"}));
  auto past_end = admin.ListFailed(10, 5);
  ASSERT_TRUE(past_end.ok());
  EXPECT_TRUE(past_end->empty());

  // The runbook's RPOPLPUSH: the oldest failure goes back first.
  auto moved = admin.RequeueFailed(1);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(*moved, 1);
  EXPECT_EQ(ListOf(kPendingKey), std::vector<std::string>({"e1"}));
  EXPECT_EQ(ListOf(kFailedKey), std::vector<std::string>({"e3", "e2"}));

  auto rest = admin.RequeueFailed(10);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(*rest, 2);
  EXPECT_EQ(LengthOf(kFailedKey), 0);
  EXPECT_EQ(MustTake(queue).payload, "e1");
  EXPECT_EQ(MustTake(queue).payload, "e2");

  SharedStack().RedisCli("LPUSH " + std::string(kFailedKey) + " x y");
  auto purged = admin.PurgeFailed();
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 2);
  EXPECT_EQ(LengthOf(kFailedKey), 0);
}

// `failed purge --all` counts, asks, then deletes. Meanwhile the runbook's
// RPOPLPUSH requeues the oldest entries and workers park new ones: the
// purge deletes what it counted and is still there, never the new ones
// (trimming the count from the tail took as many new ones as were requeued).
TEST_F(RedisQueueTest, AdminPurgeOfASnapshotDeletesNoEntryThatFailedSince) {
  QueueAdmin admin(StackRedis());
  SharedStack().RedisCli("LPUSH " + std::string(kFailedKey) + " old1 old2 old3 old4");
  auto seen = admin.SnapshotFailed();
  ASSERT_TRUE(seen.ok()) << seen.error().message;
  EXPECT_EQ(seen->count, 4);
  EXPECT_EQ(seen->newest, std::vector<std::string>({"old4", "old3", "old2", "old1"}));

  auto requeued = admin.RequeueFailed(2);  // old1, old2
  ASSERT_TRUE(requeued.ok());
  ASSERT_EQ(*requeued, 2);
  SharedStack().RedisCli("LPUSH " + std::string(kFailedKey) + " new1 new2");

  auto purged = admin.PurgeFailedSnapshot(*seen);
  ASSERT_TRUE(purged.ok()) << purged.error().message;
  EXPECT_EQ(*purged, 2);
  EXPECT_EQ(ListOf(kFailedKey), std::vector<std::string>({"new2", "new1"}));

  // Every entry seen requeued meanwhile: nothing of the new ones goes.
  auto second = admin.SnapshotFailed();
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(admin.RequeueFailed(2).ok());
  SharedStack().RedisCli("LPUSH " + std::string(kFailedKey) + " new3");
  auto none = admin.PurgeFailedSnapshot(*second);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
  EXPECT_EQ(ListOf(kFailedKey), std::vector<std::string>({"new3"}));

  // Unchanged, it empties the queue.
  auto third = admin.SnapshotFailed();
  ASSERT_TRUE(third.ok());
  auto all = admin.PurgeFailedSnapshot(*third);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, 1);
  EXPECT_EQ(LengthOf(kFailedKey), 0);
}

TEST_F(RedisQueueTest, ScriptsSurviveAScriptFlush) {
  Produce({"a", "b"});
  RedisJobQueue queue = Registered("w1");
  ASSERT_TRUE(queue.Ack(MustTake(queue)).ok());  // loads the script
  SharedStack().RedisCli("SCRIPT FLUSH");
  ASSERT_TRUE(queue.Ack(MustTake(queue)).ok());  // NOSCRIPT, then EVAL
  EXPECT_EQ(LengthOf(ProcessingKey("w1")), 0);
}

}  // namespace
}  // namespace media_sync::queue
