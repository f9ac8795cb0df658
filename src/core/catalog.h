// The platform's PostgreSQL catalog (media_files, storage_boxes) as the
// service uses it: Catalog for the pipeline (RecordSync) and the router
// (BoxEndpoint), UnsyncedRows for the reconcile. The real adapter of both
// is catalog::PgCatalog; unit tests use the doubles of core/test_doubles.h.
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
};

// Where the next page of UnsyncedRows starts: after the row it names, in
// the catalog's own order and text (opaque to callers). Empty: from the
// oldest row.
struct UnsyncedCursor {
  std::string created_at;
  std::string sha256;
};

// The rows never synced, a page at a time in the order they were created
// (keyset paging: a page costs the same however deep into the table).
// Implementations are thread-safe.
class UnsyncedRows {
 public:
  virtual ~UnsyncedRows() = default;

  // Up to `limit` media_files rows with synced_at IS NULL, created more than
  // `older_than_seconds` ago and after `cursor`, oldest first; advances
  // `cursor` past them (left as it was on an error). An empty page is the
  // end; limit <= 0 yields none. Errors as Catalog's: kOutage when the
  // database cannot be reached, kConfiguration for a statement refused.
  virtual Result<std::vector<UnsyncedFile>> UnsyncedAfter(UnsyncedCursor& cursor, int limit,
                                                          int older_than_seconds) = 0;
};

}  // namespace media_sync
