// Helpers for end-to-end tests of `media-sync run` against the real stack:
// a child process running the built binary, media files with their catalog
// rows and jobs, and bounded waiting for observable conditions.
#pragma once

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <source_location>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "support/local_stack.h"

namespace media_sync::testing {

using Json = nlohmann::ordered_json;

// `media-sync <args>` as a child process with the stack's environment plus
// `env` (which overrides). stdout and stderr go to a log file.
class WorkerProcess {
 public:
  WorkerProcess(const LocalStack& stack, std::map<std::string, std::string> env,
                std::vector<std::string> args = {"run"});
  ~WorkerProcess();  // SIGKILLs a child still running
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int signal) const;
  // Exit code (128+signal when killed); nullopt when still running at the deadline.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);
  bool Running();
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

// Freezes a server for the lifetime of the scope, so a failing assertion
// never leaves it stopped for the tests that follow.
class ScopedFreeze {
 public:
  explicit ScopedFreeze(pid_t pid) : pid_(pid) { kill(pid_, SIGSTOP); }
  ~ScopedFreeze() { Thaw(); }
  ScopedFreeze(const ScopedFreeze&) = delete;
  ScopedFreeze& operator=(const ScopedFreeze&) = delete;

  void Thaw() {
    if (frozen_) kill(pid_, SIGCONT);
    frozen_ = false;
  }

 private:
  pid_t pid_;
  bool frozen_ = true;
};

// How often `needle` occurs in `text` (log lines, say).
int CountOccurrences(const std::string& text, const std::string& needle);

// Whole milliseconds of a steady-clock duration.
int64_t Millis(std::chrono::steady_clock::duration duration);
// A figure for docs/reliability.md: printed as a "[  MEASURE ]" line and kept
// in the test's XML report.
void Measure(const std::string& name, int64_t value, const std::string& unit);

// Media as the processor makes it: a file in the buffer, a media_files row,
// and the job JSON (not pushed).
class MediaFactory {
 public:
  explicit MediaFactory(LocalStack& stack) : stack_(stack) {}

  // A file of `size` pseudo-random bytes (seeded by `seed`), its row with
  // reserved bytes added to the box, and its job.
  Json Make(uint64_t size, const std::optional<std::string>& box, uint64_t seed,
            const std::string& ext = "jpg", bool insert_row = true);
  // `count` such files (seeds first_seed, first_seed + 1, ...) with their rows
  // inserted and reserved in one statement: fast for many.
  std::vector<Json> MakeMany(int count, uint64_t size, const std::string& box, uint64_t first_seed);
  // Inserts storage_boxes rows: box-a on MINIO_ENDPOINT, box-b on STACK_S3_2_ENDPOINT.
  void AddTwoBoxes();

  // Rows (and reserved bytes) for jobs made with insert_row = false, in one
  // statement: for runs of thousands of files.
  void InsertRows(const std::vector<Json>& jobs) const;

  void Push(const Json& job) const;
  // One LPUSH per 200 jobs, in order: the first ends up served first.
  void PushAll(const std::vector<Json>& jobs) const;
  void PushRaw(const std::string& payload) const;

  // Redis list length / zcard via redis-cli.
  int64_t Len(const std::string& key) const;
  int64_t DelayedCount() const;
  // The entries of the list `key` as they are stored, in LRANGE order (entries
  // are compact JSON, one per line of redis-cli's output).
  std::vector<std::string> ListEntries(const std::string& key) const;
  // The pending jobs, parsed; an entry that is not JSON fails the test.
  std::vector<Json> PendingJobs() const;
  // The failed entries that are JSON.
  std::vector<Json> FailedEntries() const;
  // SELECT count(*) FROM media_files WHERE synced_at IS NOT NULL [AND box]
  int64_t SyncedRows(const std::optional<std::string>& box = std::nullopt) const;
  int64_t UsedBytes(const std::string& box) const;
  int64_t ReservedBytes(const std::string& box) const;
  bool LocalExists(const Json& job) const;

  // Objects are read back through the S3 API, from the server of the job's
  // box: box-b's s3rver, else MINIO_ENDPOINT (the strict gateway).
  //
  // The job's object is there, GetObject's bytes are its file_size long and
  // hash to its sha256, and HeadObject's x-amz-meta-sha256 is that sha256.
  // false, never a failure, when the server does not answer (usable in WaitUntil).
  bool ObjectStored(const Json& job) const;
  // HeadObject of `key` on `box`'s server, in `bucket` (MINIO_BUCKET when
  // empty). A request that fails other than with 404 fails the test.
  bool ObjectExists(const std::string& key, const std::optional<std::string>& box,
                    const std::string& bucket = "") const;
  bool ObjectExists(const Json& job) const;
  // Every key in the bucket of `box`'s s3rver (ListObjectsV2, asked of the
  // s3rver itself). A request that fails fails the test.
  std::vector<std::string> ObjectKeys(const std::optional<std::string>& box) const;

  // The keys of every processing list, one per line ("" when none).
  std::string ProcessingKeys() const;
  // Nothing pending, delayed or in any processing list.
  bool QueuesEmpty() const;
  // What the queues hold, for failure messages ("?" for what Redis does not
  // answer now, during a failover say).
  std::string QueueState() const;
  // The worker's lease (media:sync:worker:<id>) exists; false while Redis
  // does not answer.
  bool HeartbeatAlive(const std::string& worker_id) const;
  // Waits (20 s at most) until `worker` registered as `worker_id`; false if
  // it exited or never did.
  bool WaitRegistered(const std::string& worker_id, WorkerProcess& worker) const;

  // Every job synced once: its row, its box's counters (used = sum of sizes,
  // nothing left reserved), its object byte-exact, its local file gone; and
  // no other row synced.
  void ExpectSyncedExactlyOnce(const std::vector<Json>& jobs,
                               std::source_location at = std::source_location::current()) const;

 private:
  LocalStack& stack_;
};

// A producer that LPUSHes jobs one at a time at a steady pace from its own
// thread, so that jobs keep arriving across faults. A push that Redis does
// not take (it is down or restarting; with Sentinels, no master yet or a
// demoted one) is retried until the master the stack names now takes it.
class PacedProducer {
 public:
  PacedProducer(const LocalStack& stack, std::vector<Json> jobs,
                std::chrono::milliseconds interval);

  int64_t pushed() const { return pushed_; }

 private:
  void Produce(const std::stop_token& stop);
  // LPUSH answers with the new length; anything else (no server, LOADING,
  // READONLY) is a miss, and the connection is made afresh, to the master
  // of the moment, for the next try.
  bool PushOnce(const std::string& payload);

  const LocalStack& stack_;
  std::unique_ptr<redisContext, void (*)(redisContext*)> redis_{nullptr, redisFree};
  const std::vector<Json> jobs_;
  const std::chrono::milliseconds interval_;
  std::atomic<int64_t> pushed_ = 0;
  std::jthread thread_;  // last: joined before the members it reads go away
};

}  // namespace media_sync::testing
