#include "queue/queue_admin.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
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

Result<std::optional<std::string>> QueueAdmin::OldestPending() {
  auto reply = connection_.Command({"LINDEX", kPendingKey, "-1"});
  if (!reply) return reply.error();
  if (reply->view().IsNil()) return std::optional<std::string>();
  return std::optional<std::string>(std::string(reply->view().String()));
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
  // Scores are Unix milliseconds, which anyone may write. The clock counts
  // nanoseconds in 64 bits (1677 to 2262): a score outside is read as the
  // clock's first or last time, never converted with an overflow.
  using Clock = std::chrono::system_clock;
  const auto latest_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration::max()).count();
  const auto earliest_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration::min()).count();
  if (due_ms >= static_cast<double>(latest_ms)) return std::optional(Clock::time_point::max());
  if (due_ms <= static_cast<double>(earliest_ms)) return std::optional(Clock::time_point::min());
  auto due = Clock::time_point(std::chrono::milliseconds(static_cast<int64_t>(due_ms)));
  return std::optional<Clock::time_point>(due);
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

namespace {

// KEYS: failed, pending. ARGV: exact entries. Each entry is removed once from
// failed (the newest copy) and pushed onto pending only if that removed it,
// so a concurrent requeue or purge of the same entry cannot duplicate or lose
// it. Returns one 0/1 per entry.
const LuaScript kRequeueEntriesScript(R"lua(
local moved = {}
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i])
    moved[i] = 1
  else
    moved[i] = 0
  end
end
return moved
)lua");

// KEYS: failed. ARGV: exact entries, each removed once. Returns one 0/1 per entry.
const LuaScript kDeleteEntriesScript(R"lua(
local deleted = {}
for i = 1, #ARGV do
  deleted[i] = redis.call('LREM', KEYS[1], 1, ARGV[i])
end
return deleted
)lua");

// KEYS: failed. ARGV: how many markers. Returns {length, newest..}.
const LuaScript kSnapshotFailedScript(R"lua(
local result = {redis.call('LLEN', KEYS[1])}
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  table.insert(result, entry)
end
return result
)lua");

// KEYS: failed. ARGV: count seen, then the markers, newest first. The first
// marker still present, found from the tail (RANK -1), bounds what was seen:
// it and everything after it (older), at most the count seen. Returns how
// many were deleted.
const LuaScript kPurgeSnapshotScript(R"lua(
for i = 2, #ARGV do
  local at = redis.call('LPOS', KEYS[1], ARGV[i], 'RANK', -1)
  if at then
    local length = redis.call('LLEN', KEYS[1])
    local count = math.min(length - at, tonumber(ARGV[1]))
    if count >= length then
      redis.call('DEL', KEYS[1])
    elseif count > 0 then
      redis.call('LTRIM', KEYS[1], 0, length - count - 1)
    end
    return count
  end
end
return 0
)lua");

// Entries per script run: each LREM walks the list, so a run stays short
// even on a long failed queue.
constexpr size_t kEntriesPerScript = 100;

}  // namespace

Result<int64_t> QueueAdmin::FailedLength() {
  auto reply = connection_.Command({"LLEN", kFailedKey});
  if (!reply) return reply.error();
  return reply->view().Integer();
}

Result<std::optional<std::string>> QueueAdmin::FailedEntryAt(int64_t index) {
  std::string at = std::to_string(index);
  auto reply = connection_.Command({"LINDEX", kFailedKey, at});
  if (!reply) return reply.error();
  if (reply->view().IsNil()) return std::optional<std::string>();
  return std::optional<std::string>(std::string(reply->view().String()));
}

namespace {

// Runs `script` over `entries` in batches; collects its 0/1 replies.
Result<std::vector<bool>> RunPerEntry(RedisConnection& connection, const LuaScript& script,
                                      std::span<const std::string_view> keys,
                                      std::span<const std::string> entries) {
  std::vector<bool> done;
  done.reserve(entries.size());
  for (size_t at = 0; at < entries.size(); at += kEntriesPerScript) {
    size_t end = std::min(entries.size(), at + kEntriesPerScript);
    std::vector<std::string_view> args(entries.begin() + static_cast<std::ptrdiff_t>(at),
                                       entries.begin() + static_cast<std::ptrdiff_t>(end));
    auto reply = connection.RunScript(script, keys, args);
    if (!reply) return reply.error();
    ReplyView view = reply->view();
    if (view.Size() != args.size()) {
      return Error::Configuration(connection.endpoint() +
                                  ": unexpected reply to a failed-queue script");
    }
    for (size_t i = 0; i < view.Size(); ++i) done.push_back(view[i].Integer() == 1);
  }
  return done;
}

}  // namespace

Result<std::vector<bool>> QueueAdmin::RequeueFailedEntries(std::span<const std::string> entries) {
  const std::vector<std::string_view> keys = {kFailedKey, kPendingKey};
  return RunPerEntry(connection_, kRequeueEntriesScript, keys, entries);
}

Result<std::vector<bool>> QueueAdmin::DeleteFailedEntries(std::span<const std::string> entries) {
  const std::vector<std::string_view> keys = {kFailedKey};
  return RunPerEntry(connection_, kDeleteEntriesScript, keys, entries);
}

Status QueueAdmin::ForEachQueuedPayload(const std::function<void(std::string_view)>& visit,
                                        int64_t chunk,
                                        const std::function<Status()>& between_chunks) {
  chunk = std::max<int64_t>(chunk, 1);
  // Reads one list or sorted set by rank, chunk by chunk.
  auto walk = [&](std::string_view range_command, std::string_view key) -> Status {
    for (int64_t start = 0;; start += chunk) {
      std::string first = std::to_string(start);
      std::string last = std::to_string(start + chunk - 1);
      auto reply = connection_.Command({range_command, key, first, last});
      if (!reply) return reply.error();
      ReplyView view = reply->view();
      for (size_t i = 0; i < view.Size(); ++i) visit(view[i].String());
      if (between_chunks) {
        if (Status status = between_chunks(); !status) return status;
      }
      if (static_cast<int64_t>(view.Size()) < chunk) return Ok();
    }
  };

  // Processing lists: the registered workers' and any other left behind.
  std::set<std::string> processing;
  auto members = connection_.Command({"SMEMBERS", kWorkersKey});
  if (!members) return members.error();
  for (size_t i = 0; i < members->view().Size(); ++i) {
    processing.insert(ProcessingKey(members->view()[i].String()));
  }
  if (Status scanned = connection_.Scan(std::string(kProcessingKeyPrefix) + "*",
                                        [&](std::string_view key) {
                                          processing.insert(std::string(key));
                                          return true;
                                        });
      !scanned) {
    return scanned.error();
  }

  // Pending first, then where a job goes from there, so a job moving along
  // its usual path during the walk is more likely seen than missed.
  if (auto status = walk("LRANGE", kPendingKey); !status) return status;
  for (const auto& key : processing) {
    if (auto status = walk("LRANGE", key); !status) return status;
  }
  if (auto status = walk("ZRANGE", kDelayedKey); !status) return status;
  return walk("LRANGE", kFailedKey);
}

Result<QueueAdmin::FailedSnapshot> QueueAdmin::SnapshotFailed() {
  const std::string markers = std::to_string(kSnapshotMarkers);
  auto reply =
      connection_.RunScript(kSnapshotFailedScript, std::vector<std::string_view>{kFailedKey},
                            std::vector<std::string_view>{markers});
  if (!reply) return reply.error();
  ReplyView view = reply->view();
  if (view.Size() < 1) {
    return Error::Configuration(connection_.endpoint() +
                                ": unexpected reply to a failed-queue script");
  }
  FailedSnapshot snapshot;
  snapshot.count = view[0].Integer();
  for (size_t i = 1; i < view.Size(); ++i) snapshot.newest.emplace_back(view[i].String());
  return snapshot;
}

Result<int64_t> QueueAdmin::PurgeFailedSnapshot(const FailedSnapshot& seen) {
  if (seen.count <= 0 || seen.newest.empty()) return int64_t{0};
  const std::string count = std::to_string(seen.count);
  std::vector<std::string_view> args = {count};
  for (const std::string& marker : seen.newest) args.push_back(marker);
  auto reply =
      connection_.RunScript(kPurgeSnapshotScript, std::vector<std::string_view>{kFailedKey}, args);
  if (!reply) return reply.error();
  return reply->view().Integer();
}

Status QueueAdmin::ForEachQueuedSha256(const std::function<void(std::string_view)>& visit,
                                       const std::function<Status()>& between_chunks) {
  // A job is at most 64 KiB (core/job.h); anything far larger is not one.
  constexpr size_t kMaxPayload = size_t{1} << 20;
  return ForEachQueuedPayload(
      [&visit](std::string_view payload) {
        if (payload.size() > kMaxPayload) return;
        auto document = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
        if (!document.is_object()) return;
        auto sha = document.find("sha256");
        if (sha == document.end() || !sha->is_string()) return;
        std::string text = sha->get<std::string>();
        std::transform(text.begin(), text.end(), text.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        visit(text);
      },
      1000, between_chunks);
}

Result<int64_t> QueueAdmin::QueuedEntries() {
  auto counts = Counts();
  if (!counts) return counts.error();
  return counts->pending + counts->delayed + counts->failed + counts->processing;
}

Result<std::unordered_set<std::string>> QueueAdmin::QueuedSha256s() {
  std::unordered_set<std::string> found;
  auto status =
      ForEachQueuedSha256([&found](std::string_view sha256) { found.emplace(sha256); }, {});
  if (!status) return status.error();
  return found;
}

}  // namespace media_sync::queue
