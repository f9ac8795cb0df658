// One statement on a pooled connection, with every failure turned into the
// project's Error and the password kept out of messages. Internal to the
// catalog folder: libpq types never leave it.
//
// The same helpers PgCatalog keeps for itself (pg_catalog.cpp), for the
// catalog's other adapters (PgBoxCatalog).
#pragma once

#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/pg_connection.h"
#include "catalog/pg_connection_pool.h"
#include "core/result.h"

namespace media_sync::catalog::pg {

using Clock = PgConnection::Clock;

inline constexpr const char* kBegin = "BEGIN";
inline constexpr const char* kCommit = "COMMIT";
inline constexpr const char* kRollback = "ROLLBACK";

// Runs one statement: kOutage when the database is unavailable (no SQLSTATE,
// a transient one, or a broken connection), kInput when it refuses the
// values given (a NUL byte, a value out of range: IsDataSqlState), with the
// SQLSTATE as the error's code, kConfiguration when it rejects the SQL
// (schema missing or wrong).
Result<PgResult> Run(PgConnection& connection, const char* sql,
                     const std::vector<std::string>& params, Clock::time_point deadline);

// The text of a field; "" for NULL.
std::string Field(const PgResult& result, int row, int column);
bool IsNull(const PgResult& result, int row, int column);
int64_t IntegerField(const PgResult& result, int row, int column);
int Rows(const PgResult& result);

// A PostgreSQL array literal of text elements, nullopt as NULL.
std::string ArrayLiteral(const std::vector<std::optional<std::string>>& elements);
std::string ArrayLiteral(const std::vector<std::string>& elements);

// The password of a libpq connection string ("" when none), to scrub it from
// messages; an Error when the string does not parse.
Result<std::string> ConninfoPassword(const std::string& conninfo);

// The result with `password` replaced by "***" in its message.
template <typename T>
Result<T> Scrubbed(Result<T> result, const std::string& password) {
  if (result.ok() || password.empty()) return result;
  Error scrubbed = result.error();
  for (size_t at = scrubbed.message.find(password); at != std::string::npos;
       at = scrubbed.message.find(password, at + 3)) {
    scrubbed.message.replace(at, password.size(), "***");
  }
  return scrubbed;
}

// Runs body(connection, deadline) on a pooled connection. A pooled
// connection can be dead without knowing it (the server restarted since it
// was last used): when the body fails with an outage on such a connection,
// the idle ones are dropped and the body runs once more on a fresh one.
// Every body must be idempotent.
template <typename T, typename Body>
Result<T> WithConnection(PgConnectionPool& pool, std::chrono::milliseconds timeout, Body&& body) {
  for (int attempt = 0;; ++attempt) {
    Result<PgConnectionPool::Lease> lease = pool.Acquire();
    if (!lease.ok()) return lease.error();
    Result<T> result = body(**lease, Clock::now() + timeout);
    bool stale = !result.ok() && result.error().IsOutage() && !lease->fresh() && (**lease).broken();
    if (!stale || attempt > 0) return result;
    pool.DropIdle();
  }
}

// Runs body(connection, deadline) between BEGIN and COMMIT on one
// connection; any failure rolls back (or drops the connection, which rolls
// back just the same). The body must be idempotent: a stale pooled
// connection makes it run again (WithConnection).
template <typename T, typename Body>
Result<T> InTransaction(PgConnectionPool& pool, std::chrono::milliseconds timeout, Body&& body) {
  return WithConnection<T>(pool, timeout,
                           [&](PgConnection& connection, Clock::time_point deadline) -> Result<T> {
                             if (auto begun = Run(connection, kBegin, {}, deadline); !begun.ok()) {
                               return begun.error();
                             }
                             Result<T> result = body(connection, deadline);
                             if (result.ok()) {
                               auto committed = Run(connection, kCommit, {}, deadline);
                               if (!committed.ok()) return committed.error();
                               return result;
                             }
                             if (!connection.broken())
                               (void)Run(connection, kRollback, {}, deadline);
                             return result;
                           });
}

}  // namespace media_sync::catalog::pg
