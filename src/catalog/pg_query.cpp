#include "catalog/pg_query.h"

namespace media_sync::catalog::pg {
namespace {

std::string ErrorField(const PGresult* result, int field) {
  const char* value = PQresultErrorField(result, field);
  return value == nullptr ? std::string() : std::string(value);
}

// SQLSTATE of a string holding a character text cannot (the NUL byte).
constexpr std::string_view kNulInText = "22021";

// The values a statement was given were refused (IsDataSqlState): the
// caller's data is at fault (a key a listing returned, say), and sending it
// again fails again.
Error DataRefused(const std::string& message, std::string_view sqlstate) {
  Error error = Error::Input("PostgreSQL refused the values: " + message + " (SQLSTATE " +
                             std::string(sqlstate) + ")");
  error.code = std::string(sqlstate);
  return error;
}

}  // namespace

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

bool IsNull(const PgResult& result, int row, int column) {
  return PQgetisnull(result.get(), row, column) != 0;
}

int64_t IntegerField(const PgResult& result, int row, int column) {
  int64_t value = 0;
  std::string text = Field(result, row, column);
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

int Rows(const PgResult& result) { return PQntuples(result.get()); }

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

std::string ArrayLiteral(const std::vector<std::string>& elements) {
  return ArrayLiteral(std::vector<std::optional<std::string>>(elements.begin(), elements.end()));
}

Result<std::string> ConninfoPassword(const std::string& conninfo) {
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (parsed == nullptr) {
    std::string detail = parse_error != nullptr ? TrimMessage(parse_error) : "out of memory";
    PQfreemem(parse_error);
    return Error::Configuration("Invalid PostgreSQL connection string: " + detail);
  }
  std::string password;
  for (const PQconninfoOption* option = parsed; option->keyword != nullptr; ++option) {
    if (std::string_view(option->keyword) == "password" && option->val != nullptr) {
      password = option->val;
    }
  }
  PQconninfoFree(parsed);
  return password;
}

}  // namespace media_sync::catalog::pg
