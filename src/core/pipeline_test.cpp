#include "core/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "core/test_doubles.h"

namespace media_sync {
namespace {

using ::testing::HasSubstr;
using Action = Decision::Action;
using Outcome = Decision::Outcome;
using Json = nlohmann::ordered_json;
using namespace std::chrono_literals;

using doubles::FakeCatalog;
using doubles::FakeRouter;
using doubles::FakeStore;

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pipeline-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto buffer = buffer::LocalBuffer::Create(dir_);
    ASSERT_TRUE(buffer.ok()) << buffer.error().message;
    buffer_.emplace(std::move(*buffer));
    pipeline_.emplace(router_, catalog_, *buffer_, PipelineSettings{3, 5s},
                      [this] { return now_; });
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes a buffer file with `content` and a catalog row; returns its job.
  Json MakeJob(const std::string& content, const std::string& box = "russia-1") {
    return doubles::MakeBufferedJob(dir_, content, catalog_, box);
  }

  Decision Run(const Json& job, int64_t redeliveries = 0) { return Run(job.dump(), redeliveries); }
  Decision Run(const std::string& payload, int64_t redeliveries = 0) {
    std::stop_source never;
    return pipeline_->Process(Delivery{payload, redeliveries}, never.get_token());
  }
  bool LocalExists(const Json& job) {
    return std::filesystem::exists(job["local_path"].get<std::string>());
  }

  std::string dir_;
  std::chrono::system_clock::time_point now_{std::chrono::seconds(1700000000)};
  std::shared_ptr<FakeStore> store_ = std::make_shared<FakeStore>();
  FakeRouter router_{store_};
  FakeCatalog catalog_;
  std::optional<buffer::LocalBuffer> buffer_;
  std::optional<Pipeline> pipeline_;
};

TEST_F(PipelineTest, SyncsUploadsRecordsDeletesAndAcks) {
  Json job = MakeJob("jpeg bytes");
  Decision decision = Run(job);
  EXPECT_EQ(decision.action, Action::kAck);
  EXPECT_EQ(decision.outcome, Outcome::kSynced);
  EXPECT_EQ(decision.bytes_uploaded, 10u);
  EXPECT_EQ(store_->objects.at(job["s3_key"]).bytes, "jpeg bytes");
  EXPECT_TRUE(catalog_.synced.at(job["sha256"]));
  EXPECT_EQ(catalog_.used_bytes["russia-1"], 10u);
  EXPECT_FALSE(LocalExists(job));
  EXPECT_TRUE(router_.abandoned.empty());
}

TEST_F(PipelineTest, ReplayedJobChangesNothing) {
  Json job = MakeJob("jpeg bytes");
  ASSERT_EQ(Run(job).outcome, Outcome::kSynced);
  Decision replay = Run(job);
  EXPECT_EQ(replay.action, Action::kAck);
  EXPECT_EQ(replay.outcome, Outcome::kAlreadySynced);
  EXPECT_EQ(store_->uploads, 1);
  EXPECT_EQ(catalog_.used_bytes["russia-1"], 10u);
}

TEST_F(PipelineTest, ExistingObjectIsNotUploadedAgainButLocalFileIsHashedBeforeDelete) {
  Json job = MakeJob("already there");
  store_->objects[job["s3_key"]] = {{13, job["sha256"], "e"}, "already there"};
  Decision decision = Run(job);
  EXPECT_EQ(decision.outcome, Outcome::kSynced);
  EXPECT_EQ(store_->uploads, 0);
  EXPECT_EQ(decision.bytes_uploaded, 0u);
  EXPECT_FALSE(LocalExists(job));
}

TEST_F(PipelineTest, LocalFileNotMatchingTheHashIsKeptWhenObjectExists) {
  Json job = MakeJob("original");
  store_->objects[job["s3_key"]] = {{8, job["sha256"], "e"}, "original"};
  std::ofstream(job["local_path"].get<std::string>(), std::ios::binary) << "tampered";
  Decision decision = Run(job);
  EXPECT_EQ(decision.action, Action::kDelay);
  EXPECT_THAT(decision.message, HasSubstr("Local file does not match sha256"));
  EXPECT_TRUE(LocalExists(job));
  EXPECT_FALSE(catalog_.synced.at(job["sha256"]));
}

TEST_F(PipelineTest, LyingHashUploadsNothingAndKeepsTheFile) {
  Json job = MakeJob("real content");
  job["sha256"] = Sha256Hex("other content");
  std::string sha = job["sha256"];
  job["s3_key"] = "media/" + sha.substr(0, 2) + "/" + sha.substr(2, 2) + "/" + sha + ".jpg";
  catalog_.synced[sha] = false;
  Decision decision = Run(job);
  EXPECT_EQ(decision.action, Action::kDelay);
  EXPECT_THAT(decision.message, HasSubstr("SHA-256 mismatch"));
  EXPECT_TRUE(store_->objects.empty());
  EXPECT_TRUE(LocalExists(job));
}

TEST_F(PipelineTest, CrashAfterUploadIsCompletedFromTheStoredObject) {
  Json job = MakeJob("uploaded before crash");
  store_->objects[job["s3_key"]] = {{21, job["sha256"], "e"}, "uploaded before crash"};
  std::filesystem::remove(job["local_path"].get<std::string>());
  Decision decision = Run(job);
  EXPECT_EQ(decision.action, Action::kAck);
  EXPECT_EQ(decision.outcome, Outcome::kSynced);
  EXPECT_EQ(catalog_.used_bytes["russia-1"], 21u);
}

TEST_F(PipelineTest, MissingEverywhereFollowsTheRetryScheduleThenFails) {
  Json job = MakeJob("gone");
  std::filesystem::remove(job["local_path"].get<std::string>());
  std::string payload = job.dump();
  for (int retry = 1; retry <= 3; ++retry) {
    Decision decision = Run(payload);
    ASSERT_EQ(decision.action, Action::kDelay) << "retry " << retry;
    EXPECT_EQ(decision.outcome, Outcome::kRetryScheduled);
    EXPECT_EQ(decision.due, now_ + std::chrono::seconds(5 * retry));
    EXPECT_THAT(decision.message, HasSubstr("File missing from both local buffer and MinIO"));
    EXPECT_EQ(Json::parse(decision.payload)["retry_count"], retry);
    payload = decision.payload;
  }
  Decision last = Run(payload);
  ASSERT_EQ(last.action, Action::kFail);
  Json entry = Json::parse(last.payload);
  EXPECT_EQ(entry["error"], "File missing from both local buffer and MinIO");
  EXPECT_EQ(entry["attempts"], 4);
  EXPECT_EQ(entry["sha256"], job["sha256"]);
  EXPECT_TRUE(entry.contains("failed_at"));
}

TEST_F(PipelineTest, SizeMismatchUsesTheSeedText) {
  Json job = MakeJob("twelve bytes");
  job["file_size"] = 99;
  Decision decision = Run(job);
  EXPECT_EQ(decision.action, Action::kDelay);
  EXPECT_THAT(decision.message, HasSubstr("Size mismatch: expected 99, got 12"));
  EXPECT_EQ(store_->upload_calls, 0);
  // The store was never asked: if this job was probing a box, another may.
  EXPECT_THAT(router_.abandoned, ::testing::ElementsAre("russia-1"));
}

TEST_F(PipelineTest, InvalidPayloadsFailAtOnceWithRawKept) {
  Decision decision = Run(std::string("{garbage"));
  ASSERT_EQ(decision.action, Action::kFail);
  Json entry = Json::parse(decision.payload);
  EXPECT_EQ(entry["raw"], "{garbage");
  EXPECT_THAT(entry["error"].get<std::string>(), HasSubstr("not valid JSON"));
  EXPECT_EQ(entry["attempts"], 1);
}

TEST_F(PipelineTest, PathOutsideTheBufferFailsAtOnceAndTouchesNothing) {
  char outside_pattern[] = "/tmp/pipeline-outside-XXXXXX";
  ASSERT_NE(mkdtemp(outside_pattern), nullptr);
  std::string outside = std::string(outside_pattern) + "/secret.jpg";
  std::ofstream(outside) << "secret";
  Json job = MakeJob("secret");
  job["local_path"] = outside;
  Decision absolute = Run(job);
  EXPECT_EQ(absolute.action, Action::kFail);
  EXPECT_THAT(absolute.message, HasSubstr("Path outside media buffer"));
  job["local_path"] =
      dir_ + "/../" + std::filesystem::path(outside_pattern).filename().string() + "/secret.jpg";
  Decision traversal = Run(job);
  EXPECT_EQ(traversal.action, Action::kFail);
  EXPECT_TRUE(std::filesystem::exists(outside));
  EXPECT_TRUE(store_->objects.empty());
  std::filesystem::remove_all(outside_pattern);
}

TEST_F(PipelineTest, StoreOutageDefersOnlyThatBoxWithoutBurningRetries) {
  Json job = MakeJob("content");
  store_->outage = true;
  Decision decision = Run(job);
  EXPECT_EQ(decision.action, Action::kDelay);
  EXPECT_EQ(decision.outcome, Outcome::kBoxDown);
  EXPECT_EQ(decision.payload, job.dump());  // no retry_count added
  EXPECT_EQ(decision.due, std::chrono::system_clock::time_point(1000s));
  EXPECT_TRUE(LocalExists(job));

  // While the box is marked down its jobs wait without touching the store.
  int stats_before = store_->stats;
  int calls_before = store_->upload_calls;
  Decision again = Run(job);
  EXPECT_EQ(again.outcome, Outcome::kBoxDown);
  EXPECT_EQ(store_->stats, stats_before);
  EXPECT_EQ(store_->upload_calls, calls_before);

  // Another box's job is unaffected.
  store_->outage = false;
  Json other = MakeJob("other box", "finland-1");
  EXPECT_EQ(Run(other).outcome, Outcome::kSynced);
}

// A file the upload buffers cannot carry is parked at once, and its box
// stays up for every other job.
TEST_F(PipelineTest, FileTooLargeForTheBuffersIsParkedAndTheBoxStaysUp) {
  Json job = MakeJob("huge");
  store_->upload_error = Error::JobPermanent("File of 4 bytes needs parts ... raise S3_BUFFER_POOL")
                             .As(FaultClass::kTooLarge);
  Decision decision = Run(job);
  ASSERT_EQ(decision.action, Action::kFail);
  EXPECT_EQ(decision.fault, FaultClass::kTooLarge);
  EXPECT_THAT(Json::parse(decision.payload)["error"].get<std::string>(),
              HasSubstr("S3_BUFFER_POOL"));
  EXPECT_TRUE(LocalExists(job));
  EXPECT_EQ(router_.failures_reported, 0);
  EXPECT_FALSE(router_.DownUntil(std::string("russia-1")).has_value());

  store_->upload_error.reset();
  EXPECT_EQ(Run(MakeJob("small")).outcome, Outcome::kSynced);
}

// The delete after the commit fails (here: another file took the name):
// the job is synced all the same, acknowledged with a note, never retried.
TEST_F(PipelineTest, LocalFileThatCannotBeDeletedAfterTheCommitDoesNotUndoTheSync) {
  Json job = MakeJob("synced bytes");
  const std::string path = job["local_path"];
  store_->after_upload = [&] {
    std::ofstream(path + ".new", std::ios::binary) << "a newer file under the same name";
    std::filesystem::rename(path + ".new", path);
  };
  Decision decision = Run(job);
  EXPECT_EQ(decision.action, Action::kAck);
  EXPECT_EQ(decision.outcome, Outcome::kSynced);
  EXPECT_THAT(decision.note, HasSubstr("local file was left in the buffer"));
  EXPECT_THAT(decision.note, HasSubstr("Local file changed during sync"));
  EXPECT_TRUE(catalog_.synced.at(job["sha256"]));
  EXPECT_TRUE(LocalExists(job)) << "the newer file is kept";
}

TEST_F(PipelineTest, CatalogOutageHoldsTheJobAndKeepsTheFile) {
  Json job = MakeJob("content");
  catalog_.outage = true;
  Decision decision = Run(job);
  EXPECT_EQ(decision.action, Action::kHold);
  EXPECT_EQ(decision.outcome, Outcome::kServiceDown);
  EXPECT_TRUE(LocalExists(job));
  catalog_.outage = false;
  Decision after = Run(job);
  EXPECT_EQ(after.outcome, Outcome::kSynced);
  EXPECT_EQ(store_->uploads, 1);  // the second attempt found the object stored
  router_.catalog_outage = true;
  EXPECT_EQ(Run(MakeJob("x")).action, Action::kHold);
}

TEST_F(PipelineTest, NoCatalogRowKeepsObjectAndFile) {
  Json job = MakeJob("orphan");
  catalog_.synced.erase(job["sha256"]);
  Decision decision = Run(job);
  EXPECT_EQ(decision.action, Action::kDelay);
  EXPECT_THAT(decision.message, HasSubstr("No media_files row for sha256"));
  EXPECT_EQ(store_->objects.count(job["s3_key"]), 1u);
  EXPECT_TRUE(LocalExists(job));
}

TEST_F(PipelineTest, UnknownBoxIsAJobFault) {
  Json job = MakeJob("content", "nowhere");
  Decision decision = Run(job);
  EXPECT_EQ(decision.action, Action::kDelay);
  EXPECT_THAT(decision.message, HasSubstr("Unknown storage box nowhere"));
}

TEST_F(PipelineTest, StopDuringUploadHandsTheJobBack) {
  Json job = MakeJob("content");
  std::stop_source stop;
  stop.request_stop();
  Decision decision = pipeline_->Process(Delivery{job.dump(), 0}, stop.get_token());
  EXPECT_EQ(decision.action, Action::kRelease);
  EXPECT_TRUE(LocalExists(job));
}

TEST_F(PipelineTest, JobThatKeepsKillingWorkersIsParked) {
  Json job = MakeJob("poison");
  Decision decision = Run(job, /*redeliveries=*/4);
  ASSERT_EQ(decision.action, Action::kFail);
  EXPECT_THAT(decision.message, HasSubstr("Worker lease expired 4 times"));
  EXPECT_EQ(Json::parse(decision.payload)["attempts"], 5);
  EXPECT_EQ(Run(job, /*redeliveries=*/3).action, Action::kAck);
}

TEST_F(PipelineTest, RequeuedFailedEntryGetsAFreshBudget) {
  Json job = MakeJob("content");
  std::filesystem::remove(job["local_path"].get<std::string>());
  job["retry_count"] = 3;
  job["error"] = "File missing from both local buffer and MinIO";
  job["failed_at"] = "2024-01-15T12:00:00.000Z";
  job["attempts"] = 4;
  Decision decision = Run(job);
  ASSERT_EQ(decision.action, Action::kDelay);
  Json payload = Json::parse(decision.payload);
  EXPECT_EQ(payload["retry_count"], 1);
  EXPECT_FALSE(payload.contains("failed_at"));
}

}  // namespace
}  // namespace media_sync
