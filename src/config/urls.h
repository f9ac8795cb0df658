// Parsing of the connection URLs the platform hands us (REDIS_URL,
// DATABASE_URL) and their redaction for logs.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace media_sync::config {

struct RedisAddress {
  std::string host = "localhost";  // empty when unix_socket is set
  int port = 6379;
  std::string unix_socket;  // path, for unix:// URLs
  std::string username;     // ACL user (Redis 6+), may be empty
  std::string password;     // may be empty; never logged
  int db = 0;
};

// redis://[[user]:password@]host[:port][/db], unix://[[user]:password@]/path[?db=N].
// Errors are kConfiguration and never quote the password.
Result<RedisAddress> ParseRedisUrl(std::string_view url);

// postgresql://, postgres:// and SQLAlchemy forms (postgresql+asyncpg://,
// postgresql+psycopg2://...). Returns a libpq connection URI (driver suffix
// dropped, asyncpg's ssl= mapped to sslmode=). Errors never quote the password.
Result<std::string> ParseDatabaseUrl(std::string_view url);

// The URL with its password replaced by "***" (unchanged when it has none).
std::string RedactUrl(std::string_view url);

}  // namespace media_sync::config
