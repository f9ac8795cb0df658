// The status document: is the fleet healthy, and how far behind? One JSON
// object with stable keys (`queues`, `oldest_pending_age_seconds`,
// `next_retry_due`, `workers`, `live_workers`, `throughput`, `boxes`,
// `unsynced_rows`, `schema`, `healthy`, `problems`, plus `database_error`
// when PostgreSQL could not be read), printed by `media-sync status --json`
// and served by the web console's GET /api/status: both call CollectStatus,
// so the two never differ.
//
// Reads the queue and what the workers publish in Redis (queue/fleet_stats.h),
// and the boxes' counters and unsynced rows in PostgreSQL (when DATABASE_URL
// is set).
//
// Errors: Redis unreachable is the call's error (kOutage); PostgreSQL
// unreachable is not: the document then carries `database_error` and a
// problem saying so.
#pragma once

#include <nlohmann/json.hpp>

#include "catalog/pg_catalog.h"
#include "config/options.h"
#include "core/result.h"
#include "queue/fleet_stats.h"
#include "queue/queue_admin.h"

namespace media_sync::report {

using Json = nlohmann::ordered_json;

// Minutes of per-minute counters the `throughput` figures sum, and the
// seconds of its `last_minute`.
inline constexpr int kStatusThroughputMinutes = 5;
inline constexpr int kStatusLastMinuteSeconds = 60;
// Held jobs listed per worker.
inline constexpr int64_t kStatusJobsPerWorker = 5;

// With the caller's connections (one thread's; `catalog` may be null when
// DATABASE_URL is not set, and is shared: PgCatalog is thread-safe).
Result<Json> CollectStatus(const config::Options& options, queue::QueueAdmin& admin,
                           queue::FleetStats& fleet, catalog::PgCatalog* catalog);

// With connections of its own, made for this call.
Result<Json> CollectStatus(const config::Options& options);

// What a held or queued job is, for lists: {sha256, key, box, size}, or
// {invalid: why} for a payload that is not a valid job.
Json JobSummary(const std::string& payload);

}  // namespace media_sync::report
