// One connection to Redis over hiredis, for the queue adapters of this folder.
//
// Ownership: RedisConnection owns its hiredis context (RAII, move-only) and
// every RedisReply owns its reply object. No hiredis type leaves src/queue:
// the adapters turn replies into plain values.
//
// Thread-safety: none. A connection (and every adapter holding one) belongs to
// one thread at a time; give each worker thread its own.
//
// Connection life cycle: the connection is opened lazily, by Connect() or the
// first command. Opening it connects (TCP or unix socket, connect timeout),
// authenticates (AUTH [user] password), selects the database and checks that
// the server is Redis 6.2 or newer (BLMOVE, LMOVE). When a command fails on
// the wire (refused, reset, timed out) the context is dropped, because its
// protocol state is unknown, and the next call reconnects. So is a context
// whose server turned out not to be a writable master (READONLY, UNBLOCKED,
// MASTERDOWN replies). Nothing is retried implicitly: a command that may have
// run is never sent twice behind the caller's back.
//
// Sentinel (an address with sentinels, from redis+sentinel:// URLs): opening
// the connection first asks the Sentinels for the address of the named
// master (RedisSentinel, queue/redis_sentinel.h), connects there,
// authenticates, and checks with ROLE that the server really is a master
// (during a failover a Sentinel may still name the old one). Every reconnect
// asks again, so a refused or reset connection, a timeout or a READONLY reply
// from a demoted master all lead to the new master. An open connection also
// asks a Sentinel every master_check_interval whether its server is still
// the master, and leaves it when the Sentinels named another: between a
// promotion and the old master's demotion (seconds), writes to the old
// master are lost. The time without a master is an outage like any other.
//
// Errors:
//   kOutage         connect/IO failure or timeout, and the server's transient
//                   refusals (LOADING, BUSY, MASTERDOWN, TRYAGAIN, READONLY,
//                   UNBLOCKED, OOM); no Sentinel reachable; a Sentinel naming
//                   a server that is not (yet) a master. Messages name "Redis
//                   at host:port" or "Redis master 'name' at host:port".
//   kConfiguration  rejected credentials, unknown database, Redis older than
//                   6.2, every Sentinel that answered knows no master of that
//                   name, a Sentinel rejecting the credentials, and any other
//                   error reply (WRONGTYPE: a key of ours holds something
//                   else), which only an operator can fix.
// No message ever carries a password.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/urls.h"
#include "core/result.h"
#include "queue/hiredis_context.h"
#include "queue/redis_sentinel.h"

struct redisReply;

namespace media_sync::queue {

struct RedisOptions {
  // Upper bound for TCP/unix connect.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // Upper bound for one command's round trip; a blocking command gets its own
  // blocking time on top. A server that hangs costs at most this much.
  std::chrono::milliseconds command_timeout = std::chrono::seconds(10);
  // Sentinel mode: upper bound for connecting to one Sentinel and for its
  // answer; a Sentinel that takes longer is skipped for the next.
  std::chrono::milliseconds sentinel_timeout = std::chrono::seconds(1);
  // Sentinel mode: how often an open connection asks a Sentinel whether its
  // server is still the master (0: only after errors). After a failed ask the
  // next waits ten times as long, so Sentinels that are down cost little.
  std::chrono::milliseconds master_check_interval = std::chrono::seconds(1);
};

// A non-owning view of a reply or one of its elements; valid while the
// RedisReply it came from lives.
class ReplyView {
 public:
  explicit ReplyView(const redisReply* reply) : reply_(reply) {}

  bool IsNil() const;
  bool IsInteger() const;
  bool IsString() const;  // bulk or status string
  bool IsArray() const;
  bool IsError() const;

  // Value accessors return a neutral value (0, "", empty) on another type,
  // so a surprising reply is a wrong number, never a crash; callers check the
  // type where it matters.
  int64_t Integer() const;
  std::string_view String() const;
  size_t Size() const;  // number of elements of an array
  ReplyView operator[](size_t index) const;

 private:
  const redisReply* reply_;
};

// Owns one reply object (freeReplyObject on destruction). Move-only.
class RedisReply {
 public:
  explicit RedisReply(redisReply* reply);
  RedisReply(RedisReply&&) noexcept = default;
  RedisReply& operator=(RedisReply&&) noexcept = default;

  ReplyView view() const { return ReplyView(reply_.get()); }

 private:
  struct Free {
    void operator()(redisReply* reply) const;
  };
  std::unique_ptr<redisReply, Free> reply_;
};

// A Lua script run by EVALSHA, falling back to EVAL (which also loads it) when
// the server does not know it yet (NOSCRIPT: first use, restart, SCRIPT FLUSH).
// Scripts live as named constants beside the code that runs them.
class LuaScript {
 public:
  explicit LuaScript(std::string_view source);

  std::string_view source() const { return source_; }
  std::string_view sha1() const { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;  // lower-case hex, as EVALSHA expects
};

// Redis version check, exposed for tests: "7.0.15" -> supported.
bool IsSupportedRedisVersion(std::string_view version);
// The redis_version field of an INFO reply; empty when missing.
std::string RedisVersionFromInfo(std::string_view info);

class RedisConnection {
 public:
  RedisConnection(config::RedisAddress address, RedisOptions options);
  ~RedisConnection();
  RedisConnection(RedisConnection&&) noexcept;
  RedisConnection& operator=(RedisConnection&&) noexcept;
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Opens the connection now unless it is open. Use at start-up so a bad
  // address, bad credentials or an old server are reported before any job.
  Status Connect();
  bool connected() const { return context_ != nullptr; }
  // Drops the connection; the next call reconnects.
  void Disconnect();

  // "Redis at host:port", "Redis at unix:/path" or "Redis master 'name' at
  // host:port": the prefix of every error.
  const std::string& endpoint() const { return endpoint_; }
  // The server's redis_version, once connected.
  const std::string& server_version() const { return server_version_; }

  // Runs one command (binary-safe arguments). An error reply is returned as
  // an Error (see the header comment), never as a reply.
  Result<RedisReply> Command(std::initializer_list<std::string_view> args);
  Result<RedisReply> Command(std::span<const std::string_view> args);

  // For commands that block on the server (BLMOVE) for up to `blocks_for`:
  // the socket waits that long plus the command timeout.
  Result<RedisReply> BlockingCommand(std::span<const std::string_view> args,
                                     std::chrono::milliseconds blocks_for);

  // Sends all commands, then reads all replies (one round trip). Fails with
  // the first error, after reading every reply so the connection stays usable.
  Result<std::vector<RedisReply>> Pipeline(std::span<const std::vector<std::string_view>> commands);

  // Every key matching `pattern` (SCAN ... MATCH ... COUNT 1000, one round
  // trip per batch), each passed to `visit` as it comes; stops early when
  // `visit` returns false. A key may be seen twice, as SCAN allows.
  Status Scan(std::string_view pattern, const std::function<bool(std::string_view key)>& visit);

  // EVALSHA, then EVAL on NOSCRIPT. Script errors are kConfiguration.
  Result<RedisReply> RunScript(const LuaScript& script, std::span<const std::string_view> keys,
                               std::span<const std::string_view> args);

 private:
  Status Open();
  // Sentinel mode: drops the open context when a Sentinel now names another
  // master (at most once per master_check_interval). Then connects if needed.
  Status Ready();
  void CheckMaster();
  // ROLE must say master; otherwise kOutage and the context is dropped.
  Status VerifyMaster();
  // Sends a command on the open context. Wire errors drop the context and
  // are kOutage; error replies come back as replies.
  Result<RedisReply> SendRaw(std::span<const std::string_view> args);
  // Sends on the open context; error replies become Errors.
  Result<RedisReply> Execute(std::span<const std::string_view> args);
  Error WireError(std::string_view what);
  // The Error for an error reply; drops the context when the reply says the
  // server is no (longer a) writable master.
  Error ErrorFromReply(std::string_view command, std::string_view message);
  Status SetSocketTimeout(std::chrono::milliseconds timeout);

  config::RedisAddress address_;
  RedisOptions options_;
  std::string endpoint_;
  std::string server_version_;
  RedisContextPtr context_;
  // Sentinel mode.
  RedisSentinel sentinel_;
  config::HostPort master_;  // the server context_ is connected to
  std::chrono::steady_clock::time_point next_master_check_;
};

}  // namespace media_sync::queue
