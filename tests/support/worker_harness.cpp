#include "support/worker_harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "core/hash.h"
#include "core/job.h"
#include "util/fd.h"

namespace media_sync::testing {

WorkerProcess::WorkerProcess(const LocalStack& stack, std::map<std::string, std::string> env,
                             std::vector<std::string> args) {
  static int counter = 0;
  log_path_ = stack.StateDir() + "/worker-" + std::to_string(getpid()) + "-" +
              std::to_string(++counter) + ".log";
  std::map<std::string, std::string> merged = stack.Env();
  merged["METRICS_ADDRESS"] = "";
  merged["LOG_LEVEL"] = "debug";
  for (auto& [key, value] : env) merged[key] = value;

  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    if (merged.count(name) == 0) environment.push_back(entry);
  }
  for (const auto& [key, value] : merged) environment.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::string binary = MediaSyncBinary();
  std::vector<std::string> argv_storage = {binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);

  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    // A fresh signal mask: the test binary's must not leak into the worker.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(binary.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(log_fd);
}

WorkerProcess::~WorkerProcess() {
  if (Running()) {
    kill(pid_, SIGKILL);
    WaitExit(std::chrono::seconds(10));
  }
}

void WorkerProcess::Signal(int signal) const { kill(pid_, signal); }

bool WorkerProcess::Running() {
  if (exit_code_) return false;
  return !WaitExit(std::chrono::milliseconds(0)).has_value();
}

std::optional<int> WorkerProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string WorkerProcess::Log() const {
  std::ifstream file(log_path_);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

Json MediaFactory::Make(uint64_t size, const std::optional<std::string>& box, uint64_t seed,
                        const std::string& ext, bool insert_row) {
  std::string content(size, '\0');
  std::mt19937_64 random(seed);
  for (size_t i = 0; i < size; i += 8) {
    uint64_t word = random();
    std::memcpy(content.data() + i, &word, std::min<size_t>(8, size - i));
  }
  std::string sha = Sha256Hex(content);
  std::string key = ContentKey(sha, ext);
  std::string path = stack_.BufferDir() + "/" + key;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary).write(content.data(), static_cast<std::streamsize>(size));
  if (insert_row) {
    std::string box_sql = box ? "'" + *box + "'" : "NULL";
    stack_.Sql("INSERT INTO media_files (sha256, s3_key, file_size, storage_box_id) VALUES ('" +
               sha + "', '" + key + "', " + std::to_string(size) + ", " + box_sql + ")" +
               (box ? "; UPDATE storage_boxes SET reserved_bytes = reserved_bytes + " +
                          std::to_string(size) + " WHERE id = " + box_sql
                    : std::string()));
  }
  return Json::parse(
      MakeJobPayload(NewJob{sha, key, path, box, size, std::chrono::system_clock::now()}));
}

std::vector<Json> MediaFactory::MakeMany(int count, uint64_t size, const std::string& box,
                                         uint64_t first_seed) {
  std::vector<Json> jobs;
  for (int i = 0; i < count; ++i) {
    jobs.push_back(Make(size, box, first_seed + static_cast<uint64_t>(i), "jpg",
                        /*insert_row=*/false));
  }
  InsertRows(jobs);
  return jobs;
}

void MediaFactory::AddTwoBoxes() {
  stack_.Sql("INSERT INTO storage_boxes (id, minio_endpoint) VALUES ('box-a', '" +
             stack_.Get("MINIO_ENDPOINT") + "'), ('box-b', 'http://" +
             stack_.Get("STACK_S3_2_ENDPOINT") + "')");
}

void MediaFactory::InsertRows(const std::vector<Json>& jobs) const {
  // A few hundred rows per statement: one command line stays far below the
  // kernel's limit on a single argument (128 KiB).
  constexpr size_t kPerStatement = 200;
  for (size_t start = 0; start < jobs.size(); start += kPerStatement) {
    std::string values;
    std::map<std::string, uint64_t> reserved;
    for (size_t i = start; i < std::min(jobs.size(), start + kPerStatement); ++i) {
      const Json& job = jobs[i];
      const Json& box = job["storage_box_id"];
      std::string box_sql = box.is_string() ? "'" + box.get<std::string>() + "'" : "NULL";
      if (!values.empty()) values += ", ";
      values += "('" + job["sha256"].get<std::string>() + "', '" +
                job["s3_key"].get<std::string>() + "', " +
                std::to_string(job["file_size"].get<uint64_t>()) + ", " + box_sql + ")";
      if (box.is_string()) reserved[box.get<std::string>()] += job["file_size"].get<uint64_t>();
    }
    std::string sql =
        "INSERT INTO media_files (sha256, s3_key, file_size, storage_box_id) VALUES " + values;
    for (const auto& [box, bytes] : reserved) {
      sql += "; UPDATE storage_boxes SET reserved_bytes = reserved_bytes + " +
             std::to_string(bytes) + " WHERE id = '" + box + "'";
    }
    stack_.Sql(sql);
  }
}

void MediaFactory::Push(const Json& job) const { PushRaw(job.dump()); }

void MediaFactory::PushAll(const std::vector<Json>& jobs) const {
  constexpr size_t kPerCommand = 200;  // one command line well below 128 KiB
  for (size_t start = 0; start < jobs.size(); start += kPerCommand) {
    std::string command = "LPUSH media:sync:pending";
    for (size_t i = start; i < std::min(jobs.size(), start + kPerCommand); ++i) {
      command += " " + ShellQuote(jobs[i].dump());
    }
    stack_.RedisCli(command);
  }
}

void MediaFactory::PushRaw(const std::string& payload) const {
  stack_.RedisCli("LPUSH media:sync:pending " + ShellQuote(payload));
}

int64_t MediaFactory::Len(const std::string& key) const {
  return std::stoll(Trim(stack_.RedisCli("LLEN " + key)));
}

std::string MediaFactory::ProcessingKeys() const {
  return Trim(stack_.RedisCli("--raw KEYS 'media:sync:processing:*'"));
}

int CountOccurrences(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

bool MediaFactory::QueuesEmpty() const {
  return Len("media:sync:pending") == 0 && DelayedCount() == 0 && ProcessingKeys().empty();
}

std::string MediaFactory::QueueState() const {
  return "pending " + std::to_string(Len("media:sync:pending")) + ", delayed " +
         std::to_string(DelayedCount()) + ", failed " + std::to_string(Len("media:sync:failed")) +
         ", processing lists [" + ProcessingKeys() + "], synced rows " +
         std::to_string(SyncedRows());
}

bool MediaFactory::HeartbeatAlive(const std::string& worker_id) const {
  return Trim(stack_.RedisCli("EXISTS media:sync:worker:" + worker_id)) == "1";
}

bool MediaFactory::WaitRegistered(const std::string& worker_id, WorkerProcess& worker) const {
  return WaitUntil([&] { return HeartbeatAlive(worker_id) || !worker.Running(); },
                   std::chrono::seconds(20)) &&
         worker.Running();
}

void MediaFactory::ExpectSyncedExactlyOnce(const std::vector<Json>& jobs,
                                           std::source_location at) const {
  ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
  std::map<std::string, int64_t> rows;
  std::map<std::string, int64_t> bytes;
  for (const auto& job : jobs) {
    std::string box = job["storage_box_id"].get<std::string>();
    ++rows[box];
    bytes[box] += job["file_size"].get<int64_t>();
    EXPECT_TRUE(ObjectStored(job)) << job["s3_key"];
    EXPECT_FALSE(LocalExists(job)) << job["local_path"];
  }
  for (const auto& [box, count] : rows) {
    EXPECT_EQ(SyncedRows(box), count) << box;
    EXPECT_EQ(UsedBytes(box), bytes[box]) << box;
    EXPECT_EQ(ReservedBytes(box), 0) << box;
  }
  EXPECT_EQ(SyncedRows(), static_cast<int64_t>(jobs.size()));
}

int64_t MediaFactory::DelayedCount() const {
  return std::stoll(Trim(stack_.RedisCli("ZCARD media:sync:delayed")));
}

std::vector<Json> MediaFactory::FailedEntries() const {
  std::vector<Json> entries;
  // One entry per line: entries are compact JSON, which never holds a raw newline.
  std::string raw = stack_.RedisCli("--raw LRANGE media:sync:failed 0 -1");
  std::istringstream lines(raw);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    Json entry = Json::parse(line, nullptr, false);
    if (!entry.is_discarded()) entries.push_back(entry);
  }
  return entries;
}

int64_t MediaFactory::SyncedRows(const std::optional<std::string>& box) const {
  std::string where = "synced_at IS NOT NULL";
  if (box) where += " AND storage_box_id = '" + *box + "'";
  return std::stoll(Trim(stack_.Sql("SELECT count(*) FROM media_files WHERE " + where)));
}

int64_t MediaFactory::UsedBytes(const std::string& box) const {
  return std::stoll(
      Trim(stack_.Sql("SELECT used_bytes FROM storage_boxes WHERE id = '" + box + "'")));
}

int64_t MediaFactory::ReservedBytes(const std::string& box) const {
  return std::stoll(
      Trim(stack_.Sql("SELECT reserved_bytes FROM storage_boxes WHERE id = '" + box + "'")));
}

bool MediaFactory::LocalExists(const Json& job) const {
  return std::filesystem::exists(job["local_path"].get<std::string>());
}

bool MediaFactory::ObjectStored(const Json& job) const {
  bool second_box = job["storage_box_id"].is_string() && job["storage_box_id"] == "box-b";
  std::string path = stack_.StateDir() + (second_box ? "/s3-2/" : "/s3/") +
                     stack_.Get("MINIO_BUCKET") + "/" + job["s3_key"].get<std::string>() +
                     "._S3rver_object";
  // Streamed through the hash: objects of hundreds of MiB are read at disk speed.
  std::error_code missing;
  const uint64_t size = std::filesystem::file_size(path, missing);
  if (missing) return false;
  UniqueFd file(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) return false;
  auto sha256 = Sha256OfFd(file.get(), size, size_t{4} << 20);
  return sha256.ok() && *sha256 == job["sha256"].get<std::string>();
}

PacedProducer::PacedProducer(const LocalStack& stack, std::vector<Json> jobs,
                             std::chrono::milliseconds interval)
    : redis_port_(std::stoi(stack.Get("STACK_REDIS_PORT"))),
      jobs_(std::move(jobs)),
      interval_(interval),
      thread_([this](const std::stop_token& stop) { Produce(stop); }) {}

void PacedProducer::Produce(const std::stop_token& stop) {
  for (const auto& job : jobs_) {
    while (!stop.stop_requested() && !PushOnce(job.dump())) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (stop.stop_requested()) return;
    ++pushed_;
    std::this_thread::sleep_for(interval_);
  }
}

bool PacedProducer::PushOnce(const std::string& payload) {
  // One connection for all pushes: thousands of jobs at a steady pace, which
  // a process per push could not keep on a loaded machine.
  if (!redis_) {
    const timeval timeout{2, 0};
    redis_.reset(redisConnectWithTimeout("127.0.0.1", redis_port_, timeout));
    if (!redis_ || redis_->err != 0 || redisSetTimeout(redis_.get(), timeout) != REDIS_OK) {
      redis_.reset();
      return false;
    }
  }
  auto* reply = static_cast<redisReply*>(
      redisCommand(redis_.get(), "LPUSH media:sync:pending %b", payload.data(), payload.size()));
  bool pushed = reply != nullptr && reply->type == REDIS_REPLY_INTEGER;
  if (reply != nullptr) freeReplyObject(reply);
  if (!pushed) redis_.reset();
  return pushed;
}

}  // namespace media_sync::testing
