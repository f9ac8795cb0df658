#include "queue/source_deletions.h"

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <utility>

namespace media_sync::queue {
namespace {

using Json = nlohmann::ordered_json;

int64_t UnixMillis(std::chrono::system_clock::time_point when) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
}

std::string Text(const Json& object, const char* name) {
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string SourceCopy::Member() const {
  return Json{{"box", box}, {"key", key}, {"sha256", sha256}}.dump(-1, ' ', false,
                                                                   Json::error_handler_t::replace);
}

SourceDeletions::SourceDeletions(config::RedisAddress address, RedisOptions options)
    : connection_(std::move(address), options) {}

Status SourceDeletions::Schedule(const SourceCopy& copy,
                                 std::chrono::system_clock::time_point due) {
  const std::string score = std::to_string(UnixMillis(due));
  const std::string member = copy.Member();
  // NX for a new copy, GT to push an existing one's time out, never in.
  auto added = connection_.Command({"ZADD", kSourceDeletionsKey, "NX", score, member});
  if (!added) return added.error();
  if (added->view().Integer() == 0) {
    auto later = connection_.Command({"ZADD", kSourceDeletionsKey, "GT", score, member});
    if (!later) return later.error();
  }
  return Ok();
}

Result<std::vector<SourceCopy>> SourceDeletions::Due(std::chrono::system_clock::time_point now,
                                                     int64_t limit) {
  const std::string max = std::to_string(UnixMillis(now));
  const std::string count = std::to_string(limit);
  auto reply =
      connection_.Command({"ZRANGEBYSCORE", kSourceDeletionsKey, "-inf", max, "LIMIT", "0", count});
  if (!reply) return reply.error();
  std::vector<SourceCopy> copies;
  for (size_t i = 0; i < reply->view().Size(); ++i) {
    Json entry = Json::parse(reply->view()[i].String(), nullptr, false);
    if (!entry.is_object()) {
      // Not ours: dropped so that it is not met again.
      const std::string member(reply->view()[i].String());
      auto removed = connection_.Command({"ZREM", kSourceDeletionsKey, member});
      if (!removed) return removed.error();
      continue;
    }
    copies.push_back(SourceCopy{Text(entry, "box"), Text(entry, "key"), Text(entry, "sha256")});
  }
  return copies;
}

Status SourceDeletions::Forget(const SourceCopy& copy) {
  auto reply = connection_.Command({"ZREM", kSourceDeletionsKey, copy.Member()});
  if (!reply) return reply.error();
  return Ok();
}

Result<std::vector<bool>> SourceDeletions::Scheduled(const std::vector<SourceCopy>& copies) {
  std::vector<bool> scheduled;
  if (copies.empty()) return scheduled;
  std::vector<std::string> members;
  members.reserve(copies.size());
  for (const SourceCopy& copy : copies) members.push_back(copy.Member());
  std::vector<std::string_view> args = {"ZMSCORE", kSourceDeletionsKey};
  for (const std::string& member : members) args.push_back(member);
  auto reply = connection_.Command(std::span<const std::string_view>(args));
  if (!reply) return reply.error();
  scheduled.reserve(copies.size());
  for (size_t i = 0; i < copies.size(); ++i) {
    scheduled.push_back(i < reply->view().Size() && !reply->view()[i].IsNil());
  }
  return scheduled;
}

Result<SourceDeletions::Pending> SourceDeletions::Waiting() {
  auto count = connection_.Command({"ZCARD", kSourceDeletionsKey});
  if (!count) return count.error();
  Pending pending{count->view().Integer(), 0};
  if (pending.count > 0) {
    auto first = connection_.Command({"ZRANGE", kSourceDeletionsKey, "0", "0", "WITHSCORES"});
    if (!first) return first.error();
    if (first->view().Size() == 2) {
      pending.first_due_ms = static_cast<int64_t>(
          std::strtod(std::string(first->view()[1].String()).c_str(), nullptr));
    }
  }
  return pending;
}

}  // namespace media_sync::queue
