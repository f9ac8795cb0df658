#include "catalog/pg_connection.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <utility>

namespace media_sync::catalog {
namespace {

// The outage every failure here is: "PostgreSQL unavailable: <why>".
Error Unavailable(std::string_view why) {
  std::string message = "PostgreSQL unavailable: ";
  message.append(why);
  return Error::Outage(std::move(message));
}

// How many servers libpq may try in turn (host=h1,h2 or postgresql://h1,h2/):
// each gets its own connect_timeout, so the whole connect gets one per host.
int HostCount(const std::string& conninfo) {
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), nullptr);
  if (parsed == nullptr) return 1;
  int hosts = 1;
  for (const PQconninfoOption* option = parsed; option->keyword != nullptr; ++option) {
    std::string_view keyword(option->keyword);
    if ((keyword == "host" || keyword == "hostaddr") && option->val != nullptr) {
      std::string_view value(option->val);
      hosts = std::max(hosts, 1 + static_cast<int>(std::count(value.begin(), value.end(), ',')));
    }
  }
  PQconninfoFree(parsed);
  return hosts;
}

}  // namespace

Result<PgConnection> PgConnection::Connect(const std::string& conninfo,
                                           std::chrono::milliseconds connect_timeout,
                                           const std::string& application_name) {
  // libpq's own connect_timeout (whole seconds, at least 2) bounds each host
  // attempt; the deadline below bounds the whole connect.
  auto timeout_seconds =
      std::max<int64_t>(2, std::chrono::ceil<std::chrono::seconds>(connect_timeout).count());
  std::string timeout_text = std::to_string(timeout_seconds);
  // Keywords before dbname are defaults: the expanded conninfo overrides them.
  const char* const keywords[] = {"connect_timeout", "fallback_application_name", "dbname",
                                  nullptr};
  const char* const values[] = {timeout_text.c_str(), application_name.c_str(), conninfo.c_str(),
                                nullptr};
  std::unique_ptr<PGconn, ConnDeleter> conn(
      PQconnectStartParams(keywords, values, /*expand_dbname=*/1));
  if (!conn) return Unavailable("out of memory");
  PgConnection connection(std::move(conn));
  if (PQstatus(connection.conn_.get()) == CONNECTION_BAD) {
    return Unavailable(connection.LastError());
  }

  // Several hosts (a primary and its standbys) are tried one after the other,
  // each within connect_timeout; target_session_attrs picks among them.
  const int hosts = HostCount(conninfo);
  const Clock::time_point deadline = Clock::now() + connect_timeout * hosts;
  PostgresPollingStatusType status = PGRES_POLLING_WRITING;
  while (status != PGRES_POLLING_OK) {
    if (status == PGRES_POLLING_FAILED) {
      return Unavailable(connection.LastError());
    }
    if (!connection.WaitSocket(status == PGRES_POLLING_WRITING, deadline)) {
      return Unavailable("no connection within " + std::to_string(connect_timeout.count() * hosts) +
                         " ms");
    }
    status = PQconnectPoll(connection.conn_.get());
  }
  // Non-blocking sends: Execute() flushes against its own deadline.
  if (PQsetnonblocking(connection.conn_.get(), 1) != 0) {
    return Unavailable(connection.LastError());
  }
  return connection;
}

bool PgConnection::WaitSocket(bool for_write, Clock::time_point deadline) const {
  int socket = PQsocket(conn_.get());
  if (socket < 0) return false;
  pollfd request{socket, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
  for (;;) {
    auto remaining = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (remaining <= 0) return false;
    int ready = ::poll(&request, 1, static_cast<int>(std::min<int64_t>(remaining, 60'000)));
    if (ready > 0) return true;  // readable, writable, or an error libpq will report
    if (ready < 0 && errno != EINTR) return false;
  }
}

Result<PgResult> PgConnection::Execute(const char* sql, const std::vector<std::string>& params,
                                       Clock::time_point deadline) {
  PGconn* conn = conn_.get();
  auto lost = [this]() -> Error {
    broken_ = true;
    return Unavailable(LastError());
  };
  auto timed_out = [this]() -> Error {
    // The statement may still be running: the connection cannot be reused.
    broken_ = true;
    return Unavailable("no answer before the deadline");
  };

  std::vector<const char*> values;
  values.reserve(params.size());
  for (const std::string& param : params) values.push_back(param.c_str());
  if (PQsendQueryParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                        nullptr, /*resultFormat=*/0) != 1) {
    return lost();
  }
  for (;;) {
    int flushed = PQflush(conn);
    if (flushed == 0) break;
    if (flushed < 0) return lost();
    if (!WaitSocket(/*for_write=*/true, deadline)) return timed_out();
  }

  PgResult kept;
  for (;;) {
    while (PQisBusy(conn) == 1) {
      if (!WaitSocket(/*for_write=*/false, deadline)) return timed_out();
      if (PQconsumeInput(conn) != 1) return lost();
    }
    PgResult next(PQgetResult(conn));
    if (!next) break;
    // One statement yields one result; keep the first error if several come.
    bool keep_error = kept && PQresultStatus(kept.get()) == PGRES_FATAL_ERROR;
    if (!keep_error) kept = std::move(next);
  }
  if (!kept) return lost();
  if (PQresultStatus(kept.get()) == PGRES_FATAL_ERROR && PQstatus(conn) != CONNECTION_OK) {
    broken_ = true;
  }
  return kept;
}

bool PgConnection::CheckIdle() {
  if (broken()) return false;
  // libpq sockets are non-blocking: this only reads what already arrived,
  // such as the server's "terminating connection" notice before a restart.
  if (PQconsumeInput(conn_.get()) != 1) {
    broken_ = true;
    return false;
  }
  return !broken() && PQtransactionStatus(conn_.get()) == PQTRANS_IDLE;
}

std::string PgConnection::LastError() const {
  std::string message = TrimMessage(PQerrorMessage(conn_.get()));
  return message.empty() ? std::string("connection lost") : message;
}

bool IsTransientSqlState(const std::string& sqlstate) {
  if (sqlstate.size() != 5) return false;
  std::string_view code(sqlstate);
  std::string_view sql_class = code.substr(0, 2);
  return sql_class == "08" || sql_class == "53" || sql_class == "58" || code == "57P01" ||
         code == "57P02" || code == "57P03" || code == "57P05" || code == "57014" ||
         code == "55P03" || code == "40001" || code == "40P01" || code == "40003" ||
         code == "25006";
}

bool IsDataSqlState(std::string_view sqlstate) {
  if (sqlstate.size() != 5) return false;
  std::string_view sql_class = sqlstate.substr(0, 2);
  return sql_class == "22" || sql_class == "23";
}

std::string TrimMessage(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace media_sync::catalog
