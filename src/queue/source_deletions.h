// The source copies a migration leaves behind on purpose: once a row points
// at its new box, a reader that looked the row up just before the switch
// may still fetch the object from the old one, so the old copy is deleted
// only after a grace period. Each copy is written down before the row is
// switched, in a sorted set scored by when it may go:
//
//   media:sync:migrate:deletions   sorted set of JSON {box, key, sha256},
//                                  scored by the due time in unix ms
//
// Whoever deletes (any `media-sync migrate`) checks the row first: a copy
// whose row still names its box (the switch never happened, or the file
// moved back) is only forgotten, never deleted.
//
// Thread-safety: none; one instance per thread (it owns a connection).
// Errors: those of RedisConnection (kOutage, kConfiguration).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/urls.h"
#include "core/result.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

inline constexpr std::string_view kSourceDeletionsKey = "media:sync:migrate:deletions";

struct SourceCopy {
  std::string box;  // the box it is left on
  std::string key;
  std::string sha256;

  // The set's member: the same copy is always the same member.
  std::string Member() const;
};

class SourceDeletions {
 public:
  explicit SourceDeletions(config::RedisAddress address, RedisOptions options = {});

  // Writes the copy down, due at `due`; a copy already written keeps the
  // later of its two due times.
  Status Schedule(const SourceCopy& copy, std::chrono::system_clock::time_point due);
  // Up to `limit` copies due at `now`, earliest first.
  Result<std::vector<SourceCopy>> Due(std::chrono::system_clock::time_point now, int64_t limit);
  Status Forget(const SourceCopy& copy);
  // For each copy, whether it is written down (due or not): the audit does
  // not count a copy in its grace period as an orphan.
  Result<std::vector<bool>> Scheduled(const std::vector<SourceCopy>& copies);
  // How many copies wait, and the earliest due time among them (unix ms; 0
  // when none).
  struct Pending {
    int64_t count = 0;
    int64_t first_due_ms = 0;
  };
  Result<Pending> Waiting();

 private:
  RedisConnection connection_;
};

}  // namespace media_sync::queue
