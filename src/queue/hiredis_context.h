// What RedisConnection and RedisSentinel share over hiredis. Internal to
// src/queue: no hiredis type leaves the folder.
#pragma once

#include <sys/time.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "config/urls.h"

struct redisContext;

namespace media_sync::queue {

// Frees a hiredis context (redisFree).
struct RedisContextFree {
  void operator()(redisContext* context) const;
};
// Owns one hiredis context. Move-only.
using RedisContextPtr = std::unique_ptr<redisContext, RedisContextFree>;

// hiredis takes its timeouts as timeval; a negative duration is zero.
timeval ToTimeval(std::chrono::milliseconds duration);

// "host:port", "[v6::address]:port".
std::string HostPortText(const config::HostPort& server);

// `text` with the address's secrets (the master's password and the
// Sentinels') replaced by "***": what every message of this folder goes
// through before it leaves.
std::string ScrubSecrets(const config::RedisAddress& address, std::string_view text);

}  // namespace media_sync::queue
