// `media-sync status`: is it healthy, and how far behind? Reads the queue
// and what the workers publish in Redis (queue/fleet_stats.h), and the boxes'
// counters and unsynced rows in PostgreSQL.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "catalog/pg_catalog.h"
#include "cli/command.h"
#include "core/job.h"
#include "queue/box_pauses.h"
#include "queue/fleet_stats.h"
#include "queue/queue_admin.h"

namespace media_sync::cli {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kThroughputMinutes = 5;
constexpr int kLastMinuteSeconds = 60;
constexpr int64_t kJobsShownPerWorker = 5;

struct StatusFlags {
  bool json = false;
  bool watch = false;
  int interval_seconds = 2;
};

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  int unit = 0;
  while (bytes >= 1000 && unit < 5) {
    bytes /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return text;
}

std::string HumanSeconds(double seconds) {
  auto total = static_cast<int64_t>(seconds);
  char text[32];
  if (total < 60) {
    std::snprintf(text, sizeof(text), "%llds", static_cast<long long>(total));
  } else if (total < 3600) {
    std::snprintf(text, sizeof(text), "%lldm%02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  } else {
    std::snprintf(text, sizeof(text), "%lldh%02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60));
  }
  return text;
}

Json JobSummary(const std::string& payload) {
  auto job = ParseJob(payload);
  if (!job) return Json{{"invalid", job.error().message}};
  return Json{{"sha256", job->sha256},
              {"key", job->s3_key},
              {"box", job->storage_box_id ? Json(*job->storage_box_id) : Json(nullptr)},
              {"size", job->file_size}};
}

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

// The whole picture as one JSON document with stable keys; the text form is
// printed from it.
Result<Json> Collect(const config::Options& options) {
  auto now = std::chrono::system_clock::now();
  queue::QueueAdmin admin(options.redis);
  queue::FleetStats fleet(options.redis);
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
    if (auto payloads = fleet.Held(id, kJobsShownPerWorker); payloads) {
      for (const auto& payload : *payloads) jobs.push_back(JobSummary(payload));
    }
    workers.push_back(Json{{"id", id}, {"live", live}, {"held", held}, {"jobs", jobs}});
  }
  out["workers"] = workers;
  out["live_workers"] = counts->live_workers.size();

  Json throughput = ThroughputJson(queue::Throughput{});
  throughput["last_minute"] = ThroughputJson(queue::Throughput{});
  if (auto recent = fleet.RecentThroughput(kThroughputMinutes, now); recent) {
    throughput = ThroughputJson(*recent);
    auto last_minute = fleet.LastSeconds(kLastMinuteSeconds, now);
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
  if (!options.database_url.empty()) {
    catalog::PgCatalog catalog(options.database_conninfo, {});
    if (auto usage = catalog.BoxesUsage(); usage) {
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
    // Missing indexes slow this very command and every reconcile down; they
    // are named apart from the problems: nothing is unhealthy for it.
    if (auto indexes = catalog.CheckIndexes(); indexes) {
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

void PrintText(const Json& s) {
  std::printf("media-sync status at %s: %s\n", s["generated_at"].get<std::string>().c_str(),
              s["healthy"].get<bool>() ? "healthy" : "needs attention");
  for (const auto& problem : s["problems"]) {
    std::printf("  ! %s\n", problem.get<std::string>().c_str());
  }
  if (s["schema"].is_array()) {
    for (const auto& advice : s["schema"]) {
      std::printf("  * %s\n", advice.get<std::string>().c_str());
    }
  }
  const Json& q = s["queues"];
  std::printf("\nqueues      pending %lld", static_cast<long long>(q["pending"].get<int64_t>()));
  if (!s["oldest_pending_age_seconds"].is_null()) {
    std::printf(" (oldest %s)",
                HumanSeconds(s["oldest_pending_age_seconds"].get<double>()).c_str());
  }
  std::printf("   delayed %lld", static_cast<long long>(q["delayed"].get<int64_t>()));
  if (!s["next_retry_due"].is_null()) {
    std::printf(" (next due %s)", s["next_retry_due"].get<std::string>().c_str());
  }
  std::printf("   failed %lld   processing %lld\n",
              static_cast<long long>(q["failed"].get<int64_t>()),
              static_cast<long long>(q["processing"].get<int64_t>()));
  const Json& t = s["throughput"];
  const Json& minute = t["last_minute"];
  std::printf(
      "throughput  %.2f files/s, %s/s in the last minute; %.2f files/s, %s/s in the last %s",
      minute["files_per_second"].get<double>(),
      HumanBytes(minute["bytes_per_second"].get<double>()).c_str(),
      t["files_per_second"].get<double>(), HumanBytes(t["bytes_per_second"].get<double>()).c_str(),
      HumanSeconds(t["window_seconds"].get<double>()).c_str());
  const int64_t ran = t["running_seconds"].get<int64_t>();
  if (ran < t["window_seconds"].get<int64_t>()) {
    std::printf(" (%s of it with a worker running)",
                HumanSeconds(static_cast<double>(ran)).c_str());
  }
  std::printf("\n");
  if (!s["unsynced_rows"].is_null()) {
    std::printf("unsynced    %lld media_files rows\n",
                static_cast<long long>(s["unsynced_rows"].get<int64_t>()));
  }

  std::printf("\nworkers     %zu live\n", s["live_workers"].get<size_t>());
  for (const auto& worker : s["workers"]) {
    std::printf("  %-36s %-14s %lld in flight\n", worker["id"].get<std::string>().c_str(),
                worker["live"].get<bool>() ? "live" : "lease expired",
                static_cast<long long>(worker["held"].get<int64_t>()));
    for (const auto& job : worker["jobs"]) {
      if (job.contains("invalid")) {
        std::printf("      (invalid job) %s\n", job["invalid"].get<std::string>().c_str());
      } else {
        std::printf("      %s  %s\n", job["key"].get<std::string>().c_str(),
                    HumanBytes(job["size"].get<double>()).c_str());
      }
    }
  }

  std::printf("\nboxes\n  %-16s %-8s %-28s %10s %10s %9s %9s %9s  %s\n", "ID", "STATE", "ENDPOINT",
              "USED", "RESERVED", "UNSYNCED", "IN FLIGHT", "LATENCY", "REPORTED BY");
  auto text = [](const Json& value) {
    return value.is_null() ? std::string("-") : value.get<std::string>();
  };
  auto bytes = [](const Json& value) {
    return value.is_null() ? std::string("-") : HumanBytes(value.get<double>());
  };
  for (const auto& box : s["boxes"]) {
    std::string rows =
        box["unsynced_rows"].is_null() ? "-" : std::to_string(box["unsynced_rows"].get<int64_t>());
    // "12/64": uploads in flight over the reporting worker's adaptive limit.
    std::string flight = "-";
    if (!box["in_flight"].is_null()) {
      flight = std::to_string(box["in_flight"].get<int>());
      if (!box["concurrency_limit"].is_null()) {
        flight += "/" + std::to_string(box["concurrency_limit"].get<int>());
      }
    }
    std::string latency = "-";
    if (!box["latency_seconds"].is_null() && box["latency_seconds"].get<double>() > 0) {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.0f ms", box["latency_seconds"].get<double>() * 1000);
      latency = buffer;
    }
    std::printf("  %-16s %-8s %-28s %10s %10s %9s %9s %9s  %s\n",
                box["id"].is_null() ? "(default)" : box["id"].get<std::string>().c_str(),
                box["paused"].get<bool>() ? "paused" : box["state"].get<std::string>().c_str(),
                text(box["endpoint"]).c_str(), bytes(box["used_bytes"]).c_str(),
                bytes(box["reserved_bytes"]).c_str(), rows.c_str(), flight.c_str(), latency.c_str(),
                text(box["reported_by"]).c_str());
    if (!box["error"].is_null()) {
      std::printf("      %s\n", box["error"].get<std::string>().c_str());
    }
    if (box.contains("pause")) {
      std::printf("      paused by %s at %s: %s\n", box["pause"]["by"].get<std::string>().c_str(),
                  box["pause"]["at"].get<std::string>().c_str(),
                  box["pause"]["reason"].get<std::string>().c_str());
    }
  }
  if (s.contains("database_error")) {
    std::printf("\nPostgreSQL: %s\n", s["database_error"].get<std::string>().c_str());
  }
}

int Status(const config::Options& options, const StatusFlags& flags) {
  bool tty = isatty(STDOUT_FILENO) != 0;
  while (true) {
    auto status = Collect(options);
    if (!status) return Failed("status", status.error());
    if (flags.watch && tty && !flags.json) std::printf("\033[H\033[2J");
    if (flags.json) {
      std::printf("%s\n", status->dump(flags.watch ? -1 : 2).c_str());
    } else {
      PrintText(*status);
    }
    std::fflush(stdout);
    if (!flags.watch) return kExitOk;
    std::this_thread::sleep_for(std::chrono::seconds(flags.interval_seconds));
  }
}

}  // namespace

Command AddStatusCommand(CLI::App& app) {
  auto flags = std::make_shared<StatusFlags>();
  Command command;
  command.app = app.add_subcommand(
      "status",
      "Is it healthy, and how far behind? Queue depths, the oldest pending job, live workers and "
      "their jobs, storage boxes (state, usage, unsynced rows) and recent throughput.");
  command.app->add_flag("--json", flags->json, "Print JSON (stable keys)");
  command.app->add_flag("--watch", flags->watch, "Refresh until interrupted");
  command.app->add_option("--interval", flags->interval_seconds, "Seconds between refreshes")
      ->check(CLI::Range(1, 3600));
  command.app->footer(
      "Examples:\n"
      "  media-sync status\n"
      "  media-sync status --watch --interval 5\n"
      "  media-sync status --json | jq .queues");
  command.run = [flags](const config::Options& options) { return Status(options, *flags); };
  return command;
}

}  // namespace media_sync::cli
