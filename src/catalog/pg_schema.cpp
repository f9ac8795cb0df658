#include "catalog/pg_schema.h"

namespace media_sync::catalog {
namespace {

// Unsynced rows, oldest first: the reconcile's keyset pages (UnsyncedAfter)
// and status's unsynced counts per box (BoxesUsage). Partial: it holds only
// the rows still to sync, so it stays small however many files the platform
// stored.
constexpr std::string_view kCreateUnsynced =
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS media_files_unsynced "
    "ON media_files (created_at) WHERE synced_at IS NULL";

// One row per sha256: every sync (RecordSync), enqueue's lookup and its
// INSERT ... ON CONFLICT (sha256), which PostgreSQL refuses without a unique
// index. The platform's primary key is one; built only where none exists.
constexpr std::string_view kCreateSha256 =
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS media_files_sha256 "
    "ON media_files (sha256)";

bool ServesUnsynced(const ExistingIndex& index) {
  return index.valid &&
         (index.columns == "created_at" || index.columns.starts_with("created_at,")) &&
         index.predicate == "(synced_at IS NULL)";
}

bool ServesSha256(const ExistingIndex& index) {
  return index.valid && index.unique && index.columns == "sha256" && index.predicate.empty();
}

}  // namespace

const std::vector<RequiredIndex>& RequiredIndexes() {
  static const std::vector<RequiredIndex> kRequired = {
      {"media_files_sha256", kCreateSha256, "every sync, enqueue", ServesSha256},
      {"media_files_unsynced", kCreateUnsynced, "reconcile, status, the periodic reconcile",
       ServesUnsynced},
  };
  return kRequired;
}

std::vector<IndexCheck> CheckAgainst(const std::vector<ExistingIndex>& existing) {
  std::vector<IndexCheck> checks;
  for (const RequiredIndex& required : RequiredIndexes()) {
    IndexCheck check{&required, IndexState::kMissing, ""};
    for (const ExistingIndex& index : existing) {
      if (required.serves_as(index)) {
        check.state = IndexState::kPresent;
        check.found_as = index.name;
        break;
      }
      if (index.name == required.name) {
        check.state = index.building ? IndexState::kBuilding
                      : index.valid  ? IndexState::kNameTaken
                                     : IndexState::kInvalid;
      }
    }
    checks.push_back(std::move(check));
  }
  return checks;
}

std::vector<std::string> SchemaAdvice(const std::vector<IndexCheck>& checks) {
  std::vector<std::string> lines;
  for (const IndexCheck& check : checks) {
    if (check.state == IndexState::kPresent) continue;
    if (check.state == IndexState::kNameTaken) {
      lines.push_back("index name " + std::string(check.index->name) +
                      " is taken by an index of another definition (" +
                      std::string(check.index->serves) +
                      " read the whole media_files table): rename or drop it, then run "
                      "`media-sync schema apply`");
      continue;
    }
    if (check.state == IndexState::kBuilding) {
      lines.push_back("index " + std::string(check.index->name) + " is being built (" +
                      std::string(check.index->serves) +
                      " read the whole media_files table until it is done)");
      continue;
    }
    lines.push_back("index " + std::string(check.index->name) + " is " +
                    std::string(ToString(check.state)) + " (" + std::string(check.index->serves) +
                    " read the whole media_files table): run `media-sync schema apply`");
  }
  return lines;
}

std::string_view ToString(IndexState state) {
  switch (state) {
    case IndexState::kPresent:
      return "present";
    case IndexState::kMissing:
      return "missing";
    case IndexState::kInvalid:
      return "invalid (an interrupted concurrent build)";
    case IndexState::kNameTaken:
      return "taken by an index of another definition";
    case IndexState::kBuilding:
      return "being built";
  }
  return "?";
}

}  // namespace media_sync::catalog
