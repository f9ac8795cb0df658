#include "queue/audit_progress.h"

#include <charconv>
#include <utility>

namespace media_sync::queue {
namespace {

// KEYS: the record. ARGV: ttl in ms (0: none), then field, value pairs.
// Replaces the whole hash at once: a reader never sees half of two records.
const LuaScript kSaveScript(R"lua(
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
)lua");

constexpr std::string_view kAfterSha256 = "after_sha256";
constexpr std::string_view kAfterKey = "after_key";
constexpr std::string_view kMode = "mode";
constexpr std::string_view kStartedAt = "started_at";
constexpr std::string_view kFinishedAt = "finished_at";
constexpr std::string_view kDone = "done";
// Counts are stored as "count.<name>", apart from the fields above.
constexpr std::string_view kCountPrefix = "count.";

int64_t ToInteger(std::string_view text) {
  int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

}  // namespace

AuditProgress::AuditProgress(config::RedisAddress address, RedisOptions options)
    : connection_(std::move(address), options) {}

std::string AuditProgress::CursorKey(std::string_view scope, std::string_view target) {
  std::string key(kAuditCursorKeyPrefix);
  key.append(scope).append(":").append(target);
  return key;
}

Result<std::optional<AuditRecord>> AuditProgress::Load(std::string_view key) {
  auto reply = connection_.Command({"HGETALL", key});
  if (!reply) return reply.error();
  ReplyView view = reply->view();
  if (view.Size() == 0) return std::optional<AuditRecord>();
  AuditRecord record;
  for (size_t i = 0; i + 1 < view.Size(); i += 2) {
    std::string_view field = view[i].String();
    std::string_view value = view[i + 1].String();
    if (field == kAfterSha256) {
      record.after_sha256 = value;
    } else if (field == kAfterKey) {
      record.after_key = value;
    } else if (field == kMode) {
      record.mode = value;
    } else if (field == kStartedAt) {
      record.started_at = ToInteger(value);
    } else if (field == kFinishedAt) {
      record.finished_at = ToInteger(value);
    } else if (field == kDone) {
      record.done = value == "1";
    } else if (field.substr(0, kCountPrefix.size()) == kCountPrefix) {
      record.counts[std::string(field.substr(kCountPrefix.size()))] = ToInteger(value);
    }
  }
  return std::optional<AuditRecord>(std::move(record));
}

Status AuditProgress::Save(std::string_view key, const AuditRecord& record,
                           std::chrono::milliseconds ttl) {
  std::vector<std::string> values = {std::to_string(std::max<int64_t>(ttl.count(), 0)),
                                     std::string(kAfterSha256),
                                     record.after_sha256,
                                     std::string(kAfterKey),
                                     record.after_key,
                                     std::string(kMode),
                                     record.mode,
                                     std::string(kStartedAt),
                                     std::to_string(record.started_at),
                                     std::string(kFinishedAt),
                                     std::to_string(record.finished_at),
                                     std::string(kDone),
                                     record.done ? "1" : "0"};
  for (const auto& [name, count] : record.counts) {
    values.push_back(std::string(kCountPrefix) + name);
    values.push_back(std::to_string(count));
  }
  std::vector<std::string_view> args(values.begin(), values.end());
  auto reply = connection_.RunScript(kSaveScript, std::vector<std::string_view>{key}, args);
  if (!reply) return reply.error();
  return Ok();
}

Status AuditProgress::Clear(const std::vector<std::string>& keys) {
  if (keys.empty()) return Ok();
  std::vector<std::string_view> args = {"DEL"};
  for (const std::string& key : keys) args.push_back(key);
  auto reply = connection_.Command(std::span<const std::string_view>(args));
  if (!reply) return reply.error();
  return Ok();
}

}  // namespace media_sync::queue
