// Where an audit of stored data stands, kept in Redis so that a run over
// millions of rows resumes where it stopped (a crash, a SIGINT, the lock
// passing to another worker), and so that every worker can show what the
// last full pass of the background scrub found.
//
//   media:sync:audit:cursor:<scope>:<target>   hash, one per bucket audited:
//       after_sha256, after_key, mode, started_at, done, and the counts
//       so far (rows, objects, missing, ...); expires after kCursorRetention
//   media:sync:audit:pass                       hash: the scrub's pass under
//       way (mode, started_at, counts of the targets it finished)
//   media:sync:audit:last                       hash: the scrub's last full
//       pass (finished_at, counts)
//
// Thread-safety: none; one instance per thread (it owns a connection).
// Errors: those of RedisConnection (kOutage, kConfiguration).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/urls.h"
#include "core/result.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

inline constexpr std::string_view kAuditCursorKeyPrefix = "media:sync:audit:cursor:";
inline constexpr std::string_view kAuditPassKey = "media:sync:audit:pass";
inline constexpr std::string_view kAuditLastPassKey = "media:sync:audit:last";
// The scrub's lock (queue::ReconcileLock with these keys): one worker at a time.
inline constexpr std::string_view kAuditLockKey = "media:sync:audit:lock";
inline constexpr std::string_view kAuditDoneKey = "media:sync:audit:done";

// A cursor left alone this long is forgotten: the next run starts over.
inline constexpr std::chrono::hours kCursorRetention{24 * 7};

// One record: a position, what kind of run it belongs to, and counts.
struct AuditRecord {
  std::string after_sha256;  // rows up to this sha256 are done
  std::string after_key;     // listed keys up to this key are done
  std::string mode;          // the kind of run ("deep repair ..."); another kind starts over
  int64_t started_at = 0;    // unix seconds
  int64_t finished_at = 0;   // unix seconds; 0 while under way
  bool done = false;         // this target is finished (the run is not, yet)
  std::map<std::string, int64_t> counts;
};

class AuditProgress {
 public:
  explicit AuditProgress(config::RedisAddress address, RedisOptions options = {});

  // media:sync:audit:cursor:<scope>:<target>
  static std::string CursorKey(std::string_view scope, std::string_view target);

  Result<std::optional<AuditRecord>> Load(std::string_view key);
  // Replaces the record under key in one step; it expires after `ttl`
  // (0: never).
  Status Save(std::string_view key, const AuditRecord& record,
              std::chrono::milliseconds ttl = kCursorRetention);
  Status Clear(const std::vector<std::string>& keys);

 private:
  RedisConnection connection_;
};

}  // namespace media_sync::queue
