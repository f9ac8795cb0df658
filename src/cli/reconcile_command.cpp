// `media-sync reconcile`: re-enqueue media_files rows whose jobs were lost.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "catalog/pg_catalog.h"
#include "cli/command.h"
#include "core/job.h"
#include "queue/queue_admin.h"

namespace media_sync::cli {
namespace {

int Reconcile(const config::Options& options, int older_than, int limit, bool dry_run) {
  if (auto status = options.RequireDatabase(); !status) return ConfigError(status.error());
  catalog::PgCatalog catalog(options.database_conninfo, {});
  auto rows = catalog.Unsynced(limit, older_than);
  if (!rows) return Failed("reconcile", rows.error());
  std::vector<std::string> payloads;
  for (const auto& row : *rows) {
    // The platform's buffer layout: the file sits at <buffer>/<s3_key>.
    payloads.push_back(MakeJobPayload(
        NewJob{row.sha256, row.s3_key, options.buffer_path + "/" + row.s3_key, row.storage_box_id,
               row.file_size, std::chrono::system_clock::now()}));
    if (dry_run) std::printf("%s\n", payloads.back().c_str());
  }
  if (!dry_run && !payloads.empty()) {
    queue::QueueAdmin admin(options.redis);
    if (auto pushed = admin.Enqueue(payloads); !pushed) return Failed("reconcile", pushed.error());
  }
  std::printf("%s %zu unsynced rows older than %d s\n", dry_run ? "would enqueue" : "enqueued",
              payloads.size(), older_than);
  return kExitOk;
}

struct ReconcileFlags {
  int older_than = 3600;
  int limit = 10000;
  bool dry_run = false;
};

}  // namespace

Command AddReconcileCommand(CLI::App& app) {
  auto flags = std::make_shared<ReconcileFlags>();
  Command command;
  command.app = app.add_subcommand(
      "reconcile", "Re-enqueue media_files rows never synced (their jobs were lost).");
  command.app
      ->add_option("--older-than", flags->older_than, "Only rows created this many seconds ago")
      ->check(CLI::NonNegativeNumber);
  command.app->add_option("--limit", flags->limit, "At most this many rows")
      ->check(CLI::PositiveNumber);
  command.app->add_flag("--dry-run", flags->dry_run, "Print the jobs instead of pushing them");
  command.app->footer(
      "Examples:\n  media-sync reconcile --dry-run\n  media-sync reconcile --older-than 600");
  command.run = [flags](const config::Options& options) {
    return Reconcile(options, flags->older_than, flags->limit, flags->dry_run);
  };
  return command;
}

}  // namespace media_sync::cli
