#include "queue/queue_admin.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>
#include <utility>

#include "queue/queue_keys.h"

namespace media_sync::queue {
namespace {

// KEYS: pending, delayed, failed, workers. ARGV: processing prefix, heartbeat prefix.
// Returns {pending, delayed, failed, id1, llen1, alive1, id2, ...}.
const LuaScript kCountsScript(R"lua(
local result = {redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]),
                redis.call('LLEN', KEYS[3])}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  table.insert(result, id)
  table.insert(result, redis.call('LLEN', ARGV[1] .. id))
  table.insert(result, redis.call('EXISTS', ARGV[2] .. id))
end
return result
)lua");

// KEYS: failed. Returns how many entries were deleted.
const LuaScript kPurgeFailedScript(R"lua(
local count = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return count
)lua");

// Big enough to amortise round trips, small enough to keep one command's
// reply and the server's work per command short.
constexpr size_t kEnqueueBatch = 500;
constexpr int64_t kRequeueBatch = 100;

}  // namespace

QueueAdmin::QueueAdmin(config::RedisAddress address, RedisOptions options)
    : connection_(std::move(address), options) {}

Result<QueueCounts> QueueAdmin::Counts() {
  auto reply = connection_.RunScript(
      kCountsScript,
      std::vector<std::string_view>{kPendingKey, kDelayedKey, kFailedKey, kWorkersKey},
      std::vector<std::string_view>{kProcessingKeyPrefix, kHeartbeatKeyPrefix});
  if (!reply) return reply.error();
  ReplyView view = reply->view();
  if (view.Size() < 3) {
    return Error::Configuration(connection_.endpoint() + ": unexpected reply to the counts script");
  }
  QueueCounts counts;
  counts.pending = view[0].Integer();
  counts.delayed = view[1].Integer();
  counts.failed = view[2].Integer();
  for (size_t i = 3; i + 2 < view.Size(); i += 3) {
    std::string id(view[i].String());
    int64_t held = view[i + 1].Integer();
    counts.processing += held;
    counts.processing_by_worker[id] = held;
    if (view[i + 2].Integer() == 1) counts.live_workers.push_back(id);
  }
  std::sort(counts.live_workers.begin(), counts.live_workers.end());
  return counts;
}

Result<std::optional<std::chrono::system_clock::time_point>> QueueAdmin::NextDue() {
  auto reply = connection_.Command({"ZRANGE", kDelayedKey, "0", "0", "WITHSCORES"});
  if (!reply) return reply.error();
  ReplyView view = reply->view();
  if (view.Size() < 2) return std::optional<std::chrono::system_clock::time_point>();
  std::string_view score = view[1].String();
  double due_ms = 0;
  auto [end, error] = std::from_chars(score.data(), score.data() + score.size(), due_ms);
  if (error != std::errc() || !std::isfinite(due_ms)) {
    return Error::Configuration(connection_.endpoint() + ": " + std::string(kDelayedKey) +
                                " holds a score that is not a time: " + std::string(score));
  }
  auto due = std::chrono::system_clock::time_point(
      std::chrono::milliseconds(static_cast<int64_t>(due_ms)));
  return std::optional<std::chrono::system_clock::time_point>(due);
}

Result<std::vector<std::string>> QueueAdmin::ListFailed(int64_t start, int64_t count) {
  std::vector<std::string> entries;
  if (count <= 0 || start < 0) return entries;
  std::string first = std::to_string(start);
  std::string last = std::to_string(start + count - 1);
  auto reply = connection_.Command({"LRANGE", kFailedKey, first, last});
  if (!reply) return reply.error();
  ReplyView view = reply->view();
  entries.reserve(view.Size());
  for (size_t i = 0; i < view.Size(); ++i) entries.emplace_back(view[i].String());
  return entries;
}

Result<int64_t> QueueAdmin::RequeueFailed(int64_t count) {
  int64_t moved = 0;
  while (moved < count) {
    int64_t batch = std::min(kRequeueBatch, count - moved);
    std::vector<std::vector<std::string_view>> commands(
        static_cast<size_t>(batch),
        std::vector<std::string_view>{"RPOPLPUSH", kFailedKey, kPendingKey});
    auto replies = connection_.Pipeline(commands);
    if (!replies) return replies.error();
    // Count every entry that moved, even after a nil: an entry failed
    // meanwhile may have been picked up by a later command of the batch.
    bool ran_empty = false;
    for (const auto& reply : *replies) {
      if (reply.view().IsNil()) {
        ran_empty = true;
      } else {
        ++moved;
      }
    }
    if (ran_empty) break;
  }
  return moved;
}

Result<int64_t> QueueAdmin::PurgeFailed() {
  auto reply = connection_.RunScript(kPurgeFailedScript, std::vector<std::string_view>{kFailedKey},
                                     std::vector<std::string_view>{});
  if (!reply) return reply.error();
  return reply->view().Integer();
}

Status QueueAdmin::Enqueue(std::span<const std::string> payloads) {
  std::vector<std::vector<std::string_view>> commands;
  for (size_t at = 0; at < payloads.size(); at += kEnqueueBatch) {
    std::vector<std::string_view> command = {"LPUSH", kPendingKey};
    size_t end = std::min(payloads.size(), at + kEnqueueBatch);
    for (size_t i = at; i < end; ++i) command.push_back(payloads[i]);
    commands.push_back(std::move(command));
  }
  if (commands.empty()) return Ok();
  auto replies = connection_.Pipeline(commands);
  if (!replies) return replies.error();
  return Ok();
}

}  // namespace media_sync::queue
