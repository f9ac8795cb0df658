// `media-sync failed`: inspect, requeue and purge the failed queue.
//
// Entries are addressed by index (0 = newest, as LRANGE counts) or by
// filter. Indexes shift when new failures arrive, so every change moves or
// deletes the exact entry that was read, atomically (QueueAdmin), never
// "whatever is at index N now".
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.h"
#include "queue/queue_admin.h"
#include "report/failed_entries.h"
#include "util/human_bytes.h"

namespace media_sync::cli {
namespace {

using Json = nlohmann::ordered_json;

struct FailedFlags {
  int64_t limit = 20;
  bool json = false;
  std::string grep;
  std::string box;
  int64_t index = 0;
  bool all = false;
  int64_t count = 1;
  bool yes = false;
};

using Entry = report::FailedQueueEntry;
using Filter = report::FailedFilter;
using report::Lower;
using report::MakeFailedQueueEntry;

// Control characters would break the table (a multi-line error), or worse,
// reach the terminal: a failed entry is hostile input, and an escape
// sequence in its box or key could rewrite the screen. C0 and DEL, and C1
// (UTF-8 0xC2 0x80..0x9F, which some terminals obey), become spaces.
std::string OneLine(const std::string& text) {
  std::string out = text;
  for (size_t i = 0; i < out.size(); ++i) {
    auto byte = static_cast<unsigned char>(out[i]);
    if (byte < 0x20 || byte == 0x7f) {
      out[i] = ' ';
    } else if (byte == 0xc2 && i + 1 < out.size() &&
               static_cast<unsigned char>(out[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(out[i + 1]) <= 0x9f) {
      out.replace(i, 2, " ");
    }
  }
  return out;
}

std::string Shorten(const std::string& text, size_t width) {
  if (text.size() <= width) return text;
  if (width <= 3) return text.substr(0, width);
  return text.substr(0, width - 3) + "...";
}

std::string HumanSize(const std::string& bytes_text) {
  if (bytes_text.empty()) return "-";
  return HumanBytes(std::strtod(bytes_text.c_str(), nullptr));
}

size_t TerminalColumns() {
  winsize size{};
  if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
    return size.ws_col;
  }
  return 200;  // a pipe or a file: room for the key and a useful error
}

void PrintTable(const std::vector<Entry>& entries) {
  struct Row {
    std::string index, failed_at, attempts, box, size, error, key;
  };
  std::vector<Row> rows;
  Row header{"#", "FAILED_AT", "ATTEMPTS", "BOX", "SIZE", "ERROR", "KEY"};
  for (const Entry& entry : entries) {
    Row row;
    row.index = std::to_string(entry.index);
    row.failed_at = OneLine(entry.Text("failed_at"));
    row.attempts = OneLine(entry.Text("attempts"));
    row.box = OneLine(entry.Text("storage_box_id"));
    row.size = entry.is_job() ? HumanSize(entry.Text("file_size")) : "-";
    row.error = OneLine(entry.Text("error"));
    if (entry.is_job()) {
      row.key = OneLine(entry.Text("s3_key"));
      if (row.key.empty()) row.key = "sha256 " + OneLine(entry.Text("sha256"));
    } else if (entry.is_object()) {
      std::string kept = entry.document.contains("raw") ? entry.Text("raw") : "(base64)";
      row.key = "(not a job: " + Shorten(OneLine(kept), 40) + ")";
    } else {
      row.key = "(not JSON: " + Shorten(OneLine(entry.raw), 40) + ")";
      row.error = "(unknown)";
    }
    for (std::string* field : {&row.failed_at, &row.attempts, &row.box}) {
      if (field->empty()) *field = "-";
    }
    rows.push_back(std::move(row));
  }
  auto width = [&](std::string Row::*field) {
    size_t widest = (header.*field).size();
    for (const Row& row : rows) widest = std::max(widest, (row.*field).size());
    return widest;
  };
  size_t index_w = width(&Row::index);
  size_t failed_w = width(&Row::failed_at);
  size_t attempts_w = width(&Row::attempts);
  size_t box_w = std::min<size_t>(width(&Row::box), 20);
  size_t size_w = width(&Row::size);
  size_t key_w = width(&Row::key);
  size_t fixed = index_w + failed_w + attempts_w + box_w + size_w + key_w + 12;
  size_t columns = TerminalColumns();
  size_t error_w = std::max<size_t>(30, columns > fixed ? columns - fixed : 0);
  error_w = std::min(error_w, width(&Row::error));
  auto print = [&](const Row& row) {
    std::printf("%*s  %-*s  %*s  %-*s  %*s  %-*s  %s\n", static_cast<int>(index_w),
                row.index.c_str(), static_cast<int>(failed_w), row.failed_at.c_str(),
                static_cast<int>(attempts_w), row.attempts.c_str(), static_cast<int>(box_w),
                Shorten(row.box, box_w).c_str(), static_cast<int>(size_w), row.size.c_str(),
                static_cast<int>(error_w), Shorten(row.error, error_w).c_str(), row.key.c_str());
  };
  print(header);
  for (const Row& row : rows) print(row);
}

int List(const config::Options& options, const FailedFlags& flags, const Filter& filter) {
  queue::QueueAdmin admin(options.redis);
  auto total = admin.FailedLength();
  if (!total) return Failed("failed list", total.error());
  std::vector<Entry> shown;
  int64_t matching = *total;
  if (filter.empty()) {
    auto raw = admin.ListFailed(0, flags.limit);
    if (!raw) return Failed("failed list", raw.error());
    for (size_t i = 0; i < raw->size(); ++i) {
      shown.push_back(MakeFailedQueueEntry(static_cast<int64_t>(i), std::move((*raw)[i])));
    }
  } else {
    auto found = report::MatchingFailed(admin, filter);
    if (!found) return Failed("failed list", found.error());
    matching = static_cast<int64_t>(found->size());
    for (auto& entry : *found) {
      if (static_cast<int64_t>(shown.size()) >= flags.limit) break;
      shown.push_back(std::move(entry));
    }
  }

  if (flags.json) {
    Json array = Json::array();
    for (const Entry& entry : shown) {
      Json item{{"index", entry.index}};
      if (entry.is_object()) {
        for (const auto& [key, value] : entry.document.items()) item[key] = value;
      } else {
        item["entry"] = entry.raw;
      }
      array.push_back(std::move(item));
    }
    std::printf("%s\n", array.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  if (*total == 0) {
    std::printf("the failed queue is empty\n");
    return kExitOk;
  }
  if (!shown.empty()) PrintTable(shown);
  std::printf("%zu shown, newest first, of %lld failed entries", shown.size(),
              static_cast<long long>(*total));
  if (!filter.empty()) {
    std::printf(" (%lld matching%s)", static_cast<long long>(matching), filter.Describe().c_str());
  }
  std::printf("\n");
  return kExitOk;
}

int Show(const config::Options& options, int64_t index) {
  queue::QueueAdmin admin(options.redis);
  auto raw = admin.FailedEntryAt(index);
  if (!raw) return Failed("failed show", raw.error());
  if (!raw->has_value()) {
    auto total = admin.FailedLength();
    std::fprintf(stderr,
                 "media-sync: failed show: no entry at index %lld (the failed queue holds %lld)\n",
                 static_cast<long long>(index), total ? static_cast<long long>(*total) : -1LL);
    return kExitFailed;
  }
  Entry entry = MakeFailedQueueEntry(index, std::move(**raw));
  if (entry.is_object()) {
    std::printf("%s\n", entry.document.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
  } else {
    std::printf("%s\n", entry.raw.c_str());
  }
  return kExitOk;
}

std::string Describe(const Entry& entry) {
  if (!entry.is_job()) return "entry that is not a job";
  return OneLine(entry.Text("s3_key")) + " (" + OneLine(entry.Text("error")) + ")";
}

int RequeueOne(queue::QueueAdmin& admin, int64_t index) {
  auto raw = admin.FailedEntryAt(index);
  if (!raw) return Failed("failed requeue", raw.error());
  if (!raw->has_value()) {
    auto total = admin.FailedLength();
    std::fprintf(stderr,
                 "media-sync: failed requeue: no entry at index %lld (the failed queue holds "
                 "%lld)\n",
                 static_cast<long long>(index), total ? static_cast<long long>(*total) : -1LL);
    return kExitFailed;
  }
  Entry entry = MakeFailedQueueEntry(index, std::move(**raw));
  std::vector<std::string> entries = {entry.raw};
  auto moved = admin.RequeueFailedEntries(entries);
  if (!moved) return Failed("failed requeue", moved.error());
  if (!moved->front()) {
    std::fprintf(stderr,
                 "media-sync: failed requeue: entry %lld was requeued or purged meanwhile; nothing "
                 "moved\n",
                 static_cast<long long>(index));
    return kExitFailed;
  }
  std::printf("requeued 1 failed job onto media:sync:pending: %s\n", Describe(entry).c_str());
  return kExitOk;
}

int Requeue(const config::Options& options, const FailedFlags& flags, bool by_index,
            const Filter& filter) {
  queue::QueueAdmin admin(options.redis);
  if (by_index) return RequeueOne(admin, flags.index);
  if (filter.empty()) {
    // --all or --count: the runbook's RPOPLPUSH, oldest first, each atomic.
    int64_t count = flags.all || flags.count == 0 ? INT64_MAX : flags.count;
    auto moved = admin.RequeueFailed(count);
    if (!moved) return Failed("failed requeue", moved.error());
    std::printf("requeued %lld failed jobs onto media:sync:pending\n",
                static_cast<long long>(*moved));
    return kExitOk;
  }
  auto found = report::MatchingFailed(admin, filter);
  if (!found) return Failed("failed requeue", found.error());
  std::vector<std::string> entries;
  // Oldest first, so they are served in the order they failed.
  entries.reserve(found->size());
  std::transform(found->rbegin(), found->rend(), std::back_inserter(entries),
                 [](const Entry& entry) { return entry.raw; });
  auto moved = admin.RequeueFailedEntries(entries);
  if (!moved) return Failed("failed requeue", moved.error());
  auto count = std::count(moved->begin(), moved->end(), true);
  std::printf("requeued %lld failed jobs onto media:sync:pending (%zu matched%s",
              static_cast<long long>(count), entries.size(), filter.Describe().c_str());
  if (static_cast<size_t>(count) < entries.size()) {
    std::printf("; %zu were requeued or purged meanwhile",
                entries.size() - static_cast<size_t>(count));
  }
  std::printf(")\n");
  return kExitOk;
}

// Asks on the terminal; false when declined.
bool Confirm(const std::string& question) {
  std::fprintf(stderr, "%s [y/N] ", question.c_str());
  std::fflush(stderr);
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  answer = Lower(answer);
  return answer == "y" || answer == "yes";
}

int Purge(const config::Options& options, const FailedFlags& flags, const Filter& filter) {
  if (!flags.all && filter.empty()) {
    std::fprintf(stderr,
                 "media-sync: failed purge: say what to delete: --all, or a filter (--grep TEXT, "
                 "--box ID)\n");
    return kExitUsage;
  }
  queue::QueueAdmin admin(options.redis);
  std::vector<Entry> found;
  int64_t count = 0;
  queue::QueueAdmin::FailedSnapshot seen;
  if (flags.all) {
    auto snapshot = admin.SnapshotFailed();
    if (!snapshot) return Failed("failed purge", snapshot.error());
    seen = std::move(*snapshot);
    count = seen.count;
  } else {
    auto matching = report::MatchingFailed(admin, filter);
    if (!matching) return Failed("failed purge", matching.error());
    found = std::move(*matching);
    count = static_cast<int64_t>(found.size());
  }
  if (count == 0) {
    std::printf("deleted 0 failed entries (none %s)\n", flags.all ? "in the queue" : "matched");
    return kExitOk;
  }
  std::string what = std::to_string(count) + " failed entries" +
                     (flags.all ? std::string(" (all)") : " matching" + filter.Describe());
  if (!flags.yes) {
    if (!isatty(STDIN_FILENO)) {
      std::fprintf(stderr,
                   "media-sync: failed purge: would delete %s; not on a terminal to confirm: pass "
                   "--yes\n",
                   what.c_str());
      return kExitUsage;
    }
    if (!Confirm("Delete " + what + "? This cannot be undone.")) {
      std::fprintf(stderr, "media-sync: failed purge: not confirmed; nothing deleted\n");
      return kExitFailed;
    }
  }
  int64_t deleted = 0;
  if (flags.all) {
    // Exactly the entries counted, those still there: any requeued meanwhile
    // (the runbook's RPOPLPUSH takes the oldest) are not made up for with
    // entries that failed since, which nobody was asked about.
    auto purged = admin.PurgeFailedSnapshot(seen);
    if (!purged) return Failed("failed purge", purged.error());
    deleted = *purged;
  } else {
    std::vector<std::string> entries;
    entries.reserve(found.size());
    for (const Entry& entry : found) entries.push_back(entry.raw);
    auto removed = admin.DeleteFailedEntries(entries);
    if (!removed) return Failed("failed purge", removed.error());
    deleted = std::count(removed->begin(), removed->end(), true);
  }
  std::printf("deleted %lld failed entries", static_cast<long long>(deleted));
  if (deleted < count) {
    std::printf(" (%lld of the %lld were requeued or purged meanwhile)",
                static_cast<long long>(count - deleted), static_cast<long long>(count));
  }
  std::printf("\n");
  return kExitOk;
}

void AddFilters(CLI::App* app, FailedFlags& flags) {
  app->add_option("--grep", flags.grep,
                  "Entries whose error, s3_key, sha256 or local_path contains TEXT (any case)");
  app->add_option("--box", flags.box, "Entries of this storage_box_id");
}

}  // namespace

Command AddFailedCommand(CLI::App& app) {
  auto flags = std::make_shared<FailedFlags>();
  Command command;
  command.app = app.add_subcommand("failed", "Inspect, requeue or purge the failed queue.");
  command.app->require_subcommand(1);
  command.app->footer(
      "Entries are numbered from 0, the newest, as `failed list` shows them.\n"
      "Examples:\n"
      "  media-sync failed list --grep 'size mismatch'\n"
      "  media-sync failed show 0\n"
      "  media-sync failed requeue --box russia-1\n"
      "  media-sync failed purge --grep 'not valid JSON' --yes");

  auto* list = command.app->add_subcommand(
      "list", "Print failed entries as a table, newest first, with their index.");
  list->add_option("--limit", flags->limit, "How many entries at most (default 20)")
      ->check(CLI::PositiveNumber);
  list->add_flag("--json", flags->json, "One JSON array of the entries, each with its index");
  AddFilters(list, *flags);
  list->footer(
      "Columns: index (0 = newest), failed_at, attempts, box, size, error (shortened to fit), "
      "key.\n"
      "Examples:\n"
      "  media-sync failed list --limit 50 --box russia-1\n"
      "  media-sync failed list --grep 3f2a9c --json");

  auto* show = command.app->add_subcommand("show", "Print one failed entry whole, as JSON.");
  show->add_option("index", flags->index, "Index as in `failed list` (0 = newest)")
      ->required()
      ->check(CLI::NonNegativeNumber);
  show->footer("Example:\n  media-sync failed show 0");

  auto* requeue = command.app->add_subcommand(
      "requeue",
      "Move failed entries back to pending, each atomically, with a fresh retry budget.");
  auto* index = requeue->add_option("index", flags->index, "Index as in `failed list`")
                    ->check(CLI::NonNegativeNumber);
  AddFilters(requeue, *flags);
  auto* all = requeue->add_flag("--all", flags->all, "Every entry");
  auto* count = requeue->add_option("--count", flags->count,
                                    "The N oldest entries, like the runbook's RPOPLPUSH (0: all; "
                                    "default with no other choice: 1)");
  count->check(CLI::NonNegativeNumber);
  for (CLI::Option* selector : {all, count}) {
    index->excludes(selector);
    requeue->get_option("--grep")->excludes(selector);
    requeue->get_option("--box")->excludes(selector);
  }
  index->excludes("--grep")->excludes("--box");
  all->excludes(count);
  requeue->footer(
      "One entry by index, the entries matching --grep/--box, --all, or the --count oldest.\n"
      "Indexes shift as new failures arrive: to pick one job wherever it is, use --grep SHA256.\n"
      "Examples:\n"
      "  media-sync failed requeue 3\n"
      "  media-sync failed requeue --grep 'storage box' --box russia-1\n"
      "  media-sync failed requeue --all");

  auto* purge = command.app->add_subcommand(
      "purge", "Delete failed entries for good (asks first on a terminal).");
  AddFilters(purge, *flags);
  auto* purge_all = purge->add_flag("--all", flags->all, "Every entry");
  purge_all->excludes(purge->get_option("--grep"))->excludes(purge->get_option("--box"));
  purge->add_flag("--yes", flags->yes, "Do not ask (needed when not on a terminal)");
  purge->footer(
      "Examples:\n"
      "  media-sync failed purge --grep 'payload is not valid JSON'\n"
      "  media-sync failed purge --all --yes");

  command.run = [=](const config::Options& options) {
    Filter filter{Lower(flags->grep), flags->box};
    if (list->parsed()) return List(options, *flags, filter);
    if (show->parsed()) return Show(options, flags->index);
    if (requeue->parsed()) return Requeue(options, *flags, index->count() > 0, filter);
    if (purge->parsed()) return Purge(options, *flags, filter);
    return kExitUsage;
  };
  return command;
}

}  // namespace media_sync::cli
