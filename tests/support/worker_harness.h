// Helpers for end-to-end tests of `media-sync run` against the real stack:
// a child process running the built binary, media files with their catalog
// rows and jobs, and bounded waiting for observable conditions.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
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

// Polls `condition` every 50 ms until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

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

  void Push(const Json& job) const;
  void PushRaw(const std::string& payload) const;

  // Redis list length / zcard via redis-cli.
  int64_t Len(const std::string& key) const;
  int64_t DelayedCount() const;
  std::vector<Json> FailedEntries() const;
  // SELECT count(*) FROM media_files WHERE synced_at IS NOT NULL [AND box]
  int64_t SyncedRows(const std::optional<std::string>& box = std::nullopt) const;
  int64_t UsedBytes(const std::string& box) const;
  int64_t ReservedBytes(const std::string& box) const;
  bool LocalExists(const Json& job) const;
  // The stored object's bytes hash to the job's sha256 (read from s3rver's data directory).
  bool ObjectStored(const Json& job) const;

 private:
  LocalStack& stack_;
};

}  // namespace media_sync::testing
