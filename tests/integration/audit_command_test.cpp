// `media-sync audit` against the real stack: on a known state (objects
// deleted, overwritten with other bytes of the same size, orphans, a counter
// changed by hand) it names exactly those problems; --repair sets right what
// can be (objects whose local copy is in the buffer, counters, orphans with
// --delete-orphans); a second audit then finds only what needs a person. An
// interrupted run continues from its cursor in Redis. `run` with
// AUDIT_INTERVAL_SECONDS audits in the background and exports what the last
// full pass found.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "core/hash.h"
#include "core/job.h"
#include "s3/s3_client.h"
#include "support/cli_runner.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// class, box, sha256, key of each problem an audit printed with --json.
using Named = std::tuple<std::string, std::string, std::string, std::string>;

class AuditCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  // A client of the server that holds `box`'s objects.
  s3::S3Client Client(const std::string& box) const {
    s3::S3Options options;
    options.endpoint = stack_.Get(box == "box-b" ? "STACK_S3_2_ENDPOINT" : "MINIO_ENDPOINT");
    options.access_key = stack_.Get("MINIO_ACCESS_KEY");
    options.secret_key = stack_.Get("MINIO_SECRET_KEY");
    options.bucket = stack_.Get("MINIO_BUCKET");
    return s3::S3Client(options, nullptr);
  }
  static std::string Sha(const Json& job) { return job["sha256"].get<std::string>(); }
  static std::string Key(const Json& job) { return job["s3_key"].get<std::string>(); }
  static std::string Box(const Json& job) { return job["storage_box_id"].get<std::string>(); }

  // Files synced by a worker: rows, counters, objects; the buffer empty.
  std::vector<Json> SyncFiles(int count, const std::string& box, uint64_t first_seed) {
    std::vector<Json> jobs;
    for (int i = 0; i < count; ++i) {
      jobs.push_back(media_.Make(1000 + static_cast<uint64_t>(i) * 37, box,
                                 first_seed + static_cast<uint64_t>(i)));
    }
    return jobs;
  }
  void DrainQueue() {
    WorkerProcess worker(stack_, {}, {"run", "--drain"});
    ASSERT_EQ(worker.WaitExit(120s), 0) << worker.Log();
    EXPECT_EQ(media_.Len("media:sync:failed"), 0) << worker.Log();
  }
  void Delete(const Json& job) { ASSERT_TRUE(Client(Box(job)).DeleteObject(Key(job)).ok()); }
  // Other bytes of the same size under the job's key; `claimed_sha256` as
  // its x-amz-meta-sha256 (the object then looks right to HeadObject).
  void Overwrite(const Json& job, const std::string& claimed_sha256) {
    std::string bytes(job["file_size"].get<size_t>(), 'x');
    s3::Payload payload{std::span<const char>(bytes.data(), bytes.size()), Sha256Hex(bytes), ""};
    std::map<std::string, std::string> metadata;
    if (!claimed_sha256.empty()) metadata["sha256"] = claimed_sha256;
    auto put = Client(Box(job)).PutObject(Key(job), payload, metadata);
    ASSERT_TRUE(put.ok()) << put.error().message;
  }
  void PutStray(const std::string& box, const std::string& key, const std::string& bytes) {
    s3::Payload payload{std::span<const char>(bytes.data(), bytes.size()), Sha256Hex(bytes), ""};
    ASSERT_TRUE(Client(box).PutObject(key, payload, {}).ok());
  }
  // The job's file back in the buffer, as an operator restores it.
  void RestoreLocal(const Json& job, uint64_t seed) {
    media_.Make(job["file_size"].get<uint64_t>(), Box(job), seed, "jpg", /*insert_row=*/false);
    ASSERT_TRUE(media_.LocalExists(job));
  }
  std::set<Named> Problems(const CliOutcome& outcome) const {
    std::set<Named> named;
    auto json = Json::parse(outcome.out, nullptr, false);
    EXPECT_FALSE(json.is_discarded()) << outcome.all();
    if (json.is_discarded()) return named;
    for (const Json& problem : json["problems"]) {
      named.emplace(problem["class"], problem["box"], problem["sha256"], problem["key"]);
    }
    return named;
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

TEST_F(AuditCommandTest, NamesExactlyWhatIsWrongRepairsWhatItCanAndLeavesTheRest) {
  std::vector<Json> a = SyncFiles(8, "box-a", 500);
  std::vector<Json> b = SyncFiles(6, "box-b", 600);
  media_.PushAll(a);
  media_.PushAll(b);
  ASSERT_NO_FATAL_FAILURE(DrainQueue());

  CliOutcome clean = RunCli(stack_, "audit --deep");
  ASSERT_EQ(clean.code, 0) << clean.all();
  EXPECT_THAT(clean.out, HasSubstr("audit: nothing wrong"));
  EXPECT_THAT(clean.out, HasSubstr("box box-a: 8 synced rows, 0 missing, 0 damaged; counters "
                                   "right"));

  // Three objects deleted: two with their local copy back in the buffer.
  const Json& missing_restored_a = a[0];
  const Json& missing_lost_a = a[1];
  const Json& missing_restored_b = b[0];
  for (const Json* job : {&missing_restored_a, &missing_lost_a, &missing_restored_b}) {
    ASSERT_NO_FATAL_FAILURE(Delete(*job));
  }
  ASSERT_NO_FATAL_FAILURE(RestoreLocal(missing_restored_a, 500));
  ASSERT_NO_FATAL_FAILURE(RestoreLocal(missing_restored_b, 600));
  // Two overwritten with other bytes of the same size: one keeps its
  // x-amz-meta-sha256 (only reading it back shows the damage) and has its
  // local copy; the other has neither.
  const Json& damaged_restored_a = a[2];
  const Json& damaged_lost_b = b[1];
  ASSERT_NO_FATAL_FAILURE(Overwrite(damaged_restored_a, Sha(damaged_restored_a)));
  ASSERT_NO_FATAL_FAILURE(Overwrite(damaged_lost_b, Sha(damaged_lost_b)));
  ASSERT_NO_FATAL_FAILURE(RestoreLocal(damaged_restored_a, 502));
  // Two orphans: a content key no row names, and a key of no known shape.
  const std::string orphan_bytes = "left behind by a crash";
  const std::string orphan_sha = Sha256Hex(orphan_bytes);
  const std::string orphan_key = ContentKey(orphan_sha, "bin");
  ASSERT_NO_FATAL_FAILURE(PutStray("box-a", orphan_key, orphan_bytes));
  ASSERT_NO_FATAL_FAILURE(PutStray("box-b", "media/by-hand/notes.txt", "copied in by hand"));
  // One counter changed by hand.
  stack_.Sql("UPDATE storage_boxes SET used_bytes = used_bytes + 12345 WHERE id = 'box-b'");

  const std::set<Named> expected = {
      {"missing", "box-a", Sha(missing_restored_a), Key(missing_restored_a)},
      {"missing", "box-a", Sha(missing_lost_a), Key(missing_lost_a)},
      {"missing", "box-b", Sha(missing_restored_b), Key(missing_restored_b)},
      {"damaged", "box-a", Sha(damaged_restored_a), Key(damaged_restored_a)},
      {"damaged", "box-b", Sha(damaged_lost_b), Key(damaged_lost_b)},
      {"orphan", "box-a", orphan_sha, orphan_key},
      {"orphan", "box-b", "", "media/by-hand/notes.txt"},
      {"counter_drift", "box-b", "", ""},
  };

  // Listing alone: what sizes and names show; bytes of the right size that
  // are wrong need --deep.
  CliOutcome listing = RunCli(stack_, "audit --json");
  EXPECT_EQ(listing.code, 1) << listing.all();
  std::set<Named> without_damaged = expected;
  without_damaged.erase({"damaged", "box-a", Sha(damaged_restored_a), Key(damaged_restored_a)});
  without_damaged.erase({"damaged", "box-b", Sha(damaged_lost_b), Key(damaged_lost_b)});
  EXPECT_EQ(Problems(listing), without_damaged) << listing.out;

  CliOutcome deep = RunCli(stack_, "audit --deep --json");
  EXPECT_EQ(deep.code, 1) << deep.all();
  EXPECT_EQ(Problems(deep), expected) << deep.out;
  auto report = Json::parse(deep.out);
  EXPECT_EQ(report["found"]["missing"], 3);
  EXPECT_EQ(report["found"]["damaged"], 2);
  EXPECT_EQ(report["found"]["orphan"], 2);
  EXPECT_EQ(report["found"]["counter_drift"], 1);
  EXPECT_EQ(report["remaining"], 8);
  EXPECT_EQ(media_.Len("media:sync:pending"), 0) << "an audit without --repair changes nothing";

  CliOutcome repair = RunCli(stack_, "audit --deep --repair --delete-orphans");
  EXPECT_EQ(repair.code, 1) << repair.all();
  EXPECT_THAT(repair.out, HasSubstr(Sha(missing_restored_a) + "  " + Key(missing_restored_a) +
                                    "  no object  [re-upload queued]"));
  EXPECT_THAT(repair.out, HasSubstr(Key(missing_lost_a) + "  no object  [not repaired: no local "
                                                          "copy in the buffer; needs a person]"));
  EXPECT_THAT(repair.out, HasSubstr(Key(damaged_restored_a) + "  content hashes to "));
  EXPECT_THAT(repair.out,
              HasSubstr("media/by-hand/notes.txt  17 bytes, no row names it  [deleted]"));
  EXPECT_THAT(repair.out, HasSubstr("[set to used_bytes "));
  EXPECT_THAT(repair.out, HasSubstr("8 problems (3 missing, 2 damaged, 2 orphans, 1 counter "
                                    "drifts), 6 fixed, 2 remain"));
  EXPECT_EQ(media_.Len("media:sync:pending"), 3);
  EXPECT_FALSE(media_.ObjectExists(orphan_key, "box-a"));
  EXPECT_FALSE(media_.ObjectExists("media/by-hand/notes.txt", "box-b"));
  EXPECT_EQ(media_.UsedBytes("box-b"),
            std::stoll(Trim(stack_.Sql("SELECT sum(file_size) FROM media_files WHERE "
                                       "storage_box_id = 'box-b'"))));

  // The job path uploads them again; the rows were synced: no counter moves.
  int64_t used_a = media_.UsedBytes("box-a");
  ASSERT_NO_FATAL_FAILURE(DrainQueue());
  for (const Json* job : {&missing_restored_a, &missing_restored_b, &damaged_restored_a}) {
    EXPECT_TRUE(media_.ObjectStored(*job)) << Key(*job);
    EXPECT_FALSE(media_.LocalExists(*job)) << Key(*job);
  }
  EXPECT_EQ(media_.UsedBytes("box-a"), used_a);

  CliOutcome after = RunCli(stack_, "audit --deep --json");
  EXPECT_EQ(after.code, 1) << after.all();
  EXPECT_EQ(Problems(after),
            (std::set<Named>{{"missing", "box-a", Sha(missing_lost_a), Key(missing_lost_a)},
                             {"damaged", "box-b", Sha(damaged_lost_b), Key(damaged_lost_b)}}))
      << after.out;
}

TEST_F(AuditCommandTest, AnInterruptedRunContinuesFromItsCursor) {
  std::vector<Json> jobs = SyncFiles(6, "box-b", 700);
  media_.PushAll(jobs);
  ASSERT_NO_FATAL_FAILURE(DrainQueue());
  std::vector<Json> sorted = jobs;
  std::sort(sorted.begin(), sorted.end(),
            [](const Json& x, const Json& y) { return Sha(x) < Sha(y); });
  // A run that stopped after the third row: rows and keys up to it done.
  const std::string target =
      "http://" + stack_.Get("STACK_S3_2_ENDPOINT") + "/" + stack_.Get("MINIO_BUCKET");
  const std::string third = Sha(sorted[2]);
  stack_.RedisCli(
      "HSET " + ShellQuote("media:sync:audit:cursor:cli:" + target) + " after_sha256 " + third +
      " after_key " +
      ShellQuote("media/" + third.substr(0, 2) + "/" + third.substr(2, 2) + "/" + third + "/") +
      " mode listing started_at 1 finished_at 0 done 0 count.objects 3 "
      "count.rows/box-b 3 count.missing/box-b 1");
  // Behind the cursor: not looked at again. Ahead of it: found.
  ASSERT_NO_FATAL_FAILURE(Delete(sorted[1]));
  ASSERT_NO_FATAL_FAILURE(Delete(sorted[4]));

  CliOutcome resumed = RunCli(stack_, "audit --box box-b");
  EXPECT_EQ(resumed.code, 1) << resumed.all();
  EXPECT_THAT(resumed.out, HasSubstr(Key(sorted[4]) + "  no object"));
  EXPECT_THAT(resumed.out, Not(HasSubstr(Key(sorted[1]))));
  // The counts of the part before the interruption are kept.
  EXPECT_THAT(resumed.out, HasSubstr("box box-b: 6 synced rows, 2 missing, 0 damaged"));
  EXPECT_THAT(resumed.out, HasSubstr("(continued an unfinished run)"));
  EXPECT_EQ(Trim(stack_.RedisCli("EXISTS " + ShellQuote("media:sync:audit:cursor:cli:" + target))),
            "0")
      << "a finished run clears its cursor";

  CliOutcome fresh = RunCli(stack_, "audit --box box-b");
  EXPECT_EQ(fresh.code, 1) << fresh.all();
  EXPECT_THAT(fresh.out, HasSubstr(Key(sorted[1]) + "  no object"));
  EXPECT_THAT(fresh.out, HasSubstr(Key(sorted[4]) + "  no object"));
}

// `run` serving its metrics on a port of its choosing, and its scrape.
class MetricsOf {
 public:
  MetricsOf(const LocalStack& stack, std::map<std::string, std::string> env) {
    env.emplace("METRICS_ADDRESS", "127.0.0.1:0");
    worker_ = std::make_unique<WorkerProcess>(stack, env);
    static const std::regex kPort(R"(/readyz on 127\.0\.0\.1:0 \(port (\d+)\))");
    EXPECT_TRUE(WaitUntil(
        [&] {
          std::smatch match;
          std::string log = worker_->Log();
          if (std::regex_search(log, match, kPort)) port_ = std::stoi(match[1]);
          return port_ != 0 || !worker_->Running();
        },
        20s))
        << worker_->Log();
  }
  // The sample "name{labels}", -1 when absent or unanswered.
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
  std::string Log() const { return worker_->Log(); }

 private:
  std::unique_ptr<WorkerProcess> worker_;
  int port_ = 0;
};

TEST_F(AuditCommandTest, RunAuditsInTheBackgroundAndExportsTheLastFullPass) {
  std::vector<Json> jobs = SyncFiles(4, "box-b", 800);
  media_.PushAll(jobs);
  ASSERT_NO_FATAL_FAILURE(DrainQueue());
  ASSERT_NO_FATAL_FAILURE(Delete(jobs[2]));
  const std::map<std::string, std::string> env = {{"AUDIT_INTERVAL_SECONDS", "1"},
                                                  {"AUDIT_RATE", "1000"}};
  MetricsOf first(stack_, env);
  MetricsOf second(stack_, env);
  const std::string missing = R"(media_sync_audit_problems{class="missing"})";
  // Whichever worker ran the pass, both export it (read from Redis).
  for (const MetricsOf* worker : {&first, &second}) {
    EXPECT_TRUE(WaitUntil([&] { return worker->Sample(missing) == 1; }, 30s)) << worker->Log();
    EXPECT_EQ(worker->Sample(R"(media_sync_audit_problems{class="orphan"})"), 0);
    EXPECT_GT(worker->Sample("media_sync_audit_last_pass_timestamp_seconds"), 0);
  }
  EXPECT_GE(first.Sample("media_sync_audit_objects_checked_total") +
                second.Sample("media_sync_audit_objects_checked_total"),
            4);
  EXPECT_TRUE(WaitUntil(
      [&] {
        return CountOccurrences(first.Log() + second.Log(),
                                "audit: missing box=box-b sha256=" + Sha(jobs[2])) > 0;
      },
      10s));

  // Set right (by a repair the running workers carry out): the next pass
  // finds nothing, and the gauge says so.
  ASSERT_NO_FATAL_FAILURE(RestoreLocal(jobs[2], 802));
  CliOutcome repair = RunCli(stack_, "audit --repair --box box-b");
  EXPECT_THAT(repair.out, HasSubstr("[re-upload queued]")) << repair.all();
  EXPECT_TRUE(WaitUntil([&] { return media_.ObjectStored(jobs[2]); }, 30s));
  for (const MetricsOf* worker : {&first, &second}) {
    EXPECT_TRUE(WaitUntil([&] { return worker->Sample(missing) == 0; }, 30s)) << worker->Log();
  }
}

TEST_F(AuditCommandTest, BadUsageIsRefusedWithTheReason) {
  CliOutcome unknown = RunCli(stack_, "audit --box nope");
  EXPECT_EQ(unknown.code, 2) << unknown.all();
  EXPECT_THAT(unknown.err, HasSubstr("No storage box nope"));
  CliOutcome orphans = RunCli(stack_, "audit --delete-orphans");
  EXPECT_EQ(orphans.code, 2) << orphans.all();
  EXPECT_THAT(orphans.err, HasSubstr("--delete-orphans goes with --repair"));
}

}  // namespace
}  // namespace media_sync::testing
