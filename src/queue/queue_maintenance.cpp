#include "queue/queue_maintenance.h"

#include <unistd.h>

#include <array>
#include <ctime>
#include <nlohmann/json.hpp>
#include <utility>

#include "queue/queue_keys.h"

namespace media_sync::queue {
namespace {

// KEYS: heartbeat, workers. ARGV: worker id, info JSON, lease in ms.
// Registration and lease in one step: a worker is never holding jobs while
// unregistered, so the reaper can always find it.
const LuaScript kHeartbeatScript(R"lua(
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
)lua");

// KEYS: workers, pending, redeliveries.
// ARGV: processing key prefix, heartbeat key prefix.
// A processing list holds the newest job at the left; RPUSHing from left to
// right leaves its oldest job at the right end of pending, served first.
const LuaScript kReapScript(R"lua(
local returned = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[2] .. id) == 0 then
    local processing = ARGV[1] .. id
    for _, payload in ipairs(redis.call('LRANGE', processing, 0, -1)) do
      redis.call('RPUSH', KEYS[2], payload)
      redis.call('HINCRBY', KEYS[3], payload, 1)
      returned = returned + 1
    end
    redis.call('DEL', processing)
    redis.call('SREM', KEYS[1], id)
  end
end
return returned
)lua");

// KEYS: delayed, pending. ARGV: limit.
// Walks the due entries latest first, so the earliest due ends at the head.
const LuaScript kPromoteScript(R"lua(
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
for i = #due, 1, -1 do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('RPUSH', KEYS[2], due[i])
end
return #due
)lua");

// KEYS: processing, heartbeat, workers. ARGV: worker id.
const LuaScript kDeregisterScript(R"lua(
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
)lua");

// KEYS: pending, delayed, workers. ARGV: processing key prefix.
const LuaScript kIdleScript(R"lua(
if redis.call('LLEN', KEYS[1]) > 0 or redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('LLEN', ARGV[1] .. id) > 0 then return 0 end
end
return 1
)lua");

std::string HostName() {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) return "unknown";
  return host.data();
}

std::string IsoUtcNow() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::array<char, 32> text{};
  std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text.data();
}

}  // namespace

QueueMaintenance::QueueMaintenance(config::RedisAddress address, std::string worker_id,
                                   MaintenanceOptions options)
    : connection_(std::move(address), options.redis),
      worker_id_(std::move(worker_id)),
      options_(options),
      heartbeat_info_(nlohmann::json{
          {"host", HostName()},
          {"pid", static_cast<int64_t>(getpid())},
          {"started_at",
           IsoUtcNow()}}.dump()) {}

Status QueueMaintenance::Heartbeat() {
  std::string heartbeat_key = HeartbeatKey(worker_id_);
  std::string lease_ms = std::to_string(std::max<int64_t>(1, options_.lease.count()));
  auto reply = connection_.RunScript(
      kHeartbeatScript, std::vector<std::string_view>{heartbeat_key, kWorkersKey},
      std::vector<std::string_view>{worker_id_, heartbeat_info_, lease_ms});
  if (!reply) return reply.error();
  return Ok();
}

Result<int64_t> QueueMaintenance::ReapDeadWorkers() {
  auto reply = connection_.RunScript(
      kReapScript, std::vector<std::string_view>{kWorkersKey, kPendingKey, kRedeliveriesKey},
      std::vector<std::string_view>{kProcessingKeyPrefix, kHeartbeatKeyPrefix});
  if (!reply) return reply.error();
  return reply->view().Integer();
}

Result<int64_t> QueueMaintenance::PromoteDueRetries(int64_t limit) {
  std::string limit_text = std::to_string(std::max<int64_t>(1, limit));
  auto reply =
      connection_.RunScript(kPromoteScript, std::vector<std::string_view>{kDelayedKey, kPendingKey},
                            std::vector<std::string_view>{limit_text});
  if (!reply) return reply.error();
  return reply->view().Integer();
}

Result<std::vector<std::string>> QueueMaintenance::OwnEntries() {
  std::string processing_key = ProcessingKey(worker_id_);
  auto reply = connection_.Command({"LRANGE", processing_key, "0", "-1"});
  if (!reply) return reply.error();
  ReplyView view = reply->view();
  std::vector<std::string> entries;
  entries.reserve(view.Size());
  for (size_t i = 0; i < view.Size(); ++i) entries.emplace_back(view[i].String());
  return entries;
}

Result<bool> QueueMaintenance::Idle() {
  auto reply = connection_.RunScript(
      kIdleScript, std::vector<std::string_view>{kPendingKey, kDelayedKey, kWorkersKey},
      std::vector<std::string_view>{kProcessingKeyPrefix});
  if (!reply) return reply.error();
  return reply->view().Integer() == 1;
}

Result<bool> QueueMaintenance::Deregister() {
  std::string processing_key = ProcessingKey(worker_id_);
  std::string heartbeat_key = HeartbeatKey(worker_id_);
  auto reply = connection_.RunScript(
      kDeregisterScript, std::vector<std::string_view>{processing_key, heartbeat_key, kWorkersKey},
      std::vector<std::string_view>{worker_id_});
  if (!reply) return reply.error();
  return reply->view().Integer() == 1;
}

}  // namespace media_sync::queue
