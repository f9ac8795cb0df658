#include "support/worker_harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
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
#include "s3/s3_client.h"
#include "s3/s3_errors.h"
#include "s3/sigv4.h"

namespace media_sync::testing {
namespace {

// The SHA-256 of no bytes: the payload hash of a request without a body.
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::optional<std::string> BoxOf(const Json& job) {
  const Json& box = job["storage_box_id"];
  if (box.is_string()) return box.get<std::string>();
  return std::nullopt;
}

// A client of the server that holds `box`'s objects, as AddTwoBoxes set them up.
s3::S3Options BoxS3Options(const LocalStack& stack, const std::optional<std::string>& box,
                           const std::string& bucket) {
  const bool second_box = box == "box-b";
  s3::S3Options options;
  options.endpoint = stack.Get(second_box ? "STACK_S3_2_ENDPOINT" : "MINIO_ENDPOINT");
  // Both servers speak HTTPS in a stack started with TLS (the gateway and the
  // second s3rver).
  options.secure = stack.Get("MINIO_SECURE") == "true";
  if (options.secure && stack.Env().count("MINIO_CA_FILE") > 0) {
    options.ca_file = stack.Get("MINIO_CA_FILE");
  }
  options.access_key = stack.Get("MINIO_ACCESS_KEY");
  options.secret_key = stack.Get("MINIO_SECRET_KEY");
  options.bucket = bucket.empty() ? stack.Get("MINIO_BUCKET") : bucket;
  options.connect_timeout = std::chrono::seconds(5);
  options.low_speed_time = std::chrono::seconds(10);
  return options;
}

}  // namespace

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
  const std::string scheme = stack_.Get("MINIO_SECURE") == "true" ? "https://" : "http://";
  stack_.Sql("INSERT INTO storage_boxes (id, minio_endpoint) VALUES ('box-a', '" +
             stack_.Get("MINIO_ENDPOINT") + "'), ('box-b', '" + scheme +
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

int64_t Millis(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
}

void Measure(const std::string& name, int64_t value, const std::string& unit) {
  std::printf("[  MEASURE ] %s = %lld %s\n", name.c_str(), static_cast<long long>(value),
              unit.c_str());
  ::testing::Test::RecordProperty(name, std::to_string(value));
}

bool MediaFactory::QueuesEmpty() const {
  return Len("media:sync:pending") == 0 && DelayedCount() == 0 && ProcessingKeys().empty();
}

std::string MediaFactory::QueueState() const {
  auto ask = [&](const std::string& args) { return Trim(stack_.TryRedisCli(args).value_or("?")); };
  return "pending " + ask("LLEN media:sync:pending") + ", delayed " +
         ask("ZCARD media:sync:delayed") + ", failed " + ask("LLEN media:sync:failed") +
         ", processing lists [" + ask("--raw KEYS 'media:sync:processing:*'") + "], synced rows " +
         std::to_string(SyncedRows());
}

bool MediaFactory::HeartbeatAlive(const std::string& worker_id) const {
  auto exists = stack_.TryRedisCli("EXISTS media:sync:worker:" + worker_id);
  return exists && Trim(*exists) == "1";
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

std::vector<std::string> MediaFactory::ListEntries(const std::string& key) const {
  std::vector<std::string> entries;
  // One entry per line: entries are compact JSON, which never holds a raw newline.
  std::istringstream lines(stack_.RedisCli("--raw LRANGE " + key + " 0 -1"));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) entries.push_back(line);
  }
  return entries;
}

std::vector<Json> MediaFactory::PendingJobs() const {
  std::vector<Json> jobs;
  for (const std::string& entry : ListEntries("media:sync:pending")) {
    Json job = Json::parse(entry, nullptr, false);
    if (job.is_discarded()) {
      ADD_FAILURE() << "a pending entry that is not JSON: " << entry;
    } else {
      jobs.push_back(std::move(job));
    }
  }
  return jobs;
}

std::vector<Json> MediaFactory::FailedEntries() const {
  std::vector<Json> entries;
  for (const std::string& text : ListEntries("media:sync:failed")) {
    Json entry = Json::parse(text, nullptr, false);
    if (!entry.is_discarded()) entries.push_back(std::move(entry));
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
  s3::S3Client client(BoxS3Options(stack_, BoxOf(job), ""));
  const std::string key = job["s3_key"].get<std::string>();
  const std::string sha256 = job["sha256"].get<std::string>();
  auto head = client.HeadObject(key);
  if (!head.ok() || !head->has_value() || (*head)->sha256 != sha256) return false;
  auto bytes = client.GetObject(key);
  if (!bytes.ok() || Sha256Hex(*bytes) != sha256) return false;
  const Json& size = job["file_size"];
  return !size.is_number_unsigned() || bytes->size() == size.get<uint64_t>();
}

bool MediaFactory::ObjectExists(const std::string& key, const std::optional<std::string>& box,
                                const std::string& bucket) const {
  s3::S3Client client(BoxS3Options(stack_, box, bucket));
  auto head = client.HeadObject(key);
  if (!head.ok()) {
    ADD_FAILURE() << "HeadObject " << key << ": " << head.error().message;
    return false;
  }
  return head->has_value();
}

bool MediaFactory::ObjectExists(const Json& job) const {
  return ObjectExists(job["s3_key"].get<std::string>(), BoxOf(job));
}

std::vector<std::string> MediaFactory::ObjectKeys(const std::optional<std::string>& box) const {
  // curl signs the requests (SigV4) by itself; the gateway in front of box-a
  // is left out, since listing goes to the s3rver that holds the objects.
  // The first s3rver speaks plain HTTP behind the gateway; the second one
  // HTTPS in a stack started with TLS.
  const bool second_box = box == "box-b";
  const bool secure = second_box && stack_.Get("MINIO_SECURE") == "true";
  const std::string base =
      std::string(secure ? "https://" : "http://") +
      stack_.Get(second_box ? "STACK_S3_2_ENDPOINT" : "STACK_S3_DIRECT_ENDPOINT") + "/" +
      stack_.Get("MINIO_BUCKET") + "?list-type=2";
  const std::string ca = secure && stack_.Env().count("MINIO_CA_FILE") > 0
                             ? " --cacert " + ShellQuote(stack_.Get("MINIO_CA_FILE"))
                             : "";
  std::vector<std::string> keys;
  while (true) {
    std::string url = base;
    if (!keys.empty()) url += "&start-after=" + s3::UriEncode(keys.back(), true);
    std::string reply;
    int code = RunStatus(
        "curl -sS --fail-with-body --aws-sigv4 'aws:amz:us-east-1:s3' --user " +
            ShellQuote(stack_.Get("MINIO_ACCESS_KEY") + ":" + stack_.Get("MINIO_SECRET_KEY")) +
            " -H 'x-amz-content-sha256: " + std::string(kEmptySha256) + "'" + ca + " " +
            ShellQuote(url) + " 2>&1",
        &reply);
    if (code != 0 || reply.find("<ListBucketResult") == std::string::npos) {
      ADD_FAILURE() << "ListObjectsV2 " << url << " (curl exit " << code << "): " << reply;
      return keys;
    }
    for (std::string_view contents : s3::XmlElements(reply, "Contents")) {
      if (auto key = s3::XmlTagText(contents, "Key")) keys.push_back(*key);
    }
    if (s3::XmlTagText(reply, "IsTruncated") != "true") return keys;
  }
}

PacedProducer::PacedProducer(const LocalStack& stack, std::vector<Json> jobs,
                             std::chrono::milliseconds interval)
    : stack_(stack),
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
    auto port = stack_.RedisMasterPort();
    if (!port) return false;
    const timeval timeout{2, 0};
    redis_.reset(redisConnectWithTimeout("127.0.0.1", *port, timeout));
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
