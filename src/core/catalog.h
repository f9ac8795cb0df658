// The pipeline's view of the platform's PostgreSQL catalog
// (media_files, storage_boxes). The real adapter is catalog::PgCatalog.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace media_sync {

enum class RecordOutcome {
  kSynced,         // synced_at was set now and the box counters moved
  kAlreadySynced,  // the row was already synced: nothing changed
};

struct UnsyncedFile {
  std::string sha256;
  std::string s3_key;
  uint64_t file_size = 0;
  std::optional<std::string> storage_box_id;
};

// Implementations are thread-safe.
class Catalog {
 public:
  virtual ~Catalog() = default;

  // In one transaction: set media_files.synced_at = now() where it is NULL,
  // and only if that changed a row, move the box's used/reserved bytes by
  // file_size. Idempotent. A missing media_files row is kJobRetryable with a
  // message naming the row; values the database refuses (whatever the
  // reason, the job's own) are kJobPermanent; a database that cannot be
  // reached is kOutage; a statement refused for any other reason (schema,
  // privileges) is kConfiguration and never kOutage.
  virtual Result<RecordOutcome> RecordSync(const std::string& sha256, uint64_t file_size,
                                           const std::optional<std::string>& storage_box_id) = 0;

  // storage_boxes.minio_endpoint of the box, or nullopt when no such box.
  virtual Result<std::optional<std::string>> BoxEndpoint(const std::string& box_id) = 0;

  // Up to `limit` media_files rows with synced_at IS NULL, oldest first,
  // created before `older_than_seconds` ago (for reconcile).
  virtual Result<std::vector<UnsyncedFile>> Unsynced(int limit, int older_than_seconds) = 0;

  // How many media_files rows have synced_at IS NULL (for status).
  virtual Result<int64_t> CountUnsynced() = 0;
};

}  // namespace media_sync
