#include "buffer/local_buffer.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <source_location>
#include <sstream>

#include "core/hash.h"

namespace media_sync::buffer {
namespace {

namespace fs = std::filesystem;

fs::path MakeTempDir(const std::string& tag) {
  std::string pattern = (fs::temp_directory_path() / ("media-sync-" + tag + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  return pattern;
}

void WriteFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

std::string ReadAll(int fd, uint64_t size) {
  std::string content(size, '\0');
  EXPECT_EQ(::pread(fd, content.data(), size, 0), static_cast<ssize_t>(size));
  return content;
}

// Every test runs with both resolvers: openat2() and the O_NOFOLLOW walk
// used on kernels without it.
class LocalBufferTest : public ::testing::TestWithParam<LocalBuffer::Resolver> {
 protected:
  void SetUp() override {
    buffer_dir_ = MakeTempDir("buffer");
    outside_dir_ = MakeTempDir("outside");
    auto created = LocalBuffer::Create(buffer_dir_.string(), GetParam());
    ASSERT_TRUE(created.ok()) << created.error().message;
    buffer_.emplace(std::move(created).value());
    ASSERT_EQ(buffer_->resolver(), GetParam());
  }
  void TearDown() override {
    fs::remove_all(buffer_dir_);
    fs::remove_all(outside_dir_);
  }

  void ExpectOutside(const std::string& local_path,
                     std::source_location at = std::source_location::current()) {
    ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
    auto opened = buffer_->Open(local_path);
    ASSERT_FALSE(opened.ok()) << local_path << " was opened";
    EXPECT_EQ(opened.error().kind, ErrorKind::kJobPermanent);
    EXPECT_EQ(opened.error().message, "Path outside media buffer: " + local_path);
  }

  void ExpectNotRegular(const std::string& local_path,
                        std::source_location at = std::source_location::current()) {
    ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
    auto opened = buffer_->Open(local_path);
    ASSERT_FALSE(opened.ok()) << local_path << " was opened";
    EXPECT_EQ(opened.error().kind, ErrorKind::kJobRetryable);
    EXPECT_EQ(opened.error().message, "Not a regular file: " + local_path);
  }

  LocalFile OpenOrDie(const std::string& local_path) {
    auto opened = buffer_->Open(local_path);
    EXPECT_TRUE(opened.ok()) << opened.error().message;
    EXPECT_TRUE(opened->has_value()) << local_path << " not found";
    return std::move(**opened);
  }

  fs::path buffer_dir_;
  fs::path outside_dir_;
  std::optional<LocalBuffer> buffer_;
};

INSTANTIATE_TEST_SUITE_P(Resolvers, LocalBufferTest,
                         ::testing::Values(LocalBuffer::Resolver::kOpenat2,
                                           LocalBuffer::Resolver::kWalk),
                         [](const auto& info) {
                           return info.param == LocalBuffer::Resolver::kOpenat2 ? "Openat2"
                                                                                : "Walk";
                         });

TEST_P(LocalBufferTest, OpensRegularFileByRelativePath) {
  WriteFile(buffer_dir_ / "ab/cd/file.jpg", "hello");
  LocalFile file = OpenOrDie("ab/cd/file.jpg");
  EXPECT_EQ(file.size(), 5u);
  EXPECT_EQ(file.relative_path(), "ab/cd/file.jpg");
  EXPECT_EQ(file.path(), "ab/cd/file.jpg");
  EXPECT_EQ(ReadAll(file.fd(), file.size()), "hello");
}

TEST_P(LocalBufferTest, OpensRegularFileByAbsolutePathUnderTheBuffer) {
  WriteFile(buffer_dir_ / "ab/file.jpg", "0123456789");
  std::string absolute = (buffer_dir_ / "ab/./file.jpg").string();
  LocalFile file = OpenOrDie(absolute);
  EXPECT_EQ(file.size(), 10u);
  EXPECT_EQ(file.relative_path(), "ab/file.jpg");
  EXPECT_EQ(file.path(), absolute);
  // Redundant slashes and "." are normalised away.
  OpenOrDie(buffer_dir_.string() + "//ab///file.jpg");
  OpenOrDie("./ab/file.jpg");
}

TEST_P(LocalBufferTest, MissingFileIsNotFound) {
  auto missing = buffer_->Open("no/such/file.jpg");
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_FALSE(missing->has_value());
  auto missing_absolute = buffer_->Open((buffer_dir_ / "gone.jpg").string());
  ASSERT_TRUE(missing_absolute.ok());
  EXPECT_FALSE(missing_absolute->has_value());
}

TEST_P(LocalBufferTest, RefusesDotDotTraversal) {
  WriteFile(outside_dir_ / "secret.txt", "secret");
  std::string escape = "../" + outside_dir_.filename().string() + "/secret.txt";
  ExpectOutside(escape);
  ExpectOutside("a/../../" + outside_dir_.filename().string() + "/secret.txt");
  // An absolute path that starts inside the buffer and climbs out.
  ExpectOutside(buffer_dir_.string() + "/../" + outside_dir_.filename().string() + "/secret.txt");
  EXPECT_TRUE(fs::exists(outside_dir_ / "secret.txt"));
}

// Any ".." is refused, even one that would stay inside: the answer must not
// depend on which directories exist.
TEST_P(LocalBufferTest, RefusesDotDotThatStaysInside) {
  WriteFile(buffer_dir_ / "a/file.jpg", "x");
  ExpectOutside("a/../a/file.jpg");
  ExpectOutside("missing/../a/file.jpg");
  EXPECT_TRUE(fs::exists(buffer_dir_ / "a/file.jpg"));
}

TEST_P(LocalBufferTest, RefusesAbsolutePathElsewhereAndNeverTouchesIt) {
  fs::path secret = outside_dir_ / "secret.jpg";
  WriteFile(secret, "secret");
  ExpectOutside(secret.string());
  ExpectOutside("/etc/passwd");
  // A sibling directory sharing the buffer's name as a string prefix.
  fs::path sibling = buffer_dir_.string() + "-sibling";
  WriteFile(sibling / "x.jpg", "x");
  ExpectOutside((sibling / "x.jpg").string());
  fs::remove_all(sibling);
  EXPECT_TRUE(fs::exists(secret));
}

TEST_P(LocalBufferTest, RefusesSymlinkPointingOutside) {
  fs::path target = outside_dir_ / "target.jpg";
  WriteFile(target, "target");
  fs::create_symlink(target, buffer_dir_ / "link.jpg");
  fs::create_directories(buffer_dir_ / "sub");
  fs::create_directory_symlink(outside_dir_, buffer_dir_ / "sub/dirlink");
  ExpectOutside("link.jpg");
  ExpectOutside("sub/dirlink/target.jpg");
  ExpectOutside((buffer_dir_ / "sub/dirlink/target.jpg").string());
  EXPECT_TRUE(fs::exists(target));
  EXPECT_EQ(fs::file_size(target), 6u);
}

// Symlinks are refused even when their target lies inside the buffer
// (RESOLVE_NO_SYMLINKS): producers write plain files, and following a link
// would make "which file is deleted" depend on what it points to.
TEST_P(LocalBufferTest, RefusesSymlinkPointingInside) {
  WriteFile(buffer_dir_ / "real.jpg", "real");
  fs::create_symlink("real.jpg", buffer_dir_ / "alias.jpg");
  fs::create_directories(buffer_dir_ / "dir");
  WriteFile(buffer_dir_ / "dir/inner.jpg", "inner");
  fs::create_directory_symlink("dir", buffer_dir_ / "dirlink");
  ExpectOutside("alias.jpg");
  ExpectOutside("dirlink/inner.jpg");
  EXPECT_TRUE(fs::exists(buffer_dir_ / "real.jpg"));
}

TEST_P(LocalBufferTest, RefusesFifoWithoutBlocking) {
  // Opening a FIFO without O_NONBLOCK would hang here forever (no writer).
  ASSERT_EQ(::mkfifo((buffer_dir_ / "pipe.jpg").c_str(), 0600), 0);
  ExpectNotRegular("pipe.jpg");
  ExpectNotRegular((buffer_dir_ / "pipe.jpg").string());
}

TEST_P(LocalBufferTest, RefusesDirectory) {
  fs::create_directories(buffer_dir_ / "dir.jpg");
  ASSERT_NO_FATAL_FAILURE(ExpectNotRegular("dir.jpg"));
  ASSERT_NO_FATAL_FAILURE(ExpectNotRegular(buffer_dir_.string()));
}

TEST_P(LocalBufferTest, RefusesUnixSocket) {
  std::string socket_path = (buffer_dir_ / "sock").string();
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(socket_path.size(), sizeof(address.sun_path));
  std::copy(socket_path.begin(), socket_path.end(), address.sun_path);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ExpectNotRegular("sock");
  ::close(fd);
}

TEST_P(LocalBufferTest, RefusesEmptyAndNulPaths) {
  auto empty = buffer_->Open("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().kind, ErrorKind::kJobPermanent);
  auto nul = buffer_->Open(std::string_view("a\0b", 3));
  ASSERT_FALSE(nul.ok());
  EXPECT_EQ(nul.error().kind, ErrorKind::kJobPermanent);
}

TEST_P(LocalBufferTest, RemoveDeletesOnlyThatFile) {
  WriteFile(buffer_dir_ / "ab/one.jpg", "one");
  WriteFile(buffer_dir_ / "ab/two.jpg", "two");
  WriteFile(buffer_dir_ / "top.jpg", "top");
  LocalFile one = OpenOrDie("ab/one.jpg");
  LocalFile top = OpenOrDie((buffer_dir_ / "top.jpg").string());
  ASSERT_TRUE(buffer_->Remove(one).ok());
  ASSERT_TRUE(buffer_->Remove(top).ok());
  EXPECT_FALSE(fs::exists(buffer_dir_ / "ab/one.jpg"));
  EXPECT_FALSE(fs::exists(buffer_dir_ / "top.jpg"));
  EXPECT_TRUE(fs::exists(buffer_dir_ / "ab/two.jpg"));
  EXPECT_TRUE(fs::is_directory(buffer_dir_ / "ab"));
  // The open descriptor still reads the deleted file's bytes.
  EXPECT_EQ(ReadAll(one.fd(), one.size()), "one");
}

TEST_P(LocalBufferTest, RemoveIsIdempotent) {
  WriteFile(buffer_dir_ / "ab/once.jpg", "once");
  LocalFile file = OpenOrDie("ab/once.jpg");
  ASSERT_TRUE(buffer_->Remove(file).ok());
  auto again = buffer_->Remove(file);
  EXPECT_TRUE(again.ok()) << again.error().message;
  fs::remove_all(buffer_dir_ / "ab");
  auto parent_gone = buffer_->Remove(file);
  EXPECT_TRUE(parent_gone.ok()) << parent_gone.error().message;
}

TEST_P(LocalBufferTest, RemoveKeepsAFileThatReplacedTheName) {
  WriteFile(buffer_dir_ / "ab/file.jpg", "original");
  LocalFile original = OpenOrDie("ab/file.jpg");
  WriteFile(buffer_dir_ / "ab/new.jpg", "replacement");
  fs::rename(buffer_dir_ / "ab/new.jpg", buffer_dir_ / "ab/file.jpg");

  auto removed = buffer_->Remove(original);
  ASSERT_FALSE(removed.ok());
  EXPECT_EQ(removed.error().kind, ErrorKind::kJobRetryable);
  EXPECT_EQ(removed.error().message, "Local file changed during sync: ab/file.jpg");
  ASSERT_TRUE(fs::exists(buffer_dir_ / "ab/file.jpg"));
  std::ifstream in(buffer_dir_ / "ab/file.jpg");
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(), "replacement");
}

// Found by tests/corpus/jobs/68-file-grows-during-upload.json: a file that
// grew while it was uploaded was deleted with its new bytes, which were
// stored nowhere. Same for one rewritten after its bytes were read.
TEST_P(LocalBufferTest, RemoveKeepsAFileThatChangedSinceItWasOpened) {
  WriteFile(buffer_dir_ / "ab/grows.jpg", "original");
  LocalFile grows = OpenOrDie("ab/grows.jpg");
  std::ofstream(buffer_dir_ / "ab/grows.jpg", std::ios::binary | std::ios::app) << " and more";
  auto removed = buffer_->Remove(grows);
  ASSERT_FALSE(removed.ok());
  EXPECT_EQ(removed.error().kind, ErrorKind::kJobRetryable);
  EXPECT_EQ(removed.error().message, "Local file changed during sync: ab/grows.jpg");
  EXPECT_EQ(fs::file_size(buffer_dir_ / "ab/grows.jpg"), 17u);

  WriteFile(buffer_dir_ / "ab/shrinks.jpg", "original");
  LocalFile shrinks = OpenOrDie("ab/shrinks.jpg");
  fs::resize_file(buffer_dir_ / "ab/shrinks.jpg", 3);
  EXPECT_FALSE(buffer_->Remove(shrinks).ok());
  EXPECT_TRUE(fs::exists(buffer_dir_ / "ab/shrinks.jpg"));

  // Same size, other bytes: its ctime moves on once the clock that stamps
  // it has ticked, which the loop waits for (bounded).
  WriteFile(buffer_dir_ / "ab/rewritten.jpg", "original");
  LocalFile rewritten = OpenOrDie("ab/rewritten.jpg");
  struct stat opened {};
  ASSERT_EQ(::fstat(rewritten.fd(), &opened), 0);
  auto moved_on = [&opened](const struct stat& now) {
    return now.st_ctim.tv_sec != opened.st_ctim.tv_sec ||
           now.st_ctim.tv_nsec != opened.st_ctim.tv_nsec;
  };
  struct stat now = opened;
  for (int i = 0; i < 2000 && !moved_on(now); ++i) {
    WriteFile(buffer_dir_ / "ab/rewritten.jpg", "0riginal");
    ASSERT_EQ(::stat((buffer_dir_ / "ab/rewritten.jpg").c_str(), &now), 0);
    if (!moved_on(now)) ::usleep(1000);
  }
  ASSERT_TRUE(moved_on(now)) << "ctime never moved";
  EXPECT_FALSE(buffer_->Remove(rewritten).ok());
  // Told the bytes it should hold, it reads them again: other bytes stay.
  EXPECT_FALSE(buffer_->Remove(rewritten, Sha256Hex("original")).ok());
  EXPECT_TRUE(fs::exists(buffer_dir_ / "ab/rewritten.jpg"));

  // Unchanged, it goes.
  WriteFile(buffer_dir_ / "ab/kept.jpg", "original");
  EXPECT_TRUE(buffer_->Remove(OpenOrDie("ab/kept.jpg")).ok());
  EXPECT_FALSE(fs::exists(buffer_dir_ / "ab/kept.jpg"));
}

// enqueue places a file by hard link: the buffer's name and the operator's
// original share one inode, and the original lives on. Removing it, or a
// chmod of it, while the job is in flight moves the shared ctime; the synced
// copy must not stay in the buffer for good.
TEST_P(LocalBufferTest, RemoveDeletesAHardLinkedFileWhoseOriginalWasRemovedOrChmodded) {
  const std::string content = "the bytes that were uploaded";
  for (bool remove_original : {true, false}) {
    SCOPED_TRACE(remove_original ? "original removed" : "original chmod-ed");
    const fs::path original = outside_dir_ / "original.jpg";
    WriteFile(original, content);
    fs::create_directories(buffer_dir_ / "ab");
    fs::create_hard_link(original, buffer_dir_ / "ab/linked.jpg");
    LocalFile linked = OpenOrDie("ab/linked.jpg");
    struct stat opened {};
    ASSERT_EQ(::fstat(linked.fd(), &opened), 0);
    // ctime is stamped from a coarse clock: change the original until the
    // shared inode's ctime has moved on (bounded).
    auto moved_on = [&] {
      struct stat now {};
      EXPECT_EQ(::fstat(linked.fd(), &now), 0);
      return now.st_ctim.tv_sec != opened.st_ctim.tv_sec ||
             now.st_ctim.tv_nsec != opened.st_ctim.tv_nsec;
    };
    for (int i = 0; i < 2000 && !moved_on(); ++i) {
      fs::permissions(original, i % 2 == 0 ? fs::perms::owner_read | fs::perms::owner_write
                                           : fs::perms::owner_all);
      if (!moved_on()) ::usleep(1000);
    }
    ASSERT_TRUE(moved_on()) << "ctime never moved";
    if (remove_original) fs::remove(original);

    auto unproven = buffer_->Remove(linked);  // without the job's hash: kept, as before
    EXPECT_FALSE(unproven.ok());
    auto removed = buffer_->Remove(linked, Sha256Hex(content));
    EXPECT_TRUE(removed.ok()) << removed.error().message;
    EXPECT_FALSE(fs::exists(buffer_dir_ / "ab/linked.jpg"));
    EXPECT_EQ(fs::exists(original), !remove_original);
    fs::remove(original);
  }
}

TEST_P(LocalBufferTest, RemoveRefusesADirectorySwappedForASymlinkOutside) {
  WriteFile(buffer_dir_ / "ab/file.jpg", "inside");
  LocalFile file = OpenOrDie("ab/file.jpg");
  // Same name outside, reached through a symlink swapped in for "ab".
  WriteFile(outside_dir_ / "file.jpg", "outside");
  fs::remove_all(buffer_dir_ / "ab");
  fs::create_directory_symlink(outside_dir_, buffer_dir_ / "ab");

  auto removed = buffer_->Remove(file);
  ASSERT_FALSE(removed.ok());
  EXPECT_EQ(removed.error().kind, ErrorKind::kJobPermanent);
  EXPECT_TRUE(fs::exists(outside_dir_ / "file.jpg"));
}

// The buffer volume re-created, or the directory moved away and made anew:
// files written into the new directory are found without a restart, and
// deleted there.
TEST_P(LocalBufferTest, ADirectoryReplacedUnderThePathIsPickedUp) {
  WriteFile(buffer_dir_ / "ab/before.jpg", "before");
  OpenOrDie("ab/before.jpg");
  fs::path moved = buffer_dir_.string() + ".moved";
  fs::rename(buffer_dir_, moved);
  fs::create_directory(buffer_dir_);
  WriteFile(buffer_dir_ / "ab/after.jpg", "after");

  LocalFile after = OpenOrDie((buffer_dir_ / "ab/after.jpg").string());
  EXPECT_EQ(ReadAll(after.fd(), after.size()), "after");
  // What moved away with the old directory is no longer in the buffer.
  auto before = buffer_->Open("ab/before.jpg");
  ASSERT_TRUE(before.ok()) << before.error().message;
  EXPECT_FALSE(before->has_value());

  ASSERT_TRUE(buffer_->Remove(after).ok());
  EXPECT_FALSE(fs::exists(buffer_dir_ / "ab/after.jpg"));
  EXPECT_TRUE(fs::exists(moved / "ab/before.jpg"));
  fs::remove_all(moved);
}

// The buffer volume re-created with its files moved in while a job held one
// open: the file is deleted from the new directory, not left behind because
// the old one no longer has it.
TEST_P(LocalBufferTest, AFileMovedIntoAReplacedDirectoryIsDeletedThere) {
  WriteFile(buffer_dir_ / "ab/moving.jpg", "moving");
  LocalFile opened = OpenOrDie("ab/moving.jpg");
  fs::path fresh = buffer_dir_.string() + ".fresh";
  fs::path old = buffer_dir_.string() + ".old";
  fs::create_directory(fresh);
  fs::rename(buffer_dir_ / "ab", fresh / "ab");
  fs::rename(buffer_dir_, old);
  fs::rename(fresh, buffer_dir_);

  auto removed = buffer_->Remove(opened);
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  EXPECT_FALSE(fs::exists(buffer_dir_ / "ab/moving.jpg"));
  fs::remove_all(old);
}

// No directory under the path (yet): the buffer is down, a file not found
// is not known to be missing.
TEST_P(LocalBufferTest, AMissingBufferDirectoryIsAnOutageNotAMissingFile) {
  WriteFile(buffer_dir_ / "file.jpg", "x");
  fs::path moved = buffer_dir_.string() + ".moved";
  fs::rename(buffer_dir_, moved);

  auto opened = buffer_->Open("written-after-the-move.jpg");
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().kind, ErrorKind::kOutage);
  EXPECT_THAT(opened.error().message, ::testing::HasSubstr("Media buffer unavailable"));
  EXPECT_THAT(opened.error().message, ::testing::HasSubstr(buffer_dir_.string()));

  std::ofstream(buffer_dir_) << "a file where the buffer was";
  auto not_dir = buffer_->Open("written-after-the-move.jpg");
  ASSERT_FALSE(not_dir.ok());
  EXPECT_EQ(not_dir.error().kind, ErrorKind::kOutage);
  EXPECT_THAT(not_dir.error().message, ::testing::HasSubstr("is not a directory"));

  fs::remove(buffer_dir_);
  fs::rename(moved, buffer_dir_);
  OpenOrDie("file.jpg");
}

// Lowers this process's descriptor limit so that the next open fails with
// EMFILE; restores it when destroyed.
class DescriptorsExhausted {
 public:
  DescriptorsExhausted() {
    getrlimit(RLIMIT_NOFILE, &saved_);
    int lowest_free = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ::close(lowest_free);
    rlimit exhausted = saved_;
    exhausted.rlim_cur = static_cast<rlim_t>(lowest_free);
    setrlimit(RLIMIT_NOFILE, &exhausted);
  }
  ~DescriptorsExhausted() { setrlimit(RLIMIT_NOFILE, &saved_); }

 private:
  rlimit saved_{};
};

// Out of descriptors is the process's trouble, not the job's: an outage.
TEST_P(LocalBufferTest, RunningOutOfDescriptorsIsAnOutage) {
  WriteFile(buffer_dir_ / "ab/file.jpg", "x");
  LocalFile held = OpenOrDie("ab/file.jpg");
  Result<std::optional<LocalFile>> opened = std::optional<LocalFile>();
  Status removed;
  {
    DescriptorsExhausted exhausted;
    opened = buffer_->Open("ab/file.jpg");
    removed = buffer_->Remove(held);
  }
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().kind, ErrorKind::kOutage) << opened.error().message;
  EXPECT_THAT(opened.error().message, ::testing::HasSubstr("Media buffer unavailable"));
  ASSERT_FALSE(removed.ok());
  EXPECT_EQ(removed.error().kind, ErrorKind::kOutage) << removed.error().message;
  EXPECT_TRUE(fs::exists(buffer_dir_ / "ab/file.jpg"));
  EXPECT_TRUE(buffer_->Remove(held).ok());
}

TEST(LocalBufferCreateTest, FailsWhenPathIsNotADirectory) {
  fs::path dir = MakeTempDir("create");
  WriteFile(dir / "plain", "x");
  auto not_dir = LocalBuffer::Create((dir / "plain").string());
  ASSERT_FALSE(not_dir.ok());
  EXPECT_EQ(not_dir.error().kind, ErrorKind::kConfiguration);
  EXPECT_NE(not_dir.error().message.find("not a directory"), std::string::npos);

  auto missing = LocalBuffer::Create((dir / "missing").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::kConfiguration);

  auto empty = LocalBuffer::Create("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().kind, ErrorKind::kConfiguration);
  fs::remove_all(dir);
}

TEST(LocalBufferCreateTest, AcceptsPathsThroughTheCanonicalBufferPath) {
  fs::path dir = MakeTempDir("canonical");
  fs::create_directories(dir / "real");
  fs::create_directory_symlink(dir / "real", dir / "configured");
  WriteFile(dir / "real/file.jpg", "x");
  auto created = LocalBuffer::Create((dir / "configured").string());
  ASSERT_TRUE(created.ok()) << created.error().message;
  for (const fs::path& path : {dir / "configured/file.jpg", dir / "real/file.jpg"}) {
    auto opened = created->Open(path.string());
    ASSERT_TRUE(opened.ok()) << path << ": " << opened.error().message;
    EXPECT_TRUE(opened->has_value()) << path;
  }
  fs::remove_all(dir);
}

TEST(LocalBufferCreateTest, AutoPicksAResolver) {
  fs::path dir = MakeTempDir("auto");
  auto created = LocalBuffer::Create(dir.string());
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_NE(created->resolver(), LocalBuffer::Resolver::kAuto);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace media_sync::buffer
