#include "support/local_stack.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace media_sync::testing {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "local stack: %s\n", message.c_str());
  std::abort();
}

}  // namespace

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

int RunStatus(const std::string& command, std::string* out) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) Die("popen failed for " + command);
  std::string output;
  std::array<char, 4096> chunk{};
  size_t n = 0;
  while ((n = fread(chunk.data(), 1, chunk.size(), pipe)) > 0) output.append(chunk.data(), n);
  int status = pclose(pipe);
  if (out != nullptr) *out = output;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Run(const std::string& command) {
  std::string out;
  int status = RunStatus(command, &out);
  if (status != 0) Die("command failed (" + std::to_string(status) + "): " + command + "\n" + out);
  return out;
}

std::string SourcePath(const std::string& relative) {
  return std::string(MEDIA_SYNC_SOURCE_DIR) + "/" + relative;
}

std::string MediaSyncBinary() { return MEDIA_SYNC_BINARY; }

LocalStack::LocalStack(Params params) {
  char pattern[] = "/tmp/media-sync-stack-XXXXXX";
  if (mkdtemp(pattern) == nullptr) Die("mkdtemp failed");
  state_dir_ = pattern;
  std::string prefix = params.tls ? "STACK_TLS=1 " : "";
  if (params.redis_sentinel) prefix += "STACK_REDIS_SENTINEL=1 ";
  if (params.postgres_standby) prefix += "STACK_PG_STANDBY=1 ";
  Run(prefix + "bash " + ShellQuote(SourcePath("scripts/stack.sh")) + " up " +
      ShellQuote(state_dir_) + " 2>&1");
  std::ifstream file(state_dir_ + "/env");
  std::string line;
  while (std::getline(file, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) env_[line.substr(0, eq)] = line.substr(eq + 1);
  }
  if (env_.empty()) Die("no env file in " + state_dir_);
}

LocalStack::~LocalStack() {
  RunStatus("bash " + ShellQuote(SourcePath("scripts/stack.sh")) + " down " +
            ShellQuote(state_dir_) + " >/dev/null 2>&1");
  std::error_code ignored;
  std::filesystem::remove_all(state_dir_, ignored);
}

std::string LocalStack::Get(const std::string& key) const {
  auto it = env_.find(key);
  if (it == env_.end()) Die("stack env has no " + key);
  return it->second;
}

pid_t LocalStack::Pid(const std::string& service) const {
  std::string name = service == "s3" ? "s3rver" : service == "s3-2" ? "s3rver-2" : service;
  std::ifstream file(state_dir_ + "/" + name + ".pid");
  pid_t pid = 0;
  if (!(file >> pid)) Die("no pid file for " + service);
  return pid;
}

void LocalStack::Restart(const std::string& service) { ServiceCommand("restart", service); }
void LocalStack::Stop(const std::string& service) { ServiceCommand("stop", service); }
void LocalStack::Start(const std::string& service) { ServiceCommand("start", service); }
void LocalStack::Promote(const std::string& service) { ServiceCommand("promote", service); }

void LocalStack::ServiceCommand(const std::string& verb, const std::string& service) {
  Run("bash " + ShellQuote(SourcePath("scripts/stack.sh")) + " " + verb + " " + service + " " +
      ShellQuote(state_dir_) + " 2>&1");
}

std::string LocalStack::Sql(const std::string& sql) const {
  if (env_.count("STACK_POSTGRES_STANDBY_PORT") > 0) {
    // Whichever of the two is the primary now.
    return Run("psql -X -q -A -t -v ON_ERROR_STOP=1 -d " + ShellQuote(Get("DATABASE_URL")) +
               " -c " + ShellQuote(sql));
  }
  return Run("psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " + Get("STACK_POSTGRES_PORT") +
             " -U postgres -d media -c " + ShellQuote(sql));
}

std::string LocalStack::SentinelCli(int index, const std::string& args) const {
  std::istringstream ports(Get("STACK_SENTINEL_PORTS"));  // comma-separated
  std::string port;
  for (int i = 0; i <= index; ++i) std::getline(ports, port, ',');
  std::string out;
  RunStatus("redis-cli -p " + port + " " + args + " 2>&1", &out);
  return out;
}

std::optional<int> LocalStack::RedisMasterPort() const {
  if (!UsesSentinel()) return std::stoi(Get("STACK_REDIS_PORT"));
  for (int index = 0; index < 3; ++index) {
    std::istringstream answer(SentinelCli(
        index, "--raw SENTINEL get-master-addr-by-name " + Get("STACK_REDIS_MASTER_NAME")));
    std::string host;
    std::string port;
    if (answer >> host >> port && !port.empty() && std::isdigit(port.front()) != 0) {
      return std::stoi(port);
    }
  }
  return std::nullopt;
}

std::optional<std::string> LocalStack::TryRedisCli(const std::string& args) const {
  auto port = RedisMasterPort();
  if (!port) return std::nullopt;
  std::string out;
  if (RunStatus("redis-cli -p " + std::to_string(*port) + " " + args, &out) != 0) {
    return std::nullopt;
  }
  // redis-cli prints an error reply and exits 0 when stdout is not a terminal.
  if (out.rfind("READONLY", 0) == 0 || out.rfind("LOADING", 0) == 0 ||
      out.rfind("Could not connect", 0) == 0) {
    return std::nullopt;
  }
  return out;
}

std::string LocalStack::RedisCli(const std::string& args) const {
  if (!UsesSentinel()) return Run("redis-cli -p " + Get("STACK_REDIS_PORT") + " " + args);
  auto port = RedisMasterPort();
  if (!port) Die("no Sentinel names a Redis master");
  return Run("redis-cli -p " + std::to_string(*port) + " " + args);
}

void LocalStack::Reset() {
  RedisCli("FLUSHALL");
  Sql("TRUNCATE media_files, storage_boxes");
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(BufferDir(), ignored)) {
    std::filesystem::remove_all(entry.path(), ignored);
  }
  // s3rver keeps objects as files under <data>/<bucket>/; removing them empties the bucket.
  for (const char* data : {"/s3/", "/s3-2/"}) {
    std::string bucket_dir = state_dir_ + data + Get("MINIO_BUCKET");
    for (const auto& entry : std::filesystem::directory_iterator(bucket_dir, ignored)) {
      std::filesystem::remove_all(entry.path(), ignored);
    }
  }
}

LocalStack& SharedStack() {
  static LocalStack* stack = new LocalStack();  // stopped by the environment below
  return *stack;
}

namespace {
bool& SharedStackSkipped() {
  static bool skipped = false;
  return skipped;
}
}  // namespace

bool SkipSharedStack() {
  SharedStackSkipped() = true;
  return true;
}

namespace {

class SharedStackEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    // Stops the shared stack once all tests ran (only if a test used it).
    if (started_) delete &SharedStack();
  }
  void SetUp() override {
    if (SharedStackSkipped()) return;
    SharedStack();
    started_ = true;
  }

 private:
  bool started_ = false;
};

}  // namespace
}  // namespace media_sync::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  signal(SIGPIPE, SIG_IGN);
  ::testing::AddGlobalTestEnvironment(new media_sync::testing::SharedStackEnvironment());
  return RUN_ALL_TESTS();
}
