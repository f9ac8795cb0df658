// `media-sync boxes pause` and `resume` against a running worker: the
// paused box's jobs wait in the delayed set (no attempt counted, no job
// thread held) while the other box's jobs sync; status, `boxes list` and
// /metrics show the pause and its reason; resume drains the box.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <regex>
#include <sstream>

#include "support/cli_runner.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class BoxPauseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  // `run` serving its metrics on a port of its choosing.
  std::unique_ptr<WorkerProcess> StartWorker() {
    auto worker = std::make_unique<WorkerProcess>(
        stack_, std::map<std::string, std::string>{{"METRICS_ADDRESS", "127.0.0.1:0"}});
    static const std::regex kPort(R"(/readyz on 127\.0\.0\.1:0 \(port (\d+)\))");
    EXPECT_TRUE(WaitUntil(
        [&] {
          std::smatch match;
          std::string log = worker->Log();
          if (std::regex_search(log, match, kPort)) port_ = std::stoi(match[1]);
          return port_ != 0 || !worker->Running();
        },
        20s))
        << worker->Log();
    return worker;
  }
  // The sample "name{labels}" of the worker's /metrics, -1 when absent.
  double Sample(const std::string& name) const {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(5, 0);
    auto result = client.Get("/metrics");
    if (!result) return -1;
    std::istringstream lines(result->body);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    return -1;
  }
  std::vector<Json> DelayedJobs() const {
    std::vector<Json> jobs;
    std::istringstream lines(stack_.RedisCli("ZRANGE media:sync:delayed 0 -1"));
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty()) jobs.push_back(Json::parse(line));
    }
    return jobs;
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
  int port_ = 0;
};

TEST_F(BoxPauseTest, APausedBoxsJobsWaitWithoutAttemptsWhileTheOtherBoxSyncsAndResumeDrainsIt) {
  auto worker = StartWorker();
  CliOutcome paused = RunCli(stack_, "boxes pause box-b --reason 'disk swap'");
  ASSERT_EQ(paused.code, 0) << paused.all();
  EXPECT_THAT(paused.out, HasSubstr("box box-b paused: disk swap"));
  ASSERT_TRUE(WaitUntil(
      [&] { return CountOccurrences(worker->Log(), "storage box box-b paused by ") > 0; }, 10s))
      << worker->Log();

  std::vector<Json> box_a;
  std::vector<Json> box_b;
  for (int i = 0; i < 4; ++i) {
    box_a.push_back(media_.Make(2000 + static_cast<uint64_t>(i), "box-a", 1000 + i));
    box_b.push_back(media_.Make(3000 + static_cast<uint64_t>(i), "box-b", 1100 + i));
  }
  media_.PushAll(box_a);
  media_.PushAll(box_b);

  // The other box flows; the paused box's jobs wait in the delayed set,
  // none held by a job thread, none retried.
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows("box-a") == 4; }, 30s)) << worker->Log();
  ASSERT_TRUE(WaitUntil([&] { return media_.DelayedCount() == 4; }, 15s)) << media_.QueueState();
  for (const Json& job : DelayedJobs()) {
    EXPECT_EQ(job["storage_box_id"], "box-b");
    EXPECT_EQ(job.value("retry_count", 0), 0) << job.dump();
  }
  EXPECT_EQ(media_.SyncedRows("box-b"), 0);
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  for (const Json& job : box_b) EXPECT_TRUE(media_.LocalExists(job));
  EXPECT_EQ(Sample(R"(media_sync_box_paused{box="box-b",reason="disk swap"})"), 1);
  EXPECT_GE(Sample(R"(media_sync_jobs_total{outcome="deferred"})"), 4);
  EXPECT_EQ(Sample(R"(media_sync_job_faults_total{outcome="retry",class="other"})"), -1);

  // status and boxes list name the pause and its reason.
  CliOutcome status = RunCli(stack_, "status --json");
  Json boxes = Json::parse(status.out)["boxes"];
  bool shown = false;
  for (const Json& box : boxes) {
    if (box["id"] == "box-b") {
      shown = box["paused"] == true && box["pause"]["reason"] == "disk swap";
    } else {
      EXPECT_EQ(box["paused"], false) << box.dump();
    }
  }
  EXPECT_TRUE(shown) << status.out;
  CliOutcome status_text = RunCli(stack_, "status");
  EXPECT_THAT(status_text.out, HasSubstr("paused by "));
  EXPECT_THAT(status_text.out, HasSubstr(": disk swap\n"));
  EXPECT_THAT(RunCli(stack_, "boxes list").out, HasSubstr("    paused by "));

  CliOutcome resumed = RunCli(stack_, "boxes resume box-b");
  ASSERT_EQ(resumed.code, 0) << resumed.all();
  EXPECT_THAT(resumed.out, HasSubstr("box box-b resumed"));
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows("box-b") == 4; }, 45s))
      << media_.QueueState() << worker->Log();
  EXPECT_TRUE(WaitUntil(
      [&] { return Sample(R"(media_sync_box_paused{box="box-b",reason="disk swap"})") == 0; },
      10s));
  std::vector<Json> all = box_a;
  all.insert(all.end(), box_b.begin(), box_b.end());
  media_.ExpectSyncedExactlyOnce(all);
  EXPECT_THAT(worker->Log(), HasSubstr("storage box box-b resumed"));
  EXPECT_EQ(RunCli(stack_, "boxes resume box-b").out, "box box-b was not paused: nothing to do\n");
}

TEST_F(BoxPauseTest, PausingABoxTheCatalogDoesNotKnowIsBadUsage) {
  CliOutcome outcome = RunCli(stack_, "boxes pause nope --reason x");
  EXPECT_EQ(outcome.code, 2) << outcome.all();
  EXPECT_THAT(outcome.err, HasSubstr("no storage box nope in storage_boxes"));
  EXPECT_EQ(Trim(stack_.RedisCli("HLEN media:sync:paused")), "0");
}

}  // namespace
}  // namespace media_sync::testing
