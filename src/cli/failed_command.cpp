// `media-sync failed`: inspect and requeue the failed queue.
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "queue/queue_admin.h"

namespace media_sync::cli {
namespace {

int FailedList(const config::Options& options, int64_t limit) {
  queue::QueueAdmin admin(options.redis);
  auto entries = admin.ListFailed(0, limit);
  if (!entries) return Failed("failed list", entries.error());
  for (const auto& entry : *entries) std::printf("%s\n", entry.c_str());
  return kExitOk;
}

int FailedRequeue(const config::Options& options, int64_t count) {
  queue::QueueAdmin admin(options.redis);
  auto moved = admin.RequeueFailed(count);
  if (!moved) return Failed("failed requeue", moved.error());
  std::printf("requeued %lld failed jobs onto media:sync:pending\n",
              static_cast<long long>(*moved));
  return kExitOk;
}

}  // namespace

Command AddFailedCommand(CLI::App& app) {
  auto limit = std::make_shared<int64_t>(20);
  auto count = std::make_shared<int64_t>(1);
  Command command;
  command.app = app.add_subcommand("failed", "Inspect or requeue the failed queue.");
  command.app->require_subcommand(1);
  auto* list = command.app->add_subcommand("list", "Print failed entries (newest first).");
  list->add_option("--limit", *limit, "How many entries")->check(CLI::PositiveNumber);
  auto* requeue = command.app->add_subcommand(
      "requeue", "Move failed entries back to pending (oldest first), with a fresh retry budget.");
  requeue->add_option("--count", *count, "How many entries (0: all)")
      ->check(CLI::NonNegativeNumber);
  command.app->footer(
      "Examples:\n  media-sync failed list --limit 5\n  media-sync failed requeue --count 0");
  command.run = [list, requeue, limit, count](const config::Options& options) {
    if (list->parsed()) return FailedList(options, *limit);
    if (requeue->parsed()) return FailedRequeue(options, *count == 0 ? INT64_MAX : *count);
    return kExitUsage;
  };
  return command;
}

}  // namespace media_sync::cli
