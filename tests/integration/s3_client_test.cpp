// S3 client and S3ObjectStore against a real s3rver (SharedStack), plus an
// HTTPS s3rver with a self-signed CA and a stopped/killed server.
#include "s3/s3_client.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <latch>
#include <optional>
#include <random>
#include <source_location>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/hash.h"
#include "s3/buffer_pool.h"
#include "s3/s3_object_store.h"
#include "support/local_stack.h"
#include "support/s3_test_support.h"

namespace media_sync::s3 {
namespace {

using media_sync::testing::LocalStack;
using media_sync::testing::SharedStack;

constexpr uint64_t kMiB = 1ull << 20;

using media_sync::testing::ExpectNothingUnder;
using media_sync::testing::ExpectNoUploadLeftFor;
using media_sync::testing::ExpectStoredExactly;
using media_sync::testing::LenientOptionsFor;
using media_sync::testing::OptionsFor;
using media_sync::testing::StoredSha256;
using media_sync::testing::TestFile;
using media_sync::testing::TestPrefix;

// A lying job: a file of `size` bytes (seed `seed`) uploaded under the hash
// and key of another (seed `seed` + 1). Refused as a job fault; nothing
// stays under the key, which is returned.
std::string ExpectLyingJobRefused(S3ObjectStore& store, uint64_t size, uint32_t seed,
                                  std::source_location at = std::source_location::current()) {
  ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
  TestFile file(size, seed);
  TestFile other(size, seed + 1);
  const std::string key = TestPrefix() + other.sha256() + ".bin";
  auto uploaded = store.Upload(key, file.fd(), file.size(), other.sha256(), {});
  if (uploaded.ok()) {
    ADD_FAILURE() << "the lying job's upload succeeded";
  } else {
    EXPECT_EQ(uploaded.error().kind, ErrorKind::kJobRetryable);
    EXPECT_EQ(uploaded.error().message,
              "SHA-256 mismatch: expected " + other.sha256() + ", got " + file.sha256());
  }
  ExpectNothingUnder(store, key);
  return key;
}

TEST(S3ObjectStoreTest, RoundTripsAroundThePartSize) {
  S3ObjectStore store(OptionsFor(SharedStack()));
  const std::string prefix = TestPrefix();
  for (uint64_t size :
       {uint64_t{0}, uint64_t{1}, 5 * kMiB - 1, 5 * kMiB, 5 * kMiB + 1, 15 * kMiB + 7}) {
    SCOPED_TRACE("size " + std::to_string(size));
    TestFile file(size, static_cast<uint32_t>(size));
    const std::string key = prefix + file.sha256() + ".bin";
    auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
    ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
    EXPECT_EQ(uploaded->size, size);
    EXPECT_EQ(uploaded->sha256, file.sha256());
    ExpectStoredExactly(store, key, file);
  }
}

TEST(S3ObjectStoreTest, KeysWithReservedAndUnicodeCharactersRoundTrip) {
  S3ObjectStore store(OptionsFor(SharedStack()));
  TestFile file(1000);
  for (std::string name :
       {"a b+c.bin", "100%~tilde.bin", "caf\xC3\xA9/\xE1\x88\xB4.bin", "q=1&r?s#t.bin"}) {
    const std::string key = TestPrefix() + name;
    auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
    ASSERT_TRUE(uploaded.ok()) << key << ": " << uploaded.error().message;
    ExpectStoredExactly(store, key, file);
  }
}

using Proof = S3ObjectStore::Proof;

// A store whose proofs are recorded, on the strict gateway or on s3rver alone.
struct ProvenStore {
  explicit ProvenStore(S3Options options, S3ObjectStore::Hooks hooks = {}) {
    hooks.on_proven = [this](Proof proof) { proofs.push_back(proof); };
    store.emplace(std::move(options), std::move(hooks));
  }
  std::vector<Proof> proofs;
  std::optional<S3ObjectStore> store;
};

// Hooks of a store that takes its server for one that proves nothing, so
// that the paths of such servers are also tested against one that checks
// them (the strict gateway would otherwise get one request per file).
S3ObjectStore::Hooks AsIfTheServerProvedNothing(S3ObjectStore::Hooks hooks = {}) {
  hooks.on_verification = [](S3ObjectStore::Verification& found) { found = {}; };
  return hooks;
}

constexpr char kStrictGateway[] = "strict gateway";
constexpr char kS3rverAlone[] = "s3rver alone";

// One test on each server: the strict gateway, and s3rver alone (lenient).
class S3ObjectStoreOnEachServerTest : public ::testing::TestWithParam<std::string> {
 protected:
  S3Options ServerOptions() const {
    return GetParam() == kStrictGateway ? OptionsFor(SharedStack())
                                        : LenientOptionsFor(SharedStack());
  }
};

INSTANTIATE_TEST_SUITE_P(Servers, S3ObjectStoreOnEachServerTest,
                         ::testing::Values(kStrictGateway, kS3rverAlone),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == kStrictGateway ? "StrictGateway" : "S3rverAlone";
                         });

TEST_P(S3ObjectStoreOnEachServerTest, SmallUploadIsProvenByItsEtagWithoutHeadObject) {
  const std::string& server = GetParam();
  S3Options options = ServerOptions();
  ProvenStore proven(options);
  TestFile file(16 * 1024, 21);
  const std::string key = TestPrefix() + server + "/" + file.sha256() + ".bin";
  auto uploaded = proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
  EXPECT_FALSE(uploaded->already_stored);
  EXPECT_EQ(uploaded->size, file.size());
  EXPECT_EQ(proven.proofs, std::vector<Proof>{Proof::kEtag});
  ExpectStoredExactly(*proven.store, key, file);
}

TEST_P(S3ObjectStoreOnEachServerTest, AnEtagThatIsNotTheBodysMd5FallsBackToHeadObject) {
  const std::string& server = GetParam();
  S3Options options = ServerOptions();
  S3ObjectStore::Hooks hooks;
  // As AWS S3 answers under SSE-KMS: an ETag that is not the body's MD5.
  hooks.on_put_answer = [](std::string& etag) { etag = "4d1e8c9f2a6b0d3e7f5a1c8b9e2d4f60-kms"; };
  ProvenStore proven(options, hooks);
  TestFile file(1000, 22);
  const std::string key = TestPrefix() + server + "/" + file.sha256() + ".bin";
  auto uploaded = proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
  EXPECT_EQ(proven.proofs, std::vector<Proof>{Proof::kHeadObject});
  ExpectStoredExactly(*proven.store, key, file);
}

TEST_P(S3ObjectStoreOnEachServerTest,
       SmallUploadOverAnIdenticalObjectKeepsItWhereTheServerHonoursTheCondition) {
  const std::string& server = GetParam();
  S3Options options = ServerOptions();
  ProvenStore proven(options);
  TestFile file(4096, 23);
  const std::string key = TestPrefix() + server + "/" + file.sha256() + ".bin";
  ASSERT_TRUE(proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {}).ok());
  auto before = proven.store->Stat(key, {});
  ASSERT_TRUE(before.ok() && before->has_value());
  proven.proofs.clear();

  auto again = proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(again.ok()) << again.error().message;
  if (server == kStrictGateway) {
    // 412, then one HeadObject: the identical object stays, nothing is written.
    EXPECT_TRUE(again->already_stored);
    EXPECT_EQ(proven.proofs, std::vector<Proof>{Proof::kAlreadyStored});
  } else {
    // s3rver ignores If-None-Match: the same bytes are stored again.
    EXPECT_FALSE(again->already_stored);
    EXPECT_EQ(proven.proofs, std::vector<Proof>{Proof::kEtag});
  }
  ExpectStoredExactly(*proven.store, key, file);
}

TEST_P(S3ObjectStoreOnEachServerTest, SmallUploadReplacesAnotherObjectUnderItsKey) {
  const std::string& server = GetParam();
  S3Options options = ServerOptions();
  ProvenStore proven(options);
  TestFile file(8192, 24);
  const std::string key = TestPrefix() + server + "/" + file.sha256() + ".bin";
  // A short body left under the key (a lenient server kept a cut PUT).
  const std::string prefix(4096, 'x');
  Payload short_body;
  short_body.bytes = std::span<const char>(prefix.data(), prefix.size());
  short_body.sha256_hex = Sha256Hex(prefix);
  ASSERT_TRUE(proven.store->client().PutObject(key, short_body, {{"sha256", file.sha256()}}).ok());

  auto uploaded = proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
  EXPECT_FALSE(uploaded->already_stored);
  EXPECT_EQ(proven.proofs, std::vector<Proof>{Proof::kEtag});
  ExpectStoredExactly(*proven.store, key, file);
}

// A streamed PutObject: its ETag proves it when Content-MD5 made the MD5
// known; without, HeadObject does.
void ExpectStreamedUploadProven(const std::string& server, S3Options options, bool content_md5,
                                uint32_t seed, Proof proof) {
  options.multipart_threshold = 64 * kMiB;
  options.content_md5 = content_md5;
  ProvenStore proven(options, AsIfTheServerProvedNothing());
  TestFile file(6 * kMiB + 3, seed);
  const std::string key = TestPrefix() + server + "/" + file.sha256() + ".bin";
  auto uploaded = proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
  EXPECT_EQ(proven.proofs, std::vector<Proof>{proof});
  ExpectStoredExactly(*proven.store, key, file);
}

TEST_P(S3ObjectStoreOnEachServerTest, StreamedUploadWithContentMd5IsProvenByItsEtag) {
  ExpectStreamedUploadProven(GetParam(), ServerOptions(), /*content_md5=*/true, 25, Proof::kEtag);
}

TEST_P(S3ObjectStoreOnEachServerTest, StreamedUploadWithoutContentMd5IsProvenByHeadObject) {
  ExpectStreamedUploadProven(GetParam(), ServerOptions(), /*content_md5=*/false, 26,
                             Proof::kHeadObject);
}

TEST_P(S3ObjectStoreOnEachServerTest, LargerFileFindsAnIdenticalObjectFirstAndHashesTheLocalCopy) {
  const std::string& server = GetParam();
  S3Options options = ServerOptions();
  options.multipart_threshold = 64 * kMiB;
  ProvenStore proven(options, AsIfTheServerProvedNothing());
  TestFile file(6 * kMiB, 27);
  const std::string key = TestPrefix() + server + "/" + file.sha256() + ".bin";
  ASSERT_TRUE(proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {}).ok());
  proven.proofs.clear();

  auto again = proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_TRUE(again->already_stored);
  EXPECT_EQ(proven.proofs, std::vector<Proof>{Proof::kAlreadyStored});

  // The local copy changed (same size): it is not the job's file, whatever is stored.
  ASSERT_EQ(pwrite(file.fd_for_writing(), "tampered", 8, 1000), 8);
  auto tampered = proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_FALSE(tampered.ok());
  EXPECT_EQ(tampered.error().kind, ErrorKind::kJobRetryable);
  EXPECT_NE(tampered.error().message.find("Local file does not match sha256"), std::string::npos)
      << tampered.error().message;
  ExpectStoredExactly(*proven.store, key, file);  // the good object is untouched
}

// What each server verifies, found by probing: the strict gateway refuses a
// body that does not match its signed payload hash or its
// x-amz-checksum-sha256, as MinIO and AWS S3 do; s3rver alone refuses
// neither (and the probe's bytes it kept are removed).
TEST_P(S3ObjectStoreOnEachServerTest, DetectVerificationFindsWhatTheServerChecks) {
  S3ObjectStore store(ServerOptions());
  EXPECT_FALSE(store.verification().Proves()) << "nothing is known before the probe";
  const TransportCounts before = store.client().Transport();
  auto found = store.DetectVerification();
  ASSERT_TRUE(found.ok()) << found.error().message;
  const bool strict = GetParam() == kStrictGateway;
  EXPECT_EQ(found->payload_hash, strict);
  EXPECT_EQ(found->checksum_sha256, strict);
  EXPECT_EQ(store.verification().Proves(), strict);
  // Two probes, and a delete where the server kept the probe's bytes.
  EXPECT_EQ(store.client().Transport().requests - before.requests, strict ? 2u : 3u);
}

// On a server that proves what it stores, a file above one part costs one
// request, read once: no HeadObject before or after. Elsewhere the paths
// of before: HeadObject, a streamed PutObject, HeadObject.
TEST_P(S3ObjectStoreOnEachServerTest, AFileAboveOnePartCostsOneRequestWhereTheServerProvesIt) {
  const std::string& server = GetParam();
  S3Options options = ServerOptions();
  options.multipart_threshold.reset();  // the default of each box
  ProvenStore proven(options);
  ASSERT_TRUE(proven.store->DetectVerification().ok());
  for (uint64_t size : {12 * kMiB + 5, 130 * kMiB}) {
    SCOPED_TRACE("size " + std::to_string(size));
    proven.proofs.clear();
    TestFile file(size, static_cast<uint32_t>(size % 1000));
    const std::string key = TestPrefix() + server + "/" + file.sha256() + ".bin";
    const TransportCounts before = proven.store->client().Transport();
    auto uploaded = proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {});
    ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
    const uint64_t requests = proven.store->client().Transport().requests - before.requests;
    if (server == kStrictGateway) {
      EXPECT_EQ(proven.proofs, std::vector<Proof>{Proof::kServerVerified});
      EXPECT_EQ(requests, 1u);
    } else {
      EXPECT_EQ(proven.proofs, std::vector<Proof>{Proof::kHeadObject});
      EXPECT_GE(requests, 3u);
    }
    ExpectStoredExactly(*proven.store, key, file);
  }
}

TEST_P(S3ObjectStoreOnEachServerTest, ALyingFileAboveOnePartStoresNothingWhereTheServerProvesIt) {
  S3Options options = ServerOptions();
  options.multipart_threshold.reset();
  S3ObjectStore store(options);
  ASSERT_TRUE(store.DetectVerification().ok());
  ExpectLyingJobRefused(store, 12 * kMiB, 31);
}

// The one request carries If-None-Match: an identical object already there
// is kept (the local copy hashed), another one is replaced and read back.
TEST(S3ObjectStoreTest, OneRequestUploadKeepsAnIdenticalObjectAndReplacesAnother) {
  S3Options options = OptionsFor(SharedStack());
  options.multipart_threshold.reset();
  ProvenStore proven(options);
  ASSERT_TRUE(proven.store->DetectVerification().ok());
  TestFile file(10 * kMiB, 32);
  const std::string key = TestPrefix() + file.sha256() + ".bin";
  ASSERT_TRUE(proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {}).ok());
  proven.proofs.clear();
  auto again = proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_TRUE(again->already_stored);
  EXPECT_EQ(proven.proofs, std::vector<Proof>{Proof::kAlreadyStored});

  const std::string other_key = TestPrefix() + "other-" + file.sha256() + ".bin";
  TestFile other(4096, 33);
  ASSERT_TRUE(proven.store->Upload(other_key, other.fd(), other.size(), other.sha256(), {}).ok());
  // other_key now holds other bytes: uploading the file there replaces them.
  proven.proofs.clear();
  auto replaced = proven.store->Upload(other_key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(replaced.ok()) << replaced.error().message;
  EXPECT_FALSE(replaced->already_stored);
  EXPECT_EQ(proven.proofs, std::vector<Proof>{Proof::kHeadObject});
  ExpectStoredExactly(*proven.store, other_key, file);
}

// A one-request upload cut mid-body (the connection drops) leaves nothing
// under its key on a server that proves what it stores.
TEST(S3ObjectStoreTest, AOneRequestUploadCutShortLeavesNothing) {
  S3ObjectStore::Hooks hooks;
  hooks.cut_stream = [](uint64_t offset) { return offset >= 4 * kMiB; };
  S3Options options = OptionsFor(SharedStack());
  options.multipart_threshold.reset();
  S3ObjectStore store(options, hooks);
  ASSERT_TRUE(store.DetectVerification().ok());
  TestFile file(10 * kMiB, 34);
  const std::string key = TestPrefix() + file.sha256() + ".bin";
  auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_FALSE(uploaded.ok());
  EXPECT_EQ(uploaded.error().kind, ErrorKind::kOutage) << uploaded.error().message;
  ExpectNothingUnder(store, key);
}

TEST(S3ObjectStoreTest, ContentMd5IsAcceptedWhenEnabled) {
  S3Options options = OptionsFor(SharedStack());
  options.content_md5 = true;
  S3ObjectStore store(options);
  for (uint64_t size : {uint64_t{3}, 11 * kMiB}) {
    TestFile file(size, 7);
    const std::string key = TestPrefix() + std::to_string(size);
    auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
    ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
    ExpectStoredExactly(store, key, file);
  }
}

// 200 MiB through the default part size, in a child process so that its peak
// RSS (VmHWM) measures the upload alone; read back byte-exact with ranged GETs.
long StatusFieldKib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  }
  return -1;
}

struct PeakRss {
  long peak_kib = -1;      // VmHWM of the uploading process
  long baseline_kib = -1;  // its RSS before the upload (inherited from the test binary)
};

// Peak RSS of a child process that uploads `file` under `key` with
// `options`; a failed upload fails the test.
PeakRss PeakRssOfUpload(const S3Options& options, const TestFile& file, const std::string& key) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    ADD_FAILURE() << "pipe failed";
    return {};
  }
  pid_t child = fork();
  if (child == 0) {
    close(pipe_fds[0]);
    // Start the peak at the current RSS (what the test binary already holds).
    { std::ofstream("/proc/self/clear_refs") << "5"; }
    const long baseline = StatusFieldKib("VmRSS:");
    std::string report;
    {
      BufferPool pool(options.buffer_pool_bytes);
      S3ObjectStore store(options, pool);
      auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
      if (!uploaded.ok()) report = "error " + uploaded.error().message;
    }
    if (report.empty()) {
      report = "ok " + std::to_string(StatusFieldKib("VmHWM:")) + " " + std::to_string(baseline);
    }
    ssize_t ignored = write(pipe_fds[1], report.data(), report.size());
    (void)ignored;
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string report;
  char buffer[512];
  ssize_t n = 0;
  while ((n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) report.append(buffer, n);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  if (report.rfind("ok ", 0) != 0) {
    ADD_FAILURE() << report;
    return {};
  }
  PeakRss rss;
  std::istringstream(report.substr(3)) >> rss.peak_kib >> rss.baseline_kib;
  return rss;
}

// Sanitizers add shadow memory and quarantine: RSS figures mean nothing there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kUnderSanitizer = true;
#else
constexpr bool kUnderSanitizer = false;
#endif

// Uploads a 200 MiB file in a child process; its peak RSS stays under the
// process target (64 MiB) and the upload itself adds less than max_added_kib.
// The object reads back byte-exact.
void ExpectBoundedUpload(const S3Options& options, uint32_t seed, long max_added_kib,
                         const char* label,
                         std::source_location at = std::source_location::current()) {
  ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
  TestFile file(200 * kMiB, seed);
  const std::string key = TestPrefix() + file.sha256() + ".bin";
  const PeakRss rss = PeakRssOfUpload(options, file, key);
  ::testing::Test::RecordProperty("peak_rss_kib", std::to_string(rss.peak_kib));
  std::printf("200 MiB %s: peak RSS %ld KiB (%ld KiB before it)\n", label, rss.peak_kib,
              rss.baseline_kib);
  ASSERT_GT(rss.baseline_kib, 0);
  EXPECT_LT(rss.peak_kib, 64 * 1024) << "peak RSS of the uploading process";
  EXPECT_LT(rss.peak_kib - rss.baseline_kib, max_added_kib) << "RSS the upload added";
  S3ObjectStore store(options);
  ExpectStoredExactly(store, key, file);
}

TEST(S3ObjectStoreTest, Uploads200MiBWithBoundedPeakMemory) {
  if (kUnderSanitizer) GTEST_SKIP() << "peak RSS is not meaningful under a sanitizer";
  S3Options options = OptionsFor(SharedStack());
  options.multipart_threshold = 16 * kMiB;
  options.part_size = 8 * kMiB;
  options.part_parallelism = 4;
  options.buffer_pool_bytes = 32 * kMiB;
  // The 32 MiB pool and a little more.
  ASSERT_NO_FATAL_FAILURE(ExpectBoundedUpload(options, 42, 44 * 1024, "multipart upload"));
}

TEST(S3ObjectStoreTest, Streams200MiBInOnePutAtConstantMemory) {
  if (kUnderSanitizer) GTEST_SKIP() << "peak RSS is not meaningful under a sanitizer";
  S3Options options = OptionsFor(SharedStack());
  options.multipart_threshold = 1024 * kMiB;  // one PutObject up to 1 GiB
  options.part_size = 8 * kMiB;
  options.buffer_pool_bytes = 8 * kMiB;
  // No pooled buffer: a 256 KiB read buffer and curl's upload buffer.
  ASSERT_NO_FATAL_FAILURE(ExpectBoundedUpload(options, 43, 6 * 1024, "streamed PutObject"));
}

TEST(S3ObjectStoreTest, LyingJobLeavesNothingWithStreamedPut) {
  S3Options options = LenientOptionsFor(SharedStack());
  options.multipart_threshold = 64 * kMiB;
  S3ObjectStore store(options);
  ExpectLyingJobRefused(store, 12 * kMiB, 5);
}

// The file changes after it was hashed and before it is sent: the second
// pass notices at the last chunk and never completes the request. s3rver
// keeps the short body it received; the client removes it (its size is
// wrong), so nothing stays under the key. Through the strict gateway the
// short body is refused outright.
TEST_P(S3ObjectStoreOnEachServerTest, FileChangedWhileStreamingLeavesNothing) {
  const bool lenient = GetParam() == kS3rverAlone;
  S3Options options = ServerOptions();
  options.multipart_threshold = 64 * kMiB;
  TestFile file(12 * kMiB, lenient ? 7 : 8);
  S3ObjectStore::Hooks hooks;
  hooks.before_stream = [&] {
    const char changed[] = "changed";
    ASSERT_EQ(pwrite(file.fd_for_writing(), changed, sizeof(changed), 6 * kMiB),
              static_cast<ssize_t>(sizeof(changed)));
  };
  S3ObjectStore store(options, AsIfTheServerProvedNothing(hooks));
  const std::string key = TestPrefix() + (lenient ? "lenient/" : "strict/") + file.sha256();
  auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_FALSE(uploaded.ok());
  EXPECT_EQ(uploaded.error().kind, ErrorKind::kJobRetryable);
  EXPECT_NE(uploaded.error().message.find("the file changed while it was sent"), std::string::npos)
      << uploaded.error().message;
  ExpectNothingUnder(store, key);
}

// The one request of a server that proves what it stores, with the file
// changed after the job was made: its last bytes are never sent, the server
// keeps nothing, and the job is at fault.
TEST(S3ObjectStoreTest, AFileChangedBeforeItsOneRequestLeavesNothing) {
  S3Options options = OptionsFor(SharedStack());
  options.multipart_threshold.reset();
  TestFile file(12 * kMiB, 35);
  S3ObjectStore::Hooks hooks;
  hooks.before_stream = [&] {
    const char changed[] = "changed";
    ASSERT_EQ(pwrite(file.fd_for_writing(), changed, sizeof(changed), 6 * kMiB),
              static_cast<ssize_t>(sizeof(changed)));
  };
  ProvenStore proven(options, hooks);
  ASSERT_TRUE(proven.store->DetectVerification().ok());
  const std::string key = TestPrefix() + "one-request/" + file.sha256();
  auto uploaded = proven.store->Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_FALSE(uploaded.ok());
  EXPECT_EQ(uploaded.error().kind, ErrorKind::kJobRetryable);
  EXPECT_EQ(uploaded.error().fault, FaultClass::kHashMismatch);
  EXPECT_TRUE(proven.proofs.empty());
  ExpectNothingUnder(*proven.store, key);
}

// A slow worker (its lease expired) and the worker now holding the same job
// upload the same key to a lenient server. The slow one's PutObject is cut
// half-way and the server keeps the short body; while the slow worker checks
// that body, the other stores and verifies the good object, then (in the
// pipeline) records it and deletes its local file. The slow worker's
// clean-up must not leave the key without the good object. s3rver ignores
// If-Match, so this proves the re-check and the second upload.
TEST(S3ObjectStoreTest, RemovingATruncatedBodyNeverLosesAGoodUploadOfTheSameKey) {
  S3Options options = LenientOptionsFor(SharedStack());
  options.multipart_threshold = 64 * kMiB;  // 12 MiB: one streamed PutObject
  TestFile file(12 * kMiB, 12);
  const std::string key = TestPrefix() + file.sha256();
  S3ObjectStore other(options);

  std::atomic<bool> cut{false};
  std::optional<Result<ObjectInfo>> other_upload;
  S3ObjectStore::Hooks hooks;
  hooks.cut_stream = [&](uint64_t offset) { return offset >= 6 * kMiB && !cut.exchange(true); };
  hooks.before_truncated_delete = [&](const std::string&) {
    other_upload.emplace(other.Upload(key, file.fd(), file.size(), file.sha256(), {}));
  };
  S3ObjectStore slow(options, hooks);

  auto uploaded = slow.Upload(key, file.fd(), file.size(), file.sha256(), {});

  ASSERT_TRUE(cut.load()) << "the slow upload was never cut";
  ASSERT_TRUE(other_upload.has_value()) << "no short body was left: the test proves nothing";
  ASSERT_TRUE(other_upload->ok()) << other_upload->error().message;
  ExpectStoredExactly(other, key, file);
  EXPECT_TRUE(uploaded.ok()) << uploaded.error().message;
}

// The conditional delete is signed like any request: a strict server takes
// it (MinIO and AWS S3 then honour If-Match; s3rver behind the gateway
// ignores it and deletes).
// Workers starting together on a missing bucket all see it missing and all
// try to create it; all but one are told it exists (409). None may take that
// for a bucket that cannot be created and mark its box unusable.
TEST(S3ClientTest, WorkersCreatingOneBucketAtOnceAllSucceed) {
  constexpr int kWorkers = 8;
  for (int round = 0; round < 5; ++round) {
    S3Options options = OptionsFor(SharedStack());
    options.bucket = "made-at-once-" + std::to_string(round);
    std::vector<Status> outcomes(kWorkers, Error::Outage("not run"));
    std::latch start(kWorkers);
    std::vector<std::thread> workers;
    for (int i = 0; i < kWorkers; ++i) {
      workers.emplace_back([&, i] {
        S3Client client(options);
        start.arrive_and_wait();
        outcomes[i] = client.EnsureBucket();
      });
    }
    for (auto& worker : workers) worker.join();
    for (const Status& outcome : outcomes) {
      EXPECT_TRUE(outcome.ok()) << options.bucket << ": " << outcome.error().message;
    }
  }
}

TEST(S3ClientTest, ConditionalDeleteIsAcceptedByAStrictServer) {
  S3ObjectStore store(OptionsFor(SharedStack()));
  TestFile file(1000, 13);
  const std::string key = TestPrefix() + file.sha256();
  auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
  auto deleted = store.client().DeleteObjectIfMatch(key, uploaded->etag);
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_TRUE(*deleted);
  ExpectNothingUnder(store, key);
  auto absent = store.client().DeleteObjectIfMatch(key, uploaded->etag);
  ASSERT_TRUE(absent.ok()) << absent.error().message;
  EXPECT_TRUE(*absent);
}

TEST(S3ObjectStoreTest, LyingJobLeavesNothingWithSinglePut) {
  S3ObjectStore store(LenientOptionsFor(SharedStack()));
  ExpectLyingJobRefused(store, 4096, 1);
}

TEST(S3ObjectStoreTest, LyingJobLeavesNothingWithMultipart) {
  std::vector<std::string> aborted;
  S3ObjectStore::Hooks hooks;
  hooks.on_multipart_aborted = [&](const std::string& upload_id) { aborted.push_back(upload_id); };
  S3ObjectStore store(LenientOptionsFor(SharedStack()), hooks);
  const std::string key = ExpectLyingJobRefused(store, 17 * kMiB, 3);
  EXPECT_EQ(aborted.size(), 1u) << "the multipart upload is aborted, never completed";
  ExpectNoUploadLeftFor(store, key);
}

TEST(S3ObjectStoreTest, ShortFileIsASizeMismatchAndLeavesNothing) {
  S3ObjectStore store(LenientOptionsFor(SharedStack()));
  for (uint64_t size : {uint64_t{100}, 12 * kMiB}) {
    TestFile file(size, 5);
    const std::string key = TestPrefix() + std::to_string(size);
    auto uploaded = store.Upload(key, file.fd(), size + 10, file.sha256(), {});
    ASSERT_FALSE(uploaded.ok());
    EXPECT_EQ(uploaded.error().kind, ErrorKind::kJobRetryable);
    EXPECT_EQ(uploaded.error().message, "Size mismatch: expected " + std::to_string(size + 10) +
                                            ", got " + std::to_string(size));
    ExpectNothingUnder(store, key);
  }
}

TEST(S3ObjectStoreTest, StopRequestCancelsMultipartAndLeavesNothing) {
  std::stop_source stop;
  std::vector<std::string> aborted;
  S3ObjectStore::Hooks hooks;
  hooks.on_part_uploaded = [&](int) { stop.request_stop(); };
  hooks.on_multipart_aborted = [&](const std::string& upload_id) { aborted.push_back(upload_id); };
  S3ObjectStore store(OptionsFor(SharedStack()), hooks);
  TestFile file(40 * kMiB, 6);
  const std::string key = TestPrefix() + file.sha256() + ".bin";
  auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), stop.get_token());
  ASSERT_FALSE(uploaded.ok());
  EXPECT_EQ(uploaded.error().kind, ErrorKind::kCancelled) << uploaded.error().message;
  EXPECT_EQ(aborted.size(), 1u);
  ExpectNothingUnder(store, key);
}

TEST(S3ObjectStoreTest, ExistingBufferLeasesMakeUploadsWaitNotFail) {
  S3Options options = OptionsFor(SharedStack());
  BufferPool pool(16 * kMiB);
  S3ObjectStore store(options, pool);
  TestFile file(12 * kMiB, 8);
  const std::string key = TestPrefix() + file.sha256();
  // Another user holds most of the budget; the upload proceeds with what is
  // left (one part at a time) instead of deadlocking or failing.
  auto held = pool.Acquire(10 * kMiB, {});
  ASSERT_TRUE(held.ok());
  auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
  ExpectStoredExactly(store, key, file);
  EXPECT_EQ(pool.in_use(), 10 * kMiB);
}

// s3rver is frozen (SIGSTOP) once a part was sent, and thawed after the
// upload returned: the upload either completed or is an outage, and no half
// object is ever visible.
TEST(S3ObjectStoreTest, FrozenServerMidMultipartIsAnOutageWithoutHalfObject) {
  LocalStack& stack = SharedStack();
  const pid_t server = stack.Pid("s3");
  S3Options options = OptionsFor(stack);
  options.low_speed_time = std::chrono::seconds(2);
  options.connect_timeout = std::chrono::milliseconds(2000);
  options.part_parallelism = 2;
  std::atomic<bool> frozen{false};
  S3ObjectStore::Hooks hooks;
  hooks.on_part_uploaded = [&](int) {
    if (!frozen.exchange(true)) kill(server, SIGSTOP);
  };
  S3ObjectStore store(options, hooks);
  TestFile file(40 * kMiB, 9);
  const std::string key = TestPrefix() + file.sha256() + ".bin";

  const auto started = std::chrono::steady_clock::now();
  auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
  const auto elapsed = std::chrono::steady_clock::now() - started;
  kill(server, SIGCONT);
  ASSERT_TRUE(frozen.load()) << "the server was never stopped";
  EXPECT_LT(elapsed, std::chrono::seconds(60));

  if (uploaded.ok()) {
    ExpectStoredExactly(store, key, file);
  } else {
    EXPECT_EQ(uploaded.error().kind, ErrorKind::kOutage) << uploaded.error().message;
    ExpectNothingUnder(store, key);
  }
}

// s3rver killed (SIGKILL) once a part was sent: outage, not a content fault;
// after a restart nothing is visible under the key.
TEST(S3ObjectStoreTest, KilledServerIsAnOutage) {
  LocalStack& stack = SharedStack();
  struct RestartOnExit {
    LocalStack& stack;
    ~RestartOnExit() { stack.Restart("s3"); }
  } restart{stack};
  const pid_t server = stack.Pid("s3");
  S3Options options = OptionsFor(stack);
  std::atomic<bool> killed{false};
  S3ObjectStore::Hooks hooks;
  hooks.on_part_uploaded = [&](int) {
    if (!killed.exchange(true)) {
      kill(server, SIGKILL);
      int status = 0;
      for (int i = 0; i < 100 && kill(server, 0) == 0; ++i) {
        waitpid(server, &status, WNOHANG);
        usleep(20000);
      }
    }
  };
  S3ObjectStore store(options, hooks);
  TestFile file(40 * kMiB, 10);
  const std::string key = TestPrefix() + file.sha256() + ".bin";
  auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(killed.load());
  ASSERT_FALSE(uploaded.ok());
  EXPECT_EQ(uploaded.error().kind, ErrorKind::kOutage) << uploaded.error().message;

  auto stat = store.Stat(key, {});
  ASSERT_FALSE(stat.ok());
  EXPECT_EQ(stat.error().kind, ErrorKind::kOutage) << stat.error().message;

  stack.Restart("s3");
  ExpectNothingUnder(store, key);
}

// Wrong credentials shown with an unknown key id (InvalidAccessKeyId, 403).
// A wrong secret alone (SignatureDoesNotMatch, which s3rver 3.7.1 never sends:
// it does not verify SigV4 signatures) is refused by the strict gateway in
// front of it: tests/integration/strict_gateway_test.cpp.
TEST(S3ClientTest, WrongCredentialsAreConfigurationWithoutSecrets) {
  S3Options options = OptionsFor(SharedStack());
  options.access_key = "NOT-OUR-ACCESS-KEY";
  options.secret_key = "wrong-secret-do-not-print-1234";
  S3ObjectStore store(options);
  TestFile file(10, 11);
  const std::string key = TestPrefix() + file.sha256();

  auto stat = store.Stat(key, {});
  ASSERT_FALSE(stat.ok());
  EXPECT_EQ(stat.error().kind, ErrorKind::kConfiguration) << stat.error().message;

  auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
  ASSERT_FALSE(uploaded.ok());
  EXPECT_EQ(uploaded.error().kind, ErrorKind::kConfiguration) << uploaded.error().message;
  EXPECT_NE(uploaded.error().message.find("InvalidAccessKeyId"), std::string::npos)
      << uploaded.error().message;
  EXPECT_NE(uploaded.error().message.find(key), std::string::npos) << uploaded.error().message;
  for (const std::string& message : {stat.error().message, uploaded.error().message}) {
    EXPECT_EQ(message.find(options.secret_key), std::string::npos) << message;
    EXPECT_EQ(message.find("Signature="), std::string::npos) << message;
    EXPECT_EQ(message.find("AWS4-HMAC-SHA256"), std::string::npos) << message;
  }
}

TEST(S3ClientTest, EnsureBucketCreatesAMissingBucket) {
  S3Options options = OptionsFor(SharedStack());
  options.bucket = "created-" + std::to_string(getpid()) + "-" +
                   std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  S3ObjectStore store(options);
  auto before = store.client().HeadBucket();
  ASSERT_TRUE(before.ok()) << before.error().message;
  EXPECT_FALSE(*before);
  // Uploading into the missing bucket is a configuration problem.
  TestFile file(10, 12);
  auto rejected = store.Upload(TestPrefix() + "x", file.fd(), file.size(), file.sha256(), {});
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.error().kind, ErrorKind::kConfiguration) << rejected.error().message;

  Status ensured = store.EnsureBucket();
  ASSERT_TRUE(ensured.ok()) << ensured.error().message;
  auto after = store.client().HeadBucket();
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(*after);
  EXPECT_TRUE(store.EnsureBucket().ok()) << "idempotent";
  auto uploaded = store.Upload(TestPrefix() + "x", file.fd(), file.size(), file.sha256(), {});
  ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
}

TEST(S3ClientTest, UnreachableEndpointIsAnOutage) {
  S3Options options = OptionsFor(SharedStack());
  options.endpoint = "127.0.0.1:1";  // nothing listens on port 1
  S3Client client(options);
  auto head = client.HeadObject("any");
  ASSERT_FALSE(head.ok());
  EXPECT_EQ(head.error().kind, ErrorKind::kOutage) << head.error().message;
}

TEST(S3ClientTest, HttpsWithSelfSignedCaFile) {
  LocalStack tls_stack(LocalStack::Params{.tls = true});
  S3Options options = OptionsFor(tls_stack);
  ASSERT_TRUE(options.secure);
  options.ca_file = tls_stack.Get("MINIO_CA_FILE");
  S3ObjectStore store(options);
  for (uint64_t size : {uint64_t{1000}, 7 * kMiB}) {
    TestFile file(size, 13);
    const std::string key = TestPrefix() + file.sha256();
    auto uploaded = store.Upload(key, file.fd(), file.size(), file.sha256(), {});
    ASSERT_TRUE(uploaded.ok()) << uploaded.error().message;
    ExpectStoredExactly(store, key, file);
  }

  // Without the CA the server's certificate is not trusted: configuration.
  options.ca_file = "/nonexistent/ca.pem";
  S3Client untrusting(options);
  auto head = untrusting.HeadObject("any");
  ASSERT_FALSE(head.ok());
  EXPECT_EQ(head.error().kind, ErrorKind::kConfiguration) << head.error().message;
}

TEST(S3ClientTest, ConnectionsAreReused) {
  S3Client client(OptionsFor(SharedStack()));
  // Warm one connection, then count new connects over sequential requests.
  ASSERT_TRUE(client.HeadBucket().ok());
  const std::string port = SharedStack().Get("STACK_S3_PORT");
  auto established = [&] {
    std::string out;
    media_sync::testing::RunStatus("ss -Htn state established '( dport = :" + port + " )' | wc -l",
                                   &out);
    return std::stoi(out);
  };
  const int before = established();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(client.HeadBucket().ok());
  EXPECT_EQ(established(), before) << "sequential requests reuse the keep-alive connection";
}

}  // namespace
}  // namespace media_sync::s3
