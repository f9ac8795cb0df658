#include "config/options.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

namespace media_sync::config {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kMinPartSize = 5 * kMiB;          // S3: every part but the last
constexpr uint64_t kMaxSinglePut = 5ull << 30;       // S3: 5 GiB per PutObject / part
constexpr uint64_t kMaxBandwidthLimit = 1ull << 40;  // 1 TiB/s: beyond any link
constexpr std::string_view kMaskedSecret = "********";

Error Bad(std::string_view variable, std::string_view value, std::string_view problem) {
  return Error::Configuration(std::string(variable) + "='" + std::string(value) +
                              "': " + std::string(problem));
}

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Reads one variable into `out` through `parse`; leaves the default when unset.
class Reader {
 public:
  explicit Reader(const EnvLookup& env) : env_(env) {}

  Status String(std::string_view name, std::string& out, bool allow_empty = false) {
    auto value = env_(name);
    if (!value) return Ok();
    if (value->empty() && !allow_empty) return Bad(name, *value, "must not be empty");
    out = *value;
    return Ok();
  }

  Status Integer(std::string_view name, int& out, int min, int max) {
    auto value = env_(name);
    if (!value) return Ok();
    int parsed = 0;
    auto [ptr, ec] = std::from_chars(value->data(), value->data() + value->size(), parsed);
    if (value->empty() || ec != std::errc() || ptr != value->data() + value->size()) {
      return Bad(name, *value, "is not a whole number");
    }
    if (parsed < min || parsed > max) {
      return Bad(name, *value,
                 "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    out = parsed;
    return Ok();
  }

  template <typename Duration>
  Status Seconds(std::string_view name, Duration& out, int min, int max) {
    int seconds = static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(out).count());
    if (auto status = Integer(name, seconds, min, max); !status) return status;
    out = std::chrono::duration_cast<Duration>(std::chrono::seconds(seconds));
    return Ok();
  }

  Status Boolean(std::string_view name, bool& out) {
    auto value = env_(name);
    if (!value) return Ok();
    std::string lower = Lower(*value);
    if (lower == "true" || lower == "1" || lower == "yes" || lower == "on") {
      out = true;
    } else if (lower == "false" || lower == "0" || lower == "no" || lower == "off") {
      out = false;
    } else {
      return Bad(name, *value, "is not a boolean (true/false, 1/0, yes/no, on/off)");
    }
    return Ok();
  }

  Status Bytes(std::string_view name, uint64_t& out, uint64_t min, uint64_t max) {
    auto value = env_(name);
    if (!value) return Ok();
    auto parsed = ParseByteSize(*value);
    if (!parsed) return Bad(name, *value, "is not a size (bytes, or with KiB/MiB/GiB)");
    if (*parsed < min || *parsed > max) {
      return Bad(
          name, *value,
          "must be between " + std::to_string(min) + " and " + std::to_string(max) + " bytes");
    }
    out = *parsed;
    return Ok();
  }

 private:
  const EnvLookup& env_;
};

std::string DefaultWorkerId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "worker");
  }
  return std::string(host) + "-" + std::to_string(getpid());
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes % kMiB == 0) return std::to_string(bytes / kMiB) + "MiB";
  return std::to_string(bytes);
}

}  // namespace

#define MEDIA_SYNC_TRY(expr)                                     \
  do {                                                           \
    if (auto status_ = (expr); !status_) return status_.error(); \
  } while (false)

std::optional<uint64_t> ParseByteSize(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || ptr == text.data()) return std::nullopt;
  std::string unit = Lower(std::string_view(ptr, text.data() + text.size() - ptr));
  uint64_t scale = 1;
  if (unit.empty() || unit == "b") {
    scale = 1;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    scale = 1ull << 10;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    scale = 1ull << 20;
  } else if (unit == "g" || unit == "gb" || unit == "gib") {
    scale = 1ull << 30;
  } else {
    return std::nullopt;
  }
  if (number > UINT64_MAX / scale) return std::nullopt;
  return number * scale;
}

EnvLookup ProcessEnvironment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Status Options::RequireDatabase() const {
  if (database_url.empty()) {
    return Error::Configuration(
        "DATABASE_URL is not set (postgresql://user:password@host:port/db)");
  }
  return Ok();
}

Result<Options> LoadOptions(const EnvLookup& env) {
  Options o;
  Reader read(env);

  MEDIA_SYNC_TRY(read.String("REDIS_URL", o.redis_url));
  auto redis = ParseRedisUrl(o.redis_url);
  if (!redis) return redis.error();
  o.redis = *redis;

  MEDIA_SYNC_TRY(read.String("DATABASE_URL", o.database_url, /*allow_empty=*/true));
  if (!o.database_url.empty()) {
    auto conninfo = ParseDatabaseUrl(o.database_url);
    if (!conninfo) return conninfo.error();
    o.database_conninfo = *conninfo;
  }

  MEDIA_SYNC_TRY(read.String("MINIO_ENDPOINT", o.s3.endpoint));
  if (o.s3.endpoint.find("://") != std::string::npos ||
      o.s3.endpoint.find('/') != std::string::npos) {
    return Bad("MINIO_ENDPOINT", o.s3.endpoint,
               "must be host:port without scheme or path (use MINIO_SECURE for https)");
  }
  MEDIA_SYNC_TRY(read.String("MINIO_ACCESS_KEY", o.s3.access_key));
  {
    auto secret = env("MINIO_SECRET_KEY");
    if (secret) {
      if (secret->empty()) return Bad("MINIO_SECRET_KEY", "", "must not be empty");
      o.s3.secret_key = *secret;
    }
  }
  MEDIA_SYNC_TRY(read.String("MINIO_BUCKET", o.s3.bucket));
  if (o.s3.bucket.size() < 3 || o.s3.bucket.size() > 63 ||
      o.s3.bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") !=
          std::string::npos) {
    return Bad("MINIO_BUCKET", o.s3.bucket,
               "is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')");
  }
  MEDIA_SYNC_TRY(read.Boolean("MINIO_SECURE", o.s3.secure));
  MEDIA_SYNC_TRY(read.String("MINIO_REGION", o.s3.region));
  MEDIA_SYNC_TRY(read.String("MINIO_CA_FILE", o.s3.ca_file, /*allow_empty=*/true));
  if (!o.s3.ca_file.empty() && access(o.s3.ca_file.c_str(), R_OK) != 0) {
    return Bad("MINIO_CA_FILE", o.s3.ca_file, "cannot be read");
  }
  MEDIA_SYNC_TRY(read.Seconds("S3_CONNECT_TIMEOUT_SECONDS", o.s3.connect_timeout, 1, 600));
  MEDIA_SYNC_TRY(read.Seconds("S3_LOW_SPEED_SECONDS", o.s3.low_speed_time, 1, 3600));
  if (env("S3_MULTIPART_THRESHOLD")) {
    uint64_t threshold = 0;
    MEDIA_SYNC_TRY(read.Bytes("S3_MULTIPART_THRESHOLD", threshold, kMinPartSize, kMaxSinglePut));
    o.s3.multipart_threshold = threshold;
  }
  MEDIA_SYNC_TRY(read.Bytes("S3_PART_SIZE", o.s3.part_size, kMinPartSize, kMaxSinglePut));
  MEDIA_SYNC_TRY(read.Integer("S3_PART_PARALLELISM", o.s3.part_parallelism, 1, 64));
  MEDIA_SYNC_TRY(read.Boolean("S3_CONTENT_MD5", o.s3.content_md5));
  MEDIA_SYNC_TRY(read.Bytes("S3_BUFFER_POOL", o.s3.buffer_pool_bytes, kMinPartSize, 64ull << 30));
  // Buffers hold a whole small file or one part; larger single PUTs stream.
  if (o.s3.buffer_pool_bytes < o.s3.part_size) {
    return Bad(
        "S3_BUFFER_POOL", FormatBytes(o.s3.buffer_pool_bytes),
        "must hold at least one upload buffer of S3_PART_SIZE = " + FormatBytes(o.s3.part_size));
  }

  MEDIA_SYNC_TRY(read.String("MEDIA_BUFFER_PATH", o.buffer_path));
  if (o.buffer_path.front() != '/') {
    return Bad("MEDIA_BUFFER_PATH", o.buffer_path, "must be an absolute path");
  }
  while (o.buffer_path.size() > 1 && o.buffer_path.back() == '/') o.buffer_path.pop_back();

  MEDIA_SYNC_TRY(read.Integer("SYNC_CONCURRENCY", o.concurrency, 1, 1024));
  // Bytes per second like rclone's --bwlimit (10M is 10 MiB/s); empty or 0: no cap.
  if (!env("SYNC_BANDWIDTH_LIMIT").value_or("").empty()) {
    MEDIA_SYNC_TRY(read.Bytes("SYNC_BANDWIDTH_LIMIT", o.s3.bandwidth_limit, 0, kMaxBandwidthLimit));
  }
  MEDIA_SYNC_TRY(read.Integer("BOX_MAX_IN_FLIGHT", o.box_max_in_flight, 1, 1024));
  MEDIA_SYNC_TRY(read.Integer("MAX_RETRIES", o.max_retries, 0, 100));
  MEDIA_SYNC_TRY(read.Seconds("RETRY_DELAY_SECONDS", o.retry_delay, 0, 86400));
  MEDIA_SYNC_TRY(read.Seconds("SHUTDOWN_GRACE_SECONDS", o.shutdown_grace, 0, 3600));
  MEDIA_SYNC_TRY(read.Seconds("LEASE_SECONDS", o.lease, 2, 3600));
  MEDIA_SYNC_TRY(read.Seconds("BOX_REFRESH_SECONDS", o.box_refresh, 1, 3600));
  MEDIA_SYNC_TRY(read.Seconds("OUTAGE_BACKOFF_MAX_SECONDS", o.outage_backoff_max, 1, 3600));
  MEDIA_SYNC_TRY(read.Integer("DB_POOL_SIZE", o.db_pool_size, 1, 256));
  if (o.redis.UsesSentinel()) o.reconcile_interval = kSentinelReconcileInterval;
  MEDIA_SYNC_TRY(read.Seconds("RECONCILE_INTERVAL_SECONDS", o.reconcile_interval, 0, 7 * 86400));
  MEDIA_SYNC_TRY(
      read.Seconds("RECONCILE_OLDER_THAN_SECONDS", o.reconcile_older_than, 0, 30 * 86400));
  MEDIA_SYNC_TRY(read.Seconds("AUDIT_INTERVAL_SECONDS", o.audit_interval, 0, 30 * 86400));
  MEDIA_SYNC_TRY(read.Integer("AUDIT_RATE", o.audit_rate, 1, 100000));
  MEDIA_SYNC_TRY(read.Boolean("AUDIT_DEEP", o.audit_deep));
  o.worker_id = DefaultWorkerId();
  MEDIA_SYNC_TRY(read.String("WORKER_ID", o.worker_id));
  if (o.worker_id.find_first_of(" \t\r\n") != std::string::npos) {
    return Bad("WORKER_ID", o.worker_id, "must not contain white space");
  }
  MEDIA_SYNC_TRY(read.String("METRICS_ADDRESS", o.metrics_address, /*allow_empty=*/true));
  if (!o.metrics_address.empty()) {
    auto colon = o.metrics_address.rfind(':');
    int port = 0;
    std::string_view port_text = colon == std::string::npos
                                     ? std::string_view()
                                     : std::string_view(o.metrics_address).substr(colon + 1);
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (colon == std::string::npos || colon == 0 || ec != std::errc() ||
        ptr != port_text.data() + port_text.size() || port < 0 || port > 65535) {
      return Bad("METRICS_ADDRESS", o.metrics_address,
                 "must be host:port (port 0..65535), or empty to disable");
    }
  }
  MEDIA_SYNC_TRY(read.Seconds("HEALTH_STALL_SECONDS", o.health_stall, 1, 86400));
  if (o.health_stall <= o.outage_backoff_max) {
    // Threads waiting out an outage beat once per backoff step.
    return Bad("HEALTH_STALL_SECONDS", std::to_string(o.health_stall.count()),
               "must be longer than OUTAGE_BACKOFF_MAX_SECONDS (" +
                   std::to_string(o.outage_backoff_max.count()) + ")");
  }
  MEDIA_SYNC_TRY(read.String("LOG_LEVEL", o.log_level));
  o.log_level = Lower(o.log_level);
  static constexpr std::string_view kLevels[] = {"trace",   "debug", "info",     "warn",
                                                 "warning", "error", "critical", "off"};
  if (std::find(std::begin(kLevels), std::end(kLevels), o.log_level) == std::end(kLevels)) {
    return Bad("LOG_LEVEL", o.log_level,
               "unknown level (trace, debug, info, warn, error, critical, off)");
  }
  if (o.log_level == "warning") o.log_level = "warn";
  if (auto format = env("LOG_FORMAT")) {
    std::string lower = Lower(*format);
    if (lower == "text") {
      o.log_format = LogFormat::kText;
    } else if (lower == "json") {
      o.log_format = LogFormat::kJson;
    } else {
      return Bad("LOG_FORMAT", *format, "unknown format (text, json)");
    }
  }
  return o;
}

std::vector<std::pair<std::string, std::string>> Describe(const Options& o) {
  auto seconds = [](auto duration) {
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(duration).count());
  };
  return {
      {"REDIS_URL", RedactUrl(o.redis_url)},
      {"DATABASE_URL", o.database_url.empty() ? "(not set)" : RedactUrl(o.database_url)},
      {"MINIO_ENDPOINT", o.s3.endpoint},
      {"MINIO_ACCESS_KEY", o.s3.access_key},
      {"MINIO_SECRET_KEY", std::string(kMaskedSecret)},
      {"MINIO_BUCKET", o.s3.bucket},
      {"MINIO_SECURE", o.s3.secure ? "true" : "false"},
      {"MINIO_REGION", o.s3.region},
      {"MINIO_CA_FILE", o.s3.ca_file.empty() ? "(system CAs)" : o.s3.ca_file},
      {"MEDIA_BUFFER_PATH", o.buffer_path},
      {"SYNC_CONCURRENCY", std::to_string(o.concurrency)},
      {"SYNC_BANDWIDTH_LIMIT",
       o.s3.bandwidth_limit == 0 ? "0 (off)" : FormatBytes(o.s3.bandwidth_limit) + "/s"},
      {"BOX_MAX_IN_FLIGHT", std::to_string(o.BoxMaxInFlight())},
      {"MAX_RETRIES", std::to_string(o.max_retries)},
      {"RETRY_DELAY_SECONDS", seconds(o.retry_delay)},
      {"SHUTDOWN_GRACE_SECONDS", seconds(o.shutdown_grace)},
      {"LEASE_SECONDS", seconds(o.lease)},
      {"BOX_REFRESH_SECONDS", seconds(o.box_refresh)},
      {"OUTAGE_BACKOFF_MAX_SECONDS", seconds(o.outage_backoff_max)},
      {"DB_POOL_SIZE", std::to_string(o.db_pool_size)},
      {"RECONCILE_INTERVAL_SECONDS",
       o.reconcile_interval.count() == 0 ? "0 (off)" : seconds(o.reconcile_interval)},
      {"RECONCILE_OLDER_THAN_SECONDS", seconds(o.reconcile_older_than)},
      {"AUDIT_INTERVAL_SECONDS",
       o.audit_interval.count() == 0 ? "0 (off)" : seconds(o.audit_interval)},
      {"AUDIT_RATE", std::to_string(o.audit_rate) + " objects/s"},
      {"AUDIT_DEEP", o.audit_deep ? "true" : "false"},
      {"WORKER_ID", o.worker_id},
      {"METRICS_ADDRESS", o.metrics_address.empty() ? "(disabled)" : o.metrics_address},
      {"HEALTH_STALL_SECONDS", seconds(o.health_stall)},
      {"LOG_LEVEL", o.log_level},
      {"LOG_FORMAT", o.log_format == LogFormat::kJson ? "json" : "text"},
      {"S3_CONNECT_TIMEOUT_SECONDS", seconds(o.s3.connect_timeout)},
      {"S3_LOW_SPEED_SECONDS", seconds(o.s3.low_speed_time)},
      {"S3_MULTIPART_THRESHOLD", o.s3.multipart_threshold
                                     ? FormatBytes(*o.s3.multipart_threshold)
                                     : FormatBytes(o.s3.MultipartThreshold(false)) + " (" +
                                           FormatBytes(o.s3.MultipartThreshold(true)) +
                                           " on boxes that prove what they store)"},
      {"S3_PART_SIZE", FormatBytes(o.s3.part_size)},
      {"S3_PART_PARALLELISM", std::to_string(o.s3.part_parallelism)},
      {"S3_CONTENT_MD5", o.s3.content_md5 ? "true" : "false"},
      {"S3_BUFFER_POOL", FormatBytes(o.s3.buffer_pool_bytes)},
  };
}

}  // namespace media_sync::config
