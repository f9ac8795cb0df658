// catalog::PgCatalog: the Catalog over the platform's PostgreSQL database.
//
// Reads and writes only media_files(sha256, s3_key, file_size,
// storage_box_id, created_at, synced_at) and storage_boxes(id,
// minio_endpoint, used_bytes, reserved_bytes).
//
// Thread-safe: one PgCatalog is shared by every worker thread; calls run on a
// small pool of connections, made lazily. No call blocks past its timeouts:
// a server that is down or does not answer yields kOutage.
//
// Errors:
//   kOutage         cannot connect, connection lost, server shutting down,
//                   timeout, serialization failure or deadlock, too many
//                   connections ("PostgreSQL unavailable: ...")
//   kConfiguration  the server rejects our SQL (schema missing or wrong, a
//                   privilege missing), or the connection string cannot be
//                   parsed
//   kJobRetryable   RecordSync without a media_files row, or for a box that
//                   does not exist
//   kJobPermanent   the server refuses the values a call was given (SQLSTATE
//                   class 22 or 23, or a string holding a NUL byte, which
//                   PostgreSQL text cannot hold): "PostgreSQL refused the
//                   values: ..."; `code` is the SQLSTATE
// (pg_connection.h says which SQLSTATE is which; no refused statement is
// ever kOutage.)
// Messages never contain the connection password.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "catalog/pg_schema.h"
#include "core/catalog.h"
#include "util/mutex.h"

namespace media_sync::catalog {

class PgConnectionPool;

struct PgCatalogOptions {
  // Connections at most; callers beyond that wait for one to come back.
  int pool_size = 4;
  // Bound on establishing one connection (TCP, TLS, authentication).
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // Bound on one call's statements once connected (the whole transaction of
  // RecordSync); past it the connection is dropped and the call is kOutage.
  std::chrono::milliseconds query_timeout = std::chrono::seconds(15);
  // Shown in pg_stat_activity unless the connection string names its own.
  std::string application_name = "media-sync";
};

struct PgCatalogStats {
  int open_connections = 0;
  int idle_connections = 0;
  uint64_t connects = 0;      // successful connects since construction
  uint64_t sync_batches = 0;  // RecordSync transactions run
  int unanswered_syncs = 0;   // RecordSync calls under way now
};

// A media_files row as `enqueue` needs it.
struct CatalogFile {
  std::string s3_key;
  uint64_t file_size = 0;
  std::optional<std::string> storage_box_id;
  bool synced = false;  // synced_at IS NOT NULL
};

// A media_files row whole, as the web console's job lookup shows it.
struct CatalogRow {
  std::string sha256;
  std::string s3_key;
  uint64_t file_size = 0;
  std::optional<std::string> storage_box_id;
  std::string created_at;                // ISO 8601 UTC
  std::optional<std::string> synced_at;  // ISO 8601 UTC; nullopt while unsynced
};

class PgCatalog final : public Catalog, public UnsyncedRows {
 public:
  // conninfo: a libpq URI (postgresql://user:pass@host:port/db?...) or a
  // key=value string; SQLAlchemy forms must be converted first
  // (config::ParseDatabaseUrl). Nothing connects until the first call.
  explicit PgCatalog(std::string conninfo, PgCatalogOptions options = {});
  ~PgCatalog() override;
  PgCatalog(const PgCatalog&) = delete;
  PgCatalog& operator=(const PgCatalog&) = delete;

  // In one transaction: mark the row synced where it is not yet, and only if
  // that changed the row move the box's counters (used_bytes += file_size,
  // reserved_bytes = GREATEST(0, reserved_bytes - file_size)). Concurrent
  // calls for one sha256 count once: the row lock serialises them and the
  // losers see synced_at set.
  //
  // Group commit: the calls of all threads share transactions. A call that
  // finds no transaction under way commits every call waiting by then (up to
  // kMaxSyncBatch, one per sha256) in one statement over arrays, and goes on
  // until its own is done; the others wait for their outcome. Every call
  // returns only once its transaction has committed (or failed), so the
  // caller deletes and acknowledges nothing before its row is durable; an
  // error of the transaction (an outage) is every call's in it, and each
  // call's own outcome (kSynced, kAlreadySynced, no row, unknown box) is its
  // own: one call's unknown box changes nothing of the others. When
  // PostgreSQL refuses the shared statement for the values of one call, the
  // calls are committed again one by one, so only that call fails
  // (kJobPermanent) and the others are recorded.
  //   kSynced         this call synced the row
  //   kAlreadySynced  the row was synced before: nothing changed
  //   kJobRetryable   "No media_files row for sha256 <hash>", or "Unknown
  //                   storage box <id>" (the transaction is rolled back:
  //                   nothing changed)
  // A connection lost during COMMIT leaves the outcome unknown to this call;
  // it retries once on a fresh connection when the lost connection was a
  // pooled one, and a retry of a committed sync reports kAlreadySynced.
  Result<RecordOutcome> RecordSync(const std::string& sha256, uint64_t file_size,
                                   const std::optional<std::string>& storage_box_id) override;

  // storage_boxes.minio_endpoint, or nullopt when there is no such box.
  Result<std::optional<std::string>> BoxEndpoint(const std::string& box_id) override;

  PgCatalogStats Stats() const EXCLUDES(sync_mutex_);

  // Calls RecordSync commits together at most.
  static constexpr size_t kMaxSyncBatch = 64;

  // One round trip that reads both tables (readiness, start-up check):
  // kConfiguration when the schema is missing or unreadable.
  Status Ping();

  // Every storage box with its counters and unsynced rows, then one entry
  // with id "" for unsynced rows without a box (status).
  struct BoxUsage {
    std::string id;
    std::string endpoint;
    int64_t used_bytes = 0;
    int64_t reserved_bytes = 0;
    int64_t unsynced_rows = 0;
  };
  Result<std::vector<BoxUsage>> BoxesUsage();

  // The media_files row of sha256, or nullopt when there is none.
  Result<std::optional<CatalogFile>> FindFile(const std::string& sha256);

  // The media_files row of sha256 with its times, or nullopt when there is none.
  Result<std::optional<CatalogRow>> FindRow(const std::string& sha256);

  // One statement, so one transaction: inserts the media_files row unless one
  // exists for sha256 (ON CONFLICT DO NOTHING) and, only when it inserted one
  // with a box, adds file_size to that box's reserved_bytes. Returns true
  // when the row is new. A box that does not exist is refused by the foreign
  // key (kJobPermanent); check it first with BoxEndpoint().
  Result<bool> RegisterFile(const std::string& sha256, const std::string& s3_key,
                            uint64_t file_size, const std::optional<std::string>& storage_box_id);

  // The indexes media-sync needs (catalog/pg_schema.h), each as the database
  // holds it: one query on pg_index. kConfiguration when there is no
  // media_files table.
  Result<std::vector<IndexCheck>> CheckIndexes();

  // Builds `index` where it is missing, without blocking the platform's
  // writes: CREATE ... INDEX CONCURRENTLY IF NOT EXISTS, after dropping (DROP
  // INDEX CONCURRENTLY) our own index of that name only when it is INVALID
  // and no session is building it. Touches no other index, row or setting of
  // the database. One build at a time across processes (an advisory lock):
  // a second caller gets kOutage "another `schema apply` is running". A build
  // that fails (duplicate sha256 values for the unique index, a cancel) has
  // its INVALID leftover dropped and returns PostgreSQL's reason. Waits up
  // to `timeout`: a build reads the whole table.
  Status BuildIndex(const RequiredIndex& index, std::chrono::milliseconds timeout);

  // UnsyncedRows: a page of rows never synced, after `cursor` in
  // (created_at, sha256) order; the cursor holds the last row's created_at
  // in PostgreSQL's text form, fed back as is.
  Result<std::vector<UnsyncedFile>> UnsyncedAfter(UnsyncedCursor& cursor, int limit,
                                                  int older_than_seconds) override;

 private:
  const PgCatalogOptions options_;
  std::string password_;                 // only to scrub it from messages
  std::optional<Error> conninfo_error_;  // set when conninfo does not parse
  std::unique_ptr<PgConnectionPool> pool_;

  // One RecordSync call waiting for its transaction.
  struct PendingSync {
    const std::string& sha256;
    uint64_t file_size;
    const std::optional<std::string>& storage_box_id;
    std::optional<Result<RecordOutcome>> outcome;  // set by the committing call
  };
  // Up to kMaxSyncBatch waiting calls, oldest first, one per sha256: a second
  // call for a sha256 waits for the next transaction, so it counts nothing.
  std::vector<PendingSync*> TakeSyncBatch() REQUIRES(sync_mutex_);
  // One transaction for the batch; an outcome per call, in order. A batch
  // whose values PostgreSQL refuses is committed again call by call.
  std::vector<Result<RecordOutcome>> CommitSyncBatch(const std::vector<PendingSync*>& batch);
  // One statement for the batch in one transaction: an outcome per call, or
  // the error of the whole transaction.
  Result<std::vector<Result<RecordOutcome>>> CommitTogether(const std::vector<PendingSync*>& batch);

  mutable Mutex sync_mutex_;
  std::condition_variable_any sync_done_;  // an outcome was set, or the committer left
  std::deque<PendingSync*> waiting_syncs_ GUARDED_BY(sync_mutex_);
  bool committing_ GUARDED_BY(sync_mutex_) = false;
  int unanswered_syncs_ GUARDED_BY(sync_mutex_) = 0;
  uint64_t sync_batches_ GUARDED_BY(sync_mutex_) = 0;
};

}  // namespace media_sync::catalog
