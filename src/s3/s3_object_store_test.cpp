// S3ObjectStore decisions that are taken before any request is sent; the
// uploads themselves are tested against real servers in
// tests/integration/s3_client_test.cpp.
#include "s3/s3_object_store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "util/fd.h"

namespace media_sync::s3 {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1ull << 20;

// A sparse file of `size` bytes: takes no disk space, reads as zeros.
class SparseFile {
 public:
  explicit SparseFile(uint64_t size) {
    char pattern[] = "/tmp/s3-object-store-test-XXXXXX";
    fd_.reset(mkstemp(pattern));
    if (!fd_) std::abort();
    path_ = pattern;
    if (ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) std::abort();
  }
  ~SparseFile() { unlink(path_.c_str()); }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::string path_;
};

// Nothing listens there: a request that should never be sent fails fast as
// an outage instead of passing unnoticed.
S3Options Unreachable() {
  S3Options options;
  options.endpoint = "127.0.0.1:9";
  options.multipart_threshold = 5 * kMiB;
  options.part_size = 5 * kMiB;
  options.connect_timeout = std::chrono::milliseconds(500);
  return options;
}

// More than 10,000 parts of the whole pool: the parts would have to grow
// beyond the pool. That is the job's (or the settings') problem, never the
// box's: a configuration error would mark the box down and re-read its
// endpoint for ever.
TEST(S3ObjectStoreUnitTest, FileNeedingPartsLargerThanThePoolIsPermanentlyTooLarge) {
  BufferPool pool(5 * kMiB);
  S3ObjectStore store(Unreachable(), pool);
  const uint64_t size = 10000 * 5 * kMiB + 1;  // parts of 5 MiB + 1 byte, rounded to 6 MiB
  SparseFile file(size);
  const std::string sha256(64, 'a');

  auto uploaded = store.Upload("media/aa/aa/x.mp4", file.fd(), size, sha256, {});

  ASSERT_FALSE(uploaded.ok());
  EXPECT_EQ(uploaded.error().kind, ErrorKind::kJobPermanent) << uploaded.error().message;
  EXPECT_EQ(uploaded.error().fault, FaultClass::kTooLarge);
  EXPECT_EQ(ToString(uploaded.error().fault), "too_large");
  EXPECT_THAT(uploaded.error().message, HasSubstr(std::to_string(size) + " bytes"));
  EXPECT_THAT(uploaded.error().message, HasSubstr("raise S3_BUFFER_POOL to at least 6MiB"));
  EXPECT_EQ(pool.in_use(), 0u);
}

// The largest file whose parts still fit is not refused up front.
TEST(S3ObjectStoreUnitTest, FileWhosePartsFitThePoolIsAttempted) {
  BufferPool pool(5 * kMiB);
  S3ObjectStore store(Unreachable(), pool);
  const uint64_t size = 10000 * 5 * kMiB;
  SparseFile file(size);

  auto uploaded = store.Upload("media/aa/aa/x.mp4", file.fd(), size, std::string(64, 'a'), {});

  ASSERT_FALSE(uploaded.ok());
  EXPECT_EQ(uploaded.error().kind, ErrorKind::kOutage) << uploaded.error().message;
}

}  // namespace
}  // namespace media_sync::s3
