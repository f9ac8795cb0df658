// `media-sync reconcile`: re-enqueue the jobs Redis lost (worker/reconciler.h).
#include <cstdio>
#include <memory>

#include "buffer/local_buffer.h"
#include "catalog/pg_catalog.h"
#include "cli/command.h"
#include "queue/queue_admin.h"
#include "s3/s3_object_store.h"
#include "worker/box_registry.h"
#include "worker/reconciler.h"

namespace media_sync::cli {
namespace {

struct ReconcileFlags {
  int older_than = 3600;
  int limit = 10000;
  bool dry_run = false;
};

std::string Box(const UnsyncedFile& row) { return row.storage_box_id.value_or("(default)"); }

int Reconcile(const config::Options& options, const ReconcileFlags& flags) {
  if (auto status = options.RequireDatabase(); !status) return ConfigError(status.error());
  auto buffer = buffer::LocalBuffer::Create(options.buffer_path);
  if (!buffer) return ConfigError(buffer.error().Wrap("MEDIA_BUFFER_PATH"));
  catalog::PgCatalog catalog(options.database_conninfo, {});
  // Only HeadObject is called: no upload buffers, no bucket creation.
  auto factory = [](const s3::S3Options& box) -> Result<std::shared_ptr<ObjectStore>> {
    return std::shared_ptr<ObjectStore>(std::make_shared<s3::S3ObjectStore>(box));
  };
  worker::BoxRegistry stores(options.s3, catalog, factory, {});
  queue::QueueAdmin queue(options.redis);
  worker::Reconciler reconciler({queue, queue, catalog, stores, *buffer});

  worker::ReconcileSettings settings;
  settings.older_than = std::chrono::seconds(flags.older_than);
  settings.limit = flags.limit;
  settings.dry_run = flags.dry_run;
  auto report = reconciler.Run(settings);
  if (!report) return Failed("reconcile", report.error());

  for (const auto& lost : report->enqueued) {
    if (lost.source == worker::LostJob::Source::kUnchecked || !lost.note.empty()) {
      std::fprintf(stderr, "media-sync: reconcile: %s (%s): %s; enqueued all the same\n",
                   lost.row.s3_key.c_str(), std::string(worker::ToString(lost.source)).c_str(),
                   lost.note.c_str());
    }
  }
  if (flags.dry_run) {
    for (const auto& lost : report->enqueued) {
      std::printf("would enqueue  %s  %s  box %s  (%s)\n", lost.row.sha256.c_str(),
                  lost.row.s3_key.c_str(), Box(lost.row).c_str(),
                  std::string(worker::ToString(lost.source)).c_str());
    }
  }
  if (report->nothing_left_rows > 0) {
    std::printf(
        "nothing left to sync: %lld rows have no local file and no object in storage "
        "(not enqueued)%s:\n",
        static_cast<long long>(report->nothing_left_rows),
        static_cast<int64_t>(report->nothing_left.size()) < report->nothing_left_rows
            ? (", the first " + std::to_string(report->nothing_left.size())).c_str()
            : "");
    for (const auto& row : report->nothing_left) {
      std::printf("  %s  %s  box %s\n", row.sha256.c_str(), row.s3_key.c_str(), Box(row).c_str());
    }
  }
  std::printf(
      "%s %zu lost jobs; %lld unsynced rows older than %d s examined, %lld still queued in "
      "Redis, %lld with nothing left to sync\n",
      flags.dry_run ? "would enqueue" : "enqueued", report->enqueued.size(),
      static_cast<long long>(report->rows_examined), flags.older_than,
      static_cast<long long>(report->still_queued),
      static_cast<long long>(report->nothing_left_rows));
  if (report->limit_reached) {
    std::printf("limit of %d reached: run again for the rest\n", flags.limit);
  }
  return kExitOk;
}

}  // namespace

Command AddReconcileCommand(CLI::App& app) {
  auto flags = std::make_shared<ReconcileFlags>();
  Command command;
  command.app = app.add_subcommand(
      "reconcile",
      "Re-enqueue media_files rows never synced whose jobs are nowhere in Redis (lost); report "
      "rows with nothing left to sync.");
  command.app
      ->add_option("--older-than", flags->older_than,
                   "Only rows created at least this many seconds ago (default 3600)")
      ->check(CLI::NonNegativeNumber);
  command.app
      ->add_option("--limit", flags->limit, "At most this many jobs enqueued (default 10000)")
      ->check(CLI::PositiveNumber);
  command.app->add_flag("--dry-run", flags->dry_run,
                        "Print what would be enqueued and reported; push nothing");
  command.app->footer(
      "A row is lost when no job for its sha256 is pending, delayed, held by a worker or\n"
      "failed. Lost rows whose file is in the buffer, or whose object is in storage, are\n"
      "enqueued; rows with neither are only reported. A second run enqueues nothing new.\n"
      "Examples:\n"
      "  media-sync reconcile --dry-run\n"
      "  media-sync reconcile --older-than 600 --limit 50000");
  command.run = [flags](const config::Options& options) { return Reconcile(options, *flags); };
  return command;
}

}  // namespace media_sync::cli
