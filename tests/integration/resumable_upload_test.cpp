// Resumable multipart uploads (S3ObjectStore with RedisUploadJournal) against
// the real Redis and the strict gateway in front of s3rver: an upload cut
// short is continued by the next Upload, which sends only the parts that are
// missing, checks every part it reuses against the local file, and stores
// nothing when that file no longer matches; and, end to end, a worker
// SIGKILLed at 80% of a 600 MiB upload over a bandwidth-limited link, whose
// job another worker finishes sending little of the file again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <source_location>
#include <stop_token>
#include <string>
#include <vector>

#include "config/urls.h"
#include "queue/redis_upload_journal.h"
#include "s3/buffer_pool.h"
#include "s3/s3_object_store.h"
#include "support/s3_test_support.h"
#include "support/throttled_link.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using s3::S3ObjectStore;

constexpr uint64_t kMiB = 1ull << 20;

std::shared_ptr<queue::RedisUploadJournal> JournalOn(const LocalStack& stack) {
  auto address = config::ParseRedisUrl(stack.Get("REDIS_URL"));
  EXPECT_TRUE(address.ok());
  return std::make_shared<queue::RedisUploadJournal>(*address, queue::RedisOptions{}, 1h);
}

// What one Upload did, seen through the store's hooks.
struct UploadTrace {
  std::vector<int> parts_sent;
  int parts_reused = 0;
  uint64_t bytes_reused = 0;
  std::vector<std::string> aborted;
};

// A store on the strict gateway with 5 MiB parts sent one at a time (so a
// cut after part n leaves exactly n parts), recording into `trace`, and
// calling `cut` once `cut_after` parts were sent (0: never).
std::unique_ptr<S3ObjectStore> TracedStore(const LocalStack& stack, s3::BufferPool& pool,
                                           std::shared_ptr<UploadJournal> journal,
                                           UploadTrace& trace, size_t cut_after = 0,
                                           std::function<void()> cut = {}) {
  S3Options options = OptionsFor(stack);
  options.part_parallelism = 1;
  S3ObjectStore::Hooks hooks;
  hooks.on_part_uploaded = [&trace, cut_after, cut = std::move(cut)](int part) {
    trace.parts_sent.push_back(part);
    if (trace.parts_sent.size() == cut_after) cut();
  };
  hooks.on_parts_reused = [&trace](int parts, uint64_t bytes) {
    trace.parts_reused += parts;
    trace.bytes_reused += bytes;
  };
  hooks.on_multipart_aborted = [&trace](const std::string& id) { trace.aborted.push_back(id); };
  return std::make_unique<S3ObjectStore>(options, pool, std::move(journal), hooks);
}

class ResumableUploadTest : public ::testing::Test {
 protected:
  void SetUp() override { stack_.Reset(); }

  // The journal's name of key's upload on the strict gateway, and its Redis key.
  std::string StoreName(const std::string& key) const {
    return stack_.Get("MINIO_ENDPOINT") + "/" + stack_.Get("MINIO_BUCKET") + "/" + key;
  }
  std::string RecordKey(const std::string& key) const {
    return queue::RedisUploadJournal::KeyOf(StoreName(key));
  }

  // An upload of `file` cut once three of its eight parts were stored: by a
  // stop request, or by `cut` (which must make it fail as `expected`). The
  // upload is left, with its three parts recorded.
  void UploadThreePartsOf(const TestFile& file, const std::string& key,
                          std::function<void()> cut = {},
                          ErrorKind expected = ErrorKind::kCancelled) {
    UploadTrace trace;
    std::stop_source stop;
    if (!cut) cut = [&stop] { stop.request_stop(); };
    auto store = TracedStore(stack_, pool_, journal_, trace, 3, std::move(cut));
    auto uploaded = store->Upload(key, file.fd(), file.size(), file.sha256(), stop.get_token());
    ASSERT_FALSE(uploaded.ok());
    ASSERT_EQ(uploaded.error().kind, expected) << uploaded.error().message;
    ASSERT_EQ(trace.parts_sent, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(trace.aborted.empty()) << "a cut upload must be left for the next attempt";
    auto recorded = journal_->Find(StoreName(key));
    ASSERT_TRUE(recorded.ok() && recorded->has_value());
    ASSERT_EQ((*recorded)->parts.size(), 3u);
  }

  // The next attempt at key, by a fresh store (resumer_) on the same journal.
  Result<ObjectInfo> UploadAgain(const TestFile& file, const std::string& key, UploadTrace& trace) {
    resumer_ = TracedStore(stack_, pool_, journal_, trace);
    return resumer_->Upload(key, file.fd(), file.size(), file.sha256(), {});
  }

  // The next attempt succeeds sending exactly `sent`, reusing `reused` parts
  // of 5 MiB; the object is the file, read back, and its record is gone.
  void ExpectResumed(const TestFile& file, const std::string& key, const std::vector<int>& sent,
                     int reused, std::source_location at = std::source_location::current()) {
    ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
    UploadTrace trace;
    auto uploaded = UploadAgain(file, key, trace);
    ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
    EXPECT_EQ(trace.parts_sent, sent);
    EXPECT_EQ(trace.parts_reused, reused);
    EXPECT_EQ(trace.bytes_reused, static_cast<uint64_t>(reused) * 5 * kMiB);
    ExpectStoredExactly(*resumer_, key, file);
    EXPECT_EQ(Trim(stack_.RedisCli("EXISTS " + RecordKey(key))), "0") << "record left behind";
  }

  LocalStack& stack_ = SharedStack();
  s3::BufferPool pool_{32 * kMiB};
  std::shared_ptr<queue::RedisUploadJournal> journal_ = JournalOn(stack_);
  std::unique_ptr<S3ObjectStore> resumer_;
};

TEST_F(ResumableUploadTest, AStoppedUploadIsResumedSendingOnlyTheMissingParts) {
  TestFile file(40 * kMiB, 31);  // eight parts of 5 MiB
  const std::string key = TestPrefix() + file.sha256() + ".bin";
  UploadThreePartsOf(file, key);

  ExpectResumed(file, key, {4, 5, 6, 7, 8}, 3);
}

// An outage: the server behind the gateway stops after part 3, so part 4
// fails (502); the upload is left in place, and resumed once the server is
// back (restarted on its data: the parts it stored are still there).
TEST_F(ResumableUploadTest, AnUploadCutByAServerOutageIsResumedOnceItIsBack) {
  TestFile file(40 * kMiB, 34);
  const std::string key = TestPrefix() + file.sha256() + ".bin";
  UploadThreePartsOf(
      file, key, [this] { stack_.Stop("s3"); }, ErrorKind::kOutage);
  stack_.Start("s3");
  ASSERT_FALSE(HasFatalFailure());

  ExpectResumed(file, key, {4, 5, 6, 7, 8}, 3);
}

TEST_F(ResumableUploadTest, ARecordedPartThatIsNotTheLocalBytesIsSentAgain) {
  TestFile file(40 * kMiB, 32);
  const std::string key = TestPrefix() + file.sha256() + ".bin";
  UploadThreePartsOf(file, key);
  // Part 2's record names other bytes (an ETag that is not their MD5), and
  // part 3's another size: neither may be reused.
  stack_.RedisCli("HSET " + RecordKey(key) + " 2 '5242880 0123456789abcdef0123456789abcdef'");
  stack_.RedisCli("HSET " + RecordKey(key) + " 3 '4242880 " +
                  Trim(stack_.RedisCli("HGET " + RecordKey(key) + " 3")).substr(8) + "'");

  ExpectResumed(file, key, {2, 3, 4, 5, 6, 7, 8}, 1);
}

TEST_F(ResumableUploadTest, ALocalFileChangedSinceTheCutStoresNothingAndAbortsTheUpload) {
  TestFile file(40 * kMiB, 33);
  const std::string key = TestPrefix() + file.sha256() + ".bin";
  UploadThreePartsOf(file, key);
  // The bytes of part 2 change: they no longer match its stored copy, and
  // the file no longer hashes to the job's sha256.
  const std::string changed(1000, 'x');
  ASSERT_EQ(pwrite(file.fd_for_writing(), changed.data(), changed.size(), 6 * kMiB),
            static_cast<ssize_t>(changed.size()));

  UploadTrace trace;
  auto uploaded = UploadAgain(file, key, trace);
  ASSERT_FALSE(uploaded.ok());
  EXPECT_EQ(uploaded.error().fault, FaultClass::kHashMismatch) << uploaded.error().message;
  EXPECT_EQ(trace.aborted.size(), 1u);
  EXPECT_EQ(trace.parts_reused, 0);
  ExpectNothingUnder(*resumer_, key);
  EXPECT_EQ(Trim(stack_.RedisCli("EXISTS " + RecordKey(key))), "0") << "record left behind";
}

// Two deliveries of one file (a duplicate push, a reconcile racing a slow
// upload): the second continues the first one's upload from its record and
// completes it while the first is still sending. The first then finds the
// upload gone (NoSuchUpload, as MinIO and AWS answer; the gateway answers it
// for s3rver) and the identical object in its place: done, not a fault of
// the job that could park it.
TEST_F(ResumableUploadTest, AnUploadAnotherDeliveryCompletedIsDoneForTheFirstToo) {
  TestFile file(40 * kMiB, 35);
  const std::string key = TestPrefix() + file.sha256() + ".bin";
  UploadTrace first_trace;
  UploadTrace second_trace;
  Result<ObjectInfo> second = Error::Outage("not run");
  auto first_store = TracedStore(stack_, pool_, journal_, first_trace, 3,
                                 [&] { second = UploadAgain(file, key, second_trace); });
  auto first = first_store->Upload(key, file.fd(), file.size(), file.sha256(), {});

  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second_trace.parts_reused, 3);
  EXPECT_TRUE(first.ok()) << first.error().message;
  // Nothing sent again: the object the second delivery completed ends it.
  EXPECT_EQ(first_trace.parts_sent, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(first_trace.aborted.empty());
  ExpectStoredExactly(*first_store, key, file);
  EXPECT_EQ(Trim(stack_.RedisCli("EXISTS " + RecordKey(key))), "0") << "record left behind";
}

// The start-up sweep aborts uploads by the age the server reports, which
// counts from their start: an upload begun long ago but still continued
// (its record renewed by every part) must be spared. s3rver lists no upload
// and cannot abort one (405), so the listing is given and an attempted
// abort shows as that 405.
TEST_F(ResumableUploadTest, TheSweepSparesAnOldUploadThatIsStillBeingContinued) {
  TestFile continued(40 * kMiB, 36);
  const std::string continued_key = TestPrefix() + continued.sha256() + ".bin";
  UploadThreePartsOf(continued, continued_key);
  TestFile abandoned(40 * kMiB, 37);
  const std::string abandoned_key = TestPrefix() + abandoned.sha256() + ".bin";
  UploadThreePartsOf(abandoned, abandoned_key);
  auto id_of = [&](const std::string& key) {
    auto recorded = journal_->Find(StoreName(key));
    EXPECT_TRUE(recorded.ok() && recorded->has_value());
    return (*recorded)->upload_id;
  };
  const std::string abandoned_id = id_of(abandoned_key);
  // Nobody sent a part of this one for the journal's retention: its record expired.
  ASSERT_TRUE(journal_->Forget(StoreName(abandoned_key), abandoned_id).ok());

  const auto started = std::chrono::system_clock::now() - 25h;
  std::vector<s3::MultipartUploadInfo> listing = {{continued_key, id_of(continued_key), started},
                                                  {abandoned_key, abandoned_id, started}};
  S3ObjectStore sweeper(OptionsFor(stack_), pool_, journal_);
  auto swept = sweeper.AbortStaleUploads(listing, 24h);
  ASSERT_FALSE(swept.ok()) << "s3rver cannot abort: the abandoned upload's abort must show";
  EXPECT_THAT(swept.error().message, HasSubstr(abandoned_key));
  EXPECT_THAT(swept.error().message, ::testing::Not(HasSubstr(continued_key)));

  ExpectResumed(continued, continued_key, {4, 5, 6, 7, 8}, 3);
}

TEST_F(ResumableUploadTest, TheJournalKeepsOnlyTheCurrentUploadsParts) {
  const std::string name = TestPrefix() + "record";
  ASSERT_TRUE(journal_->Begin(name, "first", 5 * kMiB).ok());
  ASSERT_TRUE(journal_->RecordPart(name, "first", {2, 5 * kMiB, "etag-2"}).ok());
  ASSERT_TRUE(journal_->RecordPart(name, "first", {1, 5 * kMiB, "etag-1"}).ok());
  // A newer upload replaces the record; the older one's writes change nothing.
  ASSERT_TRUE(journal_->Begin(name, "second", 5 * kMiB).ok());
  ASSERT_TRUE(journal_->RecordPart(name, "first", {3, 5 * kMiB, "etag-3"}).ok());
  ASSERT_TRUE(journal_->RecordPart(name, "second", {1, 5 * kMiB, "etag-1b"}).ok());
  ASSERT_TRUE(journal_->Forget(name, "first").ok());

  auto found = journal_->Find(name);
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->upload_id, "second");
  EXPECT_EQ((*found)->part_size, 5 * kMiB);
  ASSERT_EQ((*found)->parts.size(), 1u);
  EXPECT_EQ((*found)->parts[0].etag, "etag-1b");
  const int64_t ttl = std::stoll(stack_.RedisCli("TTL " + queue::RedisUploadJournal::KeyOf(name)));
  EXPECT_GT(ttl, 3500);
  EXPECT_LE(ttl, 3600);

  ASSERT_TRUE(journal_->Forget(name, "second").ok());
  auto gone = journal_->Find(name);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
}

// The case: `media-sync run` uploads a 600 MiB file over a link of
// 50 MiB/s, is SIGKILLed once 80% of its parts are stored, and another
// worker finishes the job sending at most 30% of the file again.
TEST_F(ResumableUploadTest, AWorkerKilledAt80PercentOfA600MiBUploadIsResumedByAnother) {
  constexpr uint64_t kSize = 600 * kMiB;
  constexpr uint64_t kPartSize = 8 * kMiB;
  constexpr uint64_t kParts = kSize / kPartSize;
  ThrottledLink link(stack_, stack_.Get("MINIO_ENDPOINT"), 50 * kMiB);
  stack_.Sql("INSERT INTO storage_boxes (id, minio_endpoint) VALUES ('distant', '" +
             link.endpoint() + "')");
  MediaFactory media(stack_);
  Json job = media.Make(kSize, "distant", 600, "mp4");
  const std::map<std::string, std::string> settings = {{"LEASE_SECONDS", "2"},
                                                       {"S3_MULTIPART_THRESHOLD", "64MiB"},
                                                       {"S3_PART_SIZE", "8MiB"},
                                                       {"S3_PART_PARALLELISM", "4"}};
  // Parts the journal holds for the upload (its record has two more fields).
  auto parts_stored = [&]() -> uint64_t {
    std::string record = Trim(stack_.RedisCli("--scan --pattern 'media:sync:upload:*'"));
    if (record.empty()) return 0;
    const int64_t fields = std::stoll(Trim(stack_.RedisCli("HLEN " + ShellQuote(record))));
    return fields > 2 ? static_cast<uint64_t>(fields - 2) : 0;
  };

  auto first_settings = settings;
  first_settings["WORKER_ID"] = "killed";
  WorkerProcess killed(stack_, first_settings);
  ASSERT_TRUE(media.WaitRegistered("killed", killed)) << killed.Log();
  const auto started = std::chrono::steady_clock::now();
  media.Push(job);
  ASSERT_TRUE(WaitUntil([&] { return parts_stored() * 5 >= kParts * 4; }, 60s))
      << "parts stored: " << parts_stored() << "\n"
      << killed.Log();
  killed.Signal(SIGKILL);
  ASSERT_EQ(killed.WaitExit(10s), 128 + SIGKILL);
  const uint64_t stored_at_kill = parts_stored();
  ASSERT_LT(stored_at_kill, kParts) << "the upload finished before the kill";
  // Nothing in flight reaches the server any more: the link's count (its
  // file rewritten every 50 ms) stays the same for 300 ms.
  uint64_t sent_before = link.bytes_sent();
  auto last_change = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitUntil(
      [&] {
        const uint64_t now = link.bytes_sent();
        if (now != sent_before) {
          sent_before = now;
          last_change = std::chrono::steady_clock::now();
        }
        return std::chrono::steady_clock::now() - last_change >= 300ms;
      },
      5s));

  ASSERT_TRUE(WaitUntil([&] { return !media.HeartbeatAlive("killed"); }, 10s));
  auto second_settings = settings;
  second_settings["WORKER_ID"] = "rescuer";
  WorkerProcess rescuer(stack_, second_settings, {"run", "--drain"});
  ASSERT_EQ(rescuer.WaitExit(60s), 0) << rescuer.Log();
  const auto took = std::chrono::steady_clock::now() - started;

  const uint64_t sent_again = link.bytes_sent() - sent_before;
  std::printf(
      "[  MEASURE ] %llu of %llu parts stored at the kill; %.1f MiB (%.1f%% of the file) "
      "sent after it; %.1f s from the push to the second worker's exit\n",
      static_cast<unsigned long long>(stored_at_kill), static_cast<unsigned long long>(kParts),
      static_cast<double>(sent_again) / kMiB, 100.0 * static_cast<double>(sent_again) / kSize,
      std::chrono::duration<double>(took).count());
  EXPECT_LE(sent_again * 10, kSize * 3) << rescuer.Log();
  EXPECT_THAT(rescuer.Log(), HasSubstr("already stored, not sent again"));
  media.ExpectSyncedExactlyOnce({job});
  EXPECT_EQ(Trim(stack_.RedisCli("--scan --pattern 'media:sync:upload:*'")), "")
      << "the record outlived the upload";
}

}  // namespace
}  // namespace media_sync::testing
