#include "core/job.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

namespace media_sync {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

const std::string kSha = "abc1230000000000000000000000000000000000000000000000000000000def";

Json ValidJob() {
  return Json{{"sha256", kSha},
              {"s3_key", "media/ab/c1/" + kSha + ".jpg"},
              {"local_path", "/var/cache/osint-media-buffer/media/ab/c1/" + kSha + ".jpg"},
              {"storage_box_id", "russia-1"},
              {"file_size", 12345},
              {"queued_at", "2024-01-15T12:00:00"},
              {"retry_count", 0}};
}

std::string ErrorOf(const std::string& payload) {
  auto job = ParseJob(payload);
  EXPECT_FALSE(job.ok()) << payload;
  if (job.ok()) return "";
  EXPECT_EQ(job.error().kind, ErrorKind::kJobPermanent);
  return job.error().message;
}

TEST(JobTest, ParsesTheSeedFormatAndKeepsUnknownFields) {
  Json document = ValidJob();
  document["trace_id"] = "t-1";
  auto job = ParseJob(document.dump());
  ASSERT_TRUE(job.ok()) << job.error().message;
  EXPECT_EQ(job->sha256, kSha);
  EXPECT_EQ(job->s3_key, "media/ab/c1/" + kSha + ".jpg");
  EXPECT_EQ(job->file_size, 12345u);
  EXPECT_EQ(job->storage_box_id, "russia-1");
  EXPECT_EQ(job->retry_count, 0);
  EXPECT_FALSE(job->requeued_from_failed);
  EXPECT_EQ(job->payload, document.dump());
  EXPECT_THAT(WithRetryCount(job->payload, 2), HasSubstr("\"trace_id\":\"t-1\""));
}

TEST(JobTest, OptionalFieldsMayBeAbsentOrNull) {
  Json document = ValidJob();
  document.erase("storage_box_id");
  document.erase("retry_count");
  document["queued_at"] = nullptr;
  auto job = ParseJob(document.dump());
  ASSERT_TRUE(job.ok()) << job.error().message;
  EXPECT_FALSE(job->storage_box_id.has_value());
  EXPECT_EQ(job->retry_count, 0);
  document["storage_box_id"] = 7;
  job = ParseJob(document.dump());
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->storage_box_id, "7");
}

TEST(JobTest, RejectsEachMalformedFieldByName) {
  auto with = [](const char* field, Json value) {
    Json document = ValidJob();
    document[field] = std::move(value);
    return document.dump();
  };
  auto without = [](const char* field) {
    Json document = ValidJob();
    document.erase(field);
    return document.dump();
  };
  EXPECT_THAT(ErrorOf("{not json"), HasSubstr("not valid JSON"));
  EXPECT_THAT(ErrorOf(""), HasSubstr("not valid JSON"));
  EXPECT_THAT(ErrorOf("[1,2]"), HasSubstr("must be a JSON object, got array"));
  EXPECT_THAT(ErrorOf("\"text\""), HasSubstr("must be a JSON object, got string"));
  EXPECT_THAT(ErrorOf(without("sha256")), HasSubstr("missing field sha256"));
  EXPECT_THAT(ErrorOf(with("sha256", 42)), HasSubstr("sha256 must be a string, got number"));
  EXPECT_THAT(ErrorOf(with("sha256", "xyz")), HasSubstr("sha256 must be 64 hexadecimal"));
  EXPECT_THAT(ErrorOf(without("local_path")), HasSubstr("missing field local_path"));
  EXPECT_THAT(ErrorOf(with("local_path", "")), HasSubstr("local_path must be a non-empty"));
  EXPECT_THAT(ErrorOf(without("s3_key")), HasSubstr("missing field s3_key"));
  EXPECT_THAT(ErrorOf(with("s3_key", "media/zz/c1/" + kSha + ".jpg")),
              HasSubstr("does not match sha256"));
  EXPECT_THAT(ErrorOf(with("s3_key", "../../etc/passwd")), HasSubstr("does not match sha256"));
  EXPECT_THAT(ErrorOf(with("s3_key", "media/ab/c1/" + kSha + ".j/g")),
              HasSubstr("does not match sha256"));
  EXPECT_THAT(ErrorOf(without("file_size")), HasSubstr("missing field file_size"));
  EXPECT_THAT(ErrorOf(with("file_size", -1)),
              HasSubstr("file_size must be a non-negative integer"));
  EXPECT_THAT(ErrorOf(with("file_size", 1.5)), HasSubstr("got 1.5"));
  EXPECT_THAT(ErrorOf(with("file_size", "12345")), HasSubstr("got string"));
  EXPECT_THAT(ErrorOf(with("storage_box_id", Json::array())),
              HasSubstr("storage_box_id must be a non-empty string"));
  EXPECT_THAT(ErrorOf(with("queued_at", 5)), HasSubstr("queued_at must be a string"));
  EXPECT_THAT(ErrorOf(with("retry_count", -2)), HasSubstr("retry_count must be"));
}

TEST(JobTest, StringsThatReachSqlOrLogsHoldNoControlCharacters) {
  auto with = [](const char* field, const std::string& value) {
    Json document = ValidJob();
    document[field] = value;
    return document.dump();
  };
  // Valid JSON ("box-1\u0000x"), which PostgreSQL cannot store and libpq
  // would cut short at the NUL.
  std::string poisoned = with("storage_box_id", std::string("box-1\0x", 7));
  ASSERT_THAT(poisoned, HasSubstr(R"("box-1\u0000x")"));
  EXPECT_THAT(ErrorOf(poisoned),
              HasSubstr(R"(storage_box_id must not hold control characters (U+0000 at byte 5): )"
                        R"("box-1\u0000x")"));
  EXPECT_THAT(ErrorOf(with("storage_box_id", "box-1\nERROR forged line")),
              HasSubstr("(U+000A at byte 5)"));
  EXPECT_THAT(ErrorOf(with("storage_box_id", "\x1b[2Jbox")), HasSubstr("(U+001B at byte 0)"));
  EXPECT_THAT(ErrorOf(with("storage_box_id", "box\x7f")), HasSubstr("(U+007F at byte 3)"));
  EXPECT_THAT(ErrorOf(with("storage_box_id", "box\xc2\x9b")),  // U+009B, a terminal's CSI
              HasSubstr("(U+009B at byte 3)"));

  const std::string path = ValidJob()["local_path"].get<std::string>();
  EXPECT_THAT(ErrorOf(with("local_path", path + "\r\nforged")),
              HasSubstr("local_path must not hold control characters (U+000D at byte"));
  EXPECT_THAT(ErrorOf(with("local_path", path + std::string("\0", 1))),
              HasSubstr("local_path must be a non-empty path without NUL bytes"));

  // Letters beyond ASCII are names like any other.
  auto accented = ParseJob(with("storage_box_id",
                                "bo\xc3\xae"
                                "te-\xc2\xa0\xe2\x9c\x93"));
  ASSERT_TRUE(accented.ok()) << accented.error().message;
  EXPECT_TRUE(ParseJob(with("local_path",
                            "/buffer/m\xc3\xa9"
                            "dia/\xc3\xbc.jpg"))
                  .ok());

  EXPECT_EQ(BoxIdProblem("russia-1"), std::nullopt);
  EXPECT_THAT(BoxIdProblem(""), ::testing::Optional(HasSubstr("non-empty")));
  EXPECT_THAT(BoxIdProblem("a\tb"), ::testing::Optional(HasSubstr("U+0009 at byte 1")));
}

TEST(JobTest, KeyExtensionMayComeFromThePath) {
  Json document = ValidJob();
  document["s3_key"] = "media/ab/c1/" + kSha;
  document["local_path"] = "/buffer/x.png";
  EXPECT_THAT(ErrorOf(document.dump()), HasSubstr(".png"));
  document["local_path"] = "/buffer/noext";
  EXPECT_TRUE(ParseJob(document.dump()).ok());
}

TEST(JobTest, HostileInputIsBounded) {
  std::string deep(1000, '[');
  EXPECT_THAT(ErrorOf(deep), HasSubstr("nested deeper"));
  std::string big = R"({"pad":")" + std::string(kMaxJobBytes, 'x') + R"("})";
  EXPECT_THAT(ErrorOf(big), HasSubstr("exceeds the limit"));
  EXPECT_THAT(ErrorOf(std::string("\xff\xfe\x00\x01", 4)), HasSubstr("not valid JSON"));
}

TEST(JobTest, RandomMutationsNeverCrashAndFailOnlyAsPermanent) {
  // Hostile payloads: bytes flipped, inserted and cut from a valid job, plus
  // pure noise. Each either parses or fails as a permanent job fault, and a
  // failed entry can always be built from it (JSON that parses back).
  const std::string valid = ValidJob().dump();
  std::mt19937 random(20261124);
  std::uniform_int_distribution<int> byte(0, 255);
  int parsed = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string payload = valid;
    int edits = 1 + static_cast<int>(random() % 8);
    for (int e = 0; e < edits && !payload.empty(); ++e) {
      size_t at = random() % payload.size();
      switch (random() % 4) {
        case 0:
          payload[at] = static_cast<char>(byte(random));
          break;
        case 1:
          payload.insert(at, 1, "{}[]\",:0-e\x00"[random() % 12]);
          break;
        case 2:
          payload.erase(at, 1 + random() % 8);
          break;
        default:
          payload = payload.substr(0, at);
      }
    }
    if (round % 10 == 0) {
      payload.resize(random() % 64);
      for (char& c : payload) c = static_cast<char>(byte(random));
    }
    auto job = ParseJob(payload);
    if (job.ok()) {
      ++parsed;
      EXPECT_EQ(job->sha256.size(), 64u);
    } else {
      EXPECT_EQ(job.error().kind, ErrorKind::kJobPermanent) << job.error().message;
      EXPECT_EQ(job.error().message.rfind("Invalid job: ", 0), 0u) << job.error().message;
    }
    Json entry = Json::parse(
        FailedEntry(payload, "Invalid job", 1, std::chrono::system_clock::now()), nullptr, false);
    ASSERT_FALSE(entry.is_discarded()) << payload;
    EXPECT_TRUE(entry.contains("error"));
  }
  EXPECT_GT(parsed, 0);  // some mutations keep a valid job (unknown fields, values)
}

TEST(JobTest, FailedEntryKeepsTheJobAndAddsFailureFields) {
  auto now = std::chrono::system_clock::time_point(std::chrono::milliseconds(1705320000123));
  Json entry =
      Json::parse(FailedEntry(ValidJob().dump(), "Size mismatch: expected 1, got 2", 4, now));
  EXPECT_EQ(entry["sha256"], kSha);
  EXPECT_EQ(entry["error"], "Size mismatch: expected 1, got 2");
  EXPECT_EQ(entry["failed_at"], "2024-01-15T12:00:00.123Z");
  EXPECT_EQ(entry["attempts"], 4);
}

TEST(JobTest, FailedEntryKeepsRawPayloadWhole) {
  auto now = std::chrono::system_clock::now();
  Json entry =
      Json::parse(FailedEntry("{not json", "Invalid job: payload is not valid JSON", 1, now));
  EXPECT_EQ(entry["raw"], "{not json");
  EXPECT_EQ(entry["attempts"], 1);
  Json binary = Json::parse(FailedEntry(std::string("\xff\x00", 2), "Invalid job", 1, now));
  EXPECT_EQ(binary["raw_base64"], "/wA=");
}

TEST(JobTest, RequeuedFailedEntryStartsAFreshBudget) {
  Json document = ValidJob();
  document["retry_count"] = 3;
  std::string entry = FailedEntry(document.dump(), "File missing from both local buffer and MinIO",
                                  4, std::chrono::system_clock::now());
  auto job = ParseJob(entry);
  ASSERT_TRUE(job.ok()) << job.error().message;
  EXPECT_TRUE(job->requeued_from_failed);
  EXPECT_EQ(job->retry_count, 0);
  Json payload = Json::parse(job->payload);
  EXPECT_FALSE(payload.contains("error"));
  EXPECT_FALSE(payload.contains("failed_at"));
  EXPECT_FALSE(payload.contains("attempts"));
  EXPECT_EQ(payload["retry_count"], 0);
  EXPECT_EQ(payload["sha256"], kSha);
}

TEST(JobTest, MakeJobPayloadWritesTheSeedFormatThatParseJobAccepts) {
  NewJob fresh{kSha,
               "media/ab/c1/" + kSha + ".jpg",
               "/buffer/media/ab/c1/" + kSha + ".jpg",
               std::nullopt,
               42,
               std::chrono::system_clock::time_point(std::chrono::seconds(0))};
  std::string payload = MakeJobPayload(fresh);
  Json document = Json::parse(payload);
  std::vector<std::string> fields;
  for (const auto& item : document.items()) fields.push_back(item.key());
  EXPECT_EQ(fields, (std::vector<std::string>{"sha256", "s3_key", "local_path", "storage_box_id",
                                              "file_size", "queued_at", "retry_count"}));
  EXPECT_TRUE(document["storage_box_id"].is_null());
  EXPECT_EQ(document["queued_at"], "1970-01-01T00:00:00.000Z");
  auto job = ParseJob(payload);
  ASSERT_TRUE(job.ok()) << job.error().message;
  EXPECT_EQ(job->file_size, 42u);
  EXPECT_EQ(job->retry_count, 0);
  fresh.storage_box_id = "russia-1";
  EXPECT_EQ(ParseJob(MakeJobPayload(fresh))->storage_box_id, "russia-1");
}

TEST(JobTest, QueuedAtIsReadInTheFormsProducersWrite) {
  using std::chrono::system_clock;
  auto at = [](const char* text) { return ParseIsoTimestamp(text); };
  auto epoch = [](int64_t ms) { return system_clock::time_point(std::chrono::milliseconds(ms)); };
  EXPECT_EQ(at("2024-01-15T12:00:00"), epoch(1705320000000));
  EXPECT_EQ(at("2024-01-15T12:00:00Z"), epoch(1705320000000));
  EXPECT_EQ(at("2024-01-15T12:00:00.25Z"), epoch(1705320000250));
  EXPECT_EQ(at("2024-01-15T12:00:00.123456"), epoch(1705320000123));
  EXPECT_EQ(at("2024-01-15T14:00:00+02:00"), epoch(1705320000000));
  EXPECT_EQ(at(IsoTimestamp(epoch(1705320000250)).c_str()), epoch(1705320000250));
  for (const char* bad :
       {"", "yesterday", "2024-13-01T00:00:00", "2024-01-15 12:00:00", "2024-01-15T12:00:00 UTC"}) {
    EXPECT_FALSE(at(bad).has_value()) << bad;
  }
  Json document = ValidJob();
  EXPECT_EQ(ParseJob(document.dump())->queued_at, epoch(1705320000000));
  document["queued_at"] = "not a time";
  auto job = ParseJob(document.dump());
  ASSERT_TRUE(job.ok()) << "an unreadable queued_at is informational, not a fault";
  EXPECT_FALSE(job->queued_at.has_value());
}

// Found by fuzz/job_fuzz.cpp: a year past 2262 overflowed the nanosecond
// clock (undefined behaviour; in practice a job "queued" a century ago in
// media-sync status and the oldest-pending-age gauge).
TEST(JobTest, QueuedAtBeyondTheClocksRangeIsUnreadable) {
  using std::chrono::system_clock;
  auto at = [](const char* text) { return ParseIsoTimestamp(text); };
  for (const char* far : {"6698-01-15T12:00:00.000Z", "9999-12-31T23:59:59Z", "2262-04-12T00:00:00",
                          "1677-01-01T00:00:00", "0000-01-01T00:00:00", "-999-01-01T00:00:00"}) {
    EXPECT_FALSE(at(far).has_value()) << far;
  }
  EXPECT_EQ(at("2261-12-31T23:59:59Z"),
            system_clock::time_point(std::chrono::milliseconds(9214646399000)));
  Json document = ValidJob();
  document["queued_at"] = "6698-01-15T12:00:00.000Z";
  auto job = ParseJob(document.dump());
  ASSERT_TRUE(job.ok()) << job.error().message;
  EXPECT_FALSE(job->queued_at.has_value());
}

// A job near the size limit, checked with fuzz/job_fuzz.cpp: accepted at
// 64 KiB, it was refused once a retry wrote its retry_count ("payload of
// 65554 bytes exceeds the limit"), and so were its failed entry when
// requeued (the error text added to it) and a job whose numbers lengthen
// when re-serialised (1e14). Its real fault was lost to a misleading one.
TEST(JobTest, AJobAcceptedOnceIsAcceptedAfterTheWorkersRewrites) {
  auto padded = [](size_t compact_size) {  // with retry_count 1000
    Json document = ValidJob();
    document["retry_count"] = 1000;
    document["pad"] = "";
    document["pad"] = std::string(compact_size - document.dump().size(), 'p');
    document["retry_count"] = 0;
    return document.dump();
  };
  const std::string largest = padded(kMaxJobJsonBytes);
  auto job = ParseJob(largest);
  ASSERT_TRUE(job.ok()) << job.error().message;
  auto retried = ParseJob(WithRetryCount(job->payload, 1000));
  ASSERT_TRUE(retried.ok()) << retried.error().message;
  EXPECT_EQ(retried->retry_count, 1000);
  const std::string entry = FailedEntry(WithRetryCount(job->payload, 1000),
                                        "Path outside media buffer: " + std::string(70000, '/'),
                                        1001, std::chrono::system_clock::now());
  auto requeued = ParseJob(entry);
  ASSERT_TRUE(requeued.ok()) << requeued.error().message;
  EXPECT_TRUE(requeued->requeued_from_failed);
  EXPECT_EQ(requeued->sha256, kSha);

  EXPECT_THAT(ErrorOf(padded(kMaxJobJsonBytes + 1)), HasSubstr("exceeds the limit of 61440"));
  EXPECT_THAT(ErrorOf(padded(kMaxJobBytes - 16)), HasSubstr("exceeds the limit"));
  std::string floats = ValidJob().dump();
  floats.pop_back();
  floats += ",\"f\":[1e14";
  for (int i = 0; i < 4000; ++i) floats += ",1e14";
  floats += "]}";
  ASSERT_LT(floats.size(), kMaxJobJsonBytes);
  EXPECT_THAT(ErrorOf(floats), HasSubstr("as re-serialised"));
  // The failed entry's error is cut, and says so.
  Json cut = Json::parse(entry);
  EXPECT_EQ(cut["error"].get<std::string>().size(), kMaxFailedErrorBytes + 3);
  EXPECT_TRUE(cut["error"].get<std::string>().ends_with("..."));
}

}  // namespace
}  // namespace media_sync
