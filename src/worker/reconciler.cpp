#include "worker/reconciler.h"

#include <algorithm>
#include <optional>
#include <random>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "core/job.h"
#include "util/sha256_filter.h"

namespace media_sync::worker {
namespace {

// Rows read per query: one round trip per page, a bounded reply.
constexpr int kPageRows = 1000;
// Rows with nothing left to sync kept in the report as examples; the rest
// are counted.
constexpr size_t kNothingLeftKept = 1000;

}  // namespace

std::string_view ToString(LostJob::Source source) {
  switch (source) {
    case LostJob::Source::kLocalFile:
      return "local file";
    case LostJob::Source::kStoredObject:
      return "object in storage";
    case LostJob::Source::kUnchecked:
      return "object not checked";
  }
  return "?";
}

Reconciler::Reconciler(ReconcileSources sources, Clock& clock) : sources_(sources), clock_(clock) {}

std::string Reconciler::PayloadFor(const UnsyncedFile& row) const {
  // The platform's buffer layout: the file sits at <buffer>/<s3_key>.
  return MakeJobPayload(NewJob{row.sha256, row.s3_key, sources_.buffer.path() + "/" + row.s3_key,
                               row.storage_box_id, row.file_size, clock_.WallNow()});
}

Result<std::optional<LostJob>> Reconciler::Classify(const UnsyncedFile& row, std::stop_token stop) {
  LostJob lost{row, LostJob::Source::kLocalFile, ""};
  auto local = sources_.buffer.Open(row.s3_key);
  if (!local) {
    // A path problem the worker will name in the failed entry.
    lost.note = local.error().message;
    return std::optional<LostJob>(std::move(lost));
  }
  if (local->has_value()) return std::optional<LostJob>(std::move(lost));

  auto store = sources_.stores.ForBox(row.storage_box_id);
  if (!store) {
    lost.source = LostJob::Source::kUnchecked;
    lost.note = store.error().message;
    return std::optional<LostJob>(std::move(lost));
  }
  auto object = (*store)->Stat(row.s3_key, std::move(stop));
  if (!object) {
    if (object.error().kind == ErrorKind::kCancelled) return object.error();
    lost.source = LostJob::Source::kUnchecked;
    lost.note = object.error().message;
    return std::optional<LostJob>(std::move(lost));
  }
  if (!object->has_value()) return std::optional<LostJob>();
  lost.source = LostJob::Source::kStoredObject;
  return std::optional<LostJob>(std::move(lost));
}

Result<ReconcileReport> Reconciler::Run(const ReconcileSettings& settings, std::stop_token stop,
                                        const Checkpoint& checkpoint) {
  auto check = [&]() -> Status {
    if (stop.stop_requested()) return Error::Cancelled("reconcile stopped");
    return checkpoint ? checkpoint() : Ok();
  };
  ReconcileReport report;
  if (settings.limit <= 0) return report;

  // Which sha256s have a job in Redis, in a filter of bounded size: the
  // queues may hold millions of jobs during a backlog. A row it names is
  // taken as queued (a false hit, rare, waits for a later pass: each filter
  // has its own seed); one it does not name surely had no job when read.
  // The walk calls the checkpoint between chunks: a long one keeps the lock.
  auto entries = sources_.queue.QueuedEntries();
  if (!entries) return entries.error();
  Sha256Filter queued(static_cast<uint64_t>(std::max<int64_t>(*entries, 0)),
                      std::random_device{}());
  if (auto walked = sources_.queue.ForEachQueuedSha256(
          [&queued](std::string_view sha256) { queued.Add(sha256); }, check);
      !walked) {
    return walked.error();
  }
  const int older_than = static_cast<int>(settings.older_than.count());

  UnsyncedCursor cursor;
  while (!report.limit_reached) {
    if (auto status = check(); !status) return status.error();
    auto page = sources_.catalog.UnsyncedAfter(cursor, kPageRows, older_than);
    if (!page) return page.error();
    if (page->empty()) break;
    for (const UnsyncedFile& row : *page) {
      ++report.rows_examined;
      if (queued.MightContain(row.sha256)) {
        ++report.still_queued;
        continue;
      }
      if (auto status = check(); !status) return status.error();
      auto lost = Classify(row, stop);
      if (!lost) return lost.error();
      if (!lost->has_value()) {
        ++report.nothing_left_rows;
        if (report.nothing_left.size() < kNothingLeftKept) report.nothing_left.push_back(row);
        continue;
      }
      report.enqueued.push_back(std::move(**lost));
      if (static_cast<int>(report.enqueued.size()) >= settings.limit) {
        report.limit_reached = true;
        break;
      }
    }
  }
  if (settings.dry_run || report.enqueued.empty()) return report;

  // The second look, exact and bounded by the limit: a job that was moving
  // between keys during the first read is found now, and is not pushed
  // twice.
  if (auto status = check(); !status) return status.error();
  std::unordered_set<std::string> candidates;
  for (const LostJob& lost : report.enqueued) candidates.insert(lost.row.sha256);
  std::unordered_set<std::string> appeared;
  if (auto walked = sources_.queue.ForEachQueuedSha256(
          [&](std::string_view sha256) {
            if (auto found = candidates.find(std::string(sha256)); found != candidates.end()) {
              appeared.insert(*found);
            }
          },
          check);
      !walked) {
    return walked.error();
  }
  std::vector<LostJob> still_lost;
  for (LostJob& lost : report.enqueued) {
    if (appeared.count(lost.row.sha256) > 0) {
      ++report.appeared_meanwhile;
      ++report.still_queued;
    } else {
      still_lost.push_back(std::move(lost));
    }
  }
  report.enqueued = std::move(still_lost);

  std::vector<std::string> payloads;
  payloads.reserve(report.enqueued.size());
  for (const LostJob& lost : report.enqueued) payloads.push_back(PayloadFor(lost.row));
  if (auto pushed = sources_.producer.Enqueue(payloads); !pushed) return pushed.error();
  return report;
}

}  // namespace media_sync::worker
