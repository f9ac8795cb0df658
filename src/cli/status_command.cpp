// `media-sync status`: is it healthy, and how far behind?
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "catalog/pg_catalog.h"
#include "cli/command.h"
#include "core/job.h"
#include "queue/queue_admin.h"

namespace media_sync::cli {
namespace {

using Json = nlohmann::ordered_json;

int Status(const config::Options& options, bool json) {
  queue::QueueAdmin admin(options.redis);
  auto counts = admin.Counts();
  if (!counts) return Failed("status", counts.error());
  auto next_due = admin.NextDue();
  Json out{{"pending", counts->pending},
           {"delayed", counts->delayed},
           {"failed", counts->failed},
           {"processing", counts->processing},
           {"processing_by_worker", counts->processing_by_worker},
           {"live_workers", counts->live_workers}};
  if (next_due && next_due->has_value()) out["next_retry_due"] = IsoTimestamp(**next_due);
  if (!options.database_url.empty()) {
    catalog::PgCatalog catalog(options.database_conninfo, {});
    auto unsynced = catalog.CountUnsynced();
    if (unsynced) {
      out["unsynced_rows"] = *unsynced;
    } else {
      out["unsynced_rows_error"] = unsynced.error().message;
    }
  }
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("pending     %lld\n", static_cast<long long>(counts->pending));
  std::printf("delayed     %lld", static_cast<long long>(counts->delayed));
  if (out.contains("next_retry_due")) {
    std::printf(" (next due %s)", out["next_retry_due"].get<std::string>().c_str());
  }
  std::printf("\nfailed      %lld\n", static_cast<long long>(counts->failed));
  std::printf("processing  %lld\n", static_cast<long long>(counts->processing));
  for (const auto& [worker, held] : counts->processing_by_worker) {
    bool live = std::find(counts->live_workers.begin(), counts->live_workers.end(), worker) !=
                counts->live_workers.end();
    std::printf("  %-40s %lld%s\n", worker.c_str(), static_cast<long long>(held),
                live ? "" : " (lease expired)");
  }
  std::printf("workers     %zu live\n", counts->live_workers.size());
  if (out.contains("unsynced_rows")) {
    std::printf("unsynced    %lld media_files rows\n",
                static_cast<long long>(out["unsynced_rows"].get<int64_t>()));
  }
  return kExitOk;
}

}  // namespace

Command AddStatusCommand(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  Command command;
  command.app = app.add_subcommand(
      "status", "Show queue depths, held jobs per worker, live workers and unsynced rows.");
  command.app->add_flag("--json", *json, "Print JSON");
  command.app->footer("Examples:\n  media-sync status\n  media-sync status --json");
  command.run = [json](const config::Options& options) { return Status(options, *json); };
  return command;
}

}  // namespace media_sync::cli
