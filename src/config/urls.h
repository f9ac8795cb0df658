// Parsing of the connection URLs the platform hands us (REDIS_URL,
// DATABASE_URL) and their redaction for logs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace media_sync::config {

struct HostPort {
  std::string host;
  int port = 0;
};

struct RedisAddress {
  std::string host = "localhost";  // empty when unix_socket or sentinels are set
  int port = 6379;                 // 0 when unix_socket or sentinels are set
  std::string unix_socket;         // path, for unix:// URLs
  std::string username;            // ACL user (Redis 6+), may be empty
  std::string password;            // may be empty; never logged
  int db = 0;

  // redis+sentinel:// URLs: the Sentinels to ask, in order, for the current
  // address of the master named `master_name`. username/password then
  // authenticate to that master; Sentinels protected by their own password
  // get sentinel_username/sentinel_password (query parameters).
  std::vector<HostPort> sentinels;
  std::string master_name;
  std::string sentinel_username;
  std::string sentinel_password;  // never logged

  bool UsesSentinel() const { return !sentinels.empty(); }
};

// The Sentinel port when a redis+sentinel:// host names none.
inline constexpr int kDefaultSentinelPort = 26379;

// redis://[[user]:password@]host[:port][/db], unix://[[user]:password@]/path[?db=N],
// redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTER_NAME[/db]
//   [?sentinel_password=...&sentinel_username=...].
// Errors are kConfiguration, name what is wrong, and never quote a password.
Result<RedisAddress> ParseRedisUrl(std::string_view url);

// postgresql://, postgres:// and SQLAlchemy forms (postgresql+asyncpg://,
// postgresql+psycopg2://...). Returns a libpq connection URI (driver suffix
// dropped, asyncpg's ssl= mapped to sslmode=). Several hosts pass through in
// libpq's own form (postgresql://h1:p1,h2:p2/db?target_session_attrs=read-write);
// SQLAlchemy's form of several hosts (postgresql+psycopg2://u@/db?host=h1:p1&host=h2:p2)
// becomes libpq's host=h1,h2&port=p1,p2. Errors never quote the password.
Result<std::string> ParseDatabaseUrl(std::string_view url);

// The URL with its password (and a sentinel_password= or password= query
// value) replaced by "***" (unchanged when it has none).
std::string RedactUrl(std::string_view url);

}  // namespace media_sync::config
