// catalog::PgBoxCatalog: the catalog seen box by box, for the operator's
// tools on stored data (audit, the background scrub): the synced rows of
// some boxes in pages, the rows naming given objects, and each box's
// counters against its rows, set right on request.
//
// Reads media_files(sha256, s3_key, file_size, storage_box_id, synced_at) and
// storage_boxes(id, used_bytes, reserved_bytes); writes only the counters
// (FixCounters). Nothing else of the schema is required.
//
// Thread-safe (a pool of connections, made lazily). Errors as PgCatalog:
// kOutage when the database is unavailable or a call passes its deadline,
// kInput when it refuses a value given (a key holding a NUL byte),
// kConfiguration when it rejects the SQL or the connection string does not
// parse. Messages never contain the connection password.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace media_sync::catalog {

class PgConnectionPool;

// Which rows a call is about: those of the storage boxes `ids`, and those
// without a box (stored at MINIO_ENDPOINT) when `without_box`.
struct BoxSelection {
  std::vector<std::string> ids;
  bool without_box = false;
};

// A media_files row as the audit compares it with storage.
struct StoredRow {
  std::string sha256;
  std::string s3_key;
  uint64_t file_size = 0;
  std::optional<std::string> box;  // storage_box_id
  bool synced = false;             // synced_at IS NOT NULL
};

// One box's counters beside the sums of its rows, read in one snapshot.
struct BoxCounters {
  std::string box;
  int64_t used_bytes = 0;      // storage_boxes.used_bytes
  int64_t reserved_bytes = 0;  // storage_boxes.reserved_bytes
  int64_t synced_bytes = 0;    // sum of file_size of its synced rows
  int64_t unsynced_bytes = 0;  // sum of file_size of its rows not synced yet
  int64_t synced_rows = 0;
  int64_t unsynced_rows = 0;

  bool Drifted() const { return used_bytes != synced_bytes || reserved_bytes != unsynced_bytes; }
};

class PgBoxCatalog {
 public:
  // conninfo as PgCatalog takes it. Nothing connects until the first call.
  explicit PgBoxCatalog(std::string conninfo, int pool_size = 2,
                        std::chrono::milliseconds query_timeout = std::chrono::seconds(60));
  ~PgBoxCatalog();
  PgBoxCatalog(const PgBoxCatalog&) = delete;
  PgBoxCatalog& operator=(const PgBoxCatalog&) = delete;

  // Every storage box as (id, minio_endpoint), by id.
  Result<std::vector<std::pair<std::string, std::string>>> Boxes();

  // Whether any row has no box (its file goes to MINIO_ENDPOINT). Stops at
  // the first; without one it reads the whole table.
  Result<bool> AnyRowWithoutBox();

  // Up to `limit` synced rows of the selection with sha256 > after_sha256
  // ("" for the first page), in ascending sha256: a keyset page over the
  // primary key, so a page reads the index from where the last one ended.
  Result<std::vector<StoredRow>> SyncedAfter(const BoxSelection& boxes,
                                             const std::string& after_sha256, int limit);

  // Every row whose sha256 is one of `sha256s`, whatever its box.
  Result<std::vector<StoredRow>> RowsFor(const std::vector<std::string>& sha256s);

  // The rows of the selection whose s3_key is one of `keys`. No index serves
  // s3_key: one scan of media_files per call, for the rare key that is not a
  // content key (media/ab/cd/<sha256>.<ext>), batched by the caller.
  Result<std::vector<StoredRow>> RowsWithKeys(const BoxSelection& boxes,
                                              const std::vector<std::string>& keys);

  // Every box of `ids` (every box when empty) with its counters and the sums
  // of its rows, by id. Reads all of media_files's rows of those boxes.
  Result<std::vector<BoxCounters>> CheckCounters(const std::vector<std::string>& ids);

  // Like SyncedAfter for one box, keeping only the rows of one shard: those
  // whose sha256's first 32 bits modulo `shards` are `shard` (shards <= 1:
  // every row), so processes that split a box's rows this way share none.
  Result<std::vector<StoredRow>> SyncedOfShardAfter(const std::string& box,
                                                    const std::string& after_sha256, int limit,
                                                    int shard, int shards);

  // In one transaction: points the synced row of sha256 at box `to` if it
  // names box `from` now, and then moves its file_size from `from`'s
  // used_bytes to `to`'s (boxes locked in id order, as RecordSync locks
  // them). true when this call moved it; false when the row does not name
  // `from` (moved already, or never there): nothing changed. kJobRetryable
  // when `to` is not a box.
  Result<bool> MoveRow(const std::string& sha256, const std::string& from, const std::string& to);

  // In one transaction, sets used_bytes and reserved_bytes of the boxes
  // `ids` to the sums of their synced and unsynced rows. The boxes' rows are
  // locked first (in id order, as RecordSync locks them), and the sums are
  // read only then: a sync committed before is counted, one that waits for
  // the lock moves the counters after, from the right value. Returns the
  // boxes as they were under the lock, before the change (their Drifted()
  // says which were changed).
  Result<std::vector<BoxCounters>> FixCounters(const std::vector<std::string>& ids);

 private:
  // One statement whose rows are StoredRows (RowAt), on a pooled connection.
  Result<std::vector<StoredRow>> SelectRows(const char* sql, const std::vector<std::string>& params,
                                            bool with_synced);
  const std::chrono::milliseconds query_timeout_;
  std::string password_;                 // only to scrub it from messages
  std::optional<Error> conninfo_error_;  // set when conninfo does not parse
  std::unique_ptr<PgConnectionPool> pool_;
};

}  // namespace media_sync::catalog
