// Storage boxes paused by an operator (`media-sync boxes pause`), kept in
// Redis so that every worker obeys: each worker's Monitor reads the hash
// every round (5 s) and its BoxRegistry defers the paused boxes' jobs, no
// attempt counted, until they are resumed.
//
//   media:sync:paused   hash storage_box_id ("" for MINIO_ENDPOINT) ->
//                       JSON {reason, by, at}
//
// Thread-safety: none; one instance per thread (it owns a connection).
// Errors: those of RedisConnection (kOutage, kConfiguration).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "config/urls.h"
#include "core/fleet_reports.h"
#include "core/result.h"
#include "queue/redis_connection.h"

namespace media_sync::queue {

inline constexpr std::string_view kPausedKey = "media:sync:paused";

using BoxPause = media_sync::BoxPause;

// The PausedBoxes of the Monitor (core/fleet_reports.h), and the operator's
// pause and resume.
class BoxPauses final : public PausedBoxes {
 public:
  explicit BoxPauses(config::RedisAddress address, RedisOptions options = {});

  // Pauses the box, or replaces the reason of a pause. true when it was not
  // paused before.
  Result<bool> Pause(std::string_view box, const BoxPause& pause);
  // true when it was paused.
  Result<bool> Resume(std::string_view box);
  // Every paused box. An entry that is not our JSON (written by hand) counts
  // as a pause with its text as the reason.
  Result<std::map<std::string, BoxPause>> List() override;

 private:
  RedisConnection connection_;
};

}  // namespace media_sync::queue
