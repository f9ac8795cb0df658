// The Monitor's rounds over in-memory doubles of the queue's census, the
// fleet's reports and the paused boxes, on simulated time: what goes into
// the gauges and /readyz, what is reported to the fleet (the files and the
// seconds since the last report that got through), when pauses take effect,
// and how often each read happens. Against the real binary and Redis it is
// tests/integration/observability_test.cpp and box_pause_test.cpp.
#include "worker/monitor.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/job.h"
#include "core/test_doubles.h"

namespace media_sync::worker {
namespace {

using namespace std::chrono_literals;
using doubles::FakeCatalog;
using doubles::FakeStore;
using doubles::InMemoryFleetReports;
using doubles::InMemoryPausedBoxes;
using doubles::InMemoryQueueCensus;
using doubles::SimulatedClock;
using Json = nlohmann::json;

constexpr auto kInterval = 5s;  // between rounds
constexpr auto kTurn = 500ms;   // between the gauges of the boxes

class MonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::err);  // pauses and resumes are logged
    char pattern[] = "/tmp/monitor-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    catalog_.endpoints = {{"box-a", "http://a.example"}, {"box-b", "http://b.example"}};
    settings_.worker_id = "w1";
    settings_.buffer_path = dir_;
    settings_.interval = kInterval;
  }
  void TearDown() override {
    monitor_.reset();
    std::filesystem::remove_all(dir_);
    spdlog::set_level(spdlog::level::info);
  }

  // Starts the monitor; returns once its first round is done and it waits.
  void Start() {
    monitor_ = std::make_unique<Monitor>(
        settings_,
        MonitorSources{std::move(queue_owned_), std::move(reports_owned_),
                       std::move(pauses_owned_)},
        metrics_, registry_, [this] { return ping_; }, liveness_, clock_);
    monitor_->Start();
    ASSERT_TRUE(clock_.AwaitSleepers(1)) << "no first round";
  }
  // Moves the time on; returns once the thread waits again.
  void Advance(std::chrono::milliseconds by) {
    clock_.Advance(by);
    ASSERT_TRUE(clock_.AwaitSleepers(1)) << "the monitor did not come back to its wait";
  }

  double Gauge(metrics::Family<metrics::Gauge>& family, std::string_view label) {
    return family.With({label}).Value();
  }
  Json ReadyBody() { return Json::parse(monitor_->Readiness().body); }
  int CountsRead() {
    std::lock_guard lock(queue_->mu);
    return queue_->counts_read;
  }
  void Faulted(Decision::Outcome outcome, FaultClass fault) {
    Decision decision;
    decision.outcome = outcome;
    decision.fault = fault;
    metrics_.RecordOutcome(decision, clock_.WallNow());
  }
  void Synced(uint64_t bytes) {
    Decision decision;
    decision.outcome = Decision::Outcome::kSynced;
    decision.bytes_uploaded = bytes;
    metrics_.RecordOutcome(decision, clock_.WallNow());
  }

  std::string dir_;
  SimulatedClock clock_;
  std::unique_ptr<InMemoryQueueCensus> queue_owned_ = std::make_unique<InMemoryQueueCensus>();
  std::unique_ptr<InMemoryFleetReports> reports_owned_ = std::make_unique<InMemoryFleetReports>();
  std::unique_ptr<InMemoryPausedBoxes> pauses_owned_ = std::make_unique<InMemoryPausedBoxes>();
  InMemoryQueueCensus* queue_ = queue_owned_.get();  // owned by the monitor once started
  InMemoryFleetReports* reports_ = reports_owned_.get();
  InMemoryPausedBoxes* pauses_ = pauses_owned_.get();
  FakeCatalog catalog_;
  std::shared_ptr<FakeStore> store_ = std::make_shared<FakeStore>();
  BoxRegistry registry_{s3::S3Options{}, catalog_,
                        [this](const s3::S3Options&) -> Result<std::shared_ptr<ObjectStore>> {
                          return std::shared_ptr<ObjectStore>(store_);
                        },
                        BoxRegistry::Settings{}, [this] { return clock_.WallNow(); }};
  metrics::Registry registry_metrics_;
  WorkerMetrics metrics_{registry_metrics_};
  Liveness liveness_;
  Status ping_ = Ok();
  MonitorSettings settings_;
  std::unique_ptr<Monitor> monitor_;
};

TEST_F(MonitorTest, ReadsTheQueueAtOnceThenEveryIntervalAndNotBefore) {
  {
    std::lock_guard lock(queue_->mu);
    const std::string sha256(64, 'a');
    const std::string key = "media/aa/aa/" + sha256 + ".jpg";
    queue_->pending = {"{}", MakeJobPayload(NewJob{sha256, key, "/buffer/" + key, std::nullopt, 1,
                                                   clock_.WallNow() - 90s})};
    queue_->delayed = {"d"};
    queue_->failed = {"f1", "f2"};
    queue_->processing["w1"] = {"p1", "p2", "p3"};
    queue_->live_workers = {"w1", "w2"};
  }
  Start();
  EXPECT_EQ(CountsRead(), 1);
  EXPECT_EQ(Gauge(metrics_.queue_jobs, "pending"), 2);
  EXPECT_EQ(Gauge(metrics_.queue_jobs, "delayed"), 1);
  EXPECT_EQ(Gauge(metrics_.queue_jobs, "failed"), 2);
  EXPECT_EQ(Gauge(metrics_.queue_jobs, "processing"), 3);
  EXPECT_EQ(metrics_.live_workers.Value(), 2);
  EXPECT_EQ(metrics_.oldest_pending_age.Value(), 90) << "the job served next was queued 90 s ago";
  EXPECT_EQ(metrics_.redis_up.Value(), 1);

  {
    std::lock_guard lock(queue_->mu);
    queue_->pending.push_front("{}");
  }
  for (auto waited = 0ms; waited + kTurn < kInterval; waited += kTurn) Advance(kTurn);
  EXPECT_EQ(CountsRead(), 1) << "read again before the interval ended";
  Advance(kTurn);
  EXPECT_EQ(CountsRead(), 2);
  EXPECT_EQ(Gauge(metrics_.queue_jobs, "pending"), 3);
  EXPECT_EQ(metrics_.oldest_pending_age.Value(), 95);
}

// Throughput is what this process synced over the time it ran: each report
// carries the files and bytes since the last report that got through, and
// the seconds since then, so a round Redis missed is counted in the next.
TEST_F(MonitorTest, ReportsWhatWasSyncedAndTheTimeItRanSinceTheLastReportThatGotThrough) {
  const auto started = clock_.WallNow();
  Start();
  Synced(100);
  Synced(200);
  Advance(kInterval);
  reports_->outage = true;
  Synced(50);
  Advance(kInterval);  // this round's report is lost
  reports_->outage = false;
  Synced(1);
  Advance(kInterval);

  std::lock_guard lock(reports_->mu);
  ASSERT_EQ(reports_->rounds.size(), 3u);
  const auto& first = reports_->rounds[0];
  EXPECT_EQ(first.files, 0u);
  EXPECT_EQ(first.ran_from, started);
  EXPECT_EQ(first.now, started);
  const auto& second = reports_->rounds[1];
  EXPECT_EQ(second.files, 2u);
  EXPECT_EQ(second.bytes, 300u);
  EXPECT_EQ(second.ran_from, started);
  EXPECT_EQ(second.now, started + kInterval);
  const auto& third = reports_->rounds[2];
  EXPECT_EQ(third.files, 2u) << "the round Redis missed is counted in the next";
  EXPECT_EQ(third.bytes, 51u);
  EXPECT_EQ(third.ran_from, started + kInterval);
  EXPECT_EQ(third.now, started + 3 * kInterval);
}

// Job faults by class (the web console's failures by class): each report
// adds what came since the last one that got through, so the fleet's
// counts stay exact across a round Redis missed, and nothing is added twice.
TEST_F(MonitorTest, ReportsEachJobFaultByClassOnce) {
  using Outcome = Decision::Outcome;
  Start();
  Faulted(Outcome::kFailed, FaultClass::kHashMismatch);
  Faulted(Outcome::kRetryScheduled, FaultClass::kOther);
  Faulted(Outcome::kRetryScheduled, FaultClass::kOther);
  Advance(kInterval);
  {
    std::lock_guard lock(reports_->mu);
    reports_->outage = true;
  }
  Faulted(Outcome::kFailed, FaultClass::kHashMismatch);
  Faulted(Outcome::kFailed, FaultClass::kMissingFile);
  Advance(kInterval);  // this round's report is lost
  {
    std::lock_guard lock(reports_->mu);
    EXPECT_EQ(reports_->failed_by_class, (std::map<std::string, uint64_t>{{"hash_mismatch", 1}}));
    reports_->outage = false;
  }
  Advance(kInterval);
  Advance(kInterval);  // nothing new

  std::lock_guard lock(reports_->mu);
  EXPECT_EQ(reports_->failed_by_class,
            (std::map<std::string, uint64_t>{{"hash_mismatch", 2}, {"missing_file", 1}}));
  EXPECT_EQ(reports_->retried_by_class, (std::map<std::string, uint64_t>{{"other", 2}}));
}

TEST_F(MonitorTest, ReportsEveryBoxItUsedWithItsState) {
  ASSERT_TRUE(registry_.ForBox("box-a").ok());
  ASSERT_TRUE(registry_.ForBox("box-b").ok());
  registry_.ReportFailure("box-b", Error::Outage("PutObject media/x: Couldn't connect"));
  Start();
  std::lock_guard lock(reports_->mu);
  ASSERT_EQ(reports_->box_reports.size(), 1u);
  const auto& boxes = reports_->box_reports[0];
  ASSERT_EQ(boxes.size(), 2u);
  EXPECT_EQ(boxes[0].box, "box-a");
  EXPECT_TRUE(boxes[0].up);
  EXPECT_EQ(boxes[1].box, "box-b");
  EXPECT_FALSE(boxes[1].up);
  EXPECT_EQ(boxes[1].error, "PutObject media/x: Couldn't connect");
  EXPECT_EQ(boxes[1].worker, "w1");
  EXPECT_EQ(boxes[1].reported_at, IsoTimestamp(clock_.WallNow()));
}

TEST_F(MonitorTest, ReadinessNamesWhatIsDownAndComesBackWithIt) {
  Start();
  EXPECT_TRUE(monitor_->Readiness().ok) << monitor_->Readiness().body;
  EXPECT_EQ(ReadyBody(), Json::parse(R"({"ready":true,"redis":"up","postgres":"up",
                                         "buffer":"up","boxes":{}})"));

  {
    std::lock_guard lock(queue_->mu);
    queue_->outage = true;
  }
  ping_ = Error::Outage("PostgreSQL unavailable: connection refused");
  std::filesystem::remove_all(dir_);
  Advance(kInterval);
  EXPECT_FALSE(monitor_->Readiness().ok);
  Json body = ReadyBody();
  EXPECT_EQ(body["redis"], "down: Redis unavailable: connection refused");
  EXPECT_EQ(body["postgres"], "down: PostgreSQL unavailable: connection refused");
  EXPECT_EQ(body["buffer"], "down: " + dir_ + ": No such file or directory");
  EXPECT_EQ(metrics_.redis_up.Value(), 0);
  EXPECT_EQ(metrics_.postgres_up.Value(), 0);
  EXPECT_EQ(metrics_.buffer_up.Value(), 0);
  {
    std::lock_guard lock(reports_->mu);
    EXPECT_EQ(reports_->rounds.size(), 1u) << "reported while Redis was down";
  }

  {
    std::lock_guard lock(queue_->mu);
    queue_->outage = false;
  }
  ping_ = Ok();
  std::filesystem::create_directories(dir_);
  Advance(kInterval);
  EXPECT_TRUE(monitor_->Readiness().ok) << monitor_->Readiness().body;
}

// Every box down is not ready; one box up is.
TEST_F(MonitorTest, ReadyWhileAtLeastOneBoxIsUp) {
  ASSERT_TRUE(registry_.ForBox("box-a").ok());
  registry_.ReportFailure("box-a", Error::Outage("timeout"));
  Start();
  EXPECT_FALSE(monitor_->Readiness().ok);
  EXPECT_EQ(ReadyBody()["boxes"], Json::parse(R"({"box-a":"down: timeout"})"));
  ASSERT_TRUE(registry_.ForBox("box-b").ok());
  Advance(kInterval);
  EXPECT_TRUE(monitor_->Readiness().ok) << monitor_->Readiness().body;
}

// A pause is obeyed from the worker's first job: Start() reads the pauses
// before the thread runs. Then every round follows them, and a Redis that
// does not answer leaves them as they were.
TEST_F(MonitorTest, PausesHoldFromTheStartAndFollowEveryRound) {
  {
    std::lock_guard lock(pauses_->mu);
    pauses_->paused["box-b"] = BoxPause{"disk swap", "ops@host", "2026-01-01T00:00:00.000Z"};
  }
  monitor_ = std::make_unique<Monitor>(
      settings_,
      MonitorSources{std::move(queue_owned_), std::move(reports_owned_), std::move(pauses_owned_)},
      metrics_, registry_, [this] { return ping_; }, liveness_, clock_);
  monitor_->Start();
  auto admit = [&](const std::string& box) {
    return registry_.Admit(box, std::stop_token(), StoreRouter::Ticket());
  };
  auto paused = admit("box-b");
  ASSERT_TRUE(paused.defer_until.has_value()) << "a job of a paused box ran before a round";
  EXPECT_EQ(paused.reason, "Storage box box-b is paused: disk swap");
  EXPECT_FALSE(admit("box-a").defer_until.has_value());
  ASSERT_TRUE(clock_.AwaitSleepers(1));
  EXPECT_EQ(metrics_.box_paused.With({"box-b", "disk swap"}).Value(), 1);

  {
    std::lock_guard lock(pauses_->mu);
    pauses_->outage = true;
  }
  Advance(kInterval);
  EXPECT_TRUE(admit("box-b").defer_until.has_value()) << "an outage of Redis resumed the box";

  {
    std::lock_guard lock(pauses_->mu);
    pauses_->outage = false;
    pauses_->paused.clear();
  }
  Advance(kInterval);
  EXPECT_FALSE(admit("box-b").defer_until.has_value()) << "resumed, yet deferred";
  EXPECT_EQ(metrics_.box_paused.With({"box-b", "disk swap"}).Value(), 0);
}

// Whether the catalog has the indexes its queries need is asked every
// twelfth round that PostgreSQL answered, and shown in /readyz's body.
TEST_F(MonitorTest, AsksForSchemaAdviceEveryTwelfthRoundWhilePostgreSqlAnswers) {
  int asked = 0;
  settings_.schema_advice = [&asked] {
    ++asked;
    return std::vector<std::string>{"index media_files_unsynced is missing"};
  };
  Start();
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(ReadyBody()["schema"], Json::parse(R"(["index media_files_unsynced is missing"])"));
  EXPECT_TRUE(monitor_->Readiness().ok) << "a missing index made the worker unready";
  for (int round = 2; round <= 12; ++round) Advance(kInterval);
  EXPECT_EQ(asked, 1);
  ping_ = Error::Outage("PostgreSQL unavailable");
  Advance(kInterval);  // a round PostgreSQL did not answer is not counted
  EXPECT_EQ(asked, 1);
  ping_ = Ok();
  Advance(kInterval);
  EXPECT_EQ(asked, 2);
}

}  // namespace
}  // namespace media_sync::worker
