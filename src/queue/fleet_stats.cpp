#include "queue/fleet_stats.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/job.h"
#include "queue/queue_keys.h"
#include "queue/redis_upload_journal.h"

namespace media_sync::queue {
namespace {

using Json = nlohmann::json;

int64_t UnixSecond(std::chrono::system_clock::time_point when) {
  return std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count();
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

// Whose counts make a sum: the minutes' totals, or the parts reported at
// each second.
enum class Counting { kMinuteTotals, kBySecond };

// Adds what the hash of `minute` holds for the seconds first..last (Unix
// seconds, both included) to `sum`: files and bytes as `counting` says, and
// the seconds marked as run.
void Accumulate(ReplyView hash, int64_t minute, int64_t first, int64_t last, Counting counting,
                Throughput& sum) {
  for (size_t i = 0; i + 1 < hash.Size(); i += 2) {
    std::string_view field = hash[i].String();
    std::string_view value = hash[i + 1].String();
    if (counting == Counting::kMinuteTotals && field == "files") sum.files += ToUnsigned(value);
    if (counting == Counting::kMinuteTotals && field == "bytes") sum.bytes += ToUnsigned(value);
    auto colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view what = field.substr(0, colon);
    std::string_view second_text = field.substr(colon + 1);
    if (second_text.empty() || second_text.size() > 2) continue;
    int64_t second = minute * 60 + static_cast<int64_t>(ToUnsigned(second_text));
    if (second < first || second > last) continue;
    if (what == "up") {
      sum.running += std::chrono::seconds(1);
    } else if (counting == Counting::kBySecond && what == "files") {
      sum.files += ToUnsigned(value);
    } else if (counting == Counting::kBySecond && what == "bytes") {
      sum.bytes += ToUnsigned(value);
    }
  }
}

// Hash fields of a minute's counters besides files and bytes: a job fault's
// class label after one of these.
constexpr std::string_view kFailedFieldPrefix = "failed:";
constexpr std::string_view kRetriedFieldPrefix = "retry:";

}  // namespace

FleetStats::FleetStats(config::RedisAddress address, RedisOptions options)
    : connection_(std::move(address), options) {}

Status FleetStats::ReportRound(uint64_t files, uint64_t bytes,
                               std::chrono::system_clock::time_point ran_from,
                               std::chrono::system_clock::time_point now) {
  const int64_t last = UnixSecond(now);
  const int64_t kept = std::chrono::seconds(kThroughputRetention).count();
  const int64_t first = std::min(last, std::max(UnixSecond(ran_from), last - kept + 1));
  const std::string ttl = std::to_string(kept);
  std::vector<std::vector<std::string>> commands;
  if (files > 0 || bytes > 0) {
    std::string key = ThroughputKey(last / 60);
    std::string at = ":" + std::to_string(last % 60);
    commands.push_back({"HINCRBY", key, "files", std::to_string(files)});
    commands.push_back({"HINCRBY", key, "bytes", std::to_string(bytes)});
    commands.push_back({"HINCRBY", key, "files" + at, std::to_string(files)});
    commands.push_back({"HINCRBY", key, "bytes" + at, std::to_string(bytes)});
  }
  // The seconds run, as fields every worker sets alike: the fleet's running
  // time is their union.
  for (int64_t minute = first / 60; minute <= last / 60; ++minute) {
    std::string key = ThroughputKey(minute);
    std::vector<std::string> mark = {"HSET", key};
    for (int64_t second = std::max(first, minute * 60); second <= std::min(last, minute * 60 + 59);
         ++second) {
      mark.push_back("up:" + std::to_string(second - minute * 60));
      mark.emplace_back("1");
    }
    commands.push_back(std::move(mark));
    commands.push_back({"EXPIRE", key, ttl});
  }
  std::vector<std::vector<std::string_view>> views;
  views.reserve(commands.size());
  for (const auto& command : commands) views.emplace_back(command.begin(), command.end());
  auto replies = connection_.Pipeline(views);
  if (!replies) return replies.error();
  return Ok();
}

Result<Throughput> FleetStats::RecentThroughput(int minutes,
                                                std::chrono::system_clock::time_point now) {
  const int64_t last = UnixSecond(now);
  const int64_t current = last / 60;
  std::vector<std::string> keys;
  keys.reserve(static_cast<size_t>(minutes) + 1);
  for (int i = 0; i <= minutes; ++i) keys.push_back(ThroughputKey(current - i));
  std::vector<std::vector<std::string_view>> commands;
  commands.reserve(keys.size());
  for (const auto& key : keys) commands.push_back({"HGETALL", key});
  auto replies = connection_.Pipeline(commands);
  if (!replies) return replies.error();
  Throughput sum;
  auto into_minute = now.time_since_epoch() - std::chrono::minutes(current);
  sum.window =
      std::chrono::minutes(minutes) + std::chrono::duration_cast<std::chrono::seconds>(into_minute);
  for (size_t i = 0; i < replies->size(); ++i) {
    Accumulate((*replies)[i].view(), current - static_cast<int64_t>(i), 0, last,
               Counting::kMinuteTotals, sum);
  }
  return sum;
}

Result<Throughput> FleetStats::LastSeconds(int seconds, std::chrono::system_clock::time_point now) {
  seconds = std::clamp(seconds, 1, 3600);
  const int64_t last = UnixSecond(now);
  const int64_t first = last - seconds + 1;
  std::vector<std::string> keys;
  for (int64_t minute = first / 60; minute <= last / 60; ++minute) {
    keys.push_back(ThroughputKey(minute));
  }
  std::vector<std::vector<std::string_view>> commands;
  commands.reserve(keys.size());
  for (const auto& key : keys) commands.push_back({"HGETALL", key});
  auto replies = connection_.Pipeline(commands);
  if (!replies) return replies.error();
  Throughput sum;
  sum.window = std::chrono::seconds(seconds);
  for (size_t i = 0; i < replies->size(); ++i) {
    Accumulate((*replies)[i].view(), first / 60 + static_cast<int64_t>(i), first, last,
               Counting::kBySecond, sum);
  }
  return sum;
}

Status FleetStats::AddFaults(const std::map<std::string, uint64_t>& failed,
                             const std::map<std::string, uint64_t>& retried,
                             std::chrono::system_clock::time_point now) {
  std::string key = ThroughputKey(UnixSecond(now) / 60);
  std::vector<std::string> texts;  // fields and counts, kept alive for the views below
  for (const auto& [prefix, counts] :
       {std::pair{kFailedFieldPrefix, &failed}, std::pair{kRetriedFieldPrefix, &retried}}) {
    for (const auto& [label, count] : *counts) {
      if (count == 0) continue;
      texts.push_back(std::string(prefix) + label);
      texts.push_back(std::to_string(count));
    }
  }
  if (texts.empty()) return Ok();
  std::string ttl = std::to_string(std::chrono::seconds(kThroughputRetention).count());
  std::vector<std::vector<std::string_view>> commands;
  for (size_t i = 0; i + 1 < texts.size(); i += 2) {
    commands.push_back({"HINCRBY", key, texts[i], texts[i + 1]});
  }
  commands.push_back({"EXPIRE", key, ttl});
  auto replies = connection_.Pipeline(commands);
  if (!replies) return replies.error();
  return Ok();
}

Result<std::vector<MinuteActivity>> FleetStats::Activity(
    int minutes, std::chrono::system_clock::time_point now) {
  // Only the fields the activity sums: a minute's hash also holds the
  // seconds run and the per-second counts `status` reads, far more of them.
  std::vector<std::string> fields = {"files", "bytes"};
  std::vector<std::string> labels;
  for (int fault = 0; fault <= static_cast<int>(FaultClass::kTooLarge); ++fault) {
    labels.emplace_back(ToString(static_cast<FaultClass>(fault)));
  }
  for (const auto& label : labels) fields.push_back(std::string(kFailedFieldPrefix) + label);
  for (const auto& label : labels) fields.push_back(std::string(kRetriedFieldPrefix) + label);

  int64_t current = UnixSecond(now) / 60;
  std::vector<std::string> keys;
  keys.reserve(static_cast<size_t>(minutes) + 1);
  for (int64_t minute = current - minutes; minute <= current; ++minute) {
    keys.push_back(ThroughputKey(minute));
  }
  std::vector<std::vector<std::string_view>> commands;
  commands.reserve(keys.size());
  for (const auto& key : keys) {
    std::vector<std::string_view> command = {"HMGET", key};
    for (const auto& field : fields) command.push_back(field);
    commands.push_back(std::move(command));
  }
  auto replies = connection_.Pipeline(commands);
  if (!replies) return replies.error();
  std::vector<MinuteActivity> series;
  series.reserve(keys.size());
  int64_t minute = current - minutes;
  for (const auto& reply : *replies) {
    MinuteActivity activity;
    activity.minute = minute++;
    ReplyView values = reply.view();
    if (values.Size() == fields.size()) {
      activity.files = ToUnsigned(values[0].String());
      activity.bytes = ToUnsigned(values[1].String());
      for (size_t i = 0; i < labels.size(); ++i) {
        if (uint64_t failed = ToUnsigned(values[2 + i].String()); failed > 0) {
          activity.failed[labels[i]] = failed;
        }
        if (uint64_t retried = ToUnsigned(values[2 + labels.size() + i].String()); retried > 0) {
          activity.retried[labels[i]] = retried;
        }
      }
    }
    series.push_back(std::move(activity));
  }
  return series;
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

Result<std::vector<std::optional<WorkerLease>>> FleetStats::Leases(
    const std::vector<std::string>& ids) {
  std::vector<std::optional<WorkerLease>> leases;
  if (ids.empty()) return leases;
  std::vector<std::string> keys;
  keys.reserve(ids.size());
  for (const auto& id : ids) keys.push_back(HeartbeatKey(id));
  std::vector<std::string_view> command = {"MGET"};
  for (const auto& key : keys) command.push_back(key);
  auto reply = connection_.Command(command);
  if (!reply) return reply.error();
  ReplyView view = reply->view();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i >= view.Size() || view[i].IsNil()) {
      leases.emplace_back();
      continue;
    }
    WorkerLease lease;
    Json document = Json::parse(view[i].String(), nullptr, /*allow_exceptions=*/false);
    if (document.is_object()) {
      if (auto host = document.find("host"); host != document.end() && host->is_string()) {
        lease.host = host->get<std::string>();
      }
      if (auto pid = document.find("pid"); pid != document.end() && pid->is_number_integer()) {
        lease.pid = pid->get<int64_t>();
      }
      if (auto started = document.find("started_at");
          started != document.end() && started->is_string()) {
        lease.started_at = started->get<std::string>();
      }
    }
    leases.emplace_back(std::move(lease));
  }
  return leases;
}

Result<std::vector<UploadProgress>> FleetStats::Uploads(size_t limit) {
  const std::string prefix = RedisUploadJournal::KeyOf("");
  const std::string pattern = prefix + "*";
  std::vector<std::string> keys;
  if (Status scanned = connection_.Scan(pattern,
                                        [&](std::string_view key) {
                                          if (keys.size() >= limit) return false;
                                          keys.emplace_back(key);
                                          return true;
                                        });
      !scanned) {
    return scanned.error();
  }

  std::vector<UploadProgress> uploads;
  if (keys.empty()) return uploads;
  std::vector<std::vector<std::string_view>> commands;
  commands.reserve(keys.size());
  for (const auto& key : keys) commands.push_back({"HGETALL", key});
  auto replies = connection_.Pipeline(commands);
  if (!replies) return replies.error();
  for (size_t k = 0; k < keys.size(); ++k) {
    ReplyView fields = (*replies)[k].view();
    if (fields.Size() == 0) continue;  // completed or expired since the SCAN
    UploadProgress upload;
    upload.name = keys[k].substr(prefix.size());
    for (size_t i = 0; i + 1 < fields.Size(); i += 2) {
      std::string_view field = fields[i].String();
      std::string_view value = fields[i + 1].String();
      if (field == "part_size") {
        upload.part_size = ToUnsigned(value);
      } else if (!field.empty() && field.find_first_not_of("0123456789") == std::string::npos) {
        // A part: "<size> <etag>".
        ++upload.parts;
        upload.bytes_stored += ToUnsigned(value.substr(0, value.find(' ')));
      }
    }
    uploads.push_back(std::move(upload));
  }
  return uploads;
}

}  // namespace media_sync::queue
