// Reconciler: re-enqueues the jobs Redis lost, and only those. Shared by
// `media-sync reconcile` and the periodic reconcile of `media-sync run`.
//
// A media_files row never synced and older than `older_than` has lost its
// job when no payload for its sha256 is anywhere in Redis (pending, delayed,
// any processing list, failed). For such a row:
//   - its file is in the buffer (at <buffer>/<s3_key>)   -> enqueued;
//   - no file, but the object is in storage (HeadObject) -> enqueued: the
//     worker checks the object and records the sync;
//   - no file and no object                              -> reported, never
//     enqueued: nothing is left to sync, a job would only fail again;
//   - the storage box cannot be asked                    -> enqueued: the
//     worker defers it while the box is down.
// Redis is read in bounded chunks and is not frozen meanwhile, so a job
// moving between keys can be missed once; rows found lost are looked up
// again after a second read and pushed only if still missing there. A job
// pushed twice all the same is harmless: the sync is recorded once.
//
// Memory is bounded whatever the queues hold: the first read keeps the
// sha256s in a Sha256Filter (util/, 16 MiB at most), the second only the
// rows found lost (at most `limit`), and the report at most 1000 rows with
// nothing left (the rest are counted). A row the filter falsely names as
// queued (about one in a thousand while it holds no more than it was sized
// for) is recovered by a later pass. Both reads call the checkpoint between
// chunks, so the periodic runner renews its lock through a long pass.
//
// Thread-safety: none; one Reconciler per thread, as its queue adapters
// are. Borrows everything it reads and writes (ReconcileSources).
#pragma once

#include <chrono>
#include <functional>
#include <stop_token>
#include <string>
#include <vector>

#include "buffer/local_buffer.h"
#include "core/catalog.h"
#include "core/queue_census.h"
#include "core/result.h"
#include "core/store_router.h"
#include "util/clock.h"

namespace media_sync::worker {

struct ReconcileSettings {
  // Rows younger than this are left alone: their producer may not have
  // pushed the job yet.
  std::chrono::seconds older_than{3600};
  // Jobs enqueued per run at most; the rows after them wait for the next run.
  int limit = 10000;
  bool dry_run = false;  // decide and report, push nothing
};

struct LostJob {
  enum class Source {
    kLocalFile,     // the file is in the buffer
    kStoredObject,  // no file, but the object is in storage
    kUnchecked,     // no file and the box could not be asked (see note)
  };
  UnsyncedFile row;
  Source source = Source::kLocalFile;
  std::string note;  // why unchecked, or a problem with the local file
};

struct ReconcileReport {
  int64_t rows_examined = 0;               // unsynced rows older than the threshold looked at
  int64_t still_queued = 0;                // of them, with a job somewhere in Redis
  int64_t appeared_meanwhile = 0;          // lost at first, found in Redis by the second look
  std::vector<LostJob> enqueued;           // pushed (on a dry run: would be)
  std::vector<UnsyncedFile> nothing_left;  // no local file and no object: the first 1000
  int64_t nothing_left_rows = 0;           // all of them, reported only
  bool limit_reached = false;              // more rows may be lost: run again
};

// What a reconcile reads and writes, made by the caller (`media-sync
// reconcile`, `run`) and borrowed: each must outlive the Reconciler, and the
// queue adapters serve its thread only.
struct ReconcileSources {
  QueueCensus& queue;                 // the sha256s held in Redis (queue::QueueAdmin)
  JobProducer& producer;              // where lost jobs go back (queue::QueueAdmin)
  UnsyncedRows& catalog;              // rows never synced (catalog::PgCatalog)
  StoreRouter& stores;                // HeadObject of a row without its file
  const buffer::LocalBuffer& buffer;  // the rows' files
};

class Reconciler {
 public:
  // Called between steps; an error stops the run and is returned (the
  // periodic runner keeps its lock alive here and stops on shutdown).
  using Checkpoint = std::function<Status()>;

  // The jobs it pushes are queued at `clock`'s wall time.
  explicit Reconciler(ReconcileSources sources, Clock& clock = Clock::Real());

  // One pass. Errors: the first outage or configuration error of Redis,
  // PostgreSQL or the buffer; kCancelled when `stop` is requested. Nothing
  // is pushed unless the pass got that far.
  Result<ReconcileReport> Run(const ReconcileSettings& settings, std::stop_token stop = {},
                              const Checkpoint& checkpoint = {});

  // The job payload reconcile pushes for a row: local_path <buffer>/<s3_key>.
  std::string PayloadFor(const UnsyncedFile& row) const;

 private:
  // Sorts one lost row: where its bytes are, or nullopt when nowhere.
  Result<std::optional<LostJob>> Classify(const UnsyncedFile& row, std::stop_token stop);

  ReconcileSources sources_;
  Clock& clock_;
};

std::string_view ToString(LostJob::Source source);

}  // namespace media_sync::worker
