// `media-sync run` in a bad environment met at run time, against real
// Redis, PostgreSQL and the strict S3 gateway: a buffer mounted read-only, a
// buffer on a file system with no space left, a bucket that is missing where
// the keys may not create it. Each ends in a held or deferred job and a log
// line naming the problem, never in a failed job or a touched file, and the
// jobs sync once the operator has fixed the environment.
//
// The buffer tests mount over the stack's buffer directory (mount(2): root,
// or CAP_SYS_ADMIN); where the machine allows no mounts they are skipped and
// say why.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// A mount over `target` for the lifetime of the scope, so a failing
// assertion never leaves it in place for the tests that follow.
class ScopedMount {
 public:
  // `target` bound onto itself and remounted read-only: its files stay.
  static ScopedMount ReadOnly(const std::string& target) {
    ScopedMount mount(target);
    if (::mount(target.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      mount.problem_ = std::string("bind mount: ") + std::strerror(errno);
      return mount;
    }
    mount.mounted_ = true;
    if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
      mount.problem_ = std::string("read-only remount: ") + std::strerror(errno);
    }
    return mount;
  }

  // An empty tmpfs of `bytes` over `target`.
  static ScopedMount Tmpfs(const std::string& target, uint64_t bytes) {
    ScopedMount mount(target);
    std::string options = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", target.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      mount.problem_ = std::string("tmpfs mount: ") + std::strerror(errno);
      return mount;
    }
    mount.mounted_ = true;
    return mount;
  }

  ScopedMount(ScopedMount&& other) noexcept
      : target_(std::move(other.target_)),
        problem_(std::move(other.problem_)),
        mounted_(std::exchange(other.mounted_, false)) {}
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;
  ScopedMount& operator=(ScopedMount&&) = delete;
  ~ScopedMount() { Undo(); }

  // Remounts a read-only bind writable, as an operator fixing the buffer
  // would (mount -o remount,rw): descriptors opened on it see the change.
  void MakeWritable() {
    ASSERT_EQ(::mount(nullptr, target_.c_str(), nullptr, MS_REMOUNT | MS_BIND, nullptr), 0)
        << std::strerror(errno);
  }

  bool ok() const { return problem_.empty(); }
  const std::string& problem() const { return problem_; }

  void Undo() {
    if (mounted_) ::umount2(target_.c_str(), MNT_DETACH);
    mounted_ = false;
  }

 private:
  explicit ScopedMount(std::string target) : target_(std::move(target)) {}

  std::string target_;
  std::string problem_;
  bool mounted_ = false;
};

uint64_t FreeBytes(const std::string& path) {
  struct statvfs fs {};
  EXPECT_EQ(::statvfs(path.c_str(), &fs), 0) << path << ": " << std::strerror(errno);
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

class BadEnvironmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

// A read-only buffer would let every file be uploaded and none deleted: the
// jobs are held (an outage of the buffer, their retries untouched, so
// MAX_RETRIES=0 parks nothing) until it is writable again, then sync once.
TEST_F(BadEnvironmentTest, ABufferMountedReadOnlyHoldsJobsUntilItIsWritable) {
  std::vector<Json> jobs = {media_.Make(4096, "box-a", 9100), media_.Make(8192, "box-b", 9101)};
  ScopedMount read_only = ScopedMount::ReadOnly(stack_.BufferDir());
  if (!read_only.ok()) GTEST_SKIP() << "this machine allows no mounts: " << read_only.problem();
  media_.PushAll(jobs);

  WorkerProcess worker(stack_, {{"MAX_RETRIES", "0"}, {"OUTAGE_BACKOFF_MAX_SECONDS", "1"}},
                       {"run"});
  ASSERT_TRUE(WaitUntil(
      [&] {
        return CountOccurrences(worker.Log(), "is mounted read-only, so a synced file could not") >=
               2;
      },
      30s))
      << worker.Log();
  EXPECT_EQ(media_.SyncedRows(), 0);
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  for (const Json& job : jobs) EXPECT_TRUE(media_.LocalExists(job)) << job["local_path"];

  read_only.MakeWritable();
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 2; }, 60s)) << worker.Log();
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitExit(30s), 0) << worker.Log();
  media_.ExpectSyncedExactlyOnce(jobs);
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  EXPECT_EQ(stack_.RedisCli("HLEN media:sync:redeliveries"), "0\n");
}

// The worker writes nothing into the buffer: a file system with no byte left
// (the processor's problem) syncs as usual, and the space comes back. The
// file that filled it is no job's and stays.
TEST_F(BadEnvironmentTest, ABufferWithNoSpaceLeftSyncsAndFreesIt) {
  ScopedMount tmpfs = ScopedMount::Tmpfs(stack_.BufferDir(), 4u << 20);
  if (!tmpfs.ok()) GTEST_SKIP() << "this machine allows no mounts: " << tmpfs.problem();
  std::vector<Json> jobs;
  for (uint64_t seed = 9200; seed < 9208; ++seed) {
    jobs.push_back(media_.Make(128 * 1024, seed % 2 == 0 ? "box-a" : "box-b", seed));
  }
  const std::string filler = stack_.BufferDir() + "/filler.bin";
  {
    std::ofstream out(filler, std::ios::binary);
    const std::string block(64 * 1024, 'x');
    while (out.write(block.data(), static_cast<std::streamsize>(block.size()))) {
    }
  }
  ASSERT_LT(FreeBytes(stack_.BufferDir()), 64u * 1024) << "the buffer should be full";
  media_.PushAll(jobs);

  WorkerProcess worker(stack_, {}, {"run", "--drain"});
  ASSERT_EQ(worker.WaitExit(120s), 0) << worker.Log();
  media_.ExpectSyncedExactlyOnce(jobs);
  EXPECT_GE(FreeBytes(stack_.BufferDir()), 8u * 128 * 1024);
  EXPECT_TRUE(std::filesystem::exists(filler));
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
}

// A bucket that is not there, with keys that may not create it (an IAM user
// without s3:CreateBucket): the box is unusable, the reason is logged, the
// job waits unharmed; once the operator has made the bucket it syncs.
TEST_F(BadEnvironmentTest, AMissingBucketTheKeysMayNotCreateDefersJobsAndSaysWhy) {
  const std::string bucket = "made-by-the-operator";
  Json job = media_.Make(2048, "box-a", 9300);
  media_.Push(job);
  WorkerProcess worker(stack_,
                       {{"MINIO_BUCKET", bucket},
                        {"MINIO_ACCESS_KEY", stack_.Get("STACK_S3_LIMITED_ACCESS_KEY")},
                        {"MINIO_SECRET_KEY", stack_.Get("STACK_S3_LIMITED_SECRET_KEY")},
                        {"MAX_RETRIES", "0"},
                        {"BOX_REFRESH_SECONDS", "1"},
                        {"OUTAGE_BACKOFF_MAX_SECONDS", "1"}},
                       {"run"});
  ASSERT_TRUE(
      WaitUntil([&] { return worker.Log().find("AccessDenied") != std::string::npos; }, 30s))
      << worker.Log();
  EXPECT_THAT(worker.Log(), HasSubstr("Bucket " + bucket + " is missing and cannot be created"));
  EXPECT_EQ(media_.SyncedRows(), 0);
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  EXPECT_TRUE(media_.LocalExists(job));

  // The operator creates it (s3rver itself checks no signature).
  const std::string direct = stack_.Get("STACK_S3_DIRECT_ENDPOINT");
  httplib::Client s3rver("http://" + direct);
  auto created = s3rver.Put("/" + bucket, "", "application/xml");
  ASSERT_TRUE(created && created->status == 200) << httplib::to_string(created.error());

  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == 1; }, 60s)) << worker.Log();
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitExit(30s), 0) << worker.Log();
  EXPECT_FALSE(media_.LocalExists(job));
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
}

}  // namespace
}  // namespace media_sync::testing
