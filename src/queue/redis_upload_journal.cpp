#include "queue/redis_upload_journal.h"

#include <algorithm>
#include <charconv>
#include <string_view>
#include <utility>
#include <vector>

namespace media_sync::queue {
namespace {

constexpr std::string_view kUploadKeyPrefix = "media:sync:upload:";

// KEYS: record. ARGV: upload id, retention in s, part number, "<size> <etag>".
const LuaScript kRecordPartScript(R"lua(
if redis.call('HGET', KEYS[1], 'upload_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
)lua");

// KEYS: record. ARGV: upload id.
const LuaScript kForgetScript(R"lua(
if redis.call('HGET', KEYS[1], 'upload_id') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
)lua");

std::optional<uint64_t> ParseNumber(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

RedisUploadJournal::RedisUploadJournal(config::RedisAddress address, RedisOptions options,
                                       std::chrono::seconds retention)
    : connection_(std::move(address), options), retention_(retention) {}

std::string RedisUploadJournal::KeyOf(const std::string& name) {
  return std::string(kUploadKeyPrefix) + name;
}

Result<std::optional<JournaledUpload>> RedisUploadJournal::Find(const std::string& name) {
  const std::string key = KeyOf(name);
  MutexLock lock(mutex_);
  auto reply = connection_.Command({"HGETALL", key});
  if (!reply) return reply.error();
  ReplyView fields = reply->view();
  JournaledUpload upload;
  for (size_t i = 0; i + 1 < fields.Size(); i += 2) {
    std::string_view field = fields[i].String();
    std::string_view value = fields[i + 1].String();
    if (field == "upload_id") {
      upload.upload_id = value;
    } else if (field == "part_size") {
      upload.part_size = ParseNumber(value).value_or(0);
    } else if (auto number = ParseNumber(field)) {
      // "<size> <etag>"; a value of another shape is skipped: the part is sent again.
      const size_t space = value.find(' ');
      auto size = ParseNumber(value.substr(0, space));
      if (space == std::string_view::npos || !size) continue;
      upload.parts.push_back(
          {static_cast<int>(*number), *size, std::string(value.substr(space + 1))});
    }
  }
  if (upload.upload_id.empty() || upload.part_size == 0) return std::optional<JournaledUpload>();
  std::sort(upload.parts.begin(), upload.parts.end(),
            [](const auto& a, const auto& b) { return a.part_number < b.part_number; });
  return std::optional<JournaledUpload>(std::move(upload));
}

Status RedisUploadJournal::Begin(const std::string& name, const std::string& upload_id,
                                 uint64_t part_size) {
  const std::string key = KeyOf(name);
  const std::string size = std::to_string(part_size);
  const std::string ttl = std::to_string(retention_.count());
  const std::vector<std::vector<std::string_view>> commands = {
      {"MULTI"},
      {"DEL", key},
      {"HSET", key, "upload_id", upload_id, "part_size", size},
      {"EXPIRE", key, ttl},
      {"EXEC"}};
  MutexLock lock(mutex_);
  auto replies = connection_.Pipeline(commands);
  if (!replies) return replies.error();
  return Ok();
}

Status RedisUploadJournal::RecordPart(const std::string& name, const std::string& upload_id,
                                      const JournaledPart& part) {
  const std::string key = KeyOf(name);
  const std::string ttl = std::to_string(retention_.count());
  const std::string number = std::to_string(part.part_number);
  const std::string value = std::to_string(part.size) + " " + part.etag;
  MutexLock lock(mutex_);
  auto reply = connection_.RunScript(kRecordPartScript, std::vector<std::string_view>{key},
                                     std::vector<std::string_view>{upload_id, ttl, number, value});
  if (!reply) return reply.error();
  return Ok();
}

Status RedisUploadJournal::Forget(const std::string& name, const std::string& upload_id) {
  const std::string key = KeyOf(name);
  MutexLock lock(mutex_);
  auto reply = connection_.RunScript(kForgetScript, std::vector<std::string_view>{key},
                                     std::vector<std::string_view>{upload_id});
  if (!reply) return reply.error();
  return Ok();
}

}  // namespace media_sync::queue
