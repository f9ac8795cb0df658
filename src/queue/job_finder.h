// Where one job is in Redis, for the web console's job lookup: pending (and
// how many jobs are served before it), delayed (due when), held by a worker,
// or failed (at which index). A job can be in several places at once (a
// producer pushed it twice): every one is reported.
//
// Jobs are found by their sha256 in any case. Every queue is read in chunks
// (LRANGE, ZRANGE by rank) so that no command holds the server long, and the
// walk stops when its time budget is spent: a lookup then says how far it
// read. Not a snapshot: a job moving between keys during the walk can be
// seen twice or missed.
//
// Thread-safety: none; one instance per thread.
// Errors: as RedisConnection (kOutage when Redis is unreachable).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/urls.h"
#include "core/result.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

struct JobPlace {
  enum class Where { kPending, kDelayed, kProcessing, kFailed };
  Where where = Where::kPending;
  std::string payload;  // the entry as stored
  // kPending: jobs served before it (0: it is next); kDelayed: its rank by
  // due time; kFailed: its index (0 = newest, as `failed list` counts).
  int64_t position = 0;
  // kDelayed: when it goes back to pending (the Redis server's clock).
  std::optional<std::chrono::system_clock::time_point> due;
  std::string worker;  // kProcessing: the worker holding it
};

struct JobSearch {
  std::vector<JobPlace> places;
  int64_t entries_read = 0;
  bool complete = true;  // false when the budget ran out before the end
};

class JobFinder {
 public:
  explicit JobFinder(config::RedisAddress address, RedisOptions options = {});

  // Every entry whose JSON sha256 is `sha256` (64 hex digits, any case).
  // Reads the short lists first (processing, delayed, failed), pending last,
  // from its head; gives up after `budget`.
  Result<JobSearch> Find(std::string_view sha256, std::chrono::milliseconds budget);

  // Entries read per command.
  static constexpr int64_t kChunk = 1000;

 private:
  RedisConnection connection_;
};

std::string_view ToString(JobPlace::Where where);  // "pending", "delayed", ...

}  // namespace media_sync::queue
