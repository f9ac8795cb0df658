#include "queue/fleet_stats.h"

#include <nlohmann/json.hpp>

#include "core/job.h"
#include "queue/queue_keys.h"

namespace media_sync::queue {
namespace {

using Json = nlohmann::json;

int64_t UnixMinute(std::chrono::system_clock::time_point when) {
  return std::chrono::duration_cast<std::chrono::minutes>(when.time_since_epoch()).count();
}

std::string ThroughputKey(int64_t minute) {
  return std::string(kThroughputKeyPrefix) + std::to_string(minute);
}

uint64_t ToUnsigned(std::string_view text) {
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

FleetStats::FleetStats(config::RedisAddress address, RedisOptions options)
    : connection_(std::move(address), options) {}

Status FleetStats::AddThroughput(uint64_t files, uint64_t bytes,
                                 std::chrono::system_clock::time_point now) {
  std::string key = ThroughputKey(UnixMinute(now));
  std::string files_text = std::to_string(files);
  std::string bytes_text = std::to_string(bytes);
  std::string ttl = std::to_string(std::chrono::seconds(kThroughputRetention).count());
  std::vector<std::vector<std::string_view>> commands = {
      {"HINCRBY", key, "files", files_text},
      {"HINCRBY", key, "bytes", bytes_text},
      {"EXPIRE", key, ttl},
  };
  auto replies = connection_.Pipeline(commands);
  if (!replies) return replies.error();
  return Ok();
}

Result<Throughput> FleetStats::RecentThroughput(int minutes,
                                                std::chrono::system_clock::time_point now) {
  int64_t current = UnixMinute(now);
  std::vector<std::string> keys;
  keys.reserve(static_cast<size_t>(minutes) + 1);
  for (int i = 0; i <= minutes; ++i) keys.push_back(ThroughputKey(current - i));
  std::vector<std::vector<std::string_view>> commands;
  commands.reserve(keys.size());
  for (const auto& key : keys) commands.push_back({"HMGET", key, "files", "bytes"});
  auto replies = connection_.Pipeline(commands);
  if (!replies) return replies.error();
  Throughput sum;
  auto into_minute = now.time_since_epoch() - std::chrono::minutes(current);
  sum.window =
      std::chrono::minutes(minutes) + std::chrono::duration_cast<std::chrono::seconds>(into_minute);
  for (const auto& reply : *replies) {
    ReplyView view = reply.view();
    if (view.Size() < 2) continue;
    sum.files += ToUnsigned(view[0].String());
    sum.bytes += ToUnsigned(view[1].String());
  }
  return sum;
}

Status FleetStats::ReportBoxes(const std::vector<BoxReport>& reports) {
  if (reports.empty()) return Ok();
  std::vector<std::string> values;
  for (const auto& report : reports) {
    values.push_back(report.box);
    values.push_back(Json{{"endpoint", report.endpoint},
                          {"up", report.up},
                          {"error", report.error},
                          {"worker", report.worker},
                          {"reported_at", report.reported_at},
                          {"limit", report.limit},
                          {"in_flight", report.in_flight},
                          {"latency_seconds", report.latency_seconds}}
                         .dump(-1, ' ', false, Json::error_handler_t::replace));
  }
  std::vector<std::string_view> args = {"HSET", kBoxHealthKey};
  for (const auto& value : values) args.push_back(value);
  auto reply = connection_.Command(args);
  if (!reply) return reply.error();
  return Ok();
}

Result<std::vector<BoxReport>> FleetStats::BoxReports() {
  auto reply = connection_.Command({"HGETALL", kBoxHealthKey});
  if (!reply) return reply.error();
  ReplyView view = reply->view();
  std::vector<BoxReport> reports;
  for (size_t i = 0; i + 1 < view.Size(); i += 2) {
    BoxReport report;
    report.box = std::string(view[i].String());
    Json document = Json::parse(view[i + 1].String(), nullptr, /*allow_exceptions=*/false);
    if (document.is_object()) {
      report.endpoint = document.value("endpoint", "");
      report.up = document.value("up", true);
      report.error = document.value("error", "");
      report.worker = document.value("worker", "");
      report.reported_at = document.value("reported_at", "");
      report.limit = document.value("limit", 0);
      report.in_flight = document.value("in_flight", 0);
      report.latency_seconds = document.value("latency_seconds", 0.0);
    }
    reports.push_back(std::move(report));
  }
  return reports;
}

Result<std::optional<std::string>> FleetStats::OldestPending() {
  auto reply = connection_.Command({"LINDEX", kPendingKey, "-1"});
  if (!reply) return reply.error();
  if (reply->view().IsNil()) return std::optional<std::string>();
  return std::optional<std::string>(std::string(reply->view().String()));
}

Result<std::vector<std::string>> FleetStats::Held(const std::string& worker_id, int64_t limit) {
  std::string last = std::to_string(limit - 1);
  auto reply = connection_.Command({"LRANGE", ProcessingKey(worker_id), "0", last});
  if (!reply) return reply.error();
  std::vector<std::string> held;
  ReplyView view = reply->view();
  for (size_t i = 0; i < view.Size(); ++i) held.emplace_back(view[i].String());
  return held;
}

}  // namespace media_sync::queue
