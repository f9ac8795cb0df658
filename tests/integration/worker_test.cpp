// End-to-end behaviour of `media-sync run` against real Redis, PostgreSQL and
// two s3rver storage boxes: the happy path at volume, exactly-once effects,
// bad input, and the failed-queue runbook.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <source_location>

#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  // Runs `media-sync run --drain` to completion; returns its log.
  std::string Drain(std::map<std::string, std::string> env = {}) {
    WorkerProcess worker(stack_, std::move(env), {"run", "--drain"});
    auto code = worker.WaitExit(180s);
    EXPECT_EQ(code, 0) << worker.Log();
    return worker.Log();
  }

  // The job pushed alone and drained: its row synced.
  void SyncFirst(const Json& job) {
    media_.Push(job);
    Drain();
    ASSERT_EQ(media_.SyncedRows(), 1);
  }

  std::string SyncedAt(const Json& job) const {
    return Trim(stack_.Sql("SELECT synced_at FROM media_files WHERE sha256 = '" +
                           job["sha256"].get<std::string>() + "'"));
  }

  void ExpectQueuesEmpty(std::source_location at = std::source_location::current()) {
    ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
    EXPECT_EQ(media_.Len("media:sync:pending"), 0);
    EXPECT_EQ(media_.DelayedCount(), 0);
    EXPECT_EQ(media_.ProcessingKeys(), "");
  }

  // The job synced once, nothing left in the queues, nothing failed.
  void ExpectOnlySynced(const Json& job,
                        std::source_location at = std::source_location::current()) {
    ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
    media_.ExpectSyncedExactlyOnce({job}, at);
    ExpectQueuesEmpty(at);
    EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

TEST_F(WorkerTest, SyncsHundredsOfFilesOverTwoBoxesExactlyOnce) {
  std::vector<Json> jobs;
  int64_t bytes_a = 0;
  int64_t bytes_b = 0;
  for (int i = 0; i < 240; ++i) {
    std::string box = i % 2 == 0 ? "box-a" : "box-b";
    // Mostly small files, a few above the multipart threshold.
    uint64_t size = i % 60 == 0 ? (6u << 20) + 3 : 1024u * (1 + i % 40);
    jobs.push_back(media_.Make(size, box, 1000 + i, i % 3 == 0 ? "mp4" : "jpg"));
    (box == "box-a" ? bytes_a : bytes_b) += static_cast<int64_t>(size);
    media_.Push(jobs.back());
  }
  std::string log = Drain({{"S3_MULTIPART_THRESHOLD", "5MiB"}, {"S3_PART_SIZE", "5MiB"}});
  EXPECT_THAT(log, HasSubstr("summary: synced 240, already synced 0, failed 0"));

  EXPECT_EQ(media_.SyncedRows(), 240);
  EXPECT_EQ(media_.UsedBytes("box-a"), bytes_a);
  EXPECT_EQ(media_.UsedBytes("box-b"), bytes_b);
  EXPECT_EQ(media_.ReservedBytes("box-a"), 0);
  EXPECT_EQ(media_.ReservedBytes("box-b"), 0);
  for (const auto& job : jobs) {
    EXPECT_FALSE(media_.LocalExists(job)) << job["local_path"];
    EXPECT_TRUE(media_.ObjectStored(job)) << job["s3_key"];
  }
  ExpectQueuesEmpty();
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
}

TEST_F(WorkerTest, JobWithoutBoxGoesToTheDefaultEndpoint) {
  Json job = media_.Make(4096, std::nullopt, 7);
  media_.Push(job);
  Drain();
  EXPECT_EQ(media_.SyncedRows(), 1);
  EXPECT_TRUE(media_.ObjectStored(job));    // the default endpoint is box-a's server
  EXPECT_EQ(media_.UsedBytes("box-a"), 0);  // no box: no counters move
}

TEST_F(WorkerTest, ADuplicateInTheQueueAtOnceSyncsOnce) {
  Json job = media_.Make(10000, "box-a", 11);
  media_.Push(job);
  media_.Push(job);
  Drain();
  ExpectOnlySynced(job);
}

// Replayed later: file gone, object stored, row synced.
TEST_F(WorkerTest, AJobReplayedAfterItsSyncChangesNothing) {
  Json job = media_.Make(10000, "box-a", 11);
  ASSERT_NO_FATAL_FAILURE(SyncFirst(job));
  const std::string synced_at = SyncedAt(job);

  media_.Push(job);
  std::string log = Drain();
  EXPECT_THAT(log, HasSubstr("already synced 1"));
  EXPECT_EQ(SyncedAt(job), synced_at);
  ExpectOnlySynced(job);
}

// Object already there (a crash after upload), row not yet synced, local file back.
TEST_F(WorkerTest, AnObjectAlreadyStoredIsRecordedWithoutUploadingAgain) {
  Json job = media_.Make(5000, "box-a", 12);
  ASSERT_NO_FATAL_FAILURE(SyncFirst(job));
  stack_.Sql("UPDATE media_files SET synced_at = NULL WHERE sha256 = '" +
             job["sha256"].get<std::string>() + "'");
  media_.Make(5000, "box-a", 12, "jpg", /*insert_row=*/false);  // same bytes, same path
  ASSERT_TRUE(media_.LocalExists(job));
  media_.Push(job);
  std::string log = Drain();
  EXPECT_THAT(log, HasSubstr("synced 1"));
  EXPECT_THAT(log, HasSubstr("bytes 0"));  // nothing uploaded again
  EXPECT_EQ(media_.SyncedRows(), 1);
  EXPECT_FALSE(media_.LocalExists(job));
  EXPECT_TRUE(media_.ObjectStored(job));
  EXPECT_EQ(media_.UsedBytes("box-a"), 5000 + 5000);  // the re-synced row counts once more
  ExpectQueuesEmpty();
}

// One bad job, pushed before a good one: the bad one ends in the failed queue
// with its message, the worker keeps serving (the good job syncs), and a file
// outside the buffer is neither read nor deleted.
struct BadInput {
  std::string name;   // the test's name
  std::string error;  // what the failed entry's error says
  // The fault is found before anything is uploaded: nothing is stored under
  // the job's key. (A missing row is found after the upload of the right
  // bytes.)
  bool found_before_upload = true;
};

// Shown by its name in test output.
void PrintTo(const BadInput& value, std::ostream* out) { *out << value.name; }

class WorkerBadInputTest : public WorkerTest, public ::testing::WithParamInterface<BadInput> {
 protected:
  void SetUp() override {
    WorkerTest::SetUp();
    char outside_pattern[] = "/tmp/media-sync-outside-XXXXXX";
    ASSERT_NE(mkdtemp(outside_pattern), nullptr);
    outside_ = outside_pattern;
    std::ofstream(outside_ + "/secret.jpg") << "do not touch";
  }
  void TearDown() override { std::filesystem::remove_all(outside_); }

  // The payload of the case named `name`, with whatever it needs around it.
  std::string BadPayload(const std::string& name) {
    const std::string buffer = stack_.BufferDir();
    auto job_with = [&](uint64_t seed, const std::function<void(Json&)>& change) {
      Json job = media_.Make(2048, "box-a", seed);
      change(job);
      return job.dump();
    };
    if (name == "Garbage") return "{this is not json";
    if (name == "WrongType") return R"({"sha256": 5})";
    if (name == "Traversal") {
      return job_with(21, [&](Json& j) {
        j["local_path"] = buffer + "/../../" + outside_.substr(1) + "/secret.jpg";
      });
    }
    if (name == "AbsolutePathElsewhere") {
      return job_with(22, [&](Json& j) { j["local_path"] = outside_ + "/secret.jpg"; });
    }
    if (name == "SymlinkOut") {
      return job_with(23, [&](Json& j) {
        std::string link = buffer + "/link.jpg";
        std::filesystem::create_symlink(outside_ + "/secret.jpg", link);
        j["local_path"] = link;
      });
    }
    if (name == "Fifo") {
      return job_with(24, [&](Json& j) {
        std::string fifo = buffer + "/pipe.jpg";
        EXPECT_EQ(mkfifo(fifo.c_str(), 0644), 0);
        j["local_path"] = fifo;
      });
    }
    if (name == "Directory") {
      return job_with(25, [&](Json& j) {
        std::filesystem::create_directories(buffer + "/dir.jpg");
        j["local_path"] = buffer + "/dir.jpg";
      });
    }
    if (name == "LyingSize") return job_with(26, [&](Json& j) { j["file_size"] = 4096; });
    if (name == "LyingHash") {
      return job_with(27, [&](Json& j) {
        std::string fake(64, 'e');
        stack_.Sql("INSERT INTO media_files (sha256, s3_key, file_size) VALUES ('" + fake +
                   "', 'x', 2048)");
        j["sha256"] = fake;
        j["s3_key"] = "media/ee/ee/" + fake + ".jpg";
        // box-b is s3rver without the strict gateway: it would keep any
        // body, so only the client can refuse it.
        j["storage_box_id"] = "box-b";
      });
    }
    if (name == "KeyNotMatchingHash") {
      return job_with(28, [&](Json& j) { j["s3_key"] = "media/00/00/other.jpg"; });
    }
    if (name == "NoCatalogRow") {
      return job_with(29, [&](Json& j) {
        stack_.Sql("DELETE FROM media_files WHERE sha256 = '" + j["sha256"].get<std::string>() +
                   "'");
      });
    }
    if (name == "UnknownBox") {
      return job_with(30, [&](Json& j) { j["storage_box_id"] = "mars-1"; });
    }
    ADD_FAILURE() << "no bad input named " << name;
    return "";
  }

  std::string outside_;
};

TEST_P(WorkerBadInputTest, EndsInTheFailedQueueWithItsMessageAndTouchesNothingOutside) {
  const BadInput& bad = GetParam();
  const std::string payload = BadPayload(bad.name);
  ASSERT_FALSE(payload.empty());
  media_.PushRaw(payload);
  Json good = media_.Make(3000, "box-b", 31);
  media_.Push(good);

  std::string log = Drain({{"RETRY_DELAY_SECONDS", "0"}});
  std::vector<Json> failed = media_.FailedEntries();
  ASSERT_EQ(failed.size(), 1u) << log;
  EXPECT_THAT(failed[0]["error"].get<std::string>(), HasSubstr(bad.error));
  EXPECT_TRUE(failed[0].contains("failed_at"));
  EXPECT_TRUE(failed[0].contains("attempts"));
  Json parsed = Json::parse(payload, nullptr, false);
  if (parsed.is_object()) {
    // The job is kept, with the failure fields added and its retry count
    // rewritten.
    for (const auto& [field, value] : parsed.items()) {
      if (field != "retry_count") {
        EXPECT_EQ(failed[0][field], value) << field;
      }
    }
  } else {
    // The raw payload of a non-object is kept whole.
    EXPECT_EQ(failed[0]["raw"], payload);
  }
  if (bad.found_before_upload && parsed.is_object() && parsed["s3_key"].is_string()) {
    // Nothing stored, a lying job's bytes least of all.
    EXPECT_FALSE(media_.ObjectExists(parsed));
  }

  // The worker kept serving: the good job went through.
  media_.ExpectSyncedExactlyOnce({good});
  // Nothing outside the buffer was read or deleted.
  std::ifstream secret(outside_ + "/secret.jpg");
  std::string secret_text;
  std::getline(secret, secret_text);
  EXPECT_EQ(secret_text, "do not touch");
  ExpectQueuesEmpty();
}

INSTANTIATE_TEST_SUITE_P(
    BadInputs, WorkerBadInputTest,
    ::testing::Values(BadInput{"Garbage", "Invalid job: payload is not valid JSON"},
                      BadInput{"WrongType", "sha256 must be a string"},
                      BadInput{"Traversal", "Path outside media buffer"},
                      BadInput{"AbsolutePathElsewhere", "Path outside media buffer"},
                      BadInput{"SymlinkOut", "Path outside media buffer"},
                      BadInput{"Fifo", "Not a regular file"},
                      BadInput{"Directory", "Not a regular file"},
                      BadInput{"LyingSize", "Size mismatch: expected 4096, got 2048"},
                      BadInput{"LyingHash", "SHA-256 mismatch"},
                      BadInput{"KeyNotMatchingHash", "does not match sha256"},
                      BadInput{"NoCatalogRow", "No media_files row for sha256",
                               /*found_before_upload=*/false},
                      BadInput{"UnknownBox", "Unknown storage box mars-1"}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return info.param.name; });

TEST_F(WorkerTest, FailedQueueRunbookRetriesTheJobForReal) {
  Json job = media_.Make(8000, "box-b", 41);
  std::string path = job["local_path"];
  std::string hidden = path + ".away";
  std::filesystem::rename(path, hidden);
  media_.Push(job);

  std::string log = Drain({{"RETRY_DELAY_SECONDS", "1"}});
  EXPECT_THAT(log, HasSubstr("retries scheduled 3"));
  std::vector<Json> failed = media_.FailedEntries();
  ASSERT_EQ(failed.size(), 1u) << log;
  EXPECT_EQ(failed[0]["error"], "File missing from both local buffer and MinIO");
  EXPECT_EQ(failed[0]["attempts"], 4);
  EXPECT_EQ(failed[0]["retry_count"], 3);
  EXPECT_EQ(media_.SyncedRows(), 0);

  // The operator restores the file and runs the seed's runbook.
  std::filesystem::rename(hidden, path);
  EXPECT_EQ(stack_.RedisCli("RPOPLPUSH media:sync:failed media:sync:pending").empty(), false);
  log = Drain({{"RETRY_DELAY_SECONDS", "1"}});
  EXPECT_THAT(log, HasSubstr("summary: synced 1"));
  EXPECT_EQ(media_.SyncedRows(), 1);
  EXPECT_TRUE(media_.ObjectStored(job));
  EXPECT_FALSE(media_.LocalExists(job));
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
}

TEST_F(WorkerTest, SeveralWorkersShareOneQueue) {
  std::vector<Json> jobs;
  for (int i = 0; i < 120; ++i) {
    jobs.push_back(media_.Make(2000 + i, i % 2 ? "box-a" : "box-b", 500 + i));
    media_.Push(jobs.back());
  }
  WorkerProcess first(stack_, {{"WORKER_ID", "one"}, {"SYNC_CONCURRENCY", "4"}},
                      {"run", "--drain"});
  WorkerProcess second(stack_, {{"WORKER_ID", "two"}, {"SYNC_CONCURRENCY", "4"}},
                       {"run", "--drain"});
  EXPECT_EQ(first.WaitExit(120s), 0) << first.Log();
  EXPECT_EQ(second.WaitExit(120s), 0) << second.Log();
  EXPECT_EQ(media_.SyncedRows(), 120);
  int64_t expected_a = 0;
  for (int i = 1; i < 120; i += 2) expected_a += 2000 + i;
  EXPECT_EQ(media_.UsedBytes("box-a"), expected_a);
  for (const auto& job : jobs) EXPECT_FALSE(media_.LocalExists(job));
  ExpectQueuesEmpty();
}

TEST_F(WorkerTest, DrainServesTheJobsOfADeadWorker) {
  // A worker just died holding two jobs: registered, its heartbeat not yet
  // expired, jobs in its list. Drain must wait for its lease to run out.
  Json first = media_.Make(1500, "box-a", 81);
  Json second = media_.Make(1600, "box-b", 82);
  stack_.RedisCli("SADD media:sync:workers ghost");
  stack_.RedisCli("SET media:sync:worker:ghost '{}' PX 1500");
  for (const Json& job : {first, second}) {
    stack_.RedisCli("LPUSH media:sync:processing:ghost '" + job.dump() + "'");
  }
  std::string log = Drain({{"LEASE_SECONDS", "2"}});
  EXPECT_THAT(log, HasSubstr("returned 2 jobs of dead workers"));
  EXPECT_THAT(log, HasSubstr("summary: synced 2"));
  EXPECT_EQ(media_.SyncedRows(), 2);
  ExpectQueuesEmpty();
}

TEST_F(WorkerTest, AJobThatKeepsKillingWorkersIsParkedWithAnErrorThatSaysSo) {
  // Its lease already expired MAX_RETRIES + 1 times (the reaper counted them).
  Json job = media_.Make(2500, "box-a", 83);
  stack_.RedisCli("HSET media:sync:redeliveries '" + job.dump() + "' 4");
  media_.Push(job);
  std::string log = Drain();
  std::vector<Json> failed = media_.FailedEntries();
  ASSERT_EQ(failed.size(), 1u) << log;
  EXPECT_THAT(failed[0]["error"].get<std::string>(), HasSubstr("Worker lease expired 4 times"));
  EXPECT_EQ(failed[0]["attempts"], 5);
  EXPECT_EQ(media_.SyncedRows(), 0);
  EXPECT_TRUE(media_.LocalExists(job));  // parked, not touched
  EXPECT_EQ(stack_.RedisCli("HLEN media:sync:redeliveries"), "0\n");
}

TEST_F(WorkerTest, CreatesAMissingBucketAsTheSeedDoes) {
  Json job = media_.Make(3333, "box-b", 77);
  media_.Push(job);
  std::string log = Drain({{"MINIO_BUCKET", "fresh-bucket"}});
  EXPECT_THAT(log, HasSubstr("summary: synced 1"));
  EXPECT_EQ(media_.SyncedRows("box-b"), 1);
  EXPECT_TRUE(media_.ObjectExists(job["s3_key"].get<std::string>(), "box-b", "fresh-bucket"));
  EXPECT_FALSE(media_.ObjectExists(job));  // not in the usual bucket
}

// A database without the schema is the operator's to fix: `run` stops at
// start-up, names the missing table, and takes no job.
TEST_F(WorkerTest, ADatabaseWithoutTheSchemaStopsAtStartUp) {
  if (Trim(stack_.Sql("SELECT count(*) FROM pg_database WHERE datname = 'no_schema'")) == "0") {
    stack_.Sql("CREATE DATABASE no_schema");
  }
  std::string url = stack_.Get("DATABASE_URL");
  size_t slash = url.find('/', url.find("//") + 2);
  size_t query = url.find('?', slash);
  url = url.substr(0, slash) + "/no_schema" + (query == std::string::npos ? "" : url.substr(query));
  Json job = media_.Make(1024, "box-a", 4100);
  media_.Push(job);
  WorkerProcess worker(stack_, {{"DATABASE_URL", url}}, {"run"});
  EXPECT_EQ(worker.WaitExit(20s), 2) << worker.Log();
  EXPECT_THAT(worker.Log(), HasSubstr("media_files"));
  EXPECT_EQ(media_.Len("media:sync:pending"), 1) << "no job taken";
  EXPECT_TRUE(media_.LocalExists(job));
}

// Storage keys that the box refuses make the box unusable, not the jobs
// bad: the job waits unharmed with the reason logged, and syncs once the
// keys are right.
TEST_F(WorkerTest, WrongStorageKeysDeferJobsAndSayWhy) {
  Json job = media_.Make(1024, "box-a", 4200);
  media_.Push(job);
  WorkerProcess wrong(stack_, {{"MINIO_ACCESS_KEY", "not-the-key"}, {"MAX_RETRIES", "0"}}, {"run"});
  ASSERT_TRUE(WaitUntil(
      [&] {
        return wrong.Log().find("storage box box-a is unusable until its configuration is fixed") !=
               std::string::npos;
      },
      20s))
      << wrong.Log();
  EXPECT_THAT(wrong.Log(), HasSubstr("check the access key, the secret key and the clock"));
  wrong.Signal(SIGTERM);
  EXPECT_EQ(wrong.WaitExit(20s), 0) << wrong.Log();
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  EXPECT_EQ(media_.SyncedRows(), 0);
  EXPECT_TRUE(media_.LocalExists(job));

  WorkerProcess right(stack_, {}, {"run", "--drain"});
  ASSERT_EQ(right.WaitExit(60s), 0) << right.Log();
  media_.ExpectSyncedExactlyOnce({job});
}

TEST_F(WorkerTest, AnInvalidSettingStopsAtStartUpWithExitCode2) {
  WorkerProcess worker(stack_, {{"MINIO_SECURE", "maybe"}}, {"run"});
  EXPECT_EQ(worker.WaitExit(10s), 2);
  EXPECT_THAT(worker.Log(), HasSubstr("MINIO_SECURE='maybe'"));
}

TEST_F(WorkerTest, AMissingBufferDirectoryStopsAtStartUpWithExitCode2) {
  WorkerProcess no_buffer(stack_, {{"MEDIA_BUFFER_PATH", "/nonexistent/buffer"}}, {"run"});
  EXPECT_EQ(no_buffer.WaitExit(10s), 2);
  EXPECT_THAT(no_buffer.Log(), HasSubstr("MEDIA_BUFFER_PATH"));
}

}  // namespace
}  // namespace media_sync::testing
