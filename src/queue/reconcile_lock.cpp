#include "queue/reconcile_lock.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace media_sync::queue {
namespace {

// KEYS: lock, done. ARGV: owner, ttl in ms.
// Returns 1 acquired, 0 held by another owner, -1 a run ended recently.
const LuaScript kAcquireScript(R"lua(
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
)lua");

// KEYS: lock. ARGV: owner, ttl in ms. Returns 1 when extended.
const LuaScript kExtendScript(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
)lua");

// KEYS: lock, done. ARGV: owner, quiet period in ms (0: none).
// Returns 1 when this owner's lock was deleted.
const LuaScript kReleaseScript(R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
return 1
)lua");

std::string Millis(std::chrono::milliseconds duration) {
  return std::to_string(std::max<int64_t>(duration.count(), 1));
}

}  // namespace

ReconcileLock::ReconcileLock(config::RedisAddress address, std::string owner, RedisOptions options,
                             LockKeys keys)
    : connection_(std::move(address), options), owner_(std::move(owner)), keys_(std::move(keys)) {}

Result<ReconcileLock::Acquired> ReconcileLock::TryAcquire(std::chrono::milliseconds ttl) {
  std::string ms = Millis(ttl);
  auto reply =
      connection_.RunScript(kAcquireScript, std::vector<std::string_view>{keys_.lock, keys_.done},
                            std::vector<std::string_view>{owner_, ms});
  if (!reply) return reply.error();
  int64_t answer = reply->view().Integer();
  if (answer == 1) return Acquired::kYes;
  return answer == -1 ? Acquired::kRecentlyRun : Acquired::kHeld;
}

Result<bool> ReconcileLock::Extend(std::chrono::milliseconds ttl) {
  std::string ms = Millis(ttl);
  auto reply = connection_.RunScript(kExtendScript, std::vector<std::string_view>{keys_.lock},
                                     std::vector<std::string_view>{owner_, ms});
  if (!reply) return reply.error();
  return reply->view().Integer() == 1;
}

Result<bool> ReconcileLock::Release(std::chrono::milliseconds quiet) {
  std::string ms = std::to_string(std::max<int64_t>(quiet.count(), 0));
  auto reply =
      connection_.RunScript(kReleaseScript, std::vector<std::string_view>{keys_.lock, keys_.done},
                            std::vector<std::string_view>{owner_, ms});
  if (!reply) return reply.error();
  return reply->view().Integer() == 1;
}

Result<std::optional<std::string>> ReconcileLock::Holder() {
  auto reply = connection_.Command({"GET", keys_.lock});
  if (!reply) return reply.error();
  if (reply->view().IsNil()) return std::optional<std::string>();
  return std::optional<std::string>(std::string(reply->view().String()));
}

}  // namespace media_sync::queue
