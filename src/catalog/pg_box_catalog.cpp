#include "catalog/pg_box_catalog.h"

#include <utility>

#include "catalog/pg_connection_pool.h"
#include "catalog/pg_query.h"

namespace media_sync::catalog {
namespace {

using pg::Clock;

constexpr const char* kSelectBoxes = "SELECT id, minio_endpoint FROM storage_boxes ORDER BY id";

constexpr const char* kAnyRowWithoutBox =
    "SELECT EXISTS (SELECT 1 FROM media_files WHERE storage_box_id IS NULL)";

// $1 cursor sha256 ('' for the start), $2 box ids, $3 rows without a box too,
// $4 limit. Keyset over the primary key: the comparison bounds the index
// scan, so each page reads on from where the last ended; the box filter is
// applied to the rows the scan meets. The cursor comes as char(64), the
// column's type: compared as text the key would not serve.
constexpr const char* kSelectSyncedAfter =
    "SELECT sha256, s3_key, file_size, storage_box_id FROM media_files "
    "WHERE sha256 > $1::char(64) AND synced_at IS NOT NULL "
    "AND (storage_box_id = ANY($2::text[]) OR ($3::boolean AND storage_box_id IS NULL)) "
    "ORDER BY sha256 LIMIT $4::integer";

// $1 cursor sha256, $2 box id, $3 limit, $4 shards, $5 shard. The shard
// of a row is its hash's first 32 bits modulo the shards: hashes are
// uniform, so shards are even, and a row's shard never changes.
constexpr const char* kSelectSyncedOfShardAfter =
    "SELECT sha256, s3_key, file_size, storage_box_id FROM media_files "
    "WHERE sha256 > $1::char(64) AND synced_at IS NOT NULL AND storage_box_id = $2 "
    "AND ($4::integer <= 1 OR "
    "('x' || substr(sha256, 1, 8))::bit(32)::bigint % $4::integer = $5::integer) "
    "ORDER BY sha256 LIMIT $3::integer";

// $1 sha256, $2 from box, $3 to box. The boxes are locked in id order (as
// RecordSync's batches lock them: no deadlock); the row moves only if it
// names `from` now, and the counters only if it moved, by its own size.
// One row per call: whether it moved, and whether `to` exists.
constexpr const char* kMoveRow =
    "WITH boxes AS (SELECT id FROM storage_boxes WHERE id IN ($2, $3) ORDER BY id FOR UPDATE), "
    "moved AS (UPDATE media_files SET storage_box_id = $3 "
    "WHERE sha256 = $1::char(64) AND storage_box_id = $2 AND synced_at IS NOT NULL "
    "AND EXISTS (SELECT 1 FROM boxes WHERE id = $3) AND EXISTS (SELECT 1 FROM boxes WHERE id = $2) "
    "RETURNING file_size), "
    "counted AS (UPDATE storage_boxes b SET used_bytes = b.used_bytes + "
    "CASE WHEN b.id = $3 THEN m.file_size ELSE -m.file_size END "
    "FROM moved m WHERE b.id IN ($2, $3) RETURNING 1) "
    "SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM boxes WHERE id = $3), "
    "(SELECT count(*) FROM counted)";

// $1 sha256s.
constexpr const char* kSelectRowsFor =
    "SELECT sha256, s3_key, file_size, storage_box_id, synced_at IS NOT NULL FROM media_files "
    "WHERE sha256 = ANY($1::bpchar[])";

// $1 keys, $2 box ids, $3 rows without a box too.
constexpr const char* kSelectRowsWithKeys =
    "SELECT sha256, s3_key, file_size, storage_box_id, synced_at IS NOT NULL FROM media_files "
    "WHERE s3_key = ANY($1::text[]) "
    "AND (storage_box_id = ANY($2::text[]) OR ($3::boolean AND storage_box_id IS NULL))";

// $1 box ids (empty: every box). One statement, so one snapshot: RecordSync
// moves a row and its box's counters in one transaction, so they agree here
// unless something else changed one of them.
constexpr const char* kSelectCounters =
    "SELECT b.id, b.used_bytes, b.reserved_bytes, "
    "coalesce(sum(m.file_size) FILTER (WHERE m.synced_at IS NOT NULL), 0)::bigint, "
    "coalesce(sum(m.file_size) FILTER (WHERE m.synced_at IS NULL), 0)::bigint, "
    "count(m.sha256) FILTER (WHERE m.synced_at IS NOT NULL), "
    "count(m.sha256) FILTER (WHERE m.synced_at IS NULL) "
    "FROM storage_boxes b LEFT JOIN media_files m ON m.storage_box_id = b.id "
    "WHERE cardinality($1::text[]) = 0 OR b.id = ANY($1::text[]) "
    "GROUP BY b.id ORDER BY b.id";

// $1 box ids. In id order, as RecordSync's batches lock them: no deadlock.
constexpr const char* kLockBoxes =
    "SELECT id FROM storage_boxes WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE";

// $1 box ids. Run under kLockBoxes: the sums are read after the lock, from
// a snapshot that holds every sync of these boxes committed before it.
constexpr const char* kFixCounters =
    "UPDATE storage_boxes b SET used_bytes = s.synced, reserved_bytes = s.unsynced "
    "FROM (SELECT b2.id, "
    "coalesce(sum(m.file_size) FILTER (WHERE m.synced_at IS NOT NULL), 0)::bigint AS synced, "
    "coalesce(sum(m.file_size) FILTER (WHERE m.synced_at IS NULL), 0)::bigint AS unsynced "
    "FROM storage_boxes b2 LEFT JOIN media_files m ON m.storage_box_id = b2.id "
    "WHERE b2.id = ANY($1::text[]) GROUP BY b2.id) s "
    "WHERE b.id = s.id AND (b.used_bytes <> s.synced OR b.reserved_bytes <> s.unsynced)";

StoredRow RowAt(const PgResult& rows, int row, bool with_synced) {
  StoredRow stored;
  stored.sha256 = pg::Field(rows, row, 0);
  stored.s3_key = pg::Field(rows, row, 1);
  int64_t size = pg::IntegerField(rows, row, 2);
  stored.file_size = size > 0 ? static_cast<uint64_t>(size) : 0;
  if (!pg::IsNull(rows, row, 3)) stored.box = pg::Field(rows, row, 3);
  stored.synced = with_synced ? pg::Field(rows, row, 4) == "t" : true;
  return stored;
}

Result<std::vector<BoxCounters>> ReadCounters(PgConnection& connection, const std::string& ids,
                                              Clock::time_point deadline) {
  auto rows = pg::Run(connection, kSelectCounters, {ids}, deadline);
  if (!rows.ok()) return rows.error();
  std::vector<BoxCounters> counters;
  counters.reserve(static_cast<size_t>(pg::Rows(*rows)));
  for (int row = 0; row < pg::Rows(*rows); ++row) {
    counters.push_back(BoxCounters{pg::Field(*rows, row, 0), pg::IntegerField(*rows, row, 1),
                                   pg::IntegerField(*rows, row, 2), pg::IntegerField(*rows, row, 3),
                                   pg::IntegerField(*rows, row, 4), pg::IntegerField(*rows, row, 5),
                                   pg::IntegerField(*rows, row, 6)});
  }
  return counters;
}

}  // namespace

PgBoxCatalog::PgBoxCatalog(std::string conninfo, int pool_size,
                           std::chrono::milliseconds query_timeout)
    : query_timeout_(query_timeout) {
  auto password = pg::ConninfoPassword(conninfo);
  if (password.ok()) {
    password_ = *password;
  } else {
    conninfo_error_ = password.error();
  }
  pool_ = std::make_unique<PgConnectionPool>(std::move(conninfo), pool_size,
                                             std::chrono::seconds(5), "media-sync");
}

PgBoxCatalog::~PgBoxCatalog() = default;

Result<std::vector<std::pair<std::string, std::string>>> PgBoxCatalog::Boxes() {
  using Boxes = std::vector<std::pair<std::string, std::string>>;
  if (conninfo_error_) return *conninfo_error_;
  auto select = [&](PgConnection& connection, Clock::time_point deadline) -> Result<Boxes> {
    auto rows = pg::Run(connection, kSelectBoxes, {}, deadline);
    if (!rows.ok()) return rows.error();
    Boxes boxes;
    for (int row = 0; row < pg::Rows(*rows); ++row) {
      boxes.emplace_back(pg::Field(*rows, row, 0), pg::Field(*rows, row, 1));
    }
    return boxes;
  };
  return pg::Scrubbed(pg::WithConnection<Boxes>(*pool_, query_timeout_, select), password_);
}

Result<bool> PgBoxCatalog::AnyRowWithoutBox() {
  if (conninfo_error_) return *conninfo_error_;
  auto select = [&](PgConnection& connection, Clock::time_point deadline) -> Result<bool> {
    auto rows = pg::Run(connection, kAnyRowWithoutBox, {}, deadline);
    if (!rows.ok()) return rows.error();
    return pg::Field(*rows, 0, 0) == "t";
  };
  return pg::Scrubbed(pg::WithConnection<bool>(*pool_, query_timeout_, select), password_);
}

Result<std::vector<StoredRow>> PgBoxCatalog::SelectRows(const char* sql,
                                                        const std::vector<std::string>& params,
                                                        bool with_synced) {
  auto select = [&](PgConnection& connection,
                    Clock::time_point deadline) -> Result<std::vector<StoredRow>> {
    auto rows = pg::Run(connection, sql, params, deadline);
    if (!rows.ok()) return rows.error();
    std::vector<StoredRow> found;
    found.reserve(static_cast<size_t>(pg::Rows(*rows)));
    for (int row = 0; row < pg::Rows(*rows); ++row) found.push_back(RowAt(*rows, row, with_synced));
    return found;
  };
  return pg::Scrubbed(pg::WithConnection<std::vector<StoredRow>>(*pool_, query_timeout_, select),
                      password_);
}

Result<std::vector<StoredRow>> PgBoxCatalog::SyncedAfter(const BoxSelection& boxes,
                                                         const std::string& after_sha256,
                                                         int limit) {
  if (conninfo_error_) return *conninfo_error_;
  const std::vector<std::string> params = {after_sha256, pg::ArrayLiteral(boxes.ids),
                                           boxes.without_box ? "true" : "false",
                                           std::to_string(limit)};
  return SelectRows(kSelectSyncedAfter, params, /*with_synced=*/false);
}

Result<std::vector<StoredRow>> PgBoxCatalog::RowsFor(const std::vector<std::string>& sha256s) {
  if (conninfo_error_) return *conninfo_error_;
  if (sha256s.empty()) return std::vector<StoredRow>();
  const std::vector<std::string> params = {pg::ArrayLiteral(sha256s)};
  return SelectRows(kSelectRowsFor, params, /*with_synced=*/true);
}

Result<std::vector<StoredRow>> PgBoxCatalog::RowsWithKeys(const BoxSelection& boxes,
                                                          const std::vector<std::string>& keys) {
  if (conninfo_error_) return *conninfo_error_;
  if (keys.empty()) return std::vector<StoredRow>();
  const std::vector<std::string> params = {pg::ArrayLiteral(keys), pg::ArrayLiteral(boxes.ids),
                                           boxes.without_box ? "true" : "false"};
  return SelectRows(kSelectRowsWithKeys, params, /*with_synced=*/true);
}

Result<std::vector<StoredRow>> PgBoxCatalog::SyncedOfShardAfter(const std::string& box,
                                                                const std::string& after_sha256,
                                                                int limit, int shard, int shards) {
  if (conninfo_error_) return *conninfo_error_;
  const std::vector<std::string> params = {after_sha256, box, std::to_string(limit),
                                           std::to_string(shards), std::to_string(shard)};
  return SelectRows(kSelectSyncedOfShardAfter, params, /*with_synced=*/false);
}

Result<bool> PgBoxCatalog::MoveRow(const std::string& sha256, const std::string& from,
                                   const std::string& to) {
  if (conninfo_error_) return *conninfo_error_;
  const std::vector<std::string> params = {sha256, from, to};
  auto move = [&](PgConnection& connection, Clock::time_point deadline) -> Result<bool> {
    auto rows = pg::Run(connection, kMoveRow, params, deadline);
    if (!rows.ok()) return rows.error();
    if (pg::Field(*rows, 0, 1) != "1") {
      return Error::JobRetryable("Unknown storage box " + to).As(FaultClass::kUnknownBox);
    }
    return pg::Field(*rows, 0, 0) == "1";
  };
  // One statement: BEGIN and COMMIT around it would add nothing.
  return pg::Scrubbed(pg::WithConnection<bool>(*pool_, query_timeout_, move), password_);
}

Result<std::vector<BoxCounters>> PgBoxCatalog::CheckCounters(const std::vector<std::string>& ids) {
  if (conninfo_error_) return *conninfo_error_;
  const std::string literal = pg::ArrayLiteral(ids);
  auto read = [&](PgConnection& connection, Clock::time_point deadline) {
    return ReadCounters(connection, literal, deadline);
  };
  return pg::Scrubbed(pg::WithConnection<std::vector<BoxCounters>>(*pool_, query_timeout_, read),
                      password_);
}

Result<std::vector<BoxCounters>> PgBoxCatalog::FixCounters(const std::vector<std::string>& ids) {
  if (conninfo_error_) return *conninfo_error_;
  if (ids.empty()) return std::vector<BoxCounters>();
  const std::string literal = pg::ArrayLiteral(ids);
  auto fix = [&](PgConnection& connection,
                 Clock::time_point deadline) -> Result<std::vector<BoxCounters>> {
    if (auto locked = pg::Run(connection, kLockBoxes, {literal}, deadline); !locked.ok()) {
      return locked.error();
    }
    auto before = ReadCounters(connection, literal, deadline);
    if (!before.ok()) return before.error();
    if (auto fixed = pg::Run(connection, kFixCounters, {literal}, deadline); !fixed.ok()) {
      return fixed.error();
    }
    return before;
  };
  return pg::Scrubbed(pg::InTransaction<std::vector<BoxCounters>>(*pool_, query_timeout_, fix),
                      password_);
}

}  // namespace media_sync::catalog
