// BoxMigrator: moves synced objects from one storage box to another while
// the platform keeps serving them (`media-sync migrate`).
//
// For each synced row of the source box (keyset pages over the primary key,
// `shard` of `shards`), in this order:
//   1. the source copy is written down for deletion after the grace period
//      (queue::SourceDeletions), before anything else changes;
//   2. the object is read from the source box into an unnamed temporary
//      file (O_TMPFILE: nothing is left behind by a kill), hashed on the way:
//      it must be the row's file_size and sha256, or it is not moved (a
//      damaged or missing source is reported: `media-sync audit`);
//   3. it is uploaded to the target box by S3ObjectStore::Upload, which
//      proves it there (size and SHA-256: the ETag, the server's own
//      verification, or HeadObject), and keeps an identical copy an earlier
//      run left;
//   4. one statement switches the row to the target box, if it still names
//      the source, and moves its file_size from the source's used_bytes to
//      the target's (PgBoxCatalog::MoveRow);
//   5. once the grace period is over, whoever runs a migration next deletes
//      the source copy, unless the row names the source box again (then the
//      switch never happened, or the file moved back: only the record goes).
// So a row names, at every instant, a box that holds its verified object:
// the target's copy exists before the switch and the source's outlives it by
// the grace period, for a reader that looked the row up just before. A kill
// at any point leaves either the row on the source (with at most an extra,
// unnamed copy on the target, kept by the next run's upload or deleted by
// `audit --repair --delete-orphans`) or on the target (with the source's
// copy recorded for deletion); counters move only in the switch. Running
// again is always safe: rows already moved are not the source's any more.
//
// Memory: per thread, curl's buffers and the upload's pooled buffers
// (S3_BUFFER_POOL); disk: one object per thread in `temp_dir`. Bandwidth:
// reads and uploads both take from SYNC_BANDWIDTH_LIMIT's cap, so a byte
// moved counts twice against it.
//
// Thread-safety: Run() is called from one thread; it runs `concurrency`
// threads of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <stop_token>
#include <string>
#include <vector>

#include "catalog/pg_box_catalog.h"
#include "config/s3_options.h"
#include "config/urls.h"
#include "core/result.h"

namespace media_sync::audit {

struct MigrateSettings {
  std::string from;
  std::string to;
  int64_t limit = 0;  // rows moved at most this run; 0: all
  bool dry_run = false;
  std::chrono::seconds delete_after{3600};  // the source copy's grace period
  int concurrency = 4;
  int shard = 0;  // this process's share of the rows: shard of shards
  int shards = 1;
  std::string temp_dir = "/tmp";  // where objects pass between the boxes
};

struct MigrateReport {
  int64_t rows_seen = 0;
  int64_t moved = 0;
  int64_t moved_bytes = 0;
  int64_t moved_meanwhile = 0;  // switched by another process between page and move
  int64_t failed = 0;
  std::vector<std::string> failures;  // the first hundred, "<sha256> <key>: why"
  int64_t sources_deleted = 0;
  int64_t sources_forgotten = 0;  // recorded, but the row still names that box
  int64_t sources_waiting = 0;    // still in their grace period
  int64_t first_due_ms = 0;       // when the first of those may go (unix ms)
  bool limit_reached = false;
};

class BoxMigrator {
 public:
  // `boxes`: every box's S3 settings by id, for the copies to delete
  // (whichever migration left them). Borrows the catalog.
  BoxMigrator(catalog::PgBoxCatalog& catalog, config::RedisAddress redis,
              std::map<std::string, s3::S3Options> boxes);

  // Called after each row, with the report so far and the row's bytes (0
  // when it was not moved); serialized.
  using Progress = std::function<void(const MigrateReport&, uint64_t bytes)>;

  // Moves the rows, then deletes the source copies whose grace is over.
  // Errors: the first outage or configuration error of PostgreSQL, Redis or
  // a box (what was moved stays moved: run again to go on), kCancelled on
  // stop. A row whose source object is missing or damaged is a failure of
  // that row, reported, and the run goes on.
  Result<MigrateReport> Run(const MigrateSettings& settings, const std::stop_token& stop,
                            const Progress& progress = {});

  // Deletes the source copies due now (any migration's); Run does this too.
  Status DeleteDueSources(MigrateReport& report, const std::stop_token& stop);

 private:
  catalog::PgBoxCatalog& catalog_;
  const config::RedisAddress redis_;
  const std::map<std::string, s3::S3Options> boxes_;
};

}  // namespace media_sync::audit
