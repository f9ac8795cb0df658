// `media-sync enqueue FILE|DIR...` against the real stack: files from outside
// the buffer are placed at their content paths (hard link on the buffer's
// filesystem, copy from another), registered with their reservation, queued,
// and synced by a worker; repeating it changes nothing; bad input is named
// and the rest goes on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "core/hash.h"
#include "core/job.h"
#include "support/cli_runner.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// A file written by the test: where, what, and where it must land.
struct SourceFile {
  std::string path;
  std::string content;
  std::string sha256;
  std::string key;
};

std::string ReadAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

SourceFile Write(const std::string& path, size_t size, uint64_t seed, const std::string& ext) {
  std::string content(size, '\0');
  std::mt19937_64 random(seed);
  for (char& c : content) c = static_cast<char>(random());
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary).write(content.data(), static_cast<std::streamsize>(size));
  std::string sha = Sha256Hex(content);
  return {path, content, sha, ContentKey(sha, ext)};
}

ino_t Inode(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class EnqueueCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    source_ = stack_.StateDir() + "/source-" + test->name();
    other_fs_ = "/dev/shm/media-sync-enqueue-" + std::to_string(getpid()) + "-" + test->name();
    fs::remove_all(source_);
    fs::remove_all(other_fs_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(source_, ignored);
    fs::remove_all(other_fs_, ignored);
  }

  std::string BufferPath(const SourceFile& file) const {
    return stack_.BufferDir() + "/" + file.key;
  }
  int64_t Rows() const { return std::stoll(Trim(stack_.Sql("SELECT count(*) FROM media_files"))); }
  // s3_key|file_size|box of the row, "" when there is none.
  std::string Row(const SourceFile& file) const {
    return Trim(
        stack_.Sql("SELECT s3_key || '|' || file_size || '|' || coalesce(storage_box_id, '(none)') "
                   "FROM media_files WHERE sha256 = '" +
                   file.sha256 + "'"));
  }
  size_t BufferFiles() const {
    size_t count = 0;
    for (const auto& entry : fs::recursive_directory_iterator(stack_.BufferDir())) {
      if (entry.is_regular_file()) ++count;
    }
    return count;
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
  std::string source_;    // on the buffer's filesystem
  std::string other_fs_;  // on another filesystem (tmpfs)
};

TEST_F(EnqueueCommandTest, TreeFromOutsideTheBufferIsPlacedRegisteredQueuedAndSynced) {
  std::vector<SourceFile> files = {
      Write(source_ + "/2023/a.jpg", 3000, 1, "jpg"),
      Write(source_ + "/2023/05/b.png", 70000, 2, "png"),
      Write(source_ + "/2023/05/deeper/c.mp4", 1, 3, "mp4"),
      Write(other_fs_ + "/d.webm", 5000, 4, "webm"),
  };
  ASSERT_NE(fs::status(source_).type(), fs::file_type::not_found);
  int64_t total = 0;
  for (const auto& file : files) total += static_cast<int64_t>(file.content.size());

  CliOutcome first = RunCli(stack_, "enqueue --box box-a " + ShellQuote(source_) + " " +
                                        ShellQuote(other_fs_ + "/d.webm"));
  ASSERT_EQ(first.code, 0) << first.all();
  EXPECT_THAT(first.err, Not(HasSubstr("\033"))) << "no terminal: no bar drawn in place";
  EXPECT_THAT(first.out, HasSubstr("queued 4, already synced 0, already queued 0, duplicates 0, "
                                   "failed 0, bytes " +
                                   std::to_string(total)));

  for (const auto& file : files) {
    EXPECT_EQ(ReadAll(BufferPath(file)), file.content) << file.path;
    EXPECT_EQ(Row(file), file.key + "|" + std::to_string(file.content.size()) + "|box-a");
  }
  // Same filesystem: a hard link to the file; another one: a copy.
  EXPECT_EQ(Inode(BufferPath(files[0])), Inode(files[0].path));
  EXPECT_NE(Inode(BufferPath(files[3])), Inode(files[3].path));
  EXPECT_EQ(media_.ReservedBytes("box-a"), total);
  EXPECT_EQ(Rows(), 4);

  std::vector<Json> jobs = media_.PendingJobs();
  ASSERT_EQ(jobs.size(), 4u);
  std::set<std::string> queued;
  for (const Json& job : jobs) {
    ASSERT_TRUE(ParseJob(job.dump()).ok()) << job.dump();
    queued.insert(job["sha256"].get<std::string>());
    EXPECT_EQ(job["storage_box_id"], "box-a");
    EXPECT_EQ(job["local_path"], stack_.BufferDir() + "/" + job["s3_key"].get<std::string>());
    EXPECT_EQ(job["retry_count"], 0);
  }
  for (const auto& file : files) EXPECT_EQ(queued.count(file.sha256), 1u) << file.path;

  // Again before any sync: every job is already queued; nothing changes.
  CliOutcome again = RunCli(stack_, "enqueue --box box-a " + ShellQuote(source_) + " " +
                                        ShellQuote(other_fs_ + "/d.webm"));
  EXPECT_EQ(again.code, 0) << again.all();
  EXPECT_THAT(again.out, HasSubstr("queued 0, already synced 0, already queued 4"));
  EXPECT_EQ(media_.PendingJobs().size(), 4u);
  EXPECT_EQ(media_.ReservedBytes("box-a"), total);
  EXPECT_EQ(Rows(), 4);

  WorkerProcess worker(stack_, {}, {"run", "--drain"});
  ASSERT_EQ(worker.WaitExit(180s), 0) << worker.Log();
  EXPECT_THAT(worker.Log(), HasSubstr("summary: synced 4, already synced 0, failed 0"));
  EXPECT_EQ(media_.SyncedRows("box-a"), 4);
  EXPECT_EQ(media_.UsedBytes("box-a"), total);
  EXPECT_EQ(media_.ReservedBytes("box-a"), 0);
  for (const auto& file : files) {
    Json job{{"sha256", file.sha256},
             {"s3_key", file.key},
             {"storage_box_id", "box-a"},
             {"file_size", file.content.size()}};
    EXPECT_TRUE(media_.ObjectStored(job)) << file.path;
    EXPECT_FALSE(fs::exists(BufferPath(file))) << file.path;
    EXPECT_EQ(ReadAll(file.path), file.content) << "the source file is left as it was";
  }

  // After the sync: every file is reported as already synced, nothing moves.
  CliOutcome synced = RunCli(stack_, "enqueue --box box-a " + ShellQuote(source_) + " " +
                                         ShellQuote(other_fs_ + "/d.webm"));
  EXPECT_EQ(synced.code, 0) << synced.all();
  EXPECT_THAT(synced.out, HasSubstr("queued 0, already synced 4"));
  EXPECT_THAT(synced.out, HasSubstr("already synced: " + files[0].path));
  EXPECT_EQ(media_.PendingJobs().size(), 0u);
  EXPECT_EQ(BufferFiles(), 0u);
  EXPECT_EQ(media_.UsedBytes("box-a"), total);
  EXPECT_EQ(media_.ReservedBytes("box-a"), 0);
}

TEST_F(EnqueueCommandTest, WithoutBoxTheJobGoesToTheDefaultEndpointAndNothingIsReserved) {
  SourceFile file = Write(source_ + "/x.gif", 2048, 5, "gif");
  CliOutcome outcome = RunCli(stack_, "enqueue " + ShellQuote(file.path));
  ASSERT_EQ(outcome.code, 0) << outcome.all();
  EXPECT_EQ(Row(file), file.key + "|2048|(none)");
  std::vector<Json> jobs = media_.PendingJobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_TRUE(jobs[0]["storage_box_id"].is_null());
  EXPECT_EQ(media_.ReservedBytes("box-a"), 0);
  EXPECT_EQ(media_.ReservedBytes("box-b"), 0);
}

TEST_F(EnqueueCommandTest, UnknownBoxIsAClearErrorBeforeAnythingIsTouched) {
  Write(source_ + "/a.jpg", 100, 6, "jpg");
  CliOutcome outcome = RunCli(stack_, "enqueue --box no-such-box " + ShellQuote(source_));
  EXPECT_EQ(outcome.code, 2);
  EXPECT_THAT(outcome.err, HasSubstr("unknown storage box 'no-such-box'"));
  EXPECT_THAT(outcome.err, HasSubstr("storage_boxes"));
  EXPECT_EQ(BufferFiles(), 0u);
  EXPECT_EQ(Rows(), 0);
  EXPECT_EQ(media_.Len("media:sync:pending"), 0);
}

// The worker refuses a job whose box holds a control character, so enqueue
// queues none, even for a storage_boxes row of that name.
TEST_F(EnqueueCommandTest, ABoxWithAControlCharacterIsRefusedBeforeAnythingIsTouched) {
  stack_.Sql("INSERT INTO storage_boxes (id, minio_endpoint) VALUES (E'box\\tc', 'http://x:9000')");
  Write(source_ + "/a.jpg", 100, 7, "jpg");
  CliOutcome outcome =
      RunCli(stack_, "enqueue --box \"$(printf 'box\\tc')\" " + ShellQuote(source_));
  EXPECT_EQ(outcome.code, 2);
  EXPECT_THAT(
      outcome.err,
      HasSubstr("--box: storage_box_id must not hold control characters (U+0009 at byte 3)"));
  EXPECT_EQ(BufferFiles(), 0u);
  EXPECT_EQ(Rows(), 0);
  EXPECT_EQ(media_.Len("media:sync:pending"), 0);
}

TEST_F(EnqueueCommandTest, FifoAndUnreadableEntriesAreNamedWhileTheRestIsQueued) {
  SourceFile good = Write(source_ + "/good.jpg", 4096, 7, "jpg");
  ASSERT_EQ(mkfifo((source_ + "/pipe.jpg").c_str(), 0644), 0);
  // The tests run as root, for whom chmod 000 does not make a file
  // unreadable: a dangling symbolic link and a path that does not exist
  // stand for a file that cannot be read or vanished.
  fs::create_symlink(source_ + "/gone.jpg", source_ + "/dangling.jpg");
  fs::create_symlink("/etc/hostname", source_ + "/outside.txt");
  Write(source_ + "/bad.tar-gz", 10, 8, "");
  std::string missing = source_ + "-missing.jpg";

  // Were the FIFO opened blocking, the command would hang here (RunCli's
  // timeout would end it with 124).
  CliOutcome outcome = RunCli(stack_, "enqueue " + ShellQuote(source_) + " " + ShellQuote(missing));
  EXPECT_EQ(outcome.code, 1) << outcome.all();
  EXPECT_THAT(outcome.err, HasSubstr(source_ + "/pipe.jpg: is a FIFO, not a regular file"));
  EXPECT_THAT(outcome.err, HasSubstr(source_ + "/dangling.jpg: dangling symbolic link"));
  EXPECT_THAT(outcome.err, HasSubstr(source_ +
                                     "/outside.txt: symbolic link to /etc/hostname, "
                                     "outside " +
                                     source_ + ": not followed"));
  EXPECT_THAT(outcome.err, HasSubstr(source_ + "/bad.tar-gz: extension 'tar-gz'"));
  EXPECT_THAT(outcome.err, HasSubstr(missing + ": No such file or directory"));
  EXPECT_THAT(outcome.out, HasSubstr("queued 1, already synced 0, already queued 0, duplicates 0, "
                                     "failed 5"));

  EXPECT_EQ(ReadAll(BufferPath(good)), good.content);
  EXPECT_EQ(Row(good), good.key + "|4096|(none)");
  ASSERT_EQ(media_.PendingJobs().size(), 1u);
  EXPECT_EQ(media_.PendingJobs()[0]["sha256"], good.sha256);
  EXPECT_EQ(Rows(), 1);
  EXPECT_EQ(BufferFiles(), 1u);
}

TEST_F(EnqueueCommandTest, SameContentTwiceInOneRunIsQueuedOnce) {
  SourceFile first = Write(source_ + "/a/one.jpg", 1000, 9, "jpg");
  Write(source_ + "/b/copy.jpg", 1000, 9, "jpg");
  CliOutcome outcome = RunCli(stack_, "enqueue --box box-b " + ShellQuote(source_));
  EXPECT_EQ(outcome.code, 0) << outcome.all();
  EXPECT_THAT(outcome.out, HasSubstr("duplicate: " + source_ +
                                     "/b/copy.jpg has the same content "
                                     "as " +
                                     first.path));
  EXPECT_THAT(outcome.out, HasSubstr("queued 1, already synced 0, already queued 0, duplicates 1"));
  EXPECT_EQ(media_.PendingJobs().size(), 1u);
  EXPECT_EQ(media_.ReservedBytes("box-b"), 1000);
}

TEST_F(EnqueueCommandTest, ADifferentFileAtTheContentPathIsNotOverwritten) {
  SourceFile file = Write(source_ + "/a.jpg", 5000, 10, "jpg");
  fs::create_directories(fs::path(BufferPath(file)).parent_path());
  std::ofstream(BufferPath(file)) << "short";
  CliOutcome outcome = RunCli(stack_, "enqueue --box box-a " + ShellQuote(file.path));
  EXPECT_EQ(outcome.code, 1) << outcome.all();
  EXPECT_THAT(outcome.err, HasSubstr(file.path + ": " + BufferPath(file) +
                                     " already exists with 5 bytes, expected 5000: not "
                                     "overwritten"));
  EXPECT_EQ(ReadAll(BufferPath(file)), "short");
  EXPECT_EQ(Rows(), 0);
  EXPECT_EQ(media_.Len("media:sync:pending"), 0);
  EXPECT_EQ(media_.ReservedBytes("box-a"), 0);
}

TEST_F(EnqueueCommandTest, AFileAlreadyAtItsContentPathIsQueuedAsItLies) {
  // The processor's own layout: file, row and reservation made, job lost.
  Json job = media_.Make(2500, "box-b", 11);
  CliOutcome outcome =
      RunCli(stack_, "enqueue " + ShellQuote(job["local_path"].get<std::string>()));
  ASSERT_EQ(outcome.code, 0) << outcome.all();
  EXPECT_THAT(outcome.out, HasSubstr("queued 1"));
  std::vector<Json> jobs = media_.PendingJobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0]["local_path"], job["local_path"]);
  EXPECT_EQ(jobs[0]["storage_box_id"], "box-b");   // the row's box
  EXPECT_EQ(media_.ReservedBytes("box-b"), 2500);  // reserved once, by the row's producer
  EXPECT_EQ(BufferFiles(), 1u);
}

TEST_F(EnqueueCommandTest, DryRunHashesAndReportsButTouchesNothing) {
  SourceFile a = Write(source_ + "/a.jpg", 300, 12, "jpg");
  Write(source_ + "/b.png", 400, 13, "png");
  CliOutcome outcome = RunCli(stack_, "enqueue --dry-run --box box-a " + ShellQuote(source_));
  EXPECT_EQ(outcome.code, 0) << outcome.all();
  EXPECT_THAT(outcome.out, HasSubstr("would queue: " + a.path + " as " + a.key));
  EXPECT_THAT(outcome.out, HasSubstr("would queue 2, already synced 0"));
  EXPECT_EQ(BufferFiles(), 0u);
  EXPECT_EQ(Rows(), 0);
  EXPECT_EQ(media_.Len("media:sync:pending"), 0);
  EXPECT_EQ(media_.ReservedBytes("box-a"), 0);
}

TEST_F(EnqueueCommandTest, OnATerminalProgressIsOneLineRedrawnInPlace) {
  for (int i = 0; i < 20; ++i)
    Write(source_ + "/f" + std::to_string(i) + ".jpg", 2000, 60 + i, "jpg");
  CliOutcome outcome = RunCliOnTerminal(stack_, "enqueue --box box-a " + ShellQuote(source_));
  ASSERT_EQ(outcome.code, 0) << outcome.out;
  // Carriage return and erase-line, then the bar with files, files/s, MB/s.
  EXPECT_THAT(outcome.out, HasSubstr("\r\033[K["));
  EXPECT_THAT(outcome.out, ::testing::ContainsRegex("\\] [0-9]+/20 files, "));
  EXPECT_THAT(outcome.out, HasSubstr(" files/s, "));
  EXPECT_THAT(outcome.out, HasSubstr(" MB/s"));
  EXPECT_THAT(outcome.out, HasSubstr("queued 20, already synced 0"));
  EXPECT_EQ(media_.PendingJobs().size(), 20u);
}

// Another registrant (the platform's processor, another enqueue) inserts the
// file's row between enqueue's lookup and its insert, on another box: the
// job must follow that row, or the object lands on one box while the row
// names another. A trigger makes the race happen every time: it inserts the
// other registrant's row just before enqueue's own insert.
TEST_F(EnqueueCommandTest, ARowRegisteredMeanwhileDecidesTheJobsBox) {
  SourceFile file = Write(source_ + "/raced.jpg", 3000, 91, "jpg");
  stack_.Sql(
      "CREATE FUNCTION other_registrant() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "IF pg_trigger_depth() = 1 THEN INSERT INTO media_files (sha256, s3_key, file_size, "
      "storage_box_id) VALUES (NEW.sha256, NEW.s3_key, NEW.file_size, 'box-b'); END IF; "
      "RETURN NEW; END $$");
  stack_.Sql(
      "CREATE TRIGGER other_registrant BEFORE INSERT ON media_files FOR EACH ROW "
      "EXECUTE FUNCTION other_registrant()");
  CliOutcome enqueue = RunCli(stack_, "enqueue --box box-a " + ShellQuote(file.path));
  stack_.Sql("DROP TRIGGER other_registrant ON media_files");
  stack_.Sql("DROP FUNCTION other_registrant()");
  EXPECT_EQ(enqueue.code, 0) << enqueue.all();
  EXPECT_THAT(enqueue.out, HasSubstr("registered meanwhile on box box-b"));

  EXPECT_EQ(Trim(stack_.Sql("SELECT storage_box_id FROM media_files WHERE sha256 = '" +
                            file.sha256 + "'")),
            "box-b");
  std::vector<Json> pending = media_.PendingJobs();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0]["storage_box_id"], "box-b") << pending[0].dump();
  EXPECT_EQ(media_.ReservedBytes("box-a"), 0)
      << "enqueue reserved nothing: its insert did not happen";
}

TEST_F(EnqueueCommandTest, FilesNeedDatabaseUrl) {
  Write(source_ + "/a.jpg", 10, 14, "jpg");
  CliOutcome outcome = RunCli(stack_, "enqueue " + ShellQuote(source_), {{"DATABASE_URL", ""}});
  EXPECT_EQ(outcome.code, 2);
  EXPECT_THAT(outcome.err, HasSubstr("DATABASE_URL"));
  EXPECT_EQ(BufferFiles(), 0u);
}

}  // namespace
}  // namespace media_sync::testing
