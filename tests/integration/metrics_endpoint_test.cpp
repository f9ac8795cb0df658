// `media-sync run`'s endpoint (METRICS_ADDRESS) under hostile clients on raw
// sockets. While each load runs, for longer than the endpoint's request
// timeout: every /healthz probe (a fresh connection, as an orchestrator's
// liveness probe) is answered 200 within a second, the worker's resident
// memory stays within a bound of what it held before, and the jobs pushed
// meanwhile sync.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <regex>
#include <thread>
#include <vector>

#include "support/raw_http.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Each load runs at least this long: past the endpoint's request timeout
// (5 s), so connections it cuts are opened again while probes go on.
constexpr auto kLoadTime = 8s;
constexpr auto kProbeLimit = 1000ms;
// What the endpoint may make the worker hold beyond its resident memory
// before the load: its connections' buffers are bounded to a few MiB.
constexpr int64_t kMemoryMargin = int64_t{64} << 20;
constexpr int64_t kMiB = int64_t{1} << 20;

// Waits `period`, or less when the load is stopped: the pace of a client.
// False once it is stopped.
bool Pause(const std::stop_token& stop, std::chrono::milliseconds period) {
  std::mutex mutex;
  std::condition_variable_any wake;
  std::unique_lock lock(mutex);
  wake.wait_for(lock, stop, period, [] { return false; });
  return !stop.stop_requested();
}

// One kind of hostile client, run by its own thread until destroyed.
class HostileLoad {
 public:
  virtual ~HostileLoad() = default;
  // What the load did, for the test's figures ("connections 1200").
  virtual std::string Done() const = 0;
};

// `count` connections kept open, each having sent `opening` (nothing, or a
// request never finished); one the endpoint closes is opened again.
class HeldConnections final : public HostileLoad {
 public:
  HeldConnections(int port, int count, std::string opening)
      : thread_([this, port, count, opening = std::move(opening)](const std::stop_token& stop) {
          std::vector<std::unique_ptr<RawConnection>> held;
          auto open = [&] {
            auto connection = std::make_unique<RawConnection>(port);
            if (!opening.empty()) connection->Send(opening, 1s);
            ++opened_;
            return connection;
          };
          for (int i = 0; i < count; ++i) held.push_back(open());
          while (Pause(stop, 100ms)) {
            for (auto& connection : held) {
              if (connection->Closed(0ms)) connection = open();
            }
          }
        }) {}
  std::string Done() const override { return "connections " + std::to_string(opened_.load()); }

 private:
  std::atomic<int64_t> opened_ = 0;
  std::jthread thread_;
};

// `count` clients each sending a request head one byte a second, started
// again when the endpoint cuts them.
class Tricklers final : public HostileLoad {
 public:
  Tricklers(int port, int count)
      : thread_([this, port, count](const std::stop_token& stop) {
          const std::string start = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Trickle: ";
          std::vector<std::unique_ptr<RawConnection>> clients;
          for (int i = 0; i < count; ++i) {
            clients.push_back(std::make_unique<RawConnection>(port));
            clients.back()->Send(start, 1s);
          }
          while (Pause(stop, 1000ms)) {
            for (auto& client : clients) {
              if (!client->Send("a", 100ms) || client->Closed(0ms)) {
                ++cut_;
                client = std::make_unique<RawConnection>(port);
                client->Send(start, 1s);
              }
            }
          }
        }) {}
  std::string Done() const override { return "cut " + std::to_string(cut_.load()); }

 private:
  std::atomic<int64_t> cut_ = 0;
  std::jthread thread_;
};

// One client after another, each sending `bytes` (as much as the endpoint
// takes) and waiting for the endpoint to close.
class Flood final : public HostileLoad {
 public:
  Flood(int port, std::string bytes)
      : thread_([this, port, bytes = std::move(bytes)](const std::stop_token& stop) {
          while (!stop.stop_requested()) {
            RawConnection client(port);
            client.Send(bytes, 2s);
            client.Closed(2s);
            ++clients_;
          }
        }) {}
  std::string Done() const override { return "clients " + std::to_string(clients_.load()); }

 private:
  std::atomic<int64_t> clients_ = 0;
  std::jthread thread_;
};

// `count` connections scraping /metrics over and over (kept alive, as
// Prometheus does), all requests sent before any response is read.
class Scrapers final : public HostileLoad {
 public:
  Scrapers(int port, int count)
      : thread_([this, port, count](const std::stop_token& stop) {
          const std::string scrape = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
          std::vector<std::unique_ptr<RawConnection>> scrapers;
          for (int i = 0; i < count; ++i) scrapers.push_back(std::make_unique<RawConnection>(port));
          while (!stop.stop_requested()) {
            for (auto& scraper : scrapers) scraper->Send(scrape, 1s);
            for (auto& scraper : scrapers) {
              if (stop.stop_requested()) break;
              if (scraper->ReadResponse(5s).status == 200) {
                ++answered_;
              } else {
                scraper = std::make_unique<RawConnection>(port);
              }
            }
          }
        }) {}
  std::string Done() const override { return "scrapes " + std::to_string(answered_.load()); }

 private:
  std::atomic<int64_t> answered_ = 0;
  std::jthread thread_;
};

// POST /metrics announcing a 1 GiB body and sending it, connection after
// connection, until 1 GiB was offered in all; stops early once the worker's
// memory went past the bound (the test has failed by then).
class GibibytePost final : public HostileLoad {
 public:
  GibibytePost(int port, const std::atomic<bool>& over_memory)
      : thread_([this, port, &over_memory](const std::stop_token& stop) {
          constexpr int64_t kBody = int64_t{1} << 30;
          const std::string chunk(256 * 1024, 'x');
          int64_t offered = 0;
          while (!stop.stop_requested() && !over_memory && offered < kBody) {
            RawConnection client(port);
            ++connections_;
            if (!client.Send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                             "Content-Length: " +
                                 std::to_string(kBody) + "\r\n\r\n",
                             1s)) {
              continue;
            }
            int64_t taken = 0;
            while (!stop.stop_requested() && !over_memory && offered < kBody &&
                   client.Send(chunk, 1s)) {
              taken += static_cast<int64_t>(chunk.size());
              offered += static_cast<int64_t>(chunk.size());
            }
            most_taken_ = std::max(most_taken_.load(), taken);
          }
          offered_ = offered;
        }) {}
  std::string Done() const override {
    return "connections " + std::to_string(connections_.load()) + ", most taken by one " +
           std::to_string(most_taken_.load() / kMiB) + " MiB";
  }

 private:
  std::atomic<int64_t> connections_ = 0;
  std::atomic<int64_t> most_taken_ = 0;
  std::atomic<int64_t> offered_ = 0;
  std::jthread thread_;
};

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string bytes(size, '\0');
  for (char& byte : bytes) byte = static_cast<char>(random());
  return bytes;
}

struct Load {
  std::string name;
  std::function<std::unique_ptr<HostileLoad>(int port, const std::atomic<bool>& over_memory)> start;
};

void PrintTo(const Load& load, std::ostream* out) { *out << load.name; }

// The worker's resident memory, sampled every 50 ms; `over` is set once it
// passed `limit`.
class MemoryWatch {
 public:
  MemoryWatch(pid_t pid, int64_t limit)
      : thread_([this, pid, limit](const std::stop_token& stop) {
          do {
            int64_t resident = ResidentBytes(pid);
            peak_ = std::max(peak_.load(), resident);
            if (resident > limit) over_ = true;
          } while (Pause(stop, 50ms));
        }) {}
  int64_t peak() const { return peak_; }
  const std::atomic<bool>& over() const { return over_; }

 private:
  std::atomic<int64_t> peak_ = 0;
  std::atomic<bool> over_ = false;
  std::jthread thread_;
};

class MetricsEndpointTest : public ::testing::TestWithParam<Load> {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
    std::map<std::string, std::string> env{
        {"METRICS_ADDRESS", "127.0.0.1:0"}, {"SYNC_CONCURRENCY", "4"}, {"LOG_LEVEL", "info"}};
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer holds what is freed in a quarantine (256 MiB by
    // default) to catch a use after free: the bound would weigh that
    // quarantine, not the endpoint. A small one keeps both checks.
    const char* asan = std::getenv("ASAN_OPTIONS");
    env["ASAN_OPTIONS"] =
        (asan == nullptr || *asan == '\0' ? "" : std::string(asan) + ":") + "quarantine_size_mb=4";
#endif
    worker_ = std::make_unique<WorkerProcess>(stack_, std::move(env));
    static const std::regex kPort(R"(/readyz on 127\.0\.0\.1:0 \(port (\d+)\))");
    ASSERT_TRUE(WaitUntil(
        [&] {
          std::smatch match;
          std::string log = worker_->Log();
          if (std::regex_search(log, match, kPort)) port_ = std::stoi(match[1]);
          return port_ != 0 || !worker_->Running();
        },
        20s));
    ASSERT_NE(port_, 0) << worker_->Log();

    // What a working worker holds before any hostile client: jobs synced,
    // a scrape answered.
    jobs_ = media_.MakeMany(4, 16 * 1024, "box-a", 100);
    media_.PushAll(jobs_);
    ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 4; }, 60s)) << worker_->Log();
    ASSERT_EQ(Probe(port_, "/metrics", 5s).reply.status, 200);
    baseline_ = ResidentBytes(worker_->pid());
    ASSERT_GT(baseline_, 0);
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
  std::unique_ptr<WorkerProcess> worker_;
  int port_ = 0;
  std::vector<Json> jobs_;
  int64_t baseline_ = 0;
};

TEST_P(MetricsEndpointTest, HealthzAnswersWithinASecondMemoryStaysBoundedAndJobsSync) {
  MemoryWatch memory(worker_->pid(), baseline_ + kMemoryMargin);
  std::unique_ptr<HostileLoad> load = GetParam().start(port_, memory.over());

  std::vector<Json> pushed = media_.MakeMany(12, 32 * 1024, "box-b", 200);
  media_.PushAll(pushed);
  jobs_.insert(jobs_.end(), pushed.begin(), pushed.end());
  const auto started = Clock::now();
  int probes = 0;
  int answered = 0;
  std::chrono::milliseconds slowest{0};
  std::string failures;
  bool synced = false;
  std::stop_source never;
  // Probes for the whole load time and until the jobs pushed under it synced
  // (bounded: a worker that stopped syncing fails the test below).
  while ((Clock::now() - started < kLoadTime || !synced) && Clock::now() - started < 120s) {
    ProbeResult probe = Probe(port_, "/healthz", 3s);
    ++probes;
    slowest = std::max(slowest, probe.took);
    if (probe.reply.status == 200 && probe.took < kProbeLimit) {
      ++answered;
    } else if (failures.size() < 400) {
      failures += " [" + std::to_string(probe.reply.status) + " after " +
                  std::to_string(probe.took.count()) + " ms]";
    }
    synced = synced || media_.SyncedRows() == static_cast<int64_t>(jobs_.size());
    Pause(never.get_token(), 100ms);
  }
  const std::string done = load->Done();
  load.reset();  // every hostile client closed

  Measure("healthz_slowest_ms_" + GetParam().name, slowest.count(), "ms");
  Measure("resident_growth_mib_" + GetParam().name, (memory.peak() - baseline_) / kMiB, "MiB");
  RecordProperty("load", done);
  EXPECT_EQ(answered, probes) << probes - answered << " of " << probes
                              << " probes failed or took 1 s or more:" << failures
                              << " (load: " << done << ")";
  EXPECT_GE(probes, 10);
  EXPECT_LE(memory.peak(), baseline_ + kMemoryMargin)
      << "resident " << memory.peak() / kMiB << " MiB, " << baseline_ / kMiB << " MiB before";
  EXPECT_TRUE(synced) << media_.QueueState();
  media_.ExpectSyncedExactlyOnce(jobs_);
  EXPECT_TRUE(worker_->Running()) << worker_->Log();

  // The worker still answers as before, and stops as it should.
  EXPECT_EQ(Probe(port_, "/metrics", 5s).reply.status, 200);
  worker_->Signal(SIGTERM);
  EXPECT_EQ(worker_->WaitExit(60s), 0) << worker_->Log();
}

INSTANTIATE_TEST_SUITE_P(
    HostileClients, MetricsEndpointTest,
    ::testing::Values(Load{"IdleConnections",
                           [](int port, const std::atomic<bool>&) {
                             return std::make_unique<HeldConnections>(port, 32, "");
                           }},
                      Load{"HeadersTrickledAByteASecond",
                           [](int port, const std::atomic<bool>&) {
                             return std::make_unique<Tricklers>(port, 8);
                           }},
                      Load{"MebibyteRequestLine",
                           [](int port, const std::atomic<bool>&) {
                             return std::make_unique<Flood>(port, "GET /" + std::string(kMiB, 'a'));
                           }},
                      Load{"MebibyteHeader",
                           [](int port, const std::atomic<bool>&) {
                             return std::make_unique<Flood>(
                                 port, "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(kMiB, 'a'));
                           }},
                      Load{"BinaryJunk",
                           [](int port, const std::atomic<bool>&) {
                             return std::make_unique<Flood>(port, RandomBytes(256 * 1024, 7));
                           }},
                      Load{"TwoHundredConcurrentScrapes",
                           [](int port, const std::atomic<bool>&) {
                             return std::make_unique<Scrapers>(port, 200);
                           }},
                      Load{"GibibytePostBody",
                           [](int port, const std::atomic<bool>& over_memory) {
                             return std::make_unique<GibibytePost>(port, over_memory);
                           }}),
    [](const ::testing::TestParamInfo<Load>& info) { return info.param.name; });

}  // namespace
}  // namespace media_sync::testing
