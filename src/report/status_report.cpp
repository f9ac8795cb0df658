#include "report/status_report.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <string>

#include "core/job.h"
#include "queue/box_pauses.h"

namespace media_sync::report {

Json JobSummary(const std::string& payload) {
  auto job = ParseJob(payload);
  if (!job) return Json{{"invalid", job.error().message}};
  return Json{{"sha256", job->sha256},
              {"key", job->s3_key},
              {"box", job->storage_box_id ? Json(*job->storage_box_id) : Json(nullptr)},
              {"size", job->file_size}};
}

namespace {

// Files and bytes per second over the time a worker ran, not over the whole
// window: a fleet that started a minute ago shows the rate it syncs at.
// Workers of an older version mark no running time; their files then count
// over the window, as they used to.
Json ThroughputJson(const queue::Throughput& sum) {
  int64_t running = sum.running.count();
  if (running == 0 && sum.files > 0) running = sum.window.count();
  double seconds = static_cast<double>(std::max<int64_t>(running, 1));
  return Json{{"window_seconds", sum.window.count()},
              {"files", sum.files},
              {"bytes", sum.bytes},
              {"files_per_second", static_cast<double>(sum.files) / seconds},
              {"bytes_per_second", static_cast<double>(sum.bytes) / seconds},
              {"running_seconds", sum.running.count()}};
}

}  // namespace

Result<Json> CollectStatus(const config::Options& options, queue::QueueAdmin& admin,
                           queue::FleetStats& fleet, catalog::PgCatalog* catalog) {
  auto now = std::chrono::system_clock::now();
  auto counts = admin.Counts();
  if (!counts) return counts.error();
  Json out;
  out["generated_at"] = IsoTimestamp(now);
  out["queues"] = Json{{"pending", counts->pending},
                       {"delayed", counts->delayed},
                       {"failed", counts->failed},
                       {"processing", counts->processing}};

  out["oldest_pending_age_seconds"] = nullptr;
  if (auto oldest = fleet.OldestPending(); oldest && oldest->has_value()) {
    auto job = ParseJob(**oldest);
    if (job && job->queued_at) {
      out["oldest_pending_age_seconds"] =
          std::max(0.0, std::chrono::duration<double>(now - *job->queued_at).count());
    }
  }
  out["next_retry_due"] = nullptr;
  if (auto next_due = admin.NextDue(); next_due && next_due->has_value()) {
    out["next_retry_due"] = IsoTimestamp(**next_due);
  }

  Json workers = Json::array();
  for (const auto& [id, held] : counts->processing_by_worker) {
    bool live = std::binary_search(counts->live_workers.begin(), counts->live_workers.end(), id);
    Json jobs = Json::array();
    if (auto payloads = fleet.Held(id, kStatusJobsPerWorker); payloads) {
      for (const auto& payload : *payloads) jobs.push_back(JobSummary(payload));
    }
    workers.push_back(Json{{"id", id}, {"live", live}, {"held", held}, {"jobs", jobs}});
  }
  out["workers"] = workers;
  out["live_workers"] = counts->live_workers.size();

  Json throughput = ThroughputJson(queue::Throughput{});
  throughput["last_minute"] = ThroughputJson(queue::Throughput{});
  if (auto recent = fleet.RecentThroughput(kStatusThroughputMinutes, now); recent) {
    throughput = ThroughputJson(*recent);
    auto last_minute = fleet.LastSeconds(kStatusLastMinuteSeconds, now);
    throughput["last_minute"] = ThroughputJson(last_minute ? *last_minute : queue::Throughput{});
  }
  out["throughput"] = throughput;

  // Boxes: the catalog's list, joined with what the workers last reported.
  std::map<std::string, Json> boxes;
  auto box_entry = [&boxes](const std::string& id) -> Json& {
    Json& box = boxes[id];
    if (box.is_null()) {
      box = Json{{"id", id.empty() ? Json(nullptr) : Json(id)},
                 {"endpoint", nullptr},
                 {"state", "unknown"},
                 {"error", nullptr},
                 {"reported_by", nullptr},
                 {"reported_at", nullptr},
                 {"paused", false},
                 {"concurrency_limit", nullptr},
                 {"in_flight", nullptr},
                 {"latency_seconds", nullptr},
                 {"used_bytes", nullptr},
                 {"reserved_bytes", nullptr},
                 {"unsynced_rows", nullptr}};
    }
    return box;
  };
  if (auto reports = fleet.BoxReports(); reports) {
    for (const auto& report : *reports) {
      Json& box = box_entry(report.box);
      box["endpoint"] = report.endpoint;
      box["state"] = report.up ? "up" : "down";
      if (!report.up) box["error"] = report.error;
      box["reported_by"] = report.worker;
      box["reported_at"] = report.reported_at;
      if (report.limit > 0) box["concurrency_limit"] = report.limit;
      box["in_flight"] = report.in_flight;
      box["latency_seconds"] = report.latency_seconds;
    }
  }
  // Boxes an operator paused (`media-sync boxes pause`): their jobs wait.
  if (auto paused = queue::BoxPauses(options.redis).List(); paused) {
    for (const auto& [id, pause] : *paused) {
      Json& box = box_entry(id);
      box["paused"] = true;
      box["pause"] = Json{{"reason", pause.reason}, {"by", pause.by}, {"at", pause.at}};
    }
  }
  out["unsynced_rows"] = nullptr;
  out["schema"] = nullptr;  // advice on the catalog's indexes; [] when none is missing
  if (catalog != nullptr) {
    if (auto usage = catalog->BoxesUsage(); usage) {
      int64_t unsynced = 0;
      for (const auto& row : *usage) {
        unsynced += row.unsynced_rows;
        if (row.id.empty() && row.unsynced_rows == 0 && !boxes.contains("")) continue;
        Json& box = box_entry(row.id);
        if (!row.id.empty()) {
          if (box["endpoint"].is_null()) box["endpoint"] = row.endpoint;
          box["used_bytes"] = row.used_bytes;
          box["reserved_bytes"] = row.reserved_bytes;
        } else if (box["endpoint"].is_null()) {
          box["endpoint"] = options.s3.endpoint;
        }
        box["unsynced_rows"] = row.unsynced_rows;
      }
      out["unsynced_rows"] = unsynced;
    } else {
      out["database_error"] = usage.error().message;
    }
    // Missing indexes slow this very report and every reconcile down; they
    // are named apart from the problems: nothing is unhealthy for it.
    if (auto indexes = catalog->CheckIndexes(); indexes) {
      out["schema"] = catalog::SchemaAdvice(*indexes);
    }
  }
  Json box_list = Json::array();
  for (auto& [id, box] : boxes) box_list.push_back(std::move(box));
  out["boxes"] = box_list;

  // What needs a person, in words.
  Json problems = Json::array();
  if (counts->live_workers.empty()) problems.push_back("no live worker");
  for (const auto& worker : out["workers"]) {
    if (!worker["live"].get<bool>() && worker["held"].get<int64_t>() > 0) {
      problems.push_back("worker " + worker["id"].get<std::string>() +
                         " is gone holding jobs (they return to pending after its lease)");
    }
  }
  for (const auto& box : out["boxes"]) {
    if (box["state"] == "down") {
      problems.push_back(
          "box " + (box["id"].is_null() ? std::string("(default)") : box["id"].get<std::string>()) +
          " is down");
    }
  }
  if (counts->failed > 0) {
    problems.push_back(std::to_string(counts->failed) + " failed jobs (media-sync failed list)");
  }
  if (out.contains("database_error")) problems.push_back("PostgreSQL: cannot read the catalog");
  out["healthy"] = problems.empty();
  out["problems"] = problems;
  return out;
}

Result<Json> CollectStatus(const config::Options& options) {
  queue::QueueAdmin admin(options.redis);
  queue::FleetStats fleet(options.redis);
  if (options.database_url.empty()) return CollectStatus(options, admin, fleet, nullptr);
  catalog::PgCatalog catalog(options.database_conninfo, {});
  return CollectStatus(options, admin, fleet, &catalog);
}

}  // namespace media_sync::report
