#include "queue/box_pauses.h"

#include <nlohmann/json.hpp>
#include <utility>

namespace media_sync::queue {
namespace {

using Json = nlohmann::json;

std::string Text(const Json& object, const char* name) {
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

BoxPauses::BoxPauses(config::RedisAddress address, RedisOptions options)
    : connection_(std::move(address), options) {}

Result<bool> BoxPauses::Pause(std::string_view box, const BoxPause& pause) {
  std::string value = Json{{"reason", pause.reason}, {"by", pause.by}, {"at", pause.at}}.dump(
      -1, ' ', false, Json::error_handler_t::replace);
  auto reply = connection_.Command({"HSET", kPausedKey, box, value});
  if (!reply) return reply.error();
  return reply->view().Integer() == 1;
}

Result<bool> BoxPauses::Resume(std::string_view box) {
  auto reply = connection_.Command({"HDEL", kPausedKey, box});
  if (!reply) return reply.error();
  return reply->view().Integer() == 1;
}

Result<std::map<std::string, BoxPause>> BoxPauses::List() {
  auto reply = connection_.Command({"HGETALL", kPausedKey});
  if (!reply) return reply.error();
  ReplyView view = reply->view();
  std::map<std::string, BoxPause> paused;
  for (size_t i = 0; i + 1 < view.Size(); i += 2) {
    std::string_view value = view[i + 1].String();
    Json parsed = Json::parse(value, nullptr, false);
    BoxPause pause;
    if (parsed.is_object()) {
      pause = BoxPause{Text(parsed, "reason"), Text(parsed, "by"), Text(parsed, "at")};
    } else {
      pause.reason = std::string(value);
    }
    paused[std::string(view[i].String())] = std::move(pause);
  }
  return paused;
}

}  // namespace media_sync::queue
