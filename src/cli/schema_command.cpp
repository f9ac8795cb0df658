// `media-sync schema check|apply`: the indexes media-sync's queries need on
// the platform's media_files table (catalog/pg_schema.h). `check` reads
// pg_index and changes nothing; `apply` builds what is missing with CREATE
// INDEX CONCURRENTLY (the platform keeps writing meanwhile), one index at a
// time, and nothing else.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "catalog/pg_catalog.h"
#include "catalog/pg_schema.h"
#include "cli/command.h"

namespace media_sync::cli {
namespace {

struct SchemaFlags {
  int timeout_seconds = 86400;
};

void PrintChecks(const std::vector<catalog::IndexCheck>& checks) {
  for (const catalog::IndexCheck& check : checks) {
    std::string state(catalog::ToString(check.state));
    if (check.state == catalog::IndexState::kPresent && check.found_as != check.index->name) {
      state += " (as " + check.found_as + ")";
    }
    std::printf("%-22s %-44s for %s\n", std::string(check.index->name).c_str(), state.c_str(),
                std::string(check.index->serves).c_str());
  }
}

int Missing(const std::vector<catalog::IndexCheck>& checks) {
  int missing = 0;
  for (const catalog::IndexCheck& check : checks) {
    if (check.state != catalog::IndexState::kPresent) ++missing;
  }
  return missing;
}

int Check(const config::Options& options) {
  if (auto status = options.RequireDatabase(); !status) return ConfigError(status.error());
  catalog::PgCatalog catalog(options.database_conninfo, {});
  auto checks = catalog.CheckIndexes();
  if (!checks) return Failed("schema check", checks.error());
  PrintChecks(*checks);
  for (const std::string& line : catalog::SchemaAdvice(*checks)) {
    std::fprintf(stderr, "media-sync: schema check: %s\n", line.c_str());
  }
  if (int missing = Missing(*checks); missing > 0) {
    std::printf("%d of %zu indexes not in place: run `media-sync schema apply`\n", missing,
                checks->size());
    return kExitFailed;
  }
  std::printf("every index media-sync needs is in place\n");
  return kExitOk;
}

int Apply(const config::Options& options, const SchemaFlags& flags) {
  if (auto status = options.RequireDatabase(); !status) return ConfigError(status.error());
  catalog::PgCatalog catalog(options.database_conninfo, {});
  auto checks = catalog.CheckIndexes();
  if (!checks) return Failed("schema apply", checks.error());
  int built = 0;
  for (const catalog::IndexCheck& check : *checks) {
    if (check.state == catalog::IndexState::kPresent) continue;
    const std::string name(check.index->name);
    std::printf("%s index %s: %s\n",
                check.state == catalog::IndexState::kInvalid ? "rebuilding" : "building",
                name.c_str(), std::string(check.index->create_sql).c_str());
    std::fflush(stdout);
    auto started = std::chrono::steady_clock::now();
    Status status = catalog.BuildIndex(*check.index, std::chrono::seconds(flags.timeout_seconds));
    if (!status) return Failed("schema apply", status.error());
    std::printf("  done in %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    ++built;
  }
  // What the database holds now, as `check` would say it.
  auto after = catalog.CheckIndexes();
  if (!after) return Failed("schema apply", after.error());
  PrintChecks(*after);
  if (Missing(*after) > 0) {
    for (const std::string& line : catalog::SchemaAdvice(*after)) {
      std::fprintf(stderr, "media-sync: schema apply: %s\n", line.c_str());
    }
    return kExitFailed;
  }
  std::printf(built == 0 ? "nothing to do: every index media-sync needs is in place\n"
                         : "every index media-sync needs is in place\n");
  return kExitOk;
}

}  // namespace

Command AddSchemaCommand(CLI::App& app) {
  auto flags = std::make_shared<SchemaFlags>();
  Command command;
  command.app = app.add_subcommand(
      "schema", "Check or build the indexes media-sync's queries need on media_files.");
  command.app->require_subcommand(1);
  CLI::App* check = command.app->add_subcommand(
      "check", "Say which indexes are missing (exit 1 if any, 0 if none); changes nothing.");
  CLI::App* apply = command.app->add_subcommand(
      "apply",
      "Build the missing indexes with CREATE INDEX CONCURRENTLY (writes go on meanwhile); "
      "rebuild one left INVALID by an interrupted build. Safe to run again.");
  apply
      ->add_option("--timeout", flags->timeout_seconds,
                   "Give up on one index build after this many seconds (default 86400)")
      ->check(CLI::PositiveNumber);
  command.app->footer(
      "Without these indexes, status and every reconcile read the whole media_files table.\n"
      "Examples:\n"
      "  media-sync schema check\n"
      "  media-sync schema apply");
  command.run = [flags, check, apply](const config::Options& options) {
    if (check->parsed()) return Check(options);
    if (apply->parsed()) return Apply(options, *flags);
    return kExitUsage;
  };
  return command;
}

}  // namespace media_sync::cli
