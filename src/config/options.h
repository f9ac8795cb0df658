// All of media-sync's settings, read from the environment in one place
// (LoadOptions) and validated at start-up. docs/contract.md §1 fixes the platform's
// variables; the rest are the worker's own. Every field names its variable.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/s3_options.h"
#include "config/urls.h"
#include "core/result.h"

namespace media_sync::config {

enum class LogFormat { kText, kJson };

// RECONCILE_INTERVAL_SECONDS when REDIS_URL names Sentinels and the variable is unset.
inline constexpr std::chrono::seconds kSentinelReconcileInterval{300};

struct Options {
  // Platform contract.
  std::string redis_url = "redis://localhost:6379/0";  // REDIS_URL
  RedisAddress redis;                                  // parsed REDIS_URL
  std::string database_url;                            // DATABASE_URL (required by run/reconcile)
  std::string database_conninfo;                       // libpq URI derived from DATABASE_URL
  s3::S3Options
      s3;  // MINIO_ENDPOINT/_ACCESS_KEY/_SECRET_KEY/_BUCKET/_SECURE/_REGION/_CA_FILE, S3_*
  std::string buffer_path = "/var/cache/osint-media-buffer";  // MEDIA_BUFFER_PATH

  // Worker.
  int concurrency = 128;  // SYNC_CONCURRENCY: job threads, the most jobs in flight per process
  int box_max_in_flight =
      0;                // BOX_MAX_IN_FLIGHT: ceiling of a box's adaptive limit; 0: concurrency
  int max_retries = 3;  // MAX_RETRIES
  std::chrono::seconds retry_delay{5};          // RETRY_DELAY_SECONDS: attempt n waits n x this
  std::chrono::seconds shutdown_grace{30};      // SHUTDOWN_GRACE_SECONDS
  std::chrono::seconds lease{30};               // LEASE_SECONDS: heartbeat TTL of a worker
  std::chrono::seconds box_refresh{30};         // BOX_REFRESH_SECONDS: re-read box endpoints
  std::chrono::seconds outage_backoff_max{30};  // OUTAGE_BACKOFF_MAX_SECONDS
  int db_pool_size = 4;                         // DB_POOL_SIZE: PostgreSQL connections
  std::string worker_id;                        // WORKER_ID: default <hostname>-<pid>
  // METRICS_ADDRESS: empty disables /metrics. Loopback unless told otherwise:
  // the image sets 0.0.0.0:9108 (a container's interfaces are its own).
  std::string metrics_address = "127.0.0.1:9108";
  std::chrono::seconds health_stall{120};   // HEALTH_STALL_SECONDS: /healthz red past this stall
  std::string log_level = "info";           // LOG_LEVEL: trace|debug|info|warn|error|critical|off
  LogFormat log_format = LogFormat::kText;  // LOG_FORMAT: text|json

  // RECONCILE_INTERVAL_SECONDS: how often `run` re-enqueues lost jobs (one
  // worker at a time, under a Redis lock); 0 = off. Unset, it is off for one
  // Redis server and kSentinelReconcileInterval with Sentinels, whose
  // failovers may drop the last writes (a producer's LPUSH among them).
  std::chrono::seconds reconcile_interval{0};
  // RECONCILE_OLDER_THAN_SECONDS: the periodic reconcile leaves rows younger
  // than this alone (their producer may not have pushed the job yet).
  std::chrono::seconds reconcile_older_than{3600};

  // AUDIT_INTERVAL_SECONDS: how often `run` audits the stored data in the
  // background (one worker at a time, under a Redis lock); 0 = off.
  std::chrono::seconds audit_interval{0};
  // AUDIT_RATE: objects the background audit checks per second at most.
  int audit_rate = 100;
  // AUDIT_DEEP: the background audit reads every object back and hashes it.
  bool audit_deep = false;

  // DATABASE_URL must be set for commands that touch PostgreSQL.
  Status RequireDatabase() const;
  // The most jobs one storage box may hold at once, the ceiling of its
  // adaptive limit (worker/box_registry.h): BOX_MAX_IN_FLIGHT, by default
  // `concurrency` (a lone box may use every job thread).
  int BoxMaxInFlight() const { return box_max_in_flight > 0 ? box_max_in_flight : concurrency; }
};

// Reads a variable; nullopt when unset. Tests pass a map-backed lookup.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
EnvLookup ProcessEnvironment();

// Parses and validates every variable. The first bad value fails with
// kConfiguration and a message naming the variable and the problem, never
// quoting a secret.
Result<Options> LoadOptions(const EnvLookup& env);

// The effective configuration as (variable, value) rows, secrets masked.
std::vector<std::pair<std::string, std::string>> Describe(const Options& options);

// "16MiB", "512KiB", "1GiB", "1048576" -> bytes; nullopt when malformed.
std::optional<uint64_t> ParseByteSize(std::string_view text);

}  // namespace media_sync::config
