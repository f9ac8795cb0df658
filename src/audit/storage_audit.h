// StorageAuditor: compares the catalog with what the storage boxes hold, in
// pages, with memory bounded whatever their size. Shared by `media-sync
// audit` and the background scrub of `media-sync run` (PeriodicAudit).
//
// A target is one bucket on one endpoint, with the boxes whose rows are
// stored there (two boxes, or a box and MINIO_ENDPOINT, may share one: an
// object then belongs to whichever of their rows names it). For each target
// two sorted streams are merged:
//   - its synced rows, keyset pages over the primary key (sha256 order);
//   - its objects under media/, ListObjectsV2 pages (key order).
// Content keys (media/ab/cd/<sha256>.<ext>) sort as their hashes do, so the
// two orders agree and one pass pairs them: about one request per thousand
// objects and one query per thousand rows. What the merge finds is
// confirmed before it is reported:
//   missing   a synced row whose key is not listed (HeadObject confirms; a
//             row synced after the listing passed its key is not reported);
//   damaged   the object's size differs from the row's file_size, or its
//             x-amz-meta-sha256 from the row's sha256 (HeadObject); with
//             `deep`, every object is read back (GetObject, streamed and
//             paced by SYNC_BANDWIDTH_LIMIT) and hashed, and its
//             x-amz-meta-sha256 and x-amz-checksum-sha256 headers compared;
//   orphan    a listed object that no row of the target's boxes names,
//             synced or not (looked up by sha256, or by key for keys that
//             are not content keys), so an upload whose sync is not
//             recorded yet is never one; nor is a copy a migration left in
//             its grace period (queue::SourceDeletions), deleted in time;
// and, once every target is done, each box's counters against the sums of
// its rows read in one snapshot: counter drift.
//
// Repair (`repair`): a missing or damaged object whose local file is in
// the buffer (at <buffer>/<s3_key>, the platform's layout) with the row's
// size and sha256 is uploaded again by a job pushed on media:sync:pending,
// unless a job for that sha256 is already queued: the job path brings its
// retries, its verification and its outage handling (the row is synced
// already, so the job changes no counter, then deletes the local file). A
// damaged object that looks right to HeadObject (size and stored sha256
// right, content wrong: seen by `deep`) would be kept by the upload as
// "already stored", so it is deleted first (only that very object, by its
// ETag). Drifted counters are set right in one transaction
// (PgBoxCatalog::FixCounters). Orphans are deleted only with
// `delete_orphans`, each by its listed ETag, after the catalog was asked
// again. Everything else is reported for a person.
//
// Resumable: after every page the position (last sha256 and key done) and
// the counts so far are saved in Redis (queue::AuditProgress); a run of the
// same kind (same scope and settings) continues from there, and a target
// it finished is not audited again. The cursors are cleared when every
// target of the run is done.
//
// Thread-safety: none; one auditor per thread (it owns Redis connections).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "buffer/local_buffer.h"
#include "catalog/pg_box_catalog.h"
#include "config/s3_options.h"
#include "config/urls.h"
#include "core/result.h"
#include "queue/audit_progress.h"
#include "queue/queue_admin.h"
#include "queue/source_deletions.h"

namespace media_sync::audit {

enum class ProblemClass { kMissing, kDamaged, kOrphan, kCounterDrift };
// The metric label and JSON name: "missing", "damaged", "orphan", "counter_drift".
std::string_view ToString(ProblemClass kind);
inline constexpr ProblemClass kProblemClasses[] = {ProblemClass::kMissing, ProblemClass::kDamaged,
                                                   ProblemClass::kOrphan,
                                                   ProblemClass::kCounterDrift};

struct AuditProblem {
  ProblemClass kind = ProblemClass::kMissing;
  std::string box;     // storage_box_id ("" for MINIO_ENDPOINT); an orphan's: the target's label
  std::string sha256;  // the row's; an orphan's: the hash its key names ("" if none)
  std::string key;     // the object key ("" for counters)
  std::string detail;  // what is wrong, for a person
  std::string action;  // what the repair did, or why it could not ("" without repair)
  bool fixed = false;  // repaired, or handed to the job path
};

// One bucket on one endpoint, and the boxes whose rows are stored there.
struct AuditTarget {
  std::string name;   // "http://host:port/bucket": names its cursor
  std::string label;  // its boxes, "box-a" or "box-a, (default)"
  s3::S3Options options;
  catalog::BoxSelection boxes;
};

struct AuditSettings {
  bool deep = false;
  bool repair = false;
  bool delete_orphans = false;  // with repair
  // Names the cursors in Redis: a `media-sync audit` and the scrub keep
  // theirs apart.
  std::string scope = "cli";
  bool resume = true;    // false: start over, forgetting an unfinished run
  int page_size = 1000;  // rows, and keys, per page
};

struct BoxTally {
  int64_t rows = 0;  // synced rows checked
  int64_t missing = 0;
  int64_t damaged = 0;
};

struct TargetSummary {
  std::string name;
  std::string label;
  int64_t objects = 0;  // objects and rows checked against each other
  int64_t orphans = 0;
  int64_t fixed = 0;
  std::map<std::string, BoxTally> boxes;  // by storage_box_id ("" for MINIO_ENDPOINT)
  bool resumed = false;                   // continued a run left unfinished
  bool done_earlier = false;  // finished by an earlier run of this kind: counts from then
};

struct AuditReport {
  std::vector<TargetSummary> targets;
  std::vector<catalog::BoxCounters> counters;  // the boxes' counters, before any fix
  std::map<ProblemClass, int64_t> found;       // problems found, fixed ones included
  int64_t fixed = 0;

  int64_t Found() const;
  int64_t Remaining() const { return Found() - fixed; }
};

class StorageAuditor {
 public:
  struct Hooks {
    // Each problem once its repair was tried (in the order pages end).
    std::function<void(const AuditProblem&)> on_problem;
    // Called after each object or row checked, with how many this run has
    // checked; an error ends the run (stop, a lock lost) and is returned.
    // The scrub paces itself and renews its lock here.
    std::function<Status(int64_t checked)> checkpoint;
  };

  // Borrows the catalog, and the buffer (null when nothing is repaired).
  StorageAuditor(catalog::PgBoxCatalog& catalog, const config::RedisAddress& redis,
                 const buffer::LocalBuffer* buffer, Hooks hooks);

  // The targets for boxes (id, minio_endpoint), plus MINIO_ENDPOINT
  // (`defaults`) when `rows_without_box`; boxes on one endpoint and bucket
  // share a target. With `only_box`, the target holding that box alone
  // (kInput "No storage box X" when there is none). An endpoint that does
  // not parse is kConfiguration naming the box.
  static Result<std::vector<AuditTarget>> PlanTargets(
      const s3::S3Options& defaults, const std::vector<std::pair<std::string, std::string>>& boxes,
      bool rows_without_box, const std::optional<std::string>& only_box);

  // Audits every target, then the counters of `counter_boxes`. Errors: the
  // first outage or configuration error of PostgreSQL, Redis or a box (the
  // position reached is saved: run again to continue), kCancelled on stop.
  Result<AuditReport> Run(const std::vector<AuditTarget>& targets,
                          const std::vector<std::string>& counter_boxes,
                          const AuditSettings& settings, const std::stop_token& stop);

  // The run's kind, as its cursors record it: another kind starts over.
  static std::string Mode(const AuditSettings& settings);

 private:
  class Pass;

  catalog::PgBoxCatalog& catalog_;
  const buffer::LocalBuffer* buffer_;
  Hooks hooks_;
  queue::QueueAdmin admin_;
  queue::AuditProgress progress_;
  queue::SourceDeletions migrated_;
};

// The sha256 a content key names (media/ab/cd/<sha256>.<ext>, its first
// four digits repeated as the two folders), or nullopt.
std::optional<std::string> ContentKeySha256(std::string_view key);

}  // namespace media_sync::audit
