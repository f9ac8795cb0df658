#include "catalog/pg_catalog.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <string_view>
#include <unordered_set>

#include "catalog/pg_connection.h"
#include "catalog/pg_connection_pool.h"

namespace media_sync::catalog {
namespace {

using Clock = PgConnection::Clock;

constexpr const char* kBegin = "BEGIN";
constexpr const char* kCommit = "COMMIT";
constexpr const char* kRollback = "ROLLBACK";

// The RecordSync of many calls at once. $1 sha256s, $2 box ids (NULL for
// none), $3 file sizes, arrays in call order with distinct sha256s. Boxes are
// locked in id order, so concurrent batches never deadlock on them; a row is
// marked only when its box exists, and each box's counters move by the sum
// of the sizes of the rows marked now. The UPDATE's row locks serialise
// concurrent syncs of one file (another worker's batch): a waiter re-checks
// synced_at once the first commits and marks nothing. Sub-statements share
// one snapshot, so `before` is the rows as they were; a data-modifying CTE
// (`counted`) runs whether read or not. One row per call, in order: whether
// it was marked now, whether its box exists, whether it was synced before
// (NULL: no such row). The sha256s come as bpchar, the type of the
// contract's CHAR(64) column: compared as text, the column would be cast
// and its key not used, a sequential scan of media_files per batch.
constexpr const char* kRecordSyncs =
    "WITH input AS (SELECT * FROM unnest($1::bpchar[], $2::text[], $3::bigint[]) "
    "WITH ORDINALITY AS t(sha256, box, size, n)), "
    "before AS (SELECT sha256, synced_at IS NOT NULL AS synced FROM media_files "
    "WHERE sha256 IN (SELECT sha256 FROM input)), "
    "boxes AS (SELECT id FROM storage_boxes WHERE id IN (SELECT box FROM input) "
    "ORDER BY id FOR UPDATE), "
    "marked AS (UPDATE media_files m SET synced_at = now() FROM input i "
    "WHERE m.sha256 = i.sha256 AND m.synced_at IS NULL "
    "AND (i.box IS NULL OR i.box IN (SELECT id FROM boxes)) RETURNING m.sha256), "
    "counted AS (UPDATE storage_boxes b SET used_bytes = b.used_bytes + d.total, "
    "reserved_bytes = GREATEST(0, b.reserved_bytes - d.total) "
    "FROM (SELECT i.box, sum(i.size)::bigint AS total FROM input i JOIN marked USING (sha256) "
    "WHERE i.box IS NOT NULL GROUP BY i.box) d WHERE b.id = d.box RETURNING 1) "
    "SELECT i.sha256 IN (SELECT sha256 FROM marked), "
    "i.box IS NULL OR i.box IN (SELECT id FROM boxes), "
    "(SELECT synced FROM before WHERE before.sha256 = i.sha256) "
    "FROM input i ORDER BY i.n";

// $1 box id.
constexpr const char* kSelectBoxEndpoint = "SELECT minio_endpoint FROM storage_boxes WHERE id = $1";

// $1 limit, $2 minimum age in seconds.
// Names both tables, so a database without the schema (or a role that may
// not read it: privileges are checked before execution) does not pass for a
// healthy one; reads no row, so a table of any size answers at once.
constexpr const char* kPing =
    "SELECT (SELECT 1 FROM media_files WHERE false), (SELECT 1 FROM storage_boxes WHERE false)";

// Boxes first (ordered by id), then the rows without a box as id ''. The
// unsynced rows are counted in one pass over the media_files_unsynced index
// (catalog/pg_schema.h), not once per box.
constexpr const char* kSelectBoxesUsage =
    "WITH unsynced AS (SELECT storage_box_id AS id, count(*) AS n FROM media_files "
    "WHERE synced_at IS NULL GROUP BY storage_box_id) "
    "SELECT b.id, b.minio_endpoint, b.used_bytes, b.reserved_bytes, coalesce(u.n, 0) "
    "FROM storage_boxes b LEFT JOIN unsynced u ON u.id = b.id "
    "UNION ALL SELECT '', '', 0, 0, coalesce((SELECT n FROM unsynced WHERE id IS NULL), 0) "
    "ORDER BY 1";

std::string ErrorField(const PGresult* result, int field) {
  const char* value = PQresultErrorField(result, field);
  return value == nullptr ? std::string() : std::string(value);
}

// SQLSTATE 22021, character_not_in_repertoire: what PostgreSQL answers for
// a NUL byte in text.
constexpr std::string_view kNulInText = "22021";

// The values a statement was given were refused (pg_connection.h,
// IsDataSqlState): the caller's data is at fault, and sending it again fails
// again. `code` keeps the SQLSTATE, so that group commit can tell which
// batch to split.
Error DataRefused(const std::string& message, std::string_view sqlstate) {
  Error error = Error::JobPermanent("PostgreSQL refused the values: " + message + " (SQLSTATE " +
                                    std::string(sqlstate) + ")")
                    .As(FaultClass::kInvalidJob);
  error.code = std::string(sqlstate);
  return error;
}

// Runs one statement and turns every failure into the project's Error.
Result<PgResult> Run(PgConnection& connection, const char* sql,
                     const std::vector<std::string>& params, Clock::time_point deadline) {
  // libpq takes text parameters as C strings: a value with a NUL byte would
  // be cut short there and silently mean another value.
  for (const std::string& param : params) {
    if (param.find('\0') != std::string::npos) {
      return DataRefused("a value holds a NUL byte, which PostgreSQL text cannot hold", kNulInText);
    }
  }
  Result<PgResult> result = connection.Execute(sql, params, deadline);
  if (!result.ok()) return result.error();
  const PGresult* pg_result = result->get();
  ExecStatusType status = PQresultStatus(pg_result);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;

  std::string sqlstate = ErrorField(pg_result, PG_DIAG_SQLSTATE);
  std::string message = TrimMessage(PQresultErrorMessage(pg_result));
  if (message.empty()) message = connection.LastError();
  // No SQLSTATE: libpq's own failure (connection lost mid-statement).
  if (sqlstate.empty() || IsTransientSqlState(sqlstate) || connection.broken()) {
    if (!sqlstate.empty()) connection.MarkBroken();  // shutting down, or a failed transaction
    return Error::Outage("PostgreSQL unavailable: " + message);
  }
  if (IsDataSqlState(sqlstate)) return DataRefused(message, sqlstate);
  return Error::Configuration("PostgreSQL rejected the query: " + message + " (SQLSTATE " +
                              sqlstate + ")");
}

std::string Field(const PgResult& result, int row, int column) {
  return {PQgetvalue(result.get(), row, column),
          static_cast<size_t>(PQgetlength(result.get(), row, column))};
}

uint64_t UnsignedField(const PgResult& result, int row, int column) {
  int64_t value = 0;
  std::string text = Field(result, row, column);
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value > 0 ? static_cast<uint64_t>(value) : 0;
}

// Columns 0-3 of a row as sha256, s3_key, file_size, storage_box_id.
UnsyncedFile UnsyncedFileAt(const PgResult& result, int row) {
  UnsyncedFile file;
  file.sha256 = Field(result, row, 0);
  file.s3_key = Field(result, row, 1);
  file.file_size = UnsignedField(result, row, 2);
  if (PQgetisnull(result.get(), row, 3) == 0) file.storage_box_id = Field(result, row, 3);
  return file;
}

// A PostgreSQL array literal of text elements, nullopt as NULL:
// {"a","b\\"c",NULL}.
std::string ArrayLiteral(const std::vector<std::optional<std::string>>& elements) {
  std::string literal = "{";
  for (const std::optional<std::string>& element : elements) {
    if (literal.size() > 1) literal += ',';
    if (!element) {
      literal += "NULL";
      continue;
    }
    literal += '"';
    for (char c : *element) {
      if (c == '"' || c == '\\') literal += '\\';
      literal += c;
    }
    literal += '"';
  }
  return literal + "}";
}

std::string ReplaceAll(std::string text, const std::string& secret, std::string_view by) {
  if (secret.empty()) return text;
  for (size_t at = text.find(secret); at != std::string::npos;
       at = text.find(secret, at + by.size())) {
    text.replace(at, secret.size(), by);
  }
  return text;
}

// The call's result with the password replaced by "***" in its message.
template <typename T>
Result<T> Scrubbed(Result<T> result, const std::string& password) {
  if (result.ok()) return result;
  Error scrubbed = result.error();
  scrubbed.message = ReplaceAll(scrubbed.message, password, "***");
  return scrubbed;
}

// Runs body on a pooled connection. A pooled connection can be dead without
// knowing it (the server restarted since it was last used): when the body
// fails with an outage on such a connection, the idle ones are dropped and
// the body runs once more on a fresh connection. Every body is idempotent.
template <typename T, typename Body>
Result<T> WithConnection(PgConnectionPool& pool, std::chrono::milliseconds query_timeout,
                         Body&& body) {
  for (int attempt = 0;; ++attempt) {
    Result<PgConnectionPool::Lease> lease = pool.Acquire();
    if (!lease.ok()) return lease.error();
    Result<T> result = body(**lease, Clock::now() + query_timeout);
    bool stale = !result.ok() && result.error().IsOutage() && !lease->fresh() && (**lease).broken();
    if (!stale || attempt > 0) return result;
    pool.DropIdle();
  }
}

}  // namespace

PgCatalog::PgCatalog(std::string conninfo, PgCatalogOptions options)
    : options_(std::move(options)) {
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (parsed == nullptr) {
    std::string detail = parse_error != nullptr ? TrimMessage(parse_error) : "out of memory";
    PQfreemem(parse_error);
    conninfo_error_ = Error::Configuration("Invalid PostgreSQL connection string: " + detail);
  } else {
    for (const PQconninfoOption* option = parsed; option->keyword != nullptr; ++option) {
      if (std::string_view(option->keyword) == "password" && option->val != nullptr) {
        password_ = option->val;
      }
    }
    PQconninfoFree(parsed);
  }
  pool_ = std::make_unique<PgConnectionPool>(std::move(conninfo), options_.pool_size,
                                             options_.connect_timeout, options_.application_name);
}

PgCatalog::~PgCatalog() = default;

Result<RecordOutcome> PgCatalog::RecordSync(const std::string& sha256, uint64_t file_size,
                                            const std::optional<std::string>& storage_box_id) {
  if (conninfo_error_) return *conninfo_error_;
  if (file_size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Error::JobPermanent("file_size out of range: " + std::to_string(file_size))
        .As(FaultClass::kInvalidJob);
  }
  PendingSync mine{sha256, file_size, storage_box_id, std::nullopt};
  MutexLock lock(sync_mutex_);
  waiting_syncs_.push_back(&mine);
  ++unanswered_syncs_;
  sync_done_.wait(lock, [&] {
    sync_mutex_.AssertHeld();
    return mine.outcome.has_value() || !committing_;
  });
  if (!mine.outcome) {
    // No transaction under way: this call commits what waits, its own
    // included, batch after batch until its own is done.
    committing_ = true;
    while (!mine.outcome) {
      std::vector<PendingSync*> batch = TakeSyncBatch();
      ++sync_batches_;
      lock.Unlock();
      std::vector<Result<RecordOutcome>> outcomes = CommitSyncBatch(batch);
      lock.Relock();
      for (size_t i = 0; i < batch.size(); ++i) batch[i]->outcome = std::move(outcomes[i]);
      sync_done_.notify_all();
    }
    committing_ = false;
    sync_done_.notify_all();  // one of those still waiting commits next
  }
  --unanswered_syncs_;
  return *std::move(mine.outcome);
}

std::vector<PgCatalog::PendingSync*> PgCatalog::TakeSyncBatch() {
  std::vector<PendingSync*> batch;
  std::unordered_set<std::string_view> in_batch;
  for (auto it = waiting_syncs_.begin();
       it != waiting_syncs_.end() && batch.size() < kMaxSyncBatch;) {
    if (in_batch.insert((*it)->sha256).second) {
      batch.push_back(*it);
      it = waiting_syncs_.erase(it);
    } else {
      ++it;
    }
  }
  return batch;
}

std::vector<Result<RecordOutcome>> PgCatalog::CommitSyncBatch(
    const std::vector<PendingSync*>& batch) {
  using Outcomes = std::vector<Result<RecordOutcome>>;
  Result<Outcomes> together = CommitTogether(batch);
  if (together.ok()) return *std::move(together);
  const Error& error = together.error();
  if (batch.size() > 1 && IsDataSqlState(error.code)) {
    // One call's values made PostgreSQL refuse the whole statement, and the
    // transaction was rolled back: each call is committed on its own, so
    // that only a call whose own values are refused fails (with the job's
    // error), and the others are recorded.
    Outcomes outcomes;
    outcomes.reserve(batch.size());
    for (PendingSync* sync : batch) {
      Result<Outcomes> alone = CommitTogether({sync});
      if (alone.ok()) {
        outcomes.push_back(std::move(alone->front()));
      } else {
        outcomes.emplace_back(alone.error());
      }
    }
    return outcomes;
  }
  Outcomes failed;
  failed.assign(batch.size(), error);
  return failed;
}

Result<std::vector<Result<RecordOutcome>>> PgCatalog::CommitTogether(
    const std::vector<PendingSync*>& batch) {
  std::vector<std::optional<std::string>> sha256s;
  std::vector<std::optional<std::string>> boxes;
  std::vector<std::optional<std::string>> sizes;
  for (const PendingSync* sync : batch) {
    sha256s.emplace_back(sync->sha256);
    boxes.push_back(sync->storage_box_id);
    sizes.emplace_back(std::to_string(sync->file_size));
  }
  const std::vector<std::string> params = {ArrayLiteral(sha256s), ArrayLiteral(boxes),
                                           ArrayLiteral(sizes)};

  using Outcomes = std::vector<Result<RecordOutcome>>;
  auto record = [&](PgConnection& connection, Clock::time_point deadline) -> Result<Outcomes> {
    // Everything between BEGIN and COMMIT; any other exit rolls back below.
    // COMMIT goes out only once the statement answered, so a statement
    // abandoned at its deadline (the connection dropped) never commits.
    bool marked_any = false;
    auto in_transaction = [&]() -> Result<Outcomes> {
      auto recorded = Run(connection, kRecordSyncs, params, deadline);
      if (!recorded.ok()) return recorded.error();
      const PGresult* rows = recorded->get();
      if (PQntuples(rows) != static_cast<int>(batch.size()) || PQnfields(rows) != 3) {
        return Error::Configuration("RecordSync: unexpected answer from PostgreSQL");
      }
      Outcomes outcomes;
      for (int row = 0; row < PQntuples(rows); ++row) {
        const PendingSync& sync = *batch[static_cast<size_t>(row)];
        if (Field(*recorded, row, 0) == "t") {
          marked_any = true;
          outcomes.emplace_back(RecordOutcome::kSynced);
        } else if (PQgetisnull(rows, row, 2)) {
          outcomes.emplace_back(Error::JobRetryable("No media_files row for sha256 " + sync.sha256)
                                    .As(FaultClass::kNoCatalogRow));
        } else if (Field(*recorded, row, 1) != "t" && Field(*recorded, row, 2) != "t") {
          // Not marked: its box is unknown (nothing of it changed).
          outcomes.emplace_back(Error::JobRetryable("Unknown storage box " + *sync.storage_box_id)
                                    .As(FaultClass::kUnknownBox));
        } else {
          // Synced already (before, or by a concurrent sync that committed first).
          outcomes.emplace_back(RecordOutcome::kAlreadySynced);
        }
      }
      if (marked_any) {
        if (auto committed = Run(connection, kCommit, {}, deadline); !committed.ok()) {
          return committed.error();
        }
      }
      return outcomes;
    };

    if (auto begun = Run(connection, kBegin, {}, deadline); !begun.ok()) return begun.error();
    Result<Outcomes> outcomes = in_transaction();
    bool committed = outcomes.ok() && marked_any;
    if (!committed && !connection.broken()) {
      // Best effort: should it fail, the pool closes the connection, which
      // rolls the transaction back just the same.
      (void)Run(connection, kRollback, {}, deadline);
    }
    return outcomes;
  };
  return Scrubbed(WithConnection<Outcomes>(*pool_, options_.query_timeout, record), password_);
}

Result<std::optional<std::string>> PgCatalog::BoxEndpoint(const std::string& box_id) {
  if (conninfo_error_) return *conninfo_error_;
  auto select = [&](PgConnection& connection,
                    Clock::time_point deadline) -> Result<std::optional<std::string>> {
    auto rows = Run(connection, kSelectBoxEndpoint, {box_id}, deadline);
    if (!rows.ok()) return rows.error();
    if (PQntuples(rows->get()) == 0) return std::optional<std::string>();
    return std::optional<std::string>(Field(*rows, 0, 0));
  };
  auto endpoint =
      WithConnection<std::optional<std::string>>(*pool_, options_.query_timeout, select);
  return Scrubbed(std::move(endpoint), password_);
}

Status PgCatalog::Ping() {
  if (conninfo_error_) return *conninfo_error_;
  auto ping = [&](PgConnection& connection, Clock::time_point deadline) -> Result<bool> {
    auto rows = Run(connection, kPing, {}, deadline);
    if (!rows.ok()) return rows.error();
    return true;
  };
  auto pinged = Scrubbed(WithConnection<bool>(*pool_, options_.query_timeout, ping), password_);
  if (!pinged) return pinged.error();
  return Ok();
}

Result<std::vector<PgCatalog::BoxUsage>> PgCatalog::BoxesUsage() {
  if (conninfo_error_) return *conninfo_error_;
  auto select = [&](PgConnection& connection,
                    Clock::time_point deadline) -> Result<std::vector<BoxUsage>> {
    auto rows = Run(connection, kSelectBoxesUsage, {}, deadline);
    if (!rows.ok()) return rows.error();
    auto number = [&](int row, int column) {
      int64_t value = 0;
      std::string text = Field(*rows, row, column);
      std::from_chars(text.data(), text.data() + text.size(), value);
      return value;
    };
    std::vector<BoxUsage> boxes;
    boxes.reserve(static_cast<size_t>(PQntuples(rows->get())));
    for (int row = 0; row < PQntuples(rows->get()); ++row) {
      boxes.push_back(BoxUsage{Field(*rows, row, 0), Field(*rows, row, 1), number(row, 2),
                               number(row, 3), number(row, 4)});
    }
    return boxes;
  };
  auto boxes = WithConnection<std::vector<BoxUsage>>(*pool_, options_.query_timeout, select);
  return Scrubbed(std::move(boxes), password_);
}

PgCatalogStats PgCatalog::Stats() const {
  PgPoolStats pool = pool_->Stats();
  MutexLock lock(sync_mutex_);
  return PgCatalogStats{pool.open, pool.idle, pool.connects, sync_batches_, unanswered_syncs_};
}

namespace {

// $1 sha256.
constexpr const char* kSelectFile =
    "SELECT s3_key, file_size, storage_box_id, synced_at IS NOT NULL FROM media_files "
    "WHERE sha256 = $1";

// $1 sha256. Times in UTC, as the rest of media-sync writes them.
constexpr const char* kSelectRow =
    "SELECT sha256, s3_key, file_size, storage_box_id, "
    "to_char(created_at::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
    "to_char(synced_at::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
    "FROM media_files WHERE sha256 = $1";

// $1 sha256, $2 s3_key, $3 file size, $4 box id ('' for none). The reservation
// joins only a row this statement inserted, so a file registered twice
// reserves once; both happen or neither (one statement).
constexpr const char* kRegisterFile =
    "WITH inserted AS ("
    "  INSERT INTO media_files (sha256, s3_key, file_size, storage_box_id) "
    "  VALUES ($1, $2, $3::bigint, NULLIF($4, '')) ON CONFLICT (sha256) DO NOTHING "
    "  RETURNING file_size, storage_box_id), "
    "reserved AS ("
    "  UPDATE storage_boxes SET reserved_bytes = reserved_bytes + inserted.file_size "
    "  FROM inserted WHERE storage_boxes.id = inserted.storage_box_id RETURNING 1) "
    "SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM reserved)";

// $1 cursor created_at, $2 cursor sha256, $3 minimum age in seconds, $4 limit.
// Keyset paging in the order of the media_files_unsynced index: the row
// comparison bounds the index scan, so a page reads its own rows only. The
// ORDER BY names the table's column (m.created_at): the bare name would be
// the text output column, whose order differs from time's across a change
// of UTC offset and which PostgreSQL must sort whole on every page.
constexpr const char* kSelectUnsyncedAfter =
    "SELECT m.sha256, m.s3_key, m.file_size, m.storage_box_id, m.created_at::text "
    "FROM media_files m "
    "WHERE m.synced_at IS NULL AND m.created_at < now() - $3::integer * interval '1 second' "
    "AND (m.created_at, m.sha256) > ($1::timestamptz, $2::char(64)) "
    "ORDER BY m.created_at, m.sha256 LIMIT $4::integer";

}  // namespace

Result<std::optional<CatalogFile>> PgCatalog::FindFile(const std::string& sha256) {
  if (conninfo_error_) return *conninfo_error_;
  auto select = [&](PgConnection& connection,
                    Clock::time_point deadline) -> Result<std::optional<CatalogFile>> {
    auto rows = Run(connection, kSelectFile, {sha256}, deadline);
    if (!rows.ok()) return rows.error();
    if (PQntuples(rows->get()) == 0) return std::optional<CatalogFile>();
    CatalogFile file;
    file.s3_key = Field(*rows, 0, 0);
    file.file_size = UnsignedField(*rows, 0, 1);
    if (PQgetisnull(rows->get(), 0, 2) == 0) file.storage_box_id = Field(*rows, 0, 2);
    file.synced = Field(*rows, 0, 3) == "t";
    return std::optional<CatalogFile>(std::move(file));
  };
  auto found = WithConnection<std::optional<CatalogFile>>(*pool_, options_.query_timeout, select);
  return Scrubbed(std::move(found), password_);
}

Result<std::optional<CatalogRow>> PgCatalog::FindRow(const std::string& sha256) {
  if (conninfo_error_) return *conninfo_error_;
  auto select = [&](PgConnection& connection,
                    Clock::time_point deadline) -> Result<std::optional<CatalogRow>> {
    auto rows = Run(connection, kSelectRow, {sha256}, deadline);
    if (!rows.ok()) return rows.error();
    if (PQntuples(rows->get()) == 0) return std::optional<CatalogRow>();
    CatalogRow row;
    row.sha256 = Field(*rows, 0, 0);
    row.s3_key = Field(*rows, 0, 1);
    row.file_size = UnsignedField(*rows, 0, 2);
    if (PQgetisnull(rows->get(), 0, 3) == 0) row.storage_box_id = Field(*rows, 0, 3);
    row.created_at = Field(*rows, 0, 4);
    if (PQgetisnull(rows->get(), 0, 5) == 0) row.synced_at = Field(*rows, 0, 5);
    return std::optional<CatalogRow>(std::move(row));
  };
  auto found = WithConnection<std::optional<CatalogRow>>(*pool_, options_.query_timeout, select);
  return Scrubbed(std::move(found), password_);
}

Result<bool> PgCatalog::RegisterFile(const std::string& sha256, const std::string& s3_key,
                                     uint64_t file_size,
                                     const std::optional<std::string>& storage_box_id) {
  if (conninfo_error_) return *conninfo_error_;
  if (file_size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Error::JobPermanent("file_size out of range: " + std::to_string(file_size));
  }
  if (storage_box_id && storage_box_id->empty()) {
    return Error::JobPermanent("storage_box_id must not be empty");
  }
  auto insert = [&](PgConnection& connection, Clock::time_point deadline) -> Result<bool> {
    auto rows =
        Run(connection, kRegisterFile,
            {sha256, s3_key, std::to_string(file_size), storage_box_id.value_or("")}, deadline);
    if (!rows.ok()) return rows.error();
    return Field(*rows, 0, 0) == "1";
  };
  auto inserted = WithConnection<bool>(*pool_, options_.query_timeout, insert);
  return Scrubbed(std::move(inserted), password_);
}

Result<std::vector<UnsyncedFile>> PgCatalog::UnsyncedAfter(UnsyncedCursor& cursor, int limit,
                                                           int older_than_seconds) {
  if (conninfo_error_) return *conninfo_error_;
  if (limit <= 0) return std::vector<UnsyncedFile>();
  UnsyncedCursor next = cursor;
  auto select = [&](PgConnection& connection,
                    Clock::time_point deadline) -> Result<std::vector<UnsyncedFile>> {
    // An empty cursor starts before the oldest row.
    auto rows = Run(connection, kSelectUnsyncedAfter,
                    {cursor.created_at.empty() ? std::string("-infinity") : cursor.created_at,
                     cursor.sha256, std::to_string(older_than_seconds), std::to_string(limit)},
                    deadline);
    if (!rows.ok()) return rows.error();
    std::vector<UnsyncedFile> files;
    int count = PQntuples(rows->get());
    files.reserve(static_cast<size_t>(count));
    for (int row = 0; row < count; ++row) {
      UnsyncedFile file = UnsyncedFileAt(*rows, row);
      next = UnsyncedCursor{Field(*rows, row, 4), file.sha256};
      files.push_back(std::move(file));
    }
    return files;
  };
  auto files = WithConnection<std::vector<UnsyncedFile>>(*pool_, options_.query_timeout, select);
  if (files.ok()) cursor = std::move(next);
  return Scrubbed(std::move(files), password_);
}

namespace {

// Every index of media_files: name, usable, unique, key columns in order
// (an expression as "(expression)"), partial predicate, and whether a
// CREATE INDEX is building it now (it is invalid until done).
constexpr const char* kSelectIndexes =
    "SELECT c.relname, i.indisvalid AND i.indisready, i.indisunique, "
    "(SELECT string_agg(CASE WHEN k.attnum = 0 THEN '(expression)' ELSE a.attname::text END, "
    "',' ORDER BY k.n) FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) "
    "LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
    "WHERE k.n <= i.indnkeyatts), "
    "coalesce(pg_get_expr(i.indpred, i.indrelid), ''), "
    "EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid) "
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = 'media_files'::regclass";

// One `schema apply` at a time, whichever host runs it: a session-level
// advisory lock, released when the build is done or the connection closes.
constexpr const char* kTryBuildLock = "SELECT pg_try_advisory_lock(hashtext('media-sync schema'))";
constexpr const char* kReleaseBuildLock =
    "SELECT pg_advisory_unlock(hashtext('media-sync schema'))";
// The build reads the whole table; our deadline bounds it, not the role's.
constexpr const char* kNoStatementTimeout = "SET statement_timeout = 0";
constexpr const char* kResetStatementTimeout = "RESET statement_timeout";

Result<std::vector<IndexCheck>> ReadIndexes(PgConnection& connection, Clock::time_point deadline) {
  auto rows = Run(connection, kSelectIndexes, {}, deadline);
  if (!rows.ok()) return rows.error();
  const int count = PQntuples(rows->get());
  std::vector<ExistingIndex> existing;
  existing.reserve(static_cast<size_t>(count));
  for (int row = 0; row < count; ++row) {
    existing.push_back(ExistingIndex{Field(*rows, row, 0), Field(*rows, row, 1) == "t",
                                     Field(*rows, row, 2) == "t", Field(*rows, row, 3),
                                     Field(*rows, row, 4), Field(*rows, row, 5) == "t"});
  }
  return CheckAgainst(existing);
}

}  // namespace

Result<std::vector<IndexCheck>> PgCatalog::CheckIndexes() {
  if (conninfo_error_) return *conninfo_error_;
  auto checked =
      WithConnection<std::vector<IndexCheck>>(*pool_, options_.query_timeout, ReadIndexes);
  return Scrubbed(std::move(checked), password_);
}

Status PgCatalog::BuildIndex(const RequiredIndex& index, std::chrono::milliseconds timeout) {
  if (conninfo_error_) return *conninfo_error_;
  const std::string name(index.name);
  const std::string create(index.create_sql);
  // Our own name only, and only while it is invalid and not being built.
  const std::string drop = "DROP INDEX CONCURRENTLY IF EXISTS " + name;
  auto state_now = [&](PgConnection& connection, Clock::time_point deadline) -> Result<IndexState> {
    auto checks = ReadIndexes(connection, deadline);
    if (!checks.ok()) return checks.error();
    for (const IndexCheck& check : *checks) {
      if (check.index->name == index.name) return check.state;
    }
    return IndexState::kMissing;
  };
  auto build = [&](PgConnection& connection, Clock::time_point deadline) -> Result<bool> {
    auto locked = Run(connection, kTryBuildLock, {}, deadline);
    if (!locked.ok()) return locked.error();
    if (Field(*locked, 0, 0) != "t") {
      return Error::Outage("another `media-sync schema apply` is running: try again once it ends");
    }
    auto in_lock = [&]() -> Result<bool> {
      auto state = state_now(connection, deadline);
      if (!state.ok()) return state.error();
      switch (*state) {
        case IndexState::kPresent:
          return false;
        case IndexState::kNameTaken:
          return Error::Configuration("index name " + name +
                                      " is taken by an index of another definition: rename or "
                                      "drop it first");
        case IndexState::kBuilding:
          return Error::Outage("index " + name +
                               " is being built by another session: wait until it is done");
        case IndexState::kInvalid:
          if (auto dropped = Run(connection, drop.c_str(), {}, deadline); !dropped.ok()) {
            return dropped.error();
          }
          break;
        case IndexState::kMissing:
          break;
      }
      if (auto unlimited = Run(connection, kNoStatementTimeout, {}, deadline); !unlimited.ok()) {
        return unlimited.error();
      }
      auto created = Run(connection, create.c_str(), {}, deadline);
      (void)Run(connection, kResetStatementTimeout, {}, deadline);
      if (!created.ok()) {
        // A failed concurrent build leaves its index behind, INVALID: it
        // would slow every write and serve no read.
        if (!connection.broken()) {
          auto left = state_now(connection, deadline);
          if (left.ok() && *left == IndexState::kInvalid) {
            (void)Run(connection, drop.c_str(), {}, deadline);
          }
        }
        return created.error().Wrap("building index " + name);
      }
      return true;
    };
    Result<bool> built = in_lock();
    if (!connection.broken()) (void)Run(connection, kReleaseBuildLock, {}, deadline);
    return built;
  };
  auto built = Scrubbed(WithConnection<bool>(*pool_, timeout, build), password_);
  if (!built.ok()) return built.error();
  return Ok();
}

}  // namespace media_sync::catalog
