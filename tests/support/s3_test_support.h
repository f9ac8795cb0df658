// S3 helpers shared by the integration tests of the S3 client and object
// store: settings for the local stack's servers, files of pseudo-random
// bytes, and checks of what is stored, read back with GetObject.
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <source_location>
#include <string>

#include "config/s3_options.h"
#include "s3/s3_client.h"
#include "s3/s3_object_store.h"
#include "support/local_stack.h"

namespace media_sync::testing {

using s3::S3Options;

// The strict gateway (MINIO_ENDPOINT) with 5 MiB parts, 3 in flight, a
// pool of 32 MiB and short timeouts.
S3Options OptionsFor(const LocalStack& stack);
// The first s3rver without the strict gateway in front of it. The gateway
// refuses a body that does not match its signed hash before s3rver sees it, as
// MinIO does; the tests that prove our client alone keeps a lying or short
// file out of the store need a server that keeps whatever it receives.
S3Options LenientOptionsFor(const LocalStack& stack);
// "it/<suite>.<test>/": a key prefix of the running test's own.
std::string TestPrefix();

// A file of pseudo-random bytes, created in a private temporary directory.
class TestFile {
 public:
  explicit TestFile(uint64_t size, uint32_t seed = 1);
  ~TestFile();
  TestFile(const TestFile&) = delete;
  TestFile& operator=(const TestFile&) = delete;

  int fd() const { return fd_; }
  // A second descriptor open for writing, to change the file under a running upload.
  int fd_for_writing() {
    if (write_fd_ < 0) write_fd_ = open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    return write_fd_;
  }
  uint64_t size() const { return size_; }
  const std::string& sha256() const { return sha256_; }
  const std::string& path() const { return path_; }

 private:
  uint64_t size_;
  std::string dir_;
  std::string path_;
  std::string sha256_;
  int fd_ = -1;
  int write_fd_ = -1;
};

// SHA-256 of the stored object, read back with ranged GETs of at most 8 MiB.
std::string StoredSha256(s3::S3Client& client, const std::string& key, uint64_t size);
// The object under key is the file: size, x-amz-meta-sha256, and its bytes read back.
void ExpectStoredExactly(s3::S3ObjectStore& store, const std::string& key, const TestFile& file,
                         std::source_location at = std::source_location::current());
// No object under key: HeadObject finds none, GetObject answers NoSuchKey.
void ExpectNothingUnder(s3::S3ObjectStore& store, const std::string& key,
                        std::source_location at = std::source_location::current());
// No multipart upload of key is left, where the server can list them.
// s3rver 3.7.1 implements neither ListMultipartUploads (501 NotImplemented)
// nor AbortMultipartUpload (405); there the listing is not available.
void ExpectNoUploadLeftFor(s3::S3ObjectStore& store, const std::string& key,
                           std::source_location at = std::source_location::current());

}  // namespace media_sync::testing
