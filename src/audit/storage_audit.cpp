#include "audit/storage_audit.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/hash.h"
#include "core/job.h"
#include "s3/s3_client.h"
#include "worker/box_registry.h"

namespace media_sync::audit {
namespace {

constexpr std::string_view kMediaPrefix = "media/";
// Pending confirmations and candidates are resolved at least this often,
// so a slow (paced) run saves its position regularly.
constexpr auto kFlushEvery = std::chrono::seconds(10);
// Counts in the cursor: per target, and per box as "<count>/<box>".
constexpr std::string_view kObjects = "objects";
constexpr std::string_view kOrphans = "orphans";
constexpr std::string_view kFixed = "fixed";

bool IsHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The highest key of sha256's content keys and below: "media/ab/cd/<sha256>/"
// sorts after "media/ab/cd/<sha256>.<any extension>" ('/' follows '.') and
// before the next hash's keys.
std::string KeyBound(const std::string& sha256) {
  return std::string(kMediaPrefix) + sha256.substr(0, 2) + "/" + sha256.substr(2, 2) + "/" +
         sha256 + "/";
}

std::string BoxName(const std::optional<std::string>& box) { return box.value_or(""); }

bool Selected(const catalog::BoxSelection& boxes, const std::optional<std::string>& box) {
  if (!box) return boxes.without_box;
  return std::find(boxes.ids.begin(), boxes.ids.end(), *box) != boxes.ids.end();
}

std::string Bytes(uint64_t size) { return std::to_string(size) + " bytes"; }

// Lower-case hex digits (checked by the caller) as the bytes they spell.
std::string RawOfHex(std::string_view hex) {
  auto digit = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string raw;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    raw.push_back(static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1])));
  }
  return raw;
}

}  // namespace

std::string_view ToString(ProblemClass kind) {
  switch (kind) {
    case ProblemClass::kMissing:
      return "missing";
    case ProblemClass::kDamaged:
      return "damaged";
    case ProblemClass::kOrphan:
      return "orphan";
    case ProblemClass::kCounterDrift:
      return "counter_drift";
  }
  return "?";
}

std::optional<std::string> ContentKeySha256(std::string_view key) {
  // media/ab/cd/<64 hex>.<ext>
  constexpr size_t kHashAt = 12;
  if (key.size() < kHashAt + 64 + 2 || key.substr(0, kMediaPrefix.size()) != kMediaPrefix ||
      key[8] != '/' || key[11] != '/' || key[kHashAt + 64] != '.') {
    return std::nullopt;
  }
  std::string_view hash = key.substr(kHashAt, 64);
  std::string_view extension = key.substr(kHashAt + 65);
  if (!IsHex(hash) || extension.find('/') != std::string_view::npos ||
      key.substr(6, 2) != hash.substr(0, 2) || key.substr(9, 2) != hash.substr(2, 2)) {
    return std::nullopt;
  }
  return std::string(hash);
}

int64_t AuditReport::Found() const {
  int64_t total = 0;
  for (const auto& [kind, count] : found) total += count;
  return total;
}

std::string StorageAuditor::Mode(const AuditSettings& settings) {
  std::string mode = settings.deep ? "deep" : "listing";
  if (settings.repair) mode += settings.delete_orphans ? " repair+orphans" : " repair";
  return mode;
}

Result<std::vector<AuditTarget>> StorageAuditor::PlanTargets(
    const s3::S3Options& defaults, const std::vector<std::pair<std::string, std::string>>& boxes,
    bool rows_without_box, const std::optional<std::string>& only_box) {
  std::vector<AuditTarget> targets;
  auto add = [&](const std::optional<std::string>& box, const s3::S3Options& options) {
    std::string name = std::string(options.secure ? "https://" : "http://") + options.endpoint +
                       "/" + options.bucket;
    auto it = std::find_if(targets.begin(), targets.end(),
                           [&](const AuditTarget& target) { return target.name == name; });
    if (it == targets.end()) {
      targets.push_back(AuditTarget{name, "", options, {}});
      it = std::prev(targets.end());
    }
    if (box) {
      it->boxes.ids.push_back(*box);
    } else {
      it->boxes.without_box = true;
    }
    it->label += (it->label.empty() ? "" : ", ") + box.value_or("(default)");
  };
  bool found = !only_box.has_value();
  for (const auto& [id, endpoint] : boxes) {
    auto options = worker::BoxRegistry::OptionsForEndpoint(defaults, endpoint);
    if (!options) return options.error().Wrap("storage box " + id);
    add(id, *options);
    found = found || id == only_box;
  }
  if (!found) return Error::Input("No storage box " + *only_box + " in storage_boxes");
  if (rows_without_box) add(std::nullopt, defaults);
  if (only_box) {
    std::erase_if(targets, [&](const AuditTarget& target) {
      return std::find(target.boxes.ids.begin(), target.boxes.ids.end(), *only_box) ==
             target.boxes.ids.end();
    });
  }
  return targets;
}

StorageAuditor::StorageAuditor(catalog::PgBoxCatalog& catalog, const config::RedisAddress& redis,
                               const buffer::LocalBuffer* buffer, Hooks hooks)
    : catalog_(catalog),
      buffer_(buffer),
      hooks_(std::move(hooks)),
      admin_(redis),
      progress_(redis),
      migrated_(redis) {}

// One target's merge: the rows and the listing advanced together, what they
// disagree on confirmed and repaired page by page, the position saved after
// each page.
class StorageAuditor::Pass {
 public:
  Pass(StorageAuditor& auditor, const AuditTarget& target, const AuditSettings& settings,
       const std::stop_token& stop, int64_t& checked)
      : auditor_(auditor),
        target_(target),
        settings_(settings),
        stop_(stop),
        checked_(checked),
        client_(target.options),
        cursor_key_(queue::AuditProgress::CursorKey(settings.scope, target.name)) {}

  Result<TargetSummary> Run() {
    summary_.name = target_.name;
    summary_.label = target_.label;
    for (const std::string& box : target_.boxes.ids) summary_.boxes[box];
    if (target_.boxes.without_box) summary_.boxes[""];
    if (auto loaded = LoadCursor(); !loaded) return loaded.error();
    if (record_.done) {
      summary_.done_earlier = true;
      return summary_;
    }
    last_flush_ = std::chrono::steady_clock::now();
    while (true) {
      auto row = NextRow();
      if (!row) return row.error();
      if (!row->has_value()) break;
      if (auto checked = CheckRow(**row); !checked) return checked.error();
      if (auto flushed = MaybeFlush(); !flushed) return flushed.error();
    }
    // Keys past the last row: every one is an orphan candidate.
    while (true) {
      auto object = ListedHead();
      if (!object) return object.error();
      if (*object == nullptr) break;
      if (auto taken = TakeCandidate(); !taken) return taken.error();
      if (auto flushed = MaybeFlush(); !flushed) return flushed.error();
    }
    if (auto flushed = Flush(); !flushed) return flushed.error();
    record_.done = true;
    if (auto saved = auditor_.progress_.Save(cursor_key_, record_); !saved) return saved.error();
    return summary_;
  }

 private:
  Status LoadCursor() {
    const std::string mode = Mode(settings_);
    record_ = queue::AuditRecord{};
    record_.mode = mode;
    record_.started_at = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    if (!settings_.resume) return Ok();
    auto loaded = auditor_.progress_.Load(cursor_key_);
    if (!loaded) return loaded.error();
    if (!loaded->has_value()) return Ok();
    if ((*loaded)->mode != mode) {
      spdlog::info(
          "audit of {}: an unfinished run of another kind ({}) is set aside; starting over",
          target_.name, (*loaded)->mode);
      return Ok();
    }
    record_ = std::move(**loaded);
    summary_.resumed = true;
    // The counts of the earlier part of the run.
    summary_.objects = record_.counts[std::string(kObjects)];
    summary_.orphans = record_.counts[std::string(kOrphans)];
    summary_.fixed = record_.counts[std::string(kFixed)];
    for (const auto& [name, count] : record_.counts) {
      size_t slash = name.find('/');
      if (slash == std::string::npos) continue;
      std::string what = name.substr(0, slash);
      BoxTally& tally = summary_.boxes[name.substr(slash + 1)];
      if (what == "rows") tally.rows = count;
      if (what == "missing") tally.missing = count;
      if (what == "damaged") tally.damaged = count;
    }
    if (!record_.done) {
      spdlog::info("audit of {}: resuming after sha256 {} ({} objects checked so far)",
                   target_.name, record_.after_sha256.empty() ? "(start)" : record_.after_sha256,
                   summary_.objects);
    }
    return Ok();
  }

  // The next synced row, nullopt at the end.
  Result<std::optional<catalog::StoredRow>> NextRow() {
    if (rows_at_ >= rows_.size()) {
      if (rows_ended_) return std::optional<catalog::StoredRow>();
      const std::string& after = rows_.empty() ? record_.after_sha256 : rows_.back().sha256;
      auto page = auditor_.catalog_.SyncedAfter(target_.boxes, after, settings_.page_size);
      if (!page) return page.error();
      rows_ = std::move(*page);
      rows_at_ = 0;
      rows_ended_ = static_cast<int>(rows_.size()) < settings_.page_size;
      if (rows_.empty()) return std::optional<catalog::StoredRow>();
    }
    return std::optional<catalog::StoredRow>(rows_[rows_at_++]);
  }

  // The listed object at the head of the listing, nullptr at its end.
  Result<const s3::ListedObject*> ListedHead() {
    while (listing_at_ >= listing_.size()) {
      if (listing_ended_) return static_cast<const s3::ListedObject*>(nullptr);
      auto page = client_.ListObjectsV2(std::string(kMediaPrefix), record_.after_key, next_token_,
                                        settings_.page_size, stop_);
      if (!page) return page.error();
      listing_ = std::move(page->objects);
      listing_at_ = 0;
      next_token_ = std::move(page->next_token);
      listing_ended_ = next_token_.empty();
    }
    return &listing_[listing_at_];
  }

  // The listed object at the head, which no row before it named: an orphan
  // candidate. Every key up to it is then done.
  Status TakeCandidate() {
    s3::ListedObject& object = listing_[listing_at_++];
    record_.after_key = object.key;
    orphan_candidates_.push_back(std::move(object));
    return Checked();
  }

  Status Checked() {
    ++summary_.objects;
    ++checked_;
    if (stop_.stop_requested()) return Error::Cancelled("audit stopped");
    return auditor_.hooks_.checkpoint ? auditor_.hooks_.checkpoint(checked_) : Ok();
  }

  Status CheckRow(const catalog::StoredRow& row) {
    BoxTally& tally = summary_.boxes[BoxName(row.box)];
    ++tally.rows;
    if (ContentKeySha256(row.s3_key) != row.sha256) {
      // Its key sorts elsewhere than its hash: checked on its own.
      missing_candidates_.push_back(row);
      record_.after_sha256 = row.sha256;
      return Checked();
    }
    while (true) {
      auto object = ListedHead();
      if (!object) return object.error();
      if (*object == nullptr || (*object)->key >= row.s3_key) break;
      if (auto taken = TakeCandidate(); !taken) return taken;
      // However many keys lie between two rows, memory holds a page of them.
      if (orphan_candidates_.size() >= static_cast<size_t>(settings_.page_size)) {
        if (auto flushed = Flush(); !flushed) return flushed;
      }
    }
    auto object = ListedHead();
    if (!object) return object.error();
    if (*object != nullptr && (*object)->key == row.s3_key) {
      const s3::ListedObject listed = **object;
      ++listing_at_;
      if (listed.size != row.file_size) {
        damaged_candidates_.push_back(row);
      } else if (settings_.deep) {
        if (auto read = ReadBack(row, listed); !read) return read;
      }
    } else {
      missing_candidates_.push_back(row);
    }
    // Other keys of the same hash (another extension) lie up to the bound.
    const std::string bound = KeyBound(row.sha256);
    while (true) {
      auto next = ListedHead();
      if (!next) return next.error();
      if (*next == nullptr || (*next)->key > bound) break;
      orphan_candidates_.push_back(**next);
      ++listing_at_;
    }
    record_.after_sha256 = row.sha256;
    record_.after_key = std::max(record_.after_key, bound);
    return Checked();
  }

  // Reads the object back and hashes it: damage its metadata does not show.
  Status ReadBack(const catalog::StoredRow& row, const s3::ListedObject& listed) {
    Hasher hasher;
    uint64_t size = 0;
    auto reply = client_.GetObjectStreamed(
        row.s3_key,
        [&](const char* data, size_t n) {
          hasher.Update(data, n);
          size += n;
          return true;
        },
        stop_);
    if (!reply) return reply.error();
    if (!reply->has_value()) {
      missing_candidates_.push_back(row);  // gone since the listing: confirmed below
      return Ok();
    }
    const auto& headers = (**reply).headers;
    std::string stored_sha256;
    if (auto it = headers.find("x-amz-meta-sha256"); it != headers.end())
      stored_sha256 = it->second;
    std::string problem;
    const std::string content = hasher.FinishHex();
    if (size != row.file_size) {
      problem = "read back " + Bytes(size) + ", expected " + Bytes(row.file_size);
    } else if (content != row.sha256) {
      problem = "content hashes to " + content;
    } else if (!stored_sha256.empty() && stored_sha256 != row.sha256) {
      problem = "stored x-amz-meta-sha256 is " + stored_sha256;
    } else if (auto it = headers.find("x-amz-checksum-sha256");
               it != headers.end() && it->second.find('-') == std::string::npos &&
               IsHex(row.sha256) && it->second != Base64(RawOfHex(row.sha256))) {
      // A composite checksum ("...-N", multipart) is not the object's hash.
      problem = "stored x-amz-checksum-sha256 is " + it->second;
    }
    if (problem.empty()) return Ok();
    // Size and stored sha256 right, bytes wrong: an upload would keep it as
    // "already stored" unless it is deleted first.
    bool looks_right = size == row.file_size && stored_sha256 == row.sha256;
    return Found(ProblemClass::kDamaged, row, problem, looks_right ? listed.etag : "");
  }

  // A missing or damaged row: tallied, repaired when asked, kept for the
  // end of the page. `delete_etag`: the object must be deleted before an
  // upload replaces it.
  Status Found(ProblemClass kind, const catalog::StoredRow& row, std::string detail,
               const std::string& delete_etag) {
    BoxTally& tally = summary_.boxes[BoxName(row.box)];
    ++(kind == ProblemClass::kMissing ? tally.missing : tally.damaged);
    AuditProblem problem{kind, BoxName(row.box), row.sha256, row.s3_key, std::move(detail), "",
                         false};
    if (settings_.repair) {
      auto repaired = Repair(row, delete_etag, problem);
      if (!repaired) return repaired;
    }
    problems_.push_back(std::move(problem));
    return Ok();
  }

  // Checks the local copy and queues the job that uploads it again.
  Status Repair(const catalog::StoredRow& row, const std::string& delete_etag,
                AuditProblem& problem) {
    if (auditor_.buffer_ == nullptr) {
      problem.action = "not repaired: no buffer to look in";
      return Ok();
    }
    auto local = auditor_.buffer_->Open(row.s3_key);
    if (!local) {
      if (local.error().IsOutage()) return local.error();
      problem.action = "not repaired: local copy unusable: " + local.error().message;
      return Ok();
    }
    if (!local->has_value()) {
      problem.action = "not repaired: no local copy in the buffer; needs a person";
      return Ok();
    }
    const buffer::LocalFile& file = **local;
    if (file.size() != row.file_size) {
      problem.action = "not repaired: the local copy has " + Bytes(file.size()) + ", expected " +
                       Bytes(row.file_size);
      return Ok();
    }
    auto hashed = Sha256OfFd(file.fd(), file.size());
    if (!hashed || *hashed != row.sha256) {
      problem.action = "not repaired: the local copy " +
                       (hashed ? "hashes to " + *hashed : hashed.error().message);
      return Ok();
    }
    if (!delete_etag.empty()) {
      auto deleted = client_.DeleteObjectIfMatch(row.s3_key, delete_etag, stop_);
      if (!deleted) return deleted.error();
      if (!*deleted) {
        problem.action = "not repaired: the object changed since it was read; see the next audit";
        return Ok();
      }
    }
    repairs_.push_back(row);
    problem.action = "re-upload queued";
    problem.fixed = true;
    return Ok();
  }

  Status MaybeFlush() {
    size_t pending = orphan_candidates_.size() + missing_candidates_.size() +
                     damaged_candidates_.size() + problems_.size();
    if (pending < static_cast<size_t>(settings_.page_size) && rows_at_ < rows_.size() &&
        std::chrono::steady_clock::now() - last_flush_ < kFlushEvery) {
      return Ok();
    }
    return Flush();
  }

  // Confirms and repairs what the page found, reports it, saves the position.
  Status Flush() {
    last_flush_ = std::chrono::steady_clock::now();
    if (auto confirmed = ConfirmRows(); !confirmed) return confirmed;
    if (auto resolved = ResolveOrphans(); !resolved) return resolved;
    if (auto queued = QueueRepairs(); !queued) return queued;
    for (AuditProblem& problem : problems_) {
      if (problem.fixed) ++summary_.fixed;
      if (auditor_.hooks_.on_problem) auditor_.hooks_.on_problem(problem);
    }
    problems_.clear();
    record_.counts[std::string(kObjects)] = summary_.objects;
    record_.counts[std::string(kOrphans)] = summary_.orphans;
    record_.counts[std::string(kFixed)] = summary_.fixed;
    for (const auto& [box, tally] : summary_.boxes) {
      record_.counts["rows/" + box] = tally.rows;
      record_.counts["missing/" + box] = tally.missing;
      record_.counts["damaged/" + box] = tally.damaged;
    }
    return auditor_.progress_.Save(cursor_key_, record_);
  }

  // Each missing or damaged candidate, asked of the box on its own.
  Status ConfirmRows() {
    auto confirm = [&](const catalog::StoredRow& row) -> Status {
      auto info = client_.HeadObject(row.s3_key, stop_);
      if (!info) return info.error();
      if (!info->has_value()) return Found(ProblemClass::kMissing, row, "no object", "");
      const ObjectInfo& object = **info;
      if (object.size != row.file_size) {
        return Found(ProblemClass::kDamaged, row,
                     "stored " + Bytes(object.size) + ", expected " + Bytes(row.file_size), "");
      }
      if (!object.sha256.empty() && object.sha256 != row.sha256) {
        return Found(ProblemClass::kDamaged, row, "stored x-amz-meta-sha256 is " + object.sha256,
                     "");
      }
      // Right after all (written since the listing passed its key); a row
      // whose key is not its content key is read back here under `deep`.
      if (settings_.deep && ContentKeySha256(row.s3_key) != row.sha256) {
        return ReadBack(row, s3::ListedObject{row.s3_key, object.size, object.etag, {}});
      }
      return Ok();
    };
    std::vector<catalog::StoredRow> rows = std::move(missing_candidates_);
    rows.insert(rows.end(), damaged_candidates_.begin(), damaged_candidates_.end());
    missing_candidates_.clear();
    damaged_candidates_.clear();
    for (const catalog::StoredRow& row : rows) {
      if (auto status = confirm(row); !status) return status;
    }
    return Ok();
  }

  // Listed objects no row of the target names: orphans.
  Status ResolveOrphans() {
    if (orphan_candidates_.empty()) return Ok();
    std::vector<std::string> sha256s;
    std::vector<std::string> other_keys;
    for (const s3::ListedObject& object : orphan_candidates_) {
      if (auto sha256 = ContentKeySha256(object.key)) {
        sha256s.push_back(*sha256);
      } else {
        other_keys.push_back(object.key);
      }
    }
    auto by_hash = auditor_.catalog_.RowsFor(sha256s);
    if (!by_hash) return by_hash.error();
    auto by_key = auditor_.catalog_.RowsWithKeys(target_.boxes, other_keys);
    if (!by_key) return by_key.error();
    std::unordered_map<std::string, std::vector<catalog::StoredRow>> rows_by_key;
    for (auto* rows : {&*by_hash, &*by_key}) {
      for (catalog::StoredRow& row : *rows) rows_by_key[row.s3_key].push_back(std::move(row));
    }
    std::vector<s3::ListedObject> candidates = std::move(orphan_candidates_);
    orphan_candidates_.clear();
    std::vector<const s3::ListedObject*> unnamed;
    std::vector<std::string> elsewhere;
    for (const s3::ListedObject& object : candidates) {
      std::string other_box;
      bool named = false;
      for (const catalog::StoredRow& row : rows_by_key[object.key]) {
        if (Selected(target_.boxes, row.box)) {
          named = true;  // synced since its page, or its sync is under way
        } else {
          other_box = row.box.value_or("(default)");
        }
      }
      if (named) continue;
      unnamed.push_back(&object);
      elsewhere.push_back(other_box);
    }
    // A copy a migration left on one of these boxes, in its grace period.
    std::vector<queue::SourceCopy> copies;
    for (const s3::ListedObject* object : unnamed) {
      for (const std::string& box : target_.boxes.ids) {
        copies.push_back(
            queue::SourceCopy{box, object->key, ContentKeySha256(object->key).value_or("")});
      }
    }
    auto scheduled = auditor_.migrated_.Scheduled(copies);
    if (!scheduled) return scheduled.error();
    const size_t per_object = target_.boxes.ids.size();
    for (size_t i = 0; i < unnamed.size(); ++i) {
      const s3::ListedObject& object = *unnamed[i];
      const auto first = scheduled->begin() + static_cast<std::ptrdiff_t>(i * per_object);
      if (std::find(first, first + static_cast<std::ptrdiff_t>(per_object), true) !=
          first + static_cast<std::ptrdiff_t>(per_object)) {
        continue;  // deleted by the migration once its grace is over
      }
      const std::string& other_box = elsewhere[i];
      ++summary_.orphans;
      AuditProblem problem{ProblemClass::kOrphan,
                           target_.label,
                           ContentKeySha256(object.key).value_or(""),
                           object.key,
                           Bytes(object.size) + ", no row names it" +
                               (other_box.empty() ? "" : " (its row names box " + other_box + ")"),
                           "",
                           false};
      if (settings_.repair && settings_.delete_orphans) {
        auto deleted = client_.DeleteObjectIfMatch(object.key, object.etag, stop_);
        if (!deleted) return deleted.error();
        problem.fixed = *deleted;
        problem.action =
            *deleted ? "deleted" : "not deleted: the object changed since it was listed";
      } else if (settings_.repair) {
        problem.action = "kept (--delete-orphans deletes it)";
      }
      problems_.push_back(std::move(problem));
    }
    return Ok();
  }

  // Pushes the repair jobs, except for files whose job is already queued.
  Status QueueRepairs() {
    if (repairs_.empty()) return Ok();
    std::unordered_set<std::string> wanted;
    for (const catalog::StoredRow& row : repairs_) wanted.insert(row.sha256);
    std::unordered_set<std::string> queued;
    auto walked = auditor_.admin_.ForEachQueuedSha256(
        [&](std::string_view sha256) {
          if (auto it = wanted.find(std::string(sha256)); it != wanted.end()) queued.insert(*it);
        },
        {});
    if (!walked) return walked;
    std::vector<std::string> payloads;
    for (const catalog::StoredRow& row : repairs_) {
      if (queued.count(row.sha256) > 0) continue;
      payloads.push_back(
          MakeJobPayload(NewJob{row.sha256, row.s3_key, auditor_.buffer_->path() + "/" + row.s3_key,
                                row.box, row.file_size, std::chrono::system_clock::now()}));
    }
    repairs_.clear();
    for (AuditProblem& problem : problems_) {
      if (problem.fixed && queued.count(problem.sha256) > 0 &&
          problem.kind != ProblemClass::kOrphan) {
        problem.action = "a job for it is already queued";
      }
    }
    return auditor_.admin_.Enqueue(payloads);
  }

  StorageAuditor& auditor_;
  const AuditTarget& target_;
  const AuditSettings& settings_;
  const std::stop_token& stop_;
  int64_t& checked_;
  s3::S3Client client_;
  const std::string cursor_key_;

  queue::AuditRecord record_;
  TargetSummary summary_;

  std::vector<catalog::StoredRow> rows_;
  size_t rows_at_ = 0;
  bool rows_ended_ = false;
  std::vector<s3::ListedObject> listing_;
  size_t listing_at_ = 0;
  std::string next_token_;
  bool listing_ended_ = false;

  std::vector<s3::ListedObject> orphan_candidates_;
  std::vector<catalog::StoredRow> missing_candidates_;
  std::vector<catalog::StoredRow> damaged_candidates_;
  std::vector<catalog::StoredRow> repairs_;
  std::vector<AuditProblem> problems_;
  std::chrono::steady_clock::time_point last_flush_;
};

Result<AuditReport> StorageAuditor::Run(const std::vector<AuditTarget>& targets,
                                        const std::vector<std::string>& counter_boxes,
                                        const AuditSettings& settings,
                                        const std::stop_token& stop) {
  AuditReport report;
  int64_t checked = 0;
  std::vector<std::string> cursor_keys;
  for (const AuditTarget& target : targets) {
    cursor_keys.push_back(queue::AuditProgress::CursorKey(settings.scope, target.name));
    Pass pass(*this, target, settings, stop, checked);
    auto summary = pass.Run();
    if (!summary) return summary.error();
    // The summary counts what this run found and, when it continued an
    // unfinished run, what that one found before (reported by it).
    for (const auto& [box, tally] : summary->boxes) {
      report.found[ProblemClass::kMissing] += tally.missing;
      report.found[ProblemClass::kDamaged] += tally.damaged;
    }
    report.found[ProblemClass::kOrphan] += summary->orphans;
    report.fixed += summary->fixed;
    report.targets.push_back(std::move(*summary));
  }

  auto counters = catalog_.CheckCounters(counter_boxes);
  if (!counters) return counters.error();
  std::vector<std::string> drifted;
  for (const catalog::BoxCounters& box : *counters) {
    if (box.Drifted()) drifted.push_back(box.box);
  }
  std::map<std::string, catalog::BoxCounters> before_fix;
  if (settings.repair && !drifted.empty()) {
    auto fixed = catalog_.FixCounters(drifted);
    if (!fixed) return fixed.error();
    for (catalog::BoxCounters& box : *fixed) before_fix[box.box] = box;
  }
  for (const catalog::BoxCounters& box : *counters) {
    if (!box.Drifted()) continue;
    AuditProblem problem{ProblemClass::kCounterDrift,
                         box.box,
                         "",
                         "",
                         "used_bytes " + std::to_string(box.used_bytes) + ", its " +
                             std::to_string(box.synced_rows) + " synced rows hold " +
                             std::to_string(box.synced_bytes) + "; reserved_bytes " +
                             std::to_string(box.reserved_bytes) + ", its " +
                             std::to_string(box.unsynced_rows) + " unsynced rows hold " +
                             std::to_string(box.unsynced_bytes),
                         "",
                         false};
    if (settings.repair) {
      auto it = before_fix.find(box.box);
      problem.fixed = true;
      problem.action = it != before_fix.end() && it->second.Drifted()
                           ? "set to used_bytes " + std::to_string(it->second.synced_bytes) +
                                 ", reserved_bytes " + std::to_string(it->second.unsynced_bytes)
                           : "right again by the time it was locked";
    }
    ++report.found[problem.kind];
    if (problem.fixed) ++report.fixed;
    if (hooks_.on_problem) hooks_.on_problem(problem);
  }
  report.counters = std::move(*counters);
  // Every target is done: the next run starts from the beginning.
  if (auto cleared = progress_.Clear(cursor_keys); !cleared) return cleared.error();
  return report;
}

}  // namespace media_sync::audit
