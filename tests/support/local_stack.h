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
// their own keys. A test that needs a differently configured stack (HTTPS,
// Redis behind Sentinels, a PostgreSQL standby) starts its own LocalStack;
// a binary made only of such tests calls SkipSharedStack() first.
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
    // A Redis replica and three Sentinels (master "media", down after 1 s);
    // REDIS_URL is redis+sentinel://, RedisCli() talks to the current master.
    bool redis_sentinel = false;
    // A streaming standby of PostgreSQL ("postgres-standby"); DATABASE_URL
    // names both servers (target_session_attrs=read-write), and so does Sql().
    bool postgres_standby = false;
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
  // or "s3gateway"; with the failover options also "redis-replica",
  // "sentinel-1".."sentinel-3", "postgres-standby" (for SIGSTOP/SIGKILL in
  // fault tests).
  pid_t Pid(const std::string& service) const;
  // Restart "redis", "postgres", "s3" (the gateway stays), "s3-2" or "s3gateway"
  // on the same port.
  void Restart(const std::string& service);
  // Stop one service, and start it again on the same port (outage tests).
  void Stop(const std::string& service);
  void Start(const std::string& service);
  // pg_ctl promote of "postgres-standby" (returns once it accepts writes).
  void Promote(const std::string& service);

  // Empties Redis (FLUSHALL), truncates both tables, empties the bucket's
  // objects and the buffer directory. The bucket itself is kept.
  void Reset();

  // Runs SQL on the stack's database with psql; returns stdout (unaligned, tuples only).
  std::string Sql(const std::string& sql) const;
  // Runs redis-cli with args on the Redis server (with Sentinels: on the
  // master they name now); returns stdout. Aborts when it fails.
  std::string RedisCli(const std::string& args) const;
  // The same, nullopt when redis-cli fails (no master yet, during a failover).
  std::optional<std::string> TryRedisCli(const std::string& args) const;
  // With Sentinels: the port of the master the first answering Sentinel
  // names (nullopt when none answers); else STACK_REDIS_PORT.
  std::optional<int> RedisMasterPort() const;
  // redis-cli with args on one Sentinel (index 0..2); stdout.
  std::string SentinelCli(int index, const std::string& args) const;
  bool UsesSentinel() const { return env_.count("STACK_SENTINEL_PORTS") > 0; }

 private:
  // scripts/stack.sh VERB SERVICE on this stack.
  void ServiceCommand(const std::string& verb, const std::string& service);

  std::string state_dir_;
  std::map<std::string, std::string> env_;
};

// The binary-wide stack (started lazily on first use, stopped at exit).
LocalStack& SharedStack();
// Call before main() (from a namespace-scope initializer) in a binary whose
// tests each start their own LocalStack: the shared one is then not started.
// Returns true.
bool SkipSharedStack();

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
