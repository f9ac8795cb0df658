// What the web console shows beyond the status document (status_report.h):
// the fleet's activity minute by minute (the 24-hour chart and the failures
// by class), the workers with their leases and the jobs they hold (with the
// progress of multipart uploads), and where one job is (the job lookup).
//
// Thread-safety: none beyond the adapters passed in (one set per thread;
// PgCatalog is thread-safe and may be shared).
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "catalog/pg_catalog.h"
#include "core/result.h"
#include "queue/fleet_stats.h"
#include "queue/job_finder.h"
#include "queue/queue_admin.h"

namespace media_sync::report {

using Json = nlohmann::ordered_json;

// The longest span of minutes the activity covers (the counters' retention
// is a little longer).
inline constexpr int kActivityMaxMinutes = 24 * 60;

// {minutes: [{minute (ISO 8601 UTC), files, bytes, failed, retried}, ...]
// oldest first, the last one the current minute so far; totals: {files,
// bytes, failed, retried}; faults_by_class: {class: {failed, retried}}
// summed over the span, largest first}.
Result<Json> CollectActivity(queue::FleetStats& fleet, int minutes,
                             std::chrono::system_clock::time_point now);

// Every worker registered in Redis: {id, live, held, host, pid, started_at,
// jobs: [{sha256, key, box, size, upload}]}, where `jobs` lists up to
// `jobs_per_worker` held jobs (newest first) and `upload` is null or, for a
// multipart upload the journal records on `bucket`, {parts, bytes_stored,
// part_size}. Streamed and single PutObjects have no progress to show.
Result<Json> CollectWorkers(queue::QueueAdmin& admin, queue::FleetStats& fleet,
                            const std::string& bucket, int64_t jobs_per_worker);

// The sha256 a lookup names: 64 hex digits (any case), or a content key
// media/ab/cd/<sha256>[.ext]. kInput naming the problem otherwise.
Result<std::string> LookupSha256(std::string_view query);

// Where the job of `sha256` is: {sha256, state, places: [{where, position,
// due, worker, worker_live, upload, failed_at, attempts, error, job}],
// searched: {entries, complete}, row: {...} or null, database_error?}.
// `state` sums it up: "synced", "failed", "processing", "delayed",
// "pending", "unsynced" (a row, no job anywhere in Redis) or "unknown".
Result<Json> LookUpJob(const std::string& sha256, queue::JobFinder& finder,
                       queue::QueueAdmin& admin, queue::FleetStats& fleet,
                       catalog::PgCatalog* catalog, const std::string& bucket,
                       std::chrono::milliseconds budget);

}  // namespace media_sync::report
