#include "queue/redis_sentinel.h"

#include <hiredis/hiredis.h>

#include <charconv>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "queue/redis_connection.h"

namespace media_sync::queue {
namespace {

std::string Where(const config::HostPort& sentinel) { return "Sentinel " + HostPortText(sentinel); }

// Sends one command on `context`; nullptr when nothing came back (the
// context's errstr says why).
redisReply* Send(redisContext* context, const std::vector<std::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (std::string_view arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  return static_cast<redisReply*>(
      redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data()));
}

std::string WireDetail(const redisContext* context) {
  return context != nullptr && context->errstr[0] != '\0' ? context->errstr : "no reply";
}

}  // namespace

RedisSentinel::RedisSentinel(config::RedisAddress address, std::chrono::milliseconds timeout)
    : address_(std::move(address)), timeout_(timeout) {}

RedisSentinel::~RedisSentinel() = default;
RedisSentinel::RedisSentinel(RedisSentinel&&) noexcept = default;
RedisSentinel& RedisSentinel::operator=(RedisSentinel&&) noexcept = default;

Status RedisSentinel::ConnectTo(size_t index) {
  if (context_ && index_ != index) context_.reset();
  index_ = index;
  if (context_) return Ok();
  const config::HostPort& sentinel = address_.sentinels[index];
  auto fail = [&](const std::string& why) -> Error {
    context_.reset();
    return Error::Outage(Where(sentinel) + ": " + ScrubSecrets(address_, why));
  };
  redisContext* raw =
      redisConnectWithTimeout(sentinel.host.c_str(), sentinel.port, ToTimeval(timeout_));
  if (raw == nullptr) return fail("cannot allocate a connection");
  context_.reset(raw);
  if (context_->err != 0) return fail(context_->errstr);
  if (redisSetTimeout(context_.get(), ToTimeval(timeout_)) != REDIS_OK) {
    return fail(context_->errstr);
  }
  if (address_.sentinel_password.empty()) return Ok();
  std::vector<std::string_view> auth = {"AUTH"};
  if (!address_.sentinel_username.empty()) auth.emplace_back(address_.sentinel_username);
  auth.emplace_back(address_.sentinel_password);
  redisReply* raw_auth = Send(context_.get(), auth);
  if (raw_auth == nullptr) return fail(WireDetail(context_.get()));
  RedisReply reply(raw_auth);
  if (reply.view().IsError()) {
    std::string message(reply.view().String());
    context_.reset();
    return Error::Configuration(
        Where(sentinel) +
        " rejected the credentials of sentinel_password: " + ScrubSecrets(address_, message));
  }
  return Ok();
}

Result<std::optional<config::HostPort>> RedisSentinel::Ask(size_t index) {
  if (Status connected = ConnectTo(index); !connected) return connected.error();
  const std::string where = Where(address_.sentinels[index]);
  auto fail = [&](const std::string& why) -> Error {
    context_.reset();
    return Error::Outage(where + ": " + ScrubSecrets(address_, why));
  };
  redisReply* raw =
      Send(context_.get(), {"SENTINEL", "get-master-addr-by-name", address_.master_name});
  if (raw == nullptr) return fail(WireDetail(context_.get()));
  RedisReply reply(raw);
  ReplyView view = reply.view();
  if (view.IsNil()) return std::optional<config::HostPort>();
  if (view.IsError()) {
    std::string message(view.String());
    if (message.starts_with("NOAUTH") || message.starts_with("WRONGPASS")) {
      context_.reset();
      return Error::Configuration(where +
                                  " requires a password (set sentinel_password= in "
                                  "REDIS_URL): " +
                                  ScrubSecrets(address_, message));
    }
    return fail(message);
  }
  if (view.Size() != 2 || !view[0].IsString() || !view[1].IsString()) {
    return fail("unexpected answer to SENTINEL get-master-addr-by-name");
  }
  config::HostPort master;
  master.host = std::string(view[0].String());
  std::string_view port_text = view[1].String();
  auto [end, error] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), master.port);
  if (error != std::errc() || master.host.empty() || master.port < 1 || master.port > 65535) {
    return fail("unexpected master address '" + std::string(port_text) + "'");
  }
  return std::optional<config::HostPort>(std::move(master));
}

Result<config::HostPort> RedisSentinel::Master() {
  const size_t count = address_.sentinels.size();
  const size_t first = index_;
  std::string failures;
  std::string unknown_to;
  std::optional<Error> configuration;
  for (size_t i = 0; i < count; ++i) {
    size_t index = (first + i) % count;
    auto answer = Ask(index);
    if (answer && answer->has_value()) return **answer;
    if (answer) {
      unknown_to += (unknown_to.empty() ? "" : ", ") + HostPortText(address_.sentinels[index]);
      continue;
    }
    if (answer.error().kind == ErrorKind::kConfiguration && !configuration) {
      configuration = answer.error();
    }
    failures += (failures.empty() ? "" : "; ") + answer.error().message;
  }
  const std::string master = "master '" + address_.master_name + "'";
  if (configuration) return Error::Configuration("REDIS_URL: " + configuration->message);
  if (failures.empty()) {
    return Error::Configuration("REDIS_URL: no Sentinel knows a " + master + " (asked " +
                                unknown_to +
                                "): check the name against `sentinel monitor` in their "
                                "configuration");
  }
  std::string text = "no Sentinel answered for " + master + ": " + failures;
  if (!unknown_to.empty()) text += "; no such master known to " + unknown_to;
  return Error::Outage(std::move(text));
}

}  // namespace media_sync::queue
