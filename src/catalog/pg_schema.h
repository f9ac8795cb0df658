// The indexes media-sync's queries need on the platform's media_files table,
// and how to tell whether a database has them.
//
// media-sync joins a platform whose media_files table already exists, with
// the contract's columns only: schema/schema.sql is the reference, not what
// every database holds. Without these indexes the queries below still
// answer, but each reads the whole table, once per call (and the
// reconcile's keyset pages once per page), which grows with every file the
// platform ever stored. `media-sync schema check` reports what is missing;
// `media-sync schema apply` builds it with CREATE INDEX CONCURRENTLY, which
// never blocks the platform's writes (PgCatalog::BuildIndex).
//
// Pure logic: which of a table's indexes (as read from pg_index) serves which
// need. PgCatalog::CheckIndexes reads them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace media_sync::catalog {

// One index of media_files as PostgreSQL describes it.
struct ExistingIndex {
  std::string name;
  bool valid = false;     // indisvalid and indisready: usable by the planner
  bool unique = false;    // indisunique
  std::string columns;    // key columns in order, comma-separated ("created_at")
  std::string predicate;  // pg_get_expr(indpred) ("(synced_at IS NULL)"), "" for none
  bool building = false;  // a CREATE INDEX is building it right now (invalid meanwhile)
};

// An index the project's queries need.
struct RequiredIndex {
  std::string_view name;        // what `schema apply` builds it as
  std::string_view create_sql;  // CREATE ... INDEX CONCURRENTLY IF NOT EXISTS <name> ...
  std::string_view serves;      // the queries it keeps off a sequential scan
  // Another index of the same shape (another name) serves just as well.
  bool (*serves_as)(const ExistingIndex& index);
};

// Every index media-sync needs, in the order `schema apply` builds them.
const std::vector<RequiredIndex>& RequiredIndexes();

enum class IndexState {
  kPresent,    // a valid index of the required shape exists (maybe another name)
  kMissing,    // nothing serves the need
  kInvalid,    // only ours exists, left INVALID by an interrupted concurrent build
  kNameTaken,  // a valid index of another shape holds the name: never dropped
  kBuilding,   // ours is being built right now by some session
};

struct IndexCheck {
  const RequiredIndex* index = nullptr;
  IndexState state = IndexState::kMissing;
  std::string found_as;  // kPresent: the index that serves (may differ from index->name)
};

// Sorts each required index by what the table holds.
std::vector<IndexCheck> CheckAgainst(const std::vector<ExistingIndex>& existing);

// One line per index that is not present, for logs, `status` and /readyz:
// "index media_files_unsynced is missing (reconcile, status read the whole
// media_files table): run `media-sync schema apply`". Empty when all are.
std::vector<std::string> SchemaAdvice(const std::vector<IndexCheck>& checks);

std::string_view ToString(IndexState state);

}  // namespace media_sync::catalog
