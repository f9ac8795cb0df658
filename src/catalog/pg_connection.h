// RAII wrappers over libpq handles, and one round trip with a deadline.
// Internal to the catalog folder: libpq types never leave it.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace media_sync::catalog {

struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
// Owns one PGresult (PQclear on destruction).
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// One libpq connection, owned (PQfinish on destruction). Move-only.
// Not thread-safe: one thread at a time (the pool hands it to one caller).
class PgConnection {
 public:
  using Clock = std::chrono::steady_clock;

  // Connects without blocking past connect_timeout per host it names
  // (PQconnectStartParams and PQconnectPoll driven by poll()). `conninfo` is
  // a libpq URI or key=value string; its own settings win over the defaults
  // passed here. With several hosts libpq tries them in order and keeps the
  // first that suits target_session_attrs (read-write: the primary).
  // Errors: kOutage "PostgreSQL unavailable: <libpq message>".
  static Result<PgConnection> Connect(const std::string& conninfo,
                                      std::chrono::milliseconds connect_timeout,
                                      const std::string& application_name);

  PgConnection(PgConnection&&) noexcept = default;
  PgConnection& operator=(PgConnection&&) noexcept = default;

  // Runs one parameterised statement (text parameters, text results) and
  // waits at most until `deadline`. A timeout or a lost connection marks the
  // connection broken. On success returns the result whatever its status;
  // callers turn an error status into the project's Error (PgCatalog's
  // Run() in pg_catalog.cpp classifies by SQLSTATE).
  Result<PgResult> Execute(const char* sql, const std::vector<std::string>& params,
                           Clock::time_point deadline);

  // Reads whatever the server sent meanwhile (without blocking) and reports
  // whether the connection still looks usable. An idle connection whose
  // server restarted fails here instead of on the next statement.
  bool CheckIdle();

  // PQTRANS_IDLE when no transaction is open (the only state a pooled
  // connection may be returned in).
  PGTransactionStatusType transaction_status() const { return PQtransactionStatus(conn_.get()); }

  bool broken() const { return broken_ || PQstatus(conn_.get()) != CONNECTION_OK; }
  void MarkBroken() { broken_ = true; }
  // Error text of the connection, trimmed.
  std::string LastError() const;

 private:
  struct ConnDeleter {
    void operator()(PGconn* conn) const { PQfinish(conn); }
  };
  explicit PgConnection(std::unique_ptr<PGconn, ConnDeleter> conn) : conn_(std::move(conn)) {}

  // Waits until the socket is readable (or writable) or the deadline passes.
  // false on timeout or poll() failure.
  bool WaitSocket(bool for_write, Clock::time_point deadline) const;

  std::unique_ptr<PGconn, ConnDeleter> conn_;
  bool broken_ = false;
};

// How a statement's failure is taken, by its SQLSTATE (PgCatalog's Run() in
// pg_catalog.cpp turns each into the project's Error):
//
// Transient, "the database is unavailable right now" (kOutage: the call is
// tried again later, nothing is counted against a job): connection
// exceptions (class 08), shutdown (57P01..57P03) and a session ended for
// idleness (57P05), cancelled by timeout (57014), a lock not obtained in
// time (55P03), serialization and deadlock failures (40001, 40P01) and a
// statement whose completion is unknown (40003), insufficient resources
// (class 53), system errors (class 58), a read-only standby after a
// fail-over (25006).
bool IsTransientSqlState(const std::string& sqlstate);
//
// Data, "the values given are wrong" (kJobPermanent: the same values fail
// the same way every time, whoever sends them): data exceptions (class 22:
// a malformed array literal, an invalid byte sequence, a number out of
// range) and integrity constraint violations (class 23). Statements take
// every value as a parameter, so no value can cause another class.
//
// Anything else (42 a statement or schema we got wrong, 28 a role refused,
// ...) is kConfiguration: an operator has to act, and jobs wait. No refused
// statement is ever taken for an outage.
bool IsDataSqlState(std::string_view sqlstate);

// libpq's messages end in a newline: `text` without its trailing newlines and
// spaces, ready to be part of an Error's message.
std::string TrimMessage(std::string text);

}  // namespace media_sync::catalog
