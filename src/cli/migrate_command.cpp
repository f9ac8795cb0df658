// `media-sync migrate`: moves synced objects from one storage box to
// another while the platform keeps serving them (worker/box_migrator.h).
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "audit/box_migrator.h"
#include "catalog/pg_box_catalog.h"
#include "cli/command.h"
#include "cli/progress.h"
#include "core/job.h"
#include "worker/box_registry.h"

namespace media_sync::cli {
namespace {

struct MigrateFlags {
  std::string from;
  std::string to;
  int64_t limit = 0;
  bool dry_run = false;
  std::string delete_after = "1h";
  int concurrency = 4;
  std::string shard;
  std::string temp_dir;
};

// "90s", "30m", "1h", "2d", "0" (a bare number is seconds); nullopt when not that.
std::optional<std::chrono::seconds> ParseDuration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])) != 0) {
    ++digits;
  }
  if (digits == 0 || digits > 9) return std::nullopt;
  const int64_t number = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  if (unit.empty() || unit == "s") return std::chrono::seconds(number);
  if (unit == "m") return std::chrono::minutes(number);
  if (unit == "h") return std::chrono::hours(number);
  if (unit == "d") return std::chrono::hours(24 * number);
  return std::nullopt;
}

// "3/16" -> {3, 16}; nullopt when not I/N with 0 <= I < N.
std::optional<std::pair<int, int>> ParseShard(const std::string& text) {
  size_t slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) return std::nullopt;
  char* end = nullptr;
  long shard = std::strtol(text.c_str(), &end, 10);
  if (end != text.c_str() + slash) return std::nullopt;
  long shards = std::strtol(text.c_str() + slash + 1, &end, 10);
  if (*end != '\0' || shards < 1 || shards > 4096 || shard < 0 || shard >= shards) {
    return std::nullopt;
  }
  return std::make_pair(static_cast<int>(shard), static_cast<int>(shards));
}

int Usage(const std::string& problem) {
  std::fprintf(stderr, "media-sync: migrate: %s\n", problem.c_str());
  return kExitUsage;
}

int Migrate(const config::Options& options, const MigrateFlags& flags) {
  auto delete_after = ParseDuration(flags.delete_after);
  if (!delete_after) {
    return Usage("--delete-after '" + flags.delete_after +
                 "' is not a duration (90s, 30m, 1h, 2d, or 0 to delete at once)");
  }
  audit::MigrateSettings settings;
  settings.from = flags.from;
  settings.to = flags.to;
  settings.limit = flags.limit;
  settings.dry_run = flags.dry_run;
  settings.delete_after = *delete_after;
  settings.concurrency = flags.concurrency;
  if (!flags.shard.empty()) {
    auto shard = ParseShard(flags.shard);
    if (!shard) return Usage("--shard '" + flags.shard + "' is not I/N with 0 <= I < N");
    settings.shard = shard->first;
    settings.shards = shard->second;
  }
  const char* tmpdir = std::getenv("TMPDIR");
  settings.temp_dir = !flags.temp_dir.empty()                ? flags.temp_dir
                      : tmpdir != nullptr && *tmpdir != '\0' ? tmpdir
                                                             : "/tmp";
  if (::access(settings.temp_dir.c_str(), W_OK | X_OK) != 0) {
    return Usage("--temp-dir " + settings.temp_dir + " is not a directory we may write in");
  }
  if (auto status = options.RequireDatabase(); !status) return ConfigError(status.error());

  catalog::PgBoxCatalog catalog(options.database_conninfo, std::max(2, flags.concurrency));
  auto listed = catalog.Boxes();
  if (!listed) return Failed("migrate", listed.error());
  std::map<std::string, s3::S3Options> boxes;
  for (const auto& [id, endpoint] : *listed) {
    auto box = worker::BoxRegistry::OptionsForEndpoint(options.s3, endpoint);
    if (!box) return Failed("migrate", box.error().Wrap("storage box " + id));
    boxes[id] = *box;
  }
  for (const std::string& box : {settings.from, settings.to}) {
    if (boxes.count(box) == 0) return Usage("no storage box " + box + " in storage_boxes");
  }
  if (settings.from == settings.to) return Usage("--from and --to name the same box");

  // The bar's total: the source's synced rows (this shard's share of them).
  uint64_t total_rows = 0;
  uint64_t total_bytes = 0;
  if (auto counters = catalog.CheckCounters({settings.from}); counters && !counters->empty()) {
    total_rows = static_cast<uint64_t>(counters->front().synced_rows) /
                 static_cast<uint64_t>(settings.shards);
    total_bytes = static_cast<uint64_t>(counters->front().synced_bytes) /
                  static_cast<uint64_t>(settings.shards);
    if (settings.limit > 0) total_rows = std::min<uint64_t>(total_rows, settings.limit);
  }
  Progress::Settings bar;
  bar.terminal = isatty(STDERR_FILENO) != 0;
  Progress shown(total_rows, total_bytes, bar);

  audit::BoxMigrator migrator(catalog, options.redis, boxes);
  auto report = migrator.Run(settings, {}, [&](const audit::MigrateReport&, uint64_t bytes) {
    if (!settings.dry_run) shown.Advance(bytes);
  });
  shown.Finish();
  if (!report) {
    if (report.error().kind == ErrorKind::kInput) return Usage(report.error().message);
    Error error = report.error();
    error.message += " (what was moved stays moved: run the same command again to go on)";
    return Failed("migrate", error);
  }
  if (settings.dry_run) {
    std::printf("would move %lld rows (%lld bytes) from %s to %s%s\n",
                static_cast<long long>(report->rows_seen),
                static_cast<long long>(report->moved_bytes), settings.from.c_str(),
                settings.to.c_str(), report->limit_reached ? " (limit reached)" : "");
    return kExitOk;
  }
  for (const std::string& failure : report->failures) {
    std::printf("not moved  %s\n", failure.c_str());
  }
  std::printf(
      "moved %lld rows (%lld bytes) from %s to %s; %lld moved meanwhile by another run; %lld "
      "failed; seconds %.1f%s\n",
      static_cast<long long>(report->moved), static_cast<long long>(report->moved_bytes),
      settings.from.c_str(), settings.to.c_str(), static_cast<long long>(report->moved_meanwhile),
      static_cast<long long>(report->failed), shown.Seconds(),
      report->limit_reached ? "; limit reached: run again for the rest" : "");
  std::printf("source copies: %lld deleted, %lld kept in their grace period",
              static_cast<long long>(report->sources_deleted),
              static_cast<long long>(report->sources_waiting));
  if (report->sources_waiting > 0) {
    std::printf(" (the first until %s: run the same command again then to delete them)",
                IsoTimestamp(std::chrono::system_clock::time_point(
                                 std::chrono::milliseconds(report->first_due_ms)))
                    .c_str());
  }
  std::printf("\n");
  return report->failed == 0 ? kExitOk : kExitFailed;
}

}  // namespace

Command AddMigrateCommand(CLI::App& app) {
  auto flags = std::make_shared<MigrateFlags>();
  Command command;
  command.app = app.add_subcommand(
      "migrate",
      "Move synced objects from one storage box to another while the platform keeps serving "
      "them: copy, verify, switch the row and the counters, delete the source after a grace.");
  command.app->add_option("--from", flags->from, "The box the objects leave")->required();
  command.app->add_option("--to", flags->to, "The box they go to")->required();
  command.app->add_option("--limit", flags->limit, "Move at most this many rows this run")
      ->check(CLI::PositiveNumber);
  command.app->add_flag("--dry-run", flags->dry_run, "Count what would move; change nothing");
  command.app->add_option("--delete-after", flags->delete_after,
                          "Grace before a source copy is deleted (default 1h; 0: at once)");
  command.app->add_option("--concurrency", flags->concurrency, "Objects in flight (default 4)")
      ->check(CLI::Range(1, 256));
  command.app->add_option("--shard", flags->shard,
                          "I/N: only this process's share of the rows, for N processes at once");
  command.app->add_option("--temp-dir", flags->temp_dir,
                          "Where objects pass between the boxes (default TMPDIR or /tmp)");
  command.app->footer(
      "Safe to stop at any moment and to run again: every row names a box holding its\n"
      "verified object, counters move with the row, and a source copy outlives the switch\n"
      "by the grace period. Running it again also deletes the copies whose grace is over.\n"
      "Examples:\n"
      "  media-sync migrate --from russia-1 --to russia-3 --dry-run\n"
      "  media-sync migrate --from russia-1 --to russia-3 --concurrency 16\n"
      "  media-sync migrate --from russia-1 --to russia-3 --shard 0/8   # on 8 hosts: 0/8 .. 7/8");
  command.run = [flags](const config::Options& options) { return Migrate(options, *flags); };
  return command;
}

}  // namespace media_sync::cli
