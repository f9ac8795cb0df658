// The fault run (docs/reliability.md): many small files over two boxes and
// three workers, while, one after another, a worker is SIGKILLed and
// restarted, a storage server freezes for longer than a retry delay, Redis is
// gone for longer than the lease, PostgreSQL restarts, the buffer directory is
// replaced by a copy, and another worker is killed. Each fault strikes right
// while jobs keep arriving, so jobs are in flight when it does.
// Afterwards every row is synced exactly once, the box counters are exact,
// every object is byte-exact, no local file is left, every queue is empty and
// every worker exits 0 on SIGTERM.
//
// FAULT_RUN_FILES sets the number of files (default 280: the size `make test`
// runs); scripts/fault_run.sh runs it larger and repeatedly and keeps the
// figures it prints.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Env = std::map<std::string, std::string>;

constexpr int kWorkers = 3;

int FilesToRun() {
  const char* text = std::getenv("FAULT_RUN_FILES");
  int files = text != nullptr ? std::atoi(text) : 280;
  return files >= 7 ? files : 7;
}

class FaultRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  void StartWorker(int index) {
    const std::string id = "fault-run-" + std::to_string(index);
    workers_[index] =
        std::make_unique<WorkerProcess>(stack_, Env{{"WORKER_ID", id},
                                                    {"SYNC_CONCURRENCY", "4"},
                                                    {"LEASE_SECONDS", "2"},
                                                    {"RETRY_DELAY_SECONDS", "1"},
                                                    {"OUTAGE_BACKOFF_MAX_SECONDS", "1"},
                                                    {"S3_LOW_SPEED_SECONDS", "2"},
                                                    {"LOG_LEVEL", "info"}});
    ASSERT_TRUE(media_.WaitRegistered(id, *workers_[index])) << workers_[index]->Log();
  }

  void KillAndRestart(int index) {
    workers_[index]->Signal(SIGKILL);
    ASSERT_EQ(workers_[index]->WaitExit(10s), 128 + SIGKILL);
    StartWorker(index);  // same id, as a restarted container keeps it
  }

  // The buffer volume re-created and its files moved in (the same files):
  // a new directory takes the buffer's name while workers read and delete
  // in it.
  void ReplaceBuffer() {
    const std::string buffer = stack_.BufferDir();
    fs::create_directory(buffer + ".new");
    for (const auto& entry : fs::directory_iterator(buffer)) {
      fs::rename(entry.path(), buffer + ".new/" + entry.path().filename().string());
    }
    fs::rename(buffer, buffer + ".replaced");
    fs::rename(buffer + ".new", buffer);
  }

  std::string Logs() const {
    std::string all;
    for (const auto& worker : workers_) {
      if (worker) all += worker->Log();
    }
    return all;
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
  std::unique_ptr<WorkerProcess> workers_[kWorkers];
};

TEST_F(FaultRunTest, EveryFileSyncsExactlyOnceThroughKillsOutagesAndAReplacedBuffer) {
  const int files = FilesToRun();
  std::mt19937_64 random(20261130);
  std::uniform_int_distribution<uint64_t> size_of(1024, 64 * 1024);
  std::vector<Json> jobs;
  uint64_t bytes = 0;
  for (int i = 0; i < files; ++i) {
    uint64_t size = size_of(random);
    bytes += size;
    jobs.push_back(media_.Make(size, i % 2 == 0 ? "box-a" : "box-b", 5000 + i, "jpg", false));
  }
  media_.InsertRows(jobs);
  for (int i = 0; i < kWorkers; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker(i));

  struct Fault {
    std::string name;
    std::function<void()> strike;
  };
  const std::vector<Fault> faults = {
      {"SIGKILL a worker and restart it", [&] { KillAndRestart(0); }},
      {"freeze box-a's server for 3 s",
       [&] {
         ScopedFreeze frozen(stack_.Pid("s3"));
         std::this_thread::sleep_for(3s);  // the fault's length: three retry delays
       }},
      {"stop Redis for 4 s",
       [&] {
         stack_.Stop("redis");
         std::this_thread::sleep_for(4s);  // the fault's length: twice the lease
         stack_.Start("redis");
       }},
      {"restart PostgreSQL", [&] { stack_.Restart("postgres"); }},
      {"replace the buffer directory", [&] { ReplaceBuffer(); }},
      {"SIGKILL another worker and restart it", [&] { KillAndRestart(1); }},
  };

  // Jobs arrive at a steady pace for about 20 s; fault k strikes once k/7 of
  // them were pushed, so every fault meets jobs in flight.
  auto started = std::chrono::steady_clock::now();
  PacedProducer producer(stack_, jobs, std::chrono::milliseconds(std::max(1, 20000 / files)));
  for (size_t k = 0; k < faults.size(); ++k) {
    const auto due = static_cast<int64_t>(jobs.size() * (k + 1) / (faults.size() + 1));
    ASSERT_TRUE(WaitUntil([&] { return producer.pushed() >= due; }, 120s)) << faults[k].name;
    int64_t synced_before = media_.SyncedRows();
    ASSERT_NO_FATAL_FAILURE(faults[k].strike()) << faults[k].name;
    std::printf("fault run: %-40s struck with %lld of %lld pushed rows synced\n",
                faults[k].name.c_str(), static_cast<long long>(synced_before),
                static_cast<long long>(producer.pushed()));
  }
  ASSERT_TRUE(WaitUntil([&] { return media_.SyncedRows() == static_cast<int64_t>(jobs.size()); },
                        60s + std::chrono::milliseconds(100) * files))
      << media_.QueueState() << Logs();
  auto took = std::chrono::steady_clock::now() - started;

  ASSERT_TRUE(WaitUntil([&] { return media_.QueuesEmpty(); }, 30s)) << media_.QueueState();
  EXPECT_EQ(media_.Len("media:sync:failed"), 0) << stack_.RedisCli("LRANGE media:sync:failed 0 -1");
  media_.ExpectSyncedExactlyOnce(jobs);
  for (const auto& job : jobs) {
    if (!media_.LocalExists(job)) continue;
    // What the workers said about a job whose file was left behind.
    std::string sha = job["sha256"].get<std::string>();
    std::istringstream lines(Logs());
    for (std::string line; std::getline(lines, line);) {
      if (line.find(sha) != std::string::npos) ADD_FAILURE() << "left behind: " << line;
    }
  }
  for (auto& worker : workers_) {
    worker->Signal(SIGTERM);
    EXPECT_EQ(worker->WaitExit(20s), 0) << worker->Log();
  }
  EXPECT_EQ(media_.ProcessingKeys(), "");
  EXPECT_EQ(Trim(stack_.RedisCli("SCARD media:sync:workers")), "0") << "every worker deregistered";

  double seconds = std::chrono::duration<double>(took).count();
  std::printf(
      "fault run: %d files (%.1f MiB) over 2 boxes, %d workers, %zu faults: all synced in "
      "%.1f s (%.1f files/s), failed 0\n",
      files, static_cast<double>(bytes) / (1 << 20), kWorkers, faults.size(), seconds,
      files / seconds);
  fs::remove_all(stack_.BufferDir() + ".replaced");
}

}  // namespace
}  // namespace media_sync::testing
