#include "support/s3_test_support.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "core/hash.h"

namespace media_sync::testing {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

}  // namespace

S3Options OptionsFor(const LocalStack& stack) {
  S3Options options;
  options.endpoint = stack.Get("MINIO_ENDPOINT");
  options.access_key = "S3RVER";
  options.secret_key = "S3RVER";
  options.bucket = stack.Get("MINIO_BUCKET");
  options.secure = stack.Get("MINIO_SECURE") == "true";
  options.multipart_threshold = 5 * kMiB;
  options.part_size = 5 * kMiB;
  options.part_parallelism = 3;
  options.buffer_pool_bytes = 32 * kMiB;
  options.connect_timeout = std::chrono::milliseconds(3000);
  options.low_speed_time = std::chrono::seconds(3);
  return options;
}

S3Options LenientOptionsFor(const LocalStack& stack) {
  S3Options options = OptionsFor(stack);
  options.endpoint = stack.Get("STACK_S3_DIRECT_ENDPOINT");
  options.secure = false;
  return options;
}

std::string TestPrefix() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string("it/") + info->test_suite_name() + "." + info->name() + "/";
}

TestFile::TestFile(uint64_t size, uint32_t seed) : size_(size) {
  char pattern[] = "/tmp/s3-client-test-XXXXXX";
  dir_ = mkdtemp(pattern);
  path_ = dir_ + "/data.bin";
  std::ofstream out(path_, std::ios::binary);
  std::mt19937_64 random(seed);
  Hasher hasher;
  std::vector<uint64_t> chunk(size_t{128} * 1024);
  uint64_t left = size;
  while (left > 0) {
    for (auto& word : chunk) word = random();
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, chunk.size() * sizeof(uint64_t)));
    out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(n));
    hasher.Update(chunk.data(), n);
    left -= n;
  }
  out.close();
  sha256_ = hasher.FinishHex();
  fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
}

TestFile::~TestFile() {
  if (fd_ >= 0) close(fd_);
  if (write_fd_ >= 0) close(write_fd_);
  std::filesystem::remove_all(dir_);
}

std::string StoredSha256(s3::S3Client& client, const std::string& key, uint64_t size) {
  Hasher hasher;
  if (size == 0) {
    auto body = client.GetObject(key);
    EXPECT_TRUE(body.ok()) << body.error().message;
    if (body.ok()) hasher.Update(*body);
    return hasher.FinishHex();
  }
  const uint64_t chunk = 8 * kMiB;
  for (uint64_t first = 0; first < size; first += chunk) {
    s3::ByteRange range{first, std::min(size, first + chunk) - 1};
    auto body = client.GetObject(key, range);
    if (!body.ok()) {
      ADD_FAILURE() << body.error().message;
      return "";
    }
    EXPECT_EQ(body->size(), range.last - range.first + 1);
    hasher.Update(*body);
  }
  return hasher.FinishHex();
}

void ExpectStoredExactly(s3::S3ObjectStore& store, const std::string& key, const TestFile& file,
                         std::source_location at) {
  ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
  auto head = store.Stat(key, {});
  ASSERT_TRUE(head.ok()) << head.error().message;
  ASSERT_TRUE(head->has_value()) << key;
  EXPECT_EQ((*head)->size, file.size());
  EXPECT_EQ((*head)->sha256, file.sha256()) << "x-amz-meta-sha256";
  EXPECT_EQ(StoredSha256(store.client(), key, file.size()), file.sha256());
}

void ExpectNothingUnder(s3::S3ObjectStore& store, const std::string& key, std::source_location at) {
  ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
  auto head = store.Stat(key, {});
  ASSERT_TRUE(head.ok()) << head.error().message;
  EXPECT_FALSE(head->has_value()) << "an object is visible under " << key;
  auto body = store.client().GetObject(key);
  ASSERT_FALSE(body.ok());
  EXPECT_NE(body.error().message.find("NoSuchKey"), std::string::npos) << body.error().message;
}

void ExpectNoUploadLeftFor(s3::S3ObjectStore& store, const std::string& key,
                           std::source_location at) {
  ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
  auto uploads = store.client().ListMultipartUploads(key);
  if (!uploads.ok()) {
    EXPECT_EQ(uploads.error().kind, ErrorKind::kConfiguration) << uploads.error().message;
    EXPECT_NE(uploads.error().message.find("NotImplemented"), std::string::npos)
        << uploads.error().message;
    return;
  }
  for (const auto& upload : *uploads) EXPECT_NE(upload.key, key) << upload.upload_id;
}

}  // namespace media_sync::testing
