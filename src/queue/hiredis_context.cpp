#include "queue/hiredis_context.h"

#include <hiredis/hiredis.h>

namespace media_sync::queue {

void RedisContextFree::operator()(redisContext* context) const { redisFree(context); }

timeval ToTimeval(std::chrono::milliseconds duration) {
  if (duration.count() < 0) duration = std::chrono::milliseconds(0);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(duration.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((duration.count() % 1000) * 1000);
  return tv;
}

std::string HostPortText(const config::HostPort& server) {
  bool ipv6 = server.host.find(':') != std::string::npos;
  return (ipv6 ? "[" + server.host + "]" : server.host) + ":" + std::to_string(server.port);
}

std::string ScrubSecrets(const config::RedisAddress& address, std::string_view text) {
  std::string scrubbed(text);
  for (const std::string* secret : {&address.password, &address.sentinel_password}) {
    if (secret->empty()) continue;
    for (size_t at = scrubbed.find(*secret); at != std::string::npos;
         at = scrubbed.find(*secret, at + 3)) {
      scrubbed.replace(at, secret->size(), "***");
    }
  }
  return scrubbed;
}

}  // namespace media_sync::queue
