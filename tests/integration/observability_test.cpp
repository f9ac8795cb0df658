// What an operator watches: /metrics (counted against what really happened,
// and accepted by promtool), /readyz and /healthz while services fail, the
// per-job log line, and `media-sync status` against a known state.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "config/urls.h"
#include "core/job.h"
#include "queue/fleet_stats.h"
#include "support/throttled_link.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;  // 0: no answer
  std::string body;
};

class ObservabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  // A worker serving its endpoint on a port of its choosing.
  std::unique_ptr<WorkerProcess> StartWorker(std::map<std::string, std::string> env) {
    env.emplace("METRICS_ADDRESS", "127.0.0.1:0");
    auto worker = std::make_unique<WorkerProcess>(stack_, env);
    std::smatch match;
    static const std::regex kPort(R"(/readyz on 127\.0\.0\.1:0 \(port (\d+)\))");
    bool listening = WaitUntil(
        [&] {
          std::string log = worker->Log();
          if (std::regex_search(log, match, kPort)) port_ = std::stoi(match[1]);
          return port_ != 0 || !worker->Running();
        },
        20s);
    EXPECT_TRUE(listening && port_ != 0) << worker->Log();
    return worker;
  }

  Reply Get(const std::string& path) const {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(5, 0);
    auto result = client.Get(path.c_str());
    if (!result) return {};
    return {result->status, result->body};
  }

  // The scrape as "name{labels}" -> value.
  std::map<std::string, double> Scrape() const {
    std::map<std::string, double> samples;
    std::istringstream lines(Get("/metrics").body);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == '#') continue;
      auto space = line.rfind(' ');
      samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return samples;
  }

  double Sample(const std::string& name) const {
    auto samples = Scrape();
    auto it = samples.find(name);
    return it == samples.end() ? -1 : it->second;
  }

  Json StatusJson() const {
    std::string out;
    int code = RunStatus(StatusCommand() + " --json 2>&1", &out);
    EXPECT_EQ(code, 0) << out;
    return code == 0 ? Json::parse(out) : Json();
  }

  std::string StatusCommand() const {
    std::string env;
    for (const auto& [key, value] : stack_.Env()) env += key + "=" + ShellQuote(value) + " ";
    return "env " + env + MediaSyncBinary() + " status";
  }

  static const Json* Find(const Json& list, const std::string& key, const Json& value) {
    for (const auto& item : list) {
      if (item[key] == value) return &item;
    }
    return nullptr;
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
  int port_ = 0;
};

TEST_F(ObservabilityTest, MetricsCountWhatHappenedAndPromtoolAcceptsThem) {
  uint64_t bytes_a = 0;
  uint64_t bytes_b = 0;
  std::vector<Json> jobs;
  for (int i = 0; i < 5; ++i) {
    jobs.push_back(media_.Make(1000 + 100 * i, "box-a", 100 + i));
    bytes_a += 1000 + 100 * i;
  }
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(media_.Make(3000 + 10 * i, "box-b", 200 + i));
    bytes_b += 3000 + 10 * i;
  }
  Json missing = media_.Make(500, "box-a", 300);
  std::filesystem::remove(missing["local_path"].get<std::string>());
  for (const auto& job : jobs) media_.Push(job);
  media_.Push(missing);
  media_.PushRaw("{not json");

  auto worker = StartWorker({{"MAX_RETRIES", "0"}, {"LOG_FORMAT", "json"}});
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Sample("media_sync_jobs_total{outcome=\"synced\"}") == 9 &&
               Sample("media_sync_jobs_total{outcome=\"failed\"}") == 2;
      },
      30s))
      << Get("/metrics").body << worker->Log();

  auto samples = Scrape();
  EXPECT_EQ(samples["media_sync_job_faults_total{outcome=\"failed\",class=\"invalid_job\"}"], 1);
  EXPECT_EQ(samples["media_sync_job_faults_total{outcome=\"failed\",class=\"missing_file\"}"], 1);
  EXPECT_EQ(samples["media_sync_jobs_total{outcome=\"retry\"}"], 0);
  EXPECT_EQ(samples["media_sync_uploaded_bytes_total{box=\"box-a\"}"], bytes_a);
  EXPECT_EQ(samples["media_sync_uploaded_bytes_total{box=\"box-b\"}"], bytes_b);
  EXPECT_EQ(samples["media_sync_files_synced_total{box=\"box-a\"}"], 5);
  EXPECT_EQ(samples["media_sync_files_synced_total{box=\"box-b\"}"], 4);
  EXPECT_EQ(samples["media_sync_upload_duration_seconds_count{box=\"box-a\"}"], 5);
  EXPECT_EQ(samples["media_sync_job_duration_seconds_count"], 9);
  EXPECT_EQ(samples["media_sync_build_info{version=\"" MEDIA_SYNC_VERSION "\"}"], 1);
  EXPECT_GT(samples["process_resident_memory_bytes"], 1e6);
  EXPECT_GT(samples["process_open_fds"], 3);

  // Queue gauges come from the monitor's periodic read of Redis.
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto now = Scrape();
        return now["media_sync_queue_jobs{queue=\"failed\"}"] == 2 &&
               now["media_sync_queue_jobs{queue=\"pending\"}"] == 0 &&
               now["media_sync_live_workers"] == 1 && now["media_sync_box_up{box=\"box-b\"}"] == 1;
      },
      15s))
      << Get("/metrics").body;

  std::string scrape_file = stack_.StateDir() + "/scrape.txt";
  std::ofstream(scrape_file) << Get("/metrics").body;
  std::string lint;
  EXPECT_EQ(RunStatus("promtool check metrics < " + ShellQuote(scrape_file) + " 2>&1", &lint), 0)
      << lint;

  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->WaitExit(40s), 0);

  // One JSON log line per outcome, with the job's facts.
  std::istringstream log(worker->Log());
  std::string line;
  int synced_lines = 0;
  bool missing_line = false;
  while (std::getline(log, line)) {
    if (line.starts_with("summary: ")) continue;  // --drain's summary, on stdout
    Json entry = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(entry.is_discarded()) << "not JSON: " << line;
    if (entry["msg"] != "job") continue;
    if (entry["outcome"] == "synced") {
      ++synced_lines;
      EXPECT_EQ(entry["sha256"].get<std::string>().size(), 64u);
      EXPECT_TRUE(entry["size"].is_number());
      EXPECT_TRUE(entry["duration_ms"].is_number());
    }
    // A job deferred while its box has not answered yet (the worker's first
    // second; the box's first jobs are in flight) waits, no attempt counted:
    // its one outcome comes later.
    if (entry["sha256"] == missing["sha256"] && entry["outcome"] != "deferred") {
      EXPECT_FALSE(missing_line) << "a second outcome: " << line;
      missing_line = true;
      EXPECT_EQ(entry["outcome"], "failed");
      EXPECT_EQ(entry["class"], "missing_file");
      EXPECT_EQ(entry["box"], "box-a");
      EXPECT_THAT(entry["error"].get<std::string>(),
                  HasSubstr("File missing from both local buffer and MinIO"));
    }
  }
  EXPECT_EQ(synced_lines, 9);
  EXPECT_TRUE(missing_line);
}

// A lone storage box a round trip away (a link that holds every chunk 30 ms
// each way), the worker on its defaults: the box's limit of uploads in
// flight grows from its first 4 while the latency holds (slow start), and
// /metrics and status show it; each file costs one request; and no job is
// deferred, since the job threads take only what the box can take.
TEST_F(ObservabilityTest, ALoneDistantBoxGetsTheConcurrencyItCanUseAndNoJobIsDeferred) {
  ThrottledLink link(stack_, stack_.Get("MINIO_ENDPOINT"), /*rate=*/0, 30ms);
  const std::string scheme = stack_.Get("MINIO_SECURE") == "true" ? "https://" : "http://";
  stack_.Sql("UPDATE storage_boxes SET minio_endpoint = '" + scheme + link.endpoint() +
             "' WHERE id = 'box-a'");
  constexpr int kJobs = 600;
  std::vector<Json> jobs = media_.MakeMany(kJobs, 4096, "box-a", 5000);
  media_.PushAll(jobs);

  auto worker = StartWorker({});
  double highest = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        highest = std::max(highest, Sample("media_sync_box_concurrency_limit{box=\"box-a\"}"));
        return media_.SyncedRows("box-a") == kJobs;
      },
      120s))
      << media_.QueueState() << worker->Log();
  EXPECT_GE(highest, 16) << "the limit did not grow while the latency held";
  // A row is committed before its worker counts the job: wait for the count.
  EXPECT_TRUE(WaitUntil(
      [&] { return Sample("media_sync_files_synced_total{box=\"box-a\"}") == kJobs; }, 10s));

  auto samples = Scrape();
  EXPECT_EQ(samples["media_sync_jobs_total{outcome=\"deferred\"}"], 0) << worker->Log();
  EXPECT_EQ(samples["media_sync_files_synced_total{box=\"box-a\"}"], kJobs);
  // One PutObject per file, and the bucket's check.
  EXPECT_LE(samples["media_sync_s3_requests_total{box=\"box-a\"}"], kJobs + 3);
  EXPECT_LE(samples["media_sync_s3_connections_total{box=\"box-a\"}"],
            samples["media_sync_box_concurrency_limit{box=\"box-a\"}"] + 128)
      << "connections are kept, not opened per file";
  EXPECT_GE(samples["media_sync_box_latency_seconds{box=\"box-a\"}"], 0.06) << "a 60 ms round trip";

  // status shows the box's limit and latency, as its worker last reported them.
  EXPECT_TRUE(WaitUntil(
      [&] {
        Json status = StatusJson();
        const Json* box = Find(status["boxes"], "id", "box-a");
        return box != nullptr && (*box)["concurrency_limit"].is_number() &&
               (*box)["latency_seconds"].get<double>() >= 0.06;
      },
      20s));
  media_.ExpectSyncedExactlyOnce(jobs);
}

TEST_F(ObservabilityTest, ReadinessNamesWhatIsDownWhileHealthStaysGreen) {
  Json job = media_.Make(2048, "box-a", 400);
  media_.Push(job);
  auto worker = StartWorker({});
  ASSERT_TRUE(WaitUntil([&] { return Get("/readyz").status == 200; }, 20s)) << Get("/readyz").body;
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 1; }, 20s));

  stack_.Stop("postgres");
  bool not_ready = WaitUntil([&] { return Get("/readyz").status == 503; }, 20s);
  Reply ready = Get("/readyz");
  Reply health = Get("/healthz");
  stack_.Start("postgres");
  ASSERT_TRUE(not_ready) << ready.body;
  Json body = Json::parse(ready.body);
  EXPECT_EQ(body["ready"], false);
  EXPECT_THAT(body["postgres"].get<std::string>(), HasSubstr("down"));
  EXPECT_EQ(body["redis"], "up");
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_TRUE(WaitUntil([&] { return Get("/readyz").status == 200; }, 30s)) << Get("/readyz").body;

  // A buffer that is gone is named too.
  std::string buffer = stack_.BufferDir();
  std::filesystem::rename(buffer, buffer + ".moved");
  not_ready = WaitUntil([&] { return Get("/readyz").status == 503; }, 20s);
  ready = Get("/readyz");
  std::filesystem::rename(buffer + ".moved", buffer);
  ASSERT_TRUE(not_ready);
  EXPECT_THAT(Json::parse(ready.body)["buffer"].get<std::string>(), HasSubstr("down"));
  EXPECT_TRUE(WaitUntil([&] { return Get("/readyz").status == 200; }, 20s));
  EXPECT_EQ(Get("/healthz").status, 200);

  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->WaitExit(40s), 0);
}

TEST_F(ObservabilityTest, HealthTurnsRedWhileAJobThreadMakesNoProgress) {
  auto worker = StartWorker({{"HEALTH_STALL_SECONDS", "3"},
                             {"OUTAGE_BACKOFF_MAX_SECONDS", "1"},
                             {"S3_LOW_SPEED_SECONDS", "120"},
                             {"SYNC_CONCURRENCY", "2"}});
  ASSERT_TRUE(WaitUntil([&] { return Get("/healthz").status == 200; }, 20s));
  Json job = media_.Make(64 * 1024, "box-b", 500);
  {
    // A hung box: connections are accepted, nothing is answered.
    ScopedFreeze box_b(stack_.Pid("s3-2"));
    media_.Push(job);
    bool red = WaitUntil([&] { return Get("/healthz").status == 503; }, 20s);
    Reply health = Get("/healthz");
    ASSERT_TRUE(red) << health.body;
    Json body = Json::parse(health.body);
    EXPECT_EQ(body["healthy"], false);
    ASSERT_EQ(body["stalled"].size(), 1u) << health.body;  // only the thread inside the job
    EXPECT_THAT(body["stalled"][0]["thread"].get<std::string>(), HasSubstr("job-"));
  }
  EXPECT_TRUE(WaitUntil([&] { return Get("/healthz").status == 200; }, 20s))
      << Get("/healthz").body;
  EXPECT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 1; }, 20s));
  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->WaitExit(40s), 0);
}

TEST_F(ObservabilityTest, AWorkerReportsABoxDownAndBackUpInStatusMetricsAndReadiness) {
  auto worker = StartWorker({{"OUTAGE_BACKOFF_MAX_SECONDS", "2"}});
  stack_.Stop("s3-2");
  Json job = media_.Make(4096, "box-b", 600);
  media_.Push(job);
  auto box_b_state = [&] {
    Json now = StatusJson();
    const Json* box = Find(now["boxes"], "id", "box-b");
    return box == nullptr ? std::string() : (*box)["state"].get<std::string>();
  };
  bool down = WaitUntil([&] { return box_b_state() == "down"; }, 30s);
  Json status = StatusJson();
  double box_up = Sample("media_sync_box_up{box=\"box-b\"}");
  Reply ready = Get("/readyz");
  stack_.Start("s3-2");
  ASSERT_TRUE(down) << status.dump(2);
  const Json* box = Find(status["boxes"], "id", "box-b");
  EXPECT_THAT((*box)["error"].get<std::string>(), HasSubstr("connect"));  // the real failure
  EXPECT_EQ((*box)["endpoint"], "http://" + stack_.Get("STACK_S3_2_ENDPOINT"));
  EXPECT_EQ(status["healthy"], false);
  EXPECT_THAT(status["problems"].dump(), HasSubstr("box box-b is down"));
  EXPECT_EQ(box_up, 0);
  // box-b is the only box this worker has used: nothing it could upload to.
  EXPECT_EQ(ready.status, 503) << ready.body;
  EXPECT_THAT(Json::parse(ready.body)["boxes"]["box-b"].get<std::string>(), HasSubstr("down"));

  EXPECT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 1; }, 30s)) << worker->Log();
  EXPECT_TRUE(WaitUntil([&] { return box_b_state() == "up"; }, 20s));
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->WaitExit(40s), 0);
}

TEST_F(ObservabilityTest, StatusReportsAKnownState) {
  auto old_job = [&](uint64_t seed, const std::string& queued_at) {
    Json job = media_.Make(1000, "box-a", seed);
    job["queued_at"] = queued_at;
    return job;
  };
  auto ago = [](std::chrono::seconds age) {
    return IsoTimestamp(std::chrono::system_clock::now() - age);
  };
  // Pending: the first pushed is served first, so it is the oldest.
  Json oldest = old_job(700, ago(600s));
  media_.Push(oldest);
  media_.Push(old_job(701, ago(60s)));
  stack_.RedisCli("ZADD media:sync:delayed 99999999999999 " +
                  ShellQuote(old_job(702, ago(5s)).dump()));
  stack_.RedisCli(
      "LPUSH media:sync:failed " +
      ShellQuote(
          R"({"raw":"x","error":"Invalid job","failed_at":"2024-01-01T00:00:00Z","attempts":1})"));
  // A live worker holding one job, a dead one (no heartbeat) holding two.
  Json held = old_job(703, ago(30s));
  stack_.RedisCli("SADD media:sync:workers live-1 dead-1");
  stack_.RedisCli("SET media:sync:worker:live-1 '{}' EX 120");
  stack_.RedisCli("LPUSH media:sync:processing:live-1 " + ShellQuote(held.dump()));
  stack_.RedisCli("LPUSH media:sync:processing:dead-1 " +
                  ShellQuote(old_job(704, ago(30s)).dump()) + " " +
                  ShellQuote(old_job(705, ago(30s)).dump()));
  stack_.RedisCli(
      "HSET media:sync:boxes box-b " +
      ShellQuote(
          R"({"endpoint":"http://10.9.9.9:9000","up":false,"error":"connection refused","worker":"live-1","reported_at":"2026-01-01T00:00:00.000Z"})"));
  stack_.Sql("UPDATE storage_boxes SET used_bytes = 123456 WHERE id = 'box-a'");

  Json status = StatusJson();
  EXPECT_EQ(status["queues"]["pending"], 2);
  EXPECT_EQ(status["queues"]["delayed"], 1);
  EXPECT_EQ(status["queues"]["failed"], 1);
  EXPECT_EQ(status["queues"]["processing"], 3);
  double age = status["oldest_pending_age_seconds"].get<double>();
  EXPECT_GE(age, 600);
  EXPECT_LT(age, 660);
  EXPECT_EQ(status["live_workers"], 1);
  const Json* live = Find(status["workers"], "id", "live-1");
  const Json* dead = Find(status["workers"], "id", "dead-1");
  ASSERT_NE(live, nullptr);
  ASSERT_NE(dead, nullptr);
  EXPECT_EQ((*live)["live"], true);
  EXPECT_EQ((*live)["held"], 1);
  EXPECT_EQ((*live)["jobs"][0]["key"], held["s3_key"]);
  EXPECT_EQ((*dead)["live"], false);
  EXPECT_EQ((*dead)["held"], 2);
  const Json* box_a = Find(status["boxes"], "id", "box-a");
  const Json* box_b = Find(status["boxes"], "id", "box-b");
  ASSERT_NE(box_a, nullptr);
  ASSERT_NE(box_b, nullptr);
  EXPECT_EQ((*box_a)["used_bytes"], 123456);
  EXPECT_EQ((*box_a)["reserved_bytes"], 6 * 1000);  // every Make above reserved its size
  EXPECT_EQ((*box_a)["unsynced_rows"], 6);
  EXPECT_EQ((*box_a)["state"], "unknown");  // no worker has reported on it
  EXPECT_EQ((*box_b)["state"], "down");
  EXPECT_EQ((*box_b)["error"], "connection refused");
  EXPECT_EQ(status["unsynced_rows"], 6);
  EXPECT_EQ(status["healthy"], false);
  std::string problems = status["problems"].dump();
  EXPECT_THAT(problems, HasSubstr("box box-b is down"));
  EXPECT_THAT(problems, HasSubstr("worker dead-1 is gone"));
  EXPECT_THAT(problems, HasSubstr("1 failed jobs"));

  std::string text;
  ASSERT_EQ(RunStatus(StatusCommand() + " 2>&1", &text), 0) << text;
  EXPECT_THAT(text, HasSubstr("pending 2 (oldest 10m"));
  EXPECT_THAT(text, HasSubstr("lease expired"));
  EXPECT_THAT(text, HasSubstr("connection refused"));
}

// Throughput is files over the time a worker ran, not over the window: two
// workers that ran only within the last minute of the five (one from 40 s
// ago, one from 20 s ago, reporting every 5 s as the monitor does) show the
// rate they synced at, their overlap counted once.
TEST_F(ObservabilityTest, StatusDividesThroughputByTheTimeAWorkerRan) {
  config::RedisAddress redis;
  redis.host = "127.0.0.1";
  redis.port = std::stoi(stack_.Get("STACK_REDIS_PORT"));
  queue::FleetStats fleet(redis);
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  auto report = [&](int from_seconds_ago, uint64_t files_per_round) {
    auto ran_from = now - std::chrono::seconds(from_seconds_ago);
    for (auto round = ran_from + 5s; round <= now; round += 5s) {
      ASSERT_TRUE(fleet.ReportRound(files_per_round, files_per_round * 1000, ran_from, round).ok());
      ran_from = round;
    }
  };
  report(40, 50);  // 8 rounds: 400 files over 41 seconds
  report(20, 30);  // 4 rounds: 120 files, within the same seconds

  Json status = StatusJson();
  // Read within a few seconds of `now`: every round is in the last minute.
  const Json& five = status["throughput"];
  ASSERT_TRUE(five.contains("running_seconds") && five.contains("last_minute")) << five.dump();
  const Json& minute = five["last_minute"];
  EXPECT_EQ(five["files"], 520);
  EXPECT_EQ(five["bytes"], 520000);
  EXPECT_EQ(five["running_seconds"], 41);
  EXPECT_GE(five["window_seconds"].get<int64_t>(), 300);
  EXPECT_NEAR(five["files_per_second"].get<double>(), 520.0 / 41, 1e-9);
  EXPECT_NEAR(five["bytes_per_second"].get<double>(), 520000.0 / 41, 1e-6);
  EXPECT_EQ(minute["window_seconds"], 60);
  EXPECT_EQ(minute["files"], 520);
  EXPECT_EQ(minute["running_seconds"], 41);
  EXPECT_NEAR(minute["files_per_second"].get<double>(), 520.0 / 41, 1e-9);

  std::string text;
  ASSERT_EQ(RunStatus(StatusCommand() + " 2>&1", &text), 0) << text;
  EXPECT_THAT(text, HasSubstr("throughput  12.68 files/s, 12.7 KB/s in the last minute; "
                              "12.68 files/s, 12.7 KB/s in the last 5m"));
  EXPECT_THAT(text, HasSubstr("(41s of it with a worker running)"));
}

// The same with a real worker that started moments ago: its rate is what it
// synced over the seconds it ran, whatever the five-minute window.
TEST_F(ObservabilityTest, StatusShowsTheRateOfAWorkerThatJustStarted) {
  std::vector<Json> jobs = media_.MakeMany(30, 2048, "box-b", 800);
  media_.PushAll(jobs);
  const auto started = std::chrono::steady_clock::now();
  WorkerProcess worker(stack_, {{"LOG_LEVEL", "info"}});
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 30; }, 60s)) << worker.Log();
  // The monitor reports every 5 s.
  Json status;
  ASSERT_TRUE(WaitUntil(
      [&] {
        status = StatusJson();
        return status["throughput"]["files"] == 30;
      },
      20s))
      << status.dump();
  const double ran =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const Json& five = status["throughput"];
  ASSERT_TRUE(five.contains("running_seconds") && five.contains("last_minute")) << five.dump();
  const Json& minute = five["last_minute"];
  ASSERT_GT(five["running_seconds"].get<int64_t>(), 0);
  EXPECT_LE(five["running_seconds"].get<double>(), ran + 2);
  EXPECT_GE(five["files_per_second"].get<double>(), 30 / (ran + 2));
  EXPECT_EQ(minute["files"], 30);
  EXPECT_EQ(minute["running_seconds"], five["running_seconds"]);
  EXPECT_NEAR(minute["files_per_second"].get<double>(),
              30.0 / minute["running_seconds"].get<double>(), 1e-9);
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitExit(60s), 0) << worker.Log();
}

}  // namespace
}  // namespace media_sync::testing
