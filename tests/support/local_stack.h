// A real local stack (redis-server, PostgreSQL 15, two s3rver storage boxes)
// for integration tests, started with scripts/stack.sh under a fresh
// temporary directory. MINIO_ENDPOINT is the strict S3 gateway
// (tests/support/strict_s3_gateway.js) in front of the first s3rver: it
// refuses wrong signatures and bodies that do not match their signed hashes,
// as MinIO and AWS S3 do. STACK_S3_DIRECT_ENDPOINT is that s3rver without the
// gateway, STACK_S3_2_ENDPOINT the second box (lenient, no gateway).
//
// Each integration test binary gets one shared stack from SharedStack(),
// started before the first test and stopped after the last (the support
// library's main() registers it). Tests isolate themselves with Reset() or
// their own keys. A test that needs a differently configured stack (HTTPS)
// starts its own LocalStack.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace media_sync::testing {

class LocalStack {
 public:
  struct Params {
    bool tls = false;
  };
  explicit LocalStack(Params params);
  LocalStack() : LocalStack(Params{}) {}
  ~LocalStack();
  LocalStack(const LocalStack&) = delete;
  LocalStack& operator=(const LocalStack&) = delete;

  // A value of the stack's env file (REDIS_URL, DATABASE_URL, MINIO_ENDPOINT,
  // MINIO_*, MEDIA_BUFFER_PATH, STACK_*). Aborts the test run when missing.
  std::string Get(const std::string& key) const;
  const std::map<std::string, std::string>& Env() const { return env_; }
  const std::string& StateDir() const { return state_dir_; }
  std::string BufferDir() const { return Get("MEDIA_BUFFER_PATH"); }

  // pid of "redis", "postgres", "s3" (the first s3rver, behind the gateway:
  // freezing it makes the gateway wait, the same hang for the client), "s3-2"
  // or "s3gateway" (for SIGSTOP/SIGKILL in fault tests).
  pid_t Pid(const std::string& service) const;
  // Restart "redis", "postgres", "s3" (the gateway stays), "s3-2" or "s3gateway"
  // on the same port.
  void Restart(const std::string& service);
  // Stop one service, and start it again on the same port (outage tests).
  void Stop(const std::string& service);
  void Start(const std::string& service);

  // Empties Redis (FLUSHALL), truncates both tables, empties the bucket's
  // objects and the buffer directory. The bucket itself is kept.
  void Reset();

  // Runs SQL on the stack's database with psql; returns stdout (unaligned, tuples only).
  std::string Sql(const std::string& sql) const;
  // Runs redis-cli with args; returns stdout.
  std::string RedisCli(const std::string& args) const;

 private:
  // scripts/stack.sh VERB SERVICE on this stack.
  void ServiceCommand(const std::string& verb, const std::string& service);

  std::string state_dir_;
  std::map<std::string, std::string> env_;
};

// The binary-wide stack (started lazily on first use, stopped at exit).
LocalStack& SharedStack();

// Runs a shell command, returns its stdout; aborts the test on a non-zero exit.
std::string Run(const std::string& command);
// Runs a shell command, returns its exit code; stdout into *out when given.
int RunStatus(const std::string& command, std::string* out = nullptr);

// Polls `condition` every 20 ms until it holds or `timeout` passes; true if
// it held. The one way tests wait for something another process does.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// `text` as one single-quoted shell word.
std::string ShellQuote(const std::string& text);
// `text` without trailing newlines and spaces (command output).
std::string Trim(std::string text);

// Path of a file or folder in the source tree and of the built media-sync binary.
std::string SourcePath(const std::string& relative);
std::string MediaSyncBinary();

}  // namespace media_sync::testing
