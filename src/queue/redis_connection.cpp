#include "queue/redis_connection.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

namespace media_sync::queue {
namespace {

constexpr int kMinimumMajor = 6;
constexpr int kMinimumMinor = 2;

std::string Sha1Hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha1(), nullptr) != 1) {
    return {};  // EVALSHA then fails with NOSCRIPT and EVAL takes over
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size_t{length} * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0x0f];
  }
  return hex;
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Error replies that describe a passing state of the server, not a mistake
// of ours: the caller backs off and tries again.
bool IsTransientServerError(std::string_view message) {
  for (std::string_view prefix : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "READONLY", "OOM",
                                  "CLUSTERDOWN", "UNBLOCKED"}) {
    if (StartsWith(message, prefix)) return true;
  }
  return false;
}

// Replies of a server that is not (or no longer) a writable master: a
// replica (READONLY, also from inside a script), a master demoted while we
// were blocked on it (UNBLOCKED), a replica cut off from its master
// (MASTERDOWN). Another connect, through the Sentinels, finds the master.
bool NamesNoWritableMaster(std::string_view message) {
  return StartsWith(message, "READONLY") || StartsWith(message, "UNBLOCKED") ||
         StartsWith(message, "MASTERDOWN") ||
         message.find("READONLY You can't write against a read only replica") !=
             std::string_view::npos;
}

std::string Describe(const config::RedisAddress& address) {
  if (!address.unix_socket.empty()) return "Redis at unix:" + address.unix_socket;
  if (address.UsesSentinel()) {
    std::string sentinels;
    for (const auto& sentinel : address.sentinels) {
      sentinels += (sentinels.empty() ? "" : ",") + HostPortText(sentinel);
    }
    return "Redis master '" + address.master_name + "' (Sentinels " + sentinels + ")";
  }
  return "Redis at " + address.host + ":" + std::to_string(address.port);
}

}  // namespace

// --- ReplyView / RedisReply -------------------------------------------------

bool ReplyView::IsNil() const { return reply_ == nullptr || reply_->type == REDIS_REPLY_NIL; }
bool ReplyView::IsInteger() const {
  return reply_ != nullptr && reply_->type == REDIS_REPLY_INTEGER;
}
bool ReplyView::IsString() const {
  return reply_ != nullptr &&
         (reply_->type == REDIS_REPLY_STRING || reply_->type == REDIS_REPLY_STATUS);
}
bool ReplyView::IsArray() const { return reply_ != nullptr && reply_->type == REDIS_REPLY_ARRAY; }
bool ReplyView::IsError() const { return reply_ != nullptr && reply_->type == REDIS_REPLY_ERROR; }

int64_t ReplyView::Integer() const { return IsInteger() ? reply_->integer : 0; }

std::string_view ReplyView::String() const {
  if (reply_ == nullptr || reply_->str == nullptr) return {};
  if (!IsString() && !IsError()) return {};
  return {reply_->str, reply_->len};
}

size_t ReplyView::Size() const { return IsArray() ? reply_->elements : 0; }

ReplyView ReplyView::operator[](size_t index) const {
  return ReplyView(index < Size() ? reply_->element[index] : nullptr);
}

RedisReply::RedisReply(redisReply* reply) : reply_(reply) {}

void RedisReply::Free::operator()(redisReply* reply) const { freeReplyObject(reply); }

// --- LuaScript ----------------------------------------------------------------

LuaScript::LuaScript(std::string_view source) : source_(source), sha1_(Sha1Hex(source)) {}

// --- version ------------------------------------------------------------------

bool IsSupportedRedisVersion(std::string_view version) {
  int major = 0;
  int minor = 0;
  const char* end = version.data() + version.size();
  auto [after_major, major_error] = std::from_chars(version.data(), end, major);
  if (major_error != std::errc() || after_major == end || *after_major != '.') return false;
  auto [after_minor, minor_error] = std::from_chars(after_major + 1, end, minor);
  if (minor_error != std::errc()) return false;
  return major > kMinimumMajor || (major == kMinimumMajor && minor >= kMinimumMinor);
}

std::string RedisVersionFromInfo(std::string_view info) {
  constexpr std::string_view kField = "redis_version:";
  size_t at = 0;
  while (at < info.size()) {
    size_t line_end = info.find('\n', at);
    if (line_end == std::string_view::npos) line_end = info.size();
    std::string_view line = info.substr(at, line_end - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (StartsWith(line, kField)) return std::string(line.substr(kField.size()));
    at = line_end + 1;
  }
  return {};
}

// --- RedisConnection ----------------------------------------------------------

RedisConnection::RedisConnection(config::RedisAddress address, RedisOptions options)
    : address_(std::move(address)),
      options_(options),
      endpoint_(Describe(address_)),
      sentinel_(address_, options_.sentinel_timeout) {}

RedisConnection::~RedisConnection() = default;
RedisConnection::RedisConnection(RedisConnection&&) noexcept = default;
RedisConnection& RedisConnection::operator=(RedisConnection&&) noexcept = default;

Status RedisConnection::Connect() {
  if (context_) return Ok();
  return Open();
}

void RedisConnection::Disconnect() {
  context_.reset();
  sentinel_.Disconnect();
}

Error RedisConnection::WireError(std::string_view what) {
  std::string detail = context_ && context_->errstr[0] != '\0' ? context_->errstr : "no reply";
  context_.reset();  // protocol state unknown: the next call reconnects
  return Error::Outage(endpoint_ + ": " + std::string(what) + ": " +
                       ScrubSecrets(address_, detail));
}

Error RedisConnection::ErrorFromReply(std::string_view command, std::string_view message) {
  std::string text =
      endpoint_ + ": " + std::string(command) + ": " + ScrubSecrets(address_, message);
  if (NamesNoWritableMaster(message)) {
    context_.reset();  // the next call asks the Sentinels (or reconnects) first
    return Error::Outage(std::move(text));
  }
  if (IsTransientServerError(message)) return Error::Outage(std::move(text));
  return Error::Configuration(std::move(text));
}

Status RedisConnection::SetSocketTimeout(std::chrono::milliseconds timeout) {
  if (redisSetTimeout(context_.get(), ToTimeval(timeout)) != REDIS_OK) {
    return WireError("setting the socket timeout");
  }
  return Ok();
}

Status RedisConnection::Open() {
  const timeval connect_timeout = ToTimeval(options_.connect_timeout);
  std::string host = address_.host;
  int port = address_.port;
  if (address_.UsesSentinel()) {
    endpoint_ = Describe(address_);
    auto master = sentinel_.Master();
    if (!master) return master.error();
    master_ = *master;
    host = master_.host;
    port = master_.port;
    endpoint_ = "Redis master '" + address_.master_name + "' at " + HostPortText(master_);
    next_master_check_ = std::chrono::steady_clock::now() + options_.master_check_interval;
  }
  redisContext* raw =
      address_.unix_socket.empty()
          ? redisConnectWithTimeout(host.c_str(), port, connect_timeout)
          : redisConnectUnixWithTimeout(address_.unix_socket.c_str(), connect_timeout);
  if (raw == nullptr) return Error::Outage(endpoint_ + ": cannot allocate a connection");
  context_.reset(raw);
  if (context_->err != 0) return WireError("cannot connect");
  if (Status timeout = SetSocketTimeout(options_.command_timeout); !timeout) return timeout;
  if (address_.unix_socket.empty()) redisEnableKeepAlive(context_.get());

  if (!address_.password.empty()) {
    std::vector<std::string_view> auth = {"AUTH"};
    if (!address_.username.empty()) auth.push_back(address_.username);
    auth.push_back(address_.password);
    auto reply = SendRaw(auth);
    if (!reply) return reply.error();
    if (reply->view().IsError()) {
      std::string who = address_.username.empty() ? "" : " of user " + address_.username;
      Error error = Error::Configuration(endpoint_ + " rejected the credentials" + who + ": " +
                                         ScrubSecrets(address_, reply->view().String()));
      context_.reset();
      return error;
    }
  }
  if (address_.UsesSentinel()) {
    if (Status master = VerifyMaster(); !master) return master;
  }
  if (address_.db != 0) {
    std::string db = std::to_string(address_.db);
    std::vector<std::string_view> select = {"SELECT", db};
    auto reply = Execute(select);
    if (!reply) {
      context_.reset();
      return reply.error();
    }
  }
  std::vector<std::string_view> info_server = {"INFO", "server"};
  auto info = Execute(info_server);
  if (!info) {
    context_.reset();
    return info.error();
  }
  std::string version = RedisVersionFromInfo(info->view().String());
  if (!IsSupportedRedisVersion(version)) {
    context_.reset();
    return Error::Configuration(endpoint_ + ": Redis 6.2 or newer required (found " +
                                (version.empty() ? "unknown" : version) + ")");
  }
  server_version_ = std::move(version);
  return Ok();
}

Status RedisConnection::VerifyMaster() {
  std::vector<std::string_view> role = {"ROLE"};
  auto reply = Execute(role);
  if (!reply) {
    context_.reset();
    return reply.error();
  }
  std::string_view said = reply->view()[0].String();
  if (said != "master") {
    context_.reset();
    return Error::Outage(endpoint_ + ": named master by a Sentinel but its ROLE is '" +
                         std::string(said) + "' (a failover in progress): asking again");
  }
  return Ok();
}

void RedisConnection::CheckMaster() {
  if (!address_.UsesSentinel() || !context_ || options_.master_check_interval.count() <= 0) {
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (now < next_master_check_) return;
  auto master = sentinel_.Master();
  if (!master) {
    // A master that answers is not left because its Sentinels do not.
    next_master_check_ = now + 10 * options_.master_check_interval;
    return;
  }
  next_master_check_ = now + options_.master_check_interval;
  if (master->host == master_.host && master->port == master_.port) return;
  spdlog::info("{}: the Sentinels now name {} as master: reconnecting", endpoint_,
               HostPortText(*master));
  context_.reset();
}

Status RedisConnection::Ready() {
  CheckMaster();
  return Connect();
}

Result<RedisReply> RedisConnection::Execute(std::span<const std::string_view> args) {
  auto reply = SendRaw(args);
  if (!reply) return reply.error();
  if (reply->view().IsError()) return ErrorFromReply(args[0], reply->view().String());
  return reply;
}

Result<RedisReply> RedisConnection::SendRaw(std::span<const std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> argv_lengths;
  argv.reserve(args.size());
  argv_lengths.reserve(args.size());
  for (std::string_view arg : args) {
    argv.push_back(arg.data());
    argv_lengths.push_back(arg.size());
  }
  void* reply = redisCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(),
                                 argv_lengths.data());
  if (reply == nullptr) {
    return WireError(args.empty() ? "command" : std::string(args[0]) + " failed");
  }
  return RedisReply(static_cast<redisReply*>(reply));
}

Result<RedisReply> RedisConnection::Command(std::initializer_list<std::string_view> args) {
  return Command(std::span<const std::string_view>(args.begin(), args.size()));
}

Status RedisConnection::Scan(std::string_view pattern,
                             const std::function<bool(std::string_view key)>& visit) {
  std::string cursor = "0";
  do {
    auto reply = Command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (!reply) return reply.error();
    ReplyView view = reply->view();
    if (view.Size() != 2) return Error::Configuration(endpoint_ + ": unexpected reply to SCAN");
    cursor = std::string(view[0].String());
    for (size_t i = 0; i < view[1].Size(); ++i) {
      if (!visit(view[1][i].String())) return Ok();
    }
  } while (cursor != "0");
  return Ok();
}

Result<RedisReply> RedisConnection::Command(std::span<const std::string_view> args) {
  if (Status open = Ready(); !open) return open.error();
  return Execute(args);
}

Result<RedisReply> RedisConnection::BlockingCommand(std::span<const std::string_view> args,
                                                    std::chrono::milliseconds blocks_for) {
  if (Status open = Ready(); !open) return open.error();
  if (Status widened = SetSocketTimeout(blocks_for + options_.command_timeout); !widened) {
    return widened.error();
  }
  auto reply = Execute(args);
  if (context_) {
    if (Status restored = SetSocketTimeout(options_.command_timeout); !restored) {
      return restored.error();
    }
  }
  return reply;
}

Result<std::vector<RedisReply>> RedisConnection::Pipeline(
    std::span<const std::vector<std::string_view>> commands) {
  if (Status open = Ready(); !open) return open.error();
  for (const auto& args : commands) {
    std::vector<const char*> argv;
    std::vector<size_t> argv_lengths;
    for (std::string_view arg : args) {
      argv.push_back(arg.data());
      argv_lengths.push_back(arg.size());
    }
    if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(),
                               argv_lengths.data()) != REDIS_OK) {
      return WireError("queueing a pipelined command");
    }
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  // The first error reply, turned into an Error once every reply is read
  // (that may drop the context).
  std::optional<std::pair<std::string, std::string>> first_error;
  for (const auto& args : commands) {
    void* reply = nullptr;
    if (redisGetReply(context_.get(), &reply) != REDIS_OK || reply == nullptr) {
      return WireError("pipelined " + std::string(args.empty() ? "" : args[0]) + " failed");
    }
    RedisReply owned(static_cast<redisReply*>(reply));
    if (owned.view().IsError() && !first_error) {
      first_error.emplace(std::string(args[0]), std::string(owned.view().String()));
    }
    replies.push_back(std::move(owned));
  }
  if (first_error) return ErrorFromReply(first_error->first, first_error->second);
  return replies;
}

Result<RedisReply> RedisConnection::RunScript(const LuaScript& script,
                                              std::span<const std::string_view> keys,
                                              std::span<const std::string_view> args) {
  if (Status open = Ready(); !open) return open.error();
  std::string key_count = std::to_string(keys.size());
  std::vector<std::string_view> argv = {"EVALSHA", script.sha1(), key_count};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto reply = SendRaw(argv);
  if (!reply) return reply.error();
  if (reply->view().IsError() && StartsWith(reply->view().String(), "NOSCRIPT")) {
    argv[0] = "EVAL";
    argv[1] = script.source();
    reply = SendRaw(argv);
    if (!reply) return reply.error();
  }
  if (reply->view().IsError()) return ErrorFromReply("script", reply->view().String());
  return reply;
}

}  // namespace media_sync::queue
