// A sync job as producers push it (docs/contract.md §1), its validation, and the
// rewrites the worker makes to it (retry count, failed-queue entry).
//
// Parsing is bounded (payload size, nesting depth) and never throws: every
// problem is a kJobPermanent error whose message names the field.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace media_sync {

inline constexpr size_t kMaxJobBytes = size_t{64} * 1024;
inline constexpr int kMaxJobDepth = 16;
// Of kMaxJobBytes, what a job's JSON as the worker writes it (compact, with
// the largest retry_count) may take: the rest is room for a failed entry's
// fields, so a job accepted once is accepted again after a retry or when
// its failed entry is requeued.
inline constexpr size_t kMaxJobJsonBytes = kMaxJobBytes - 4096;
// A failed entry's error is cut to this many bytes (within that room).
inline constexpr size_t kMaxFailedErrorBytes = 512;

struct Job {
  std::string payload;  // the JSON to re-queue: unknown fields kept, failure fields stripped
  std::string sha256;   // lowercase hex
  std::string s3_key;
  std::string local_path;
  uint64_t file_size = 0;
  std::optional<std::string> storage_box_id;
  int retry_count = 0;
  // queued_at, when present and readable (ISO 8601; no zone means UTC).
  std::optional<std::chrono::system_clock::time_point> queued_at;
  // True when the payload was a failed-queue entry requeued by an operator
  // (RPOPLPUSH media:sync:failed media:sync:pending): it starts a fresh budget.
  bool requeued_from_failed = false;
};

// A new job as a producer writes it, in the seed's field order.
struct NewJob {
  std::string sha256;
  std::string s3_key;
  std::string local_path;
  std::optional<std::string> storage_box_id;  // null in the JSON when absent
  uint64_t file_size = 0;
  std::chrono::system_clock::time_point queued_at;
};

// The JSON payload of a new job (retry_count 0), as LPUSHed onto pending.
std::string MakeJobPayload(const NewJob& job);

// Validates a raw payload. A failed-queue entry (has failed_at) comes back
// with error/failed_at/attempts removed and retry_count reset to 0.
//
// Every string the worker passes on is checked for what has no place there:
// storage_box_id reaches SQL, metric labels and logs, local_path the file
// system and logs, so neither may hold a control character (U+0000 to
// U+001F, U+007F to U+009F; PostgreSQL cannot even store U+0000, and libpq
// would cut the value short there). sha256 is hexadecimal and s3_key must
// be the content key, so theirs cannot either. queued_at is only read, and
// unknown fields are only kept.
Result<Job> ParseJob(std::string_view payload);

// Why `box` cannot be a storage_box_id (empty, or a control character, as
// ParseJob says it), or nullopt when it can. For the operator commands that
// take a box id, so that they never queue a job the worker would refuse.
std::optional<std::string> BoxIdProblem(std::string_view box);

// The object key a sha256 and extension must map to: media/ab/cd/<sha>.<ext>.
std::string ContentKey(std::string_view sha256, std::string_view extension);

// `payload` (a valid job object) with retry_count set; other fields and their order kept.
std::string WithRetryCount(std::string_view payload, int retry_count);

// The failed-queue entry: the job object plus error, failed_at (ISO 8601 UTC)
// and attempts. A payload that is not a JSON object is kept whole under "raw".
std::string FailedEntry(std::string_view payload, std::string_view error, int attempts,
                        std::chrono::system_clock::time_point now);

std::string IsoTimestamp(std::chrono::system_clock::time_point when);
// "2024-01-15T12:00:00", with optional .fraction and Z or ±hh:mm; nullopt
// when the text is not such a time.
std::optional<std::chrono::system_clock::time_point> ParseIsoTimestamp(std::string_view text);

}  // namespace media_sync
