#include "queue/redis_job_queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <utility>

#include "queue/queue_keys.h"

namespace media_sync::queue {
namespace {

// KEYS: heartbeat, workers, pending, processing, redeliveries. ARGV: worker id.
// Returns {job, times reapers returned it (nil: never)}, nil when none is
// pending, or -1 when this worker holds no lease. Under a live lease only,
// and the move and the registration in one step: a job never sits in a
// processing list the reaper cannot find (a worker SIGKILLed before its
// first heartbeat, or after a reaper took it for dead), nor is it taken by
// a worker that reapers already count as dead. The count comes in the same
// round trip.
const LuaScript kTakeScript(R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local job = redis.call('LMOVE', KEYS[3], KEYS[4], 'RIGHT', 'LEFT')
if not job then return false end
redis.call('SADD', KEYS[2], ARGV[1])
return {job, redis.call('HGET', KEYS[5], job)}
)lua");

// KEYS: processing, redeliveries. ARGV: payload.
// Returns how many copies left the processing list (0 or 1).
const LuaScript kAckScript(R"lua(
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return removed
)lua");

// KEYS: processing, delayed, redeliveries.
// ARGV: delivered payload, payload to delay, delay in ms from now.
// Scores on the server's clock, so every worker agrees on due times.
const LuaScript kDelayScript(R"lua(
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[3]), ARGV[2])
if ARGV[1] ~= ARGV[2] then redis.call('HDEL', KEYS[3], ARGV[1]) end
return 1
)lua");

// KEYS: processing, failed, redeliveries. ARGV: delivered payload, failed entry.
const LuaScript kFailScript(R"lua(
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
)lua");

// KEYS: processing, pending. ARGV: delivered payload.
// RPUSH puts it at the head of pending: it is served next.
const LuaScript kReleaseScript(R"lua(
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
)lua");

std::string SecondsArgument(std::chrono::milliseconds wait) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", static_cast<double>(wait.count()) / 1000.0);
  return text;
}

}  // namespace

RedisJobQueue::RedisJobQueue(config::RedisAddress address, std::string worker_id,
                             RedisOptions options)
    : connection_(std::move(address), options),
      worker_id_(std::move(worker_id)),
      processing_key_(ProcessingKey(worker_id_)),
      heartbeat_key_(HeartbeatKey(worker_id_)) {}

Result<std::optional<Delivery>> RedisJobQueue::TakeNow() {
  auto moved =
      connection_.RunScript(kTakeScript,
                            std::vector<std::string_view>{heartbeat_key_, kWorkersKey, kPendingKey,
                                                          processing_key_, kRedeliveriesKey},
                            std::vector<std::string_view>{worker_id_});
  if (!moved) return moved.error();
  ReplyView reply = moved->view();
  if (reply.IsInteger()) {
    return Error::Outage("worker " + worker_id_ + " holds no lease (" + heartbeat_key_ +
                         " is missing: not registered yet, or it lapsed): no job is taken "
                         "before its next heartbeat");
  }
  if (reply.IsNil()) return std::optional<Delivery>();
  Delivery delivery;
  delivery.payload = std::string(reply[0].String());
  // Empty (nil) when never reaped; a count that does not parse is taken as 0
  // (the job may loop one more round before it is failed): the job sits in
  // our processing list now, and an error here would strand it.
  std::string_view count = reply.Size() > 1 ? reply[1].String() : std::string_view();
  int64_t redeliveries = 0;
  std::from_chars(count.data(), count.data() + count.size(), redeliveries);
  delivery.redeliveries = redeliveries;
  return std::optional<Delivery>(std::move(delivery));
}

Result<std::optional<Delivery>> RedisJobQueue::Take(std::chrono::milliseconds wait) {
  auto moved = TakeNow();
  if (!moved) return moved.error();
  if (!moved->has_value() && wait.count() > 0) {
    // Nothing pending: wait on the server until something is. Moving
    // pending's last element onto its own end changes nothing; the take
    // itself stays one script. (BLMOVE with timeout 0 would block forever:
    // a zero wait means "don't block".)
    std::string seconds = SecondsArgument(wait);
    std::vector<std::string_view> wait_for_pending = {"BLMOVE", kPendingKey, kPendingKey,
                                                      "RIGHT",  "RIGHT",     seconds};
    auto ready = connection_.BlockingCommand(wait_for_pending, wait);
    if (!ready) return ready.error();
    if (ready->view().IsNil()) return std::optional<Delivery>();
    moved = TakeNow();  // another worker may have been quicker: then nothing
  }
  return moved;
}

Status RedisJobQueue::RunMoveScript(const LuaScript& script, std::string_view action,
                                    std::initializer_list<std::string_view> keys,
                                    std::initializer_list<std::string_view> args) {
  auto reply =
      connection_.RunScript(script, {keys.begin(), keys.size()}, {args.begin(), args.size()});
  if (!reply) return reply.error();
  if (reply->view().Integer() == 0) {
    spdlog::warn(
        "queue: {} skipped for a job no longer in {} (its lease expired and another worker "
        "returned it to {}); that copy stays the only one",
        action, processing_key_, kPendingKey);
  }
  return Ok();
}

Status RedisJobQueue::Ack(const Delivery& delivery) {
  auto reply = connection_.RunScript(
      kAckScript, std::vector<std::string_view>{processing_key_, kRedeliveriesKey},
      std::vector<std::string_view>{delivery.payload});
  if (!reply) return reply.error();
  if (reply->view().Integer() == 0) {
    spdlog::warn("queue: acknowledged a job no longer in {} (its lease expired meanwhile)",
                 processing_key_);
  }
  return Ok();
}

Status RedisJobQueue::Delay(const Delivery& delivery, const std::string& payload,
                            std::chrono::system_clock::time_point due) {
  // Negative for a due time already past: the score then lies in the past
  // too, and earlier due times stay ahead of later ones.
  auto delay =
      std::chrono::duration_cast<std::chrono::milliseconds>(due - std::chrono::system_clock::now());
  std::string delay_ms = std::to_string(delay.count());
  return RunMoveScript(kDelayScript, "delay", {processing_key_, kDelayedKey, kRedeliveriesKey},
                       {delivery.payload, payload, delay_ms});
}

Status RedisJobQueue::Fail(const Delivery& delivery, const std::string& entry) {
  return RunMoveScript(kFailScript, "fail", {processing_key_, kFailedKey, kRedeliveriesKey},
                       {delivery.payload, entry});
}

Status RedisJobQueue::Release(const Delivery& delivery) {
  return RunMoveScript(kReleaseScript, "release", {processing_key_, kPendingKey},
                       {delivery.payload});
}

Result<bool> RedisJobQueue::Holds(const Delivery& delivery) {
  auto reply = connection_.Command({"LPOS", processing_key_, delivery.payload});
  if (!reply) return reply.error();
  return !reply->view().IsNil();
}

}  // namespace media_sync::queue
