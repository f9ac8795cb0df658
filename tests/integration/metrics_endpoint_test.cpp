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
#include <functional>
#include <memory>
#include <regex>
#include <thread>
#include <vector>

#include "support/hostile_clients.h"
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

class MetricsEndpointTest : public ::testing::TestWithParam<Load> {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
    worker_ = std::make_unique<WorkerProcess>(
        stack_, WithBoundedQuarantine({{"METRICS_ADDRESS", "127.0.0.1:0"},
                                       {"SYNC_CONCURRENCY", "4"},
                                       {"LOG_LEVEL", "info"}}));
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

INSTANTIATE_TEST_SUITE_P(HostileClients, MetricsEndpointTest,
                         ::testing::ValuesIn(HostileLoads("/metrics")),
                         [](const ::testing::TestParamInfo<Load>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace media_sync::testing
