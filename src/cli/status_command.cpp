// `media-sync status`: is it healthy, and how far behind? The document is
// report::CollectStatus's (the web console serves the same one); this file
// prints it as text or JSON.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cli/command.h"
#include "report/status_report.h"
#include "util/human_bytes.h"

namespace media_sync::cli {
namespace {

using Json = nlohmann::ordered_json;

struct StatusFlags {
  bool json = false;
  bool watch = false;
  int interval_seconds = 2;
};

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
    auto status = report::CollectStatus(options);
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
