// The failed queue as operators read it, for `media-sync failed` and the web
// console: each entry as stored (what requeue and purge act on, exactly) and
// parsed, the filter both offer (text and box), and the walk over the queue
// that filtering needs.
//
// Entries are numbered as LRANGE counts them: 0 is the newest. Indexes shift
// as new failures arrive, so a change always names the exact entries read
// (queue::QueueAdmin moves or deletes each one atomically), never "whatever
// is at index N now".
//
// Thread-safety: none beyond the QueueAdmin passed in (one per thread).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "queue/queue_admin.h"

namespace media_sync::report {

// One failed entry as read, and what is known of it.
struct FailedQueueEntry {
  int64_t index = 0;
  std::string raw;                  // exactly as stored: what requeue and purge act on
  nlohmann::ordered_json document;  // discarded when not a JSON object

  bool is_object() const { return document.is_object(); }
  // A field as text ("" when absent or null; JSON text when not a string).
  std::string Text(const char* field) const;
  // Not a job: a garbage payload kept under raw / raw_base64, or not JSON.
  bool is_job() const;
};

FailedQueueEntry MakeFailedQueueEntry(int64_t index, std::string raw);

struct FailedFilter {
  std::string grep;  // matched in any case against error, s3_key, sha256, local_path
  std::string box;   // storage_box_id, exactly
  bool empty() const { return grep.empty() && box.empty(); }
  // " --grep 'TEXT' --box 'ID'", as the command line would say it.
  std::string Describe() const;
};

bool Matches(const FailedQueueEntry& entry, const FailedFilter& filter);

// Entries read per LRANGE while walking the queue.
inline constexpr int64_t kFailedScanChunk = 500;

// Walks the failed queue newest first, chunk by chunk, until `visit` returns
// false or the end. Not a snapshot: entries arriving meanwhile shift the
// chunks, so an entry may be seen twice or missed (the filter's callers act
// on exact entries, which makes either harmless).
Status ScanFailed(queue::QueueAdmin& admin, const std::function<bool(FailedQueueEntry)>& visit);

// Every entry matching the filter, newest first.
Result<std::vector<FailedQueueEntry>> MatchingFailed(queue::QueueAdmin& admin,
                                                     const FailedFilter& filter);

// `text` in lower case (ASCII), as the filter compares.
std::string Lower(std::string text);

// An entry's id: the first 16 hex digits of the SHA-256 of its bytes. A page
// names the exact entries it showed by their ids, whatever indexes they have
// by the time it acts; identical entries share an id, and are one as far as
// requeue and purge go (each acts on one copy).
std::string FailedEntryId(std::string_view raw);

// One entry for the console: index, id, failed_at, attempts, box, size,
// error, key, sha256, kind ("job", "not_a_job", "not_json") and the entry
// itself (the JSON object, or the stored text when it is not one).
nlohmann::ordered_json FailedEntryJson(const FailedQueueEntry& entry);

// A page of the failed queue, newest first: {total, matching, offset, limit,
// entries}. Without a filter it reads only the page; with one it reads the
// whole queue (to count the matches) in chunks.
Result<nlohmann::ordered_json> FailedPageJson(queue::QueueAdmin& admin, const FailedFilter& filter,
                                              int64_t offset, int64_t limit);

// The entries a page asked for: each index with, when given, the id the page
// showed there. An index holding another entry by now (new failures shifted
// it) is looked for by its id in the whole queue. `missing` counts those no
// longer anywhere (requeued or purged meanwhile) or past the end.
struct FailedSelection {
  std::vector<FailedQueueEntry> entries;  // distinct, in the order asked
  int64_t missing = 0;
};
Result<FailedSelection> SelectFailed(queue::QueueAdmin& admin, const std::vector<int64_t>& indexes,
                                     const std::vector<std::string>& ids);

}  // namespace media_sync::report
