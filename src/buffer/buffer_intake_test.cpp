#include "buffer/buffer_intake.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/hash.h"

namespace media_sync::buffer {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ReadAll(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

class BufferIntakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = std::string("media-sync-intake-") + std::to_string(getpid()) + "-" +
                       ::testing::UnitTest::GetInstance()->current_test_info()->name();
    root_ = fs::temp_directory_path() / name;
    fs::remove_all(root_);
    fs::create_directories(root_ / "buffer");
    fs::create_directories(root_ / "source");
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  // A source file; returns its descriptor (owned by the test) and sha256.
  std::pair<UniqueFd, std::string> Source(const fs::path& path, const std::string& content) {
    std::ofstream(path, std::ios::binary) << content;
    return {UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC)), Sha256Hex(content)};
  }
  BufferIntake Intake() {
    auto intake = BufferIntake::Create((root_ / "buffer").string());
    EXPECT_TRUE(intake.ok());
    return std::move(*intake);
  }

  fs::path root_;
};

TEST_F(BufferIntakeTest, LinksAFileOnTheSameFilesystemAndCreatesDirectories) {
  auto [fd, sha] = Source(root_ / "source" / "a.jpg", "hello");
  auto placed = Intake().Place(fd.get(), 5, sha, "media/ab/cd/x.jpg");
  ASSERT_TRUE(placed.ok()) << placed.error().message;
  EXPECT_EQ(*placed, BufferIntake::Placed::kLinked);
  fs::path target = root_ / "buffer/media/ab/cd/x.jpg";
  EXPECT_EQ(ReadAll(target), "hello");
  EXPECT_TRUE(fs::equivalent(target, root_ / "source" / "a.jpg"));
}

TEST_F(BufferIntakeTest, AFileAlreadyThereWithTheSameSizeStays) {
  auto [fd, sha] = Source(root_ / "source" / "a.jpg", "hello");
  fs::create_directories(root_ / "buffer/media/ab/cd");
  std::ofstream(root_ / "buffer/media/ab/cd/x.jpg") << "HELLO";
  auto placed = Intake().Place(fd.get(), 5, sha, "media/ab/cd/x.jpg");
  ASSERT_TRUE(placed.ok());
  EXPECT_EQ(*placed, BufferIntake::Placed::kAlreadyThere);
  EXPECT_EQ(ReadAll(root_ / "buffer/media/ab/cd/x.jpg"), "HELLO");

  // The very file, already at its content path (enqueue of a buffer file).
  auto again = Intake().Place(fd.get(), 5, sha, "media/ab/cd/x.jpg");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, BufferIntake::Placed::kAlreadyThere);
}

TEST_F(BufferIntakeTest, AFileOfAnotherSizeIsNeverOverwritten) {
  auto [fd, sha] = Source(root_ / "source" / "a.jpg", "hello");
  fs::create_directories(root_ / "buffer/media/ab/cd");
  std::ofstream(root_ / "buffer/media/ab/cd/x.jpg") << "hi";
  auto placed = Intake().Place(fd.get(), 5, sha, "media/ab/cd/x.jpg");
  ASSERT_FALSE(placed.ok());
  EXPECT_EQ(placed.error().kind, ErrorKind::kInput);
  EXPECT_THAT(placed.error().message,
              HasSubstr("media/ab/cd/x.jpg already exists with 2 bytes, expected 5: not "
                        "overwritten"));
  EXPECT_EQ(ReadAll(root_ / "buffer/media/ab/cd/x.jpg"), "hi");
}

TEST_F(BufferIntakeTest, CopiesFromAnotherFilesystemAndChecksTheHashOnTheWay) {
  if (!fs::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm (another filesystem)";
  fs::path other = fs::path("/dev/shm") / root_.filename();
  fs::create_directories(other);
  auto [fd, sha] = Source(other / "a.jpg", "bytes from elsewhere");
  auto placed = Intake().Place(fd.get(), 20, sha, "media/12/34/y.jpg");
  auto [stale_fd, stale_sha] = Source(other / "b.jpg", "changed after hashing");
  auto changed = Intake().Place(stale_fd.get(), 21, sha, "media/12/34/z.jpg");
  fs::remove_all(other);

  ASSERT_TRUE(placed.ok()) << placed.error().message;
  EXPECT_EQ(*placed, BufferIntake::Placed::kCopied);
  EXPECT_EQ(ReadAll(root_ / "buffer/media/12/34/y.jpg"), "bytes from elsewhere");
  ASSERT_FALSE(changed.ok());
  EXPECT_THAT(changed.error().message, HasSubstr("changed while it was copied"));
  // Nothing is left behind: no target, no temporary file.
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root_ / "buffer/media/12/34")) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names, ::testing::ElementsAre("y.jpg"));
}

TEST_F(BufferIntakeTest, RefusesPathsThatLeaveTheBufferOrCrossASymlink) {
  auto [fd, sha] = Source(root_ / "source" / "a.jpg", "hello");
  BufferIntake intake = Intake();
  for (const char* bad : {"../escape.jpg", "/abs/x.jpg", "media/./x.jpg", "", "media//x.jpg"}) {
    auto placed = intake.Place(fd.get(), 5, sha, bad);
    ASSERT_FALSE(placed.ok()) << bad;
    EXPECT_EQ(placed.error().kind, ErrorKind::kInput) << bad;
  }
  fs::create_directory_symlink(root_ / "source", root_ / "buffer" / "media");
  auto through_link = intake.Place(fd.get(), 5, sha, "media/ab/x.jpg");
  ASSERT_FALSE(through_link.ok());
  EXPECT_THAT(through_link.error().message,
              HasSubstr("is not a directory (or is a symbolic link)"));
  EXPECT_FALSE(fs::exists(root_ / "source" / "ab"));
}

TEST_F(BufferIntakeTest, AMissingBufferIsAConfigurationError) {
  auto intake = BufferIntake::Create((root_ / "nowhere").string());
  ASSERT_FALSE(intake.ok());
  EXPECT_EQ(intake.error().kind, ErrorKind::kConfiguration);
  EXPECT_THAT(intake.error().message, HasSubstr("nowhere"));
}

}  // namespace
}  // namespace media_sync::buffer
