#include "config/urls.h"

#include <charconv>
#include <string>

namespace media_sync::config {
namespace {

Error Bad(std::string_view variable, const std::string& problem) {
  return Error::Configuration(std::string(variable) + ": " + problem);
}

bool ParseInt(std::string_view text, int& out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int value = 0;
      auto [ptr, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
      if (ec == std::errc() && ptr == text.data() + i + 3) {
        out.push_back(static_cast<char>(value));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

// Splits "scheme://rest" into its scheme and rest; empty scheme when no "://".
std::pair<std::string_view, std::string_view> SplitScheme(std::string_view url) {
  auto pos = url.find("://");
  if (pos == std::string_view::npos) return {{}, url};
  return {url.substr(0, pos), url.substr(pos + 3)};
}

// Splits "userinfo@rest" at the last '@' before the path.
std::pair<std::string_view, std::string_view> SplitUserInfo(std::string_view authority_and_path) {
  auto path_start = authority_and_path.find('/');
  auto at = authority_and_path.substr(0, path_start).rfind('@');
  if (at == std::string_view::npos) return {{}, authority_and_path};
  return {authority_and_path.substr(0, at), authority_and_path.substr(at + 1)};
}

// An '@' after the user info: the password held an unencoded '/' (which ends
// the authority, so the user info was found too early or not at all) or the
// URL has an '@' where none is expected. Which part is password is then a
// guess, and any of it could be, so such a URL is refused without quoting
// any of it, and redacted up to its last '@'.
bool HidesUserInfo(std::string_view hostpart) {
  return hostpart.find('@') != std::string_view::npos;
}

Error HiddenUserInfo(std::string_view variable, std::string_view url) {
  return Bad(variable, "'" + RedactUrl(url) +
                           "' has an '@' after its host: percent-encode '/' and '@' in the "
                           "password (%2F, %40) and any '@' after the host (%40)");
}

}  // namespace

Result<RedisAddress> ParseRedisUrl(std::string_view url) {
  constexpr std::string_view kVar = "REDIS_URL";
  RedisAddress address;
  auto [scheme, rest] = SplitScheme(url);
  if (scheme.empty()) {
    return Bad(kVar, "'" + RedactUrl(url) +
                         "' is not a URL (expected redis://[user:password@]host:port/db or "
                         "unix:///path/to/socket?db=N)");
  }
  if (scheme == "rediss") {
    return Bad(kVar, "TLS (rediss://) is not supported; use redis:// or a unix socket");
  }
  if (scheme != "redis" && scheme != "unix" && scheme != "redis+unix") {
    return Bad(kVar, "unsupported scheme '" + std::string(scheme) +
                         "' (expected redis://, unix:// or redis+unix://)");
  }
  auto [userinfo, hostpart] = SplitUserInfo(rest);
  // Before the query is split off: an '@' after a '?' is one too.
  if (HidesUserInfo(hostpart)) return HiddenUserInfo(kVar, url);
  if (!userinfo.empty()) {
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      // redis://secret@host is what redis-py reads as a password without a user.
      address.password = PercentDecode(userinfo);
    } else {
      address.username = PercentDecode(userinfo.substr(0, colon));
      address.password = PercentDecode(userinfo.substr(colon + 1));
    }
  }
  std::string_view query;
  if (auto q = hostpart.find('?'); q != std::string_view::npos) {
    query = hostpart.substr(q + 1);
    hostpart = hostpart.substr(0, q);
  }
  std::string db_text;
  for (size_t start = 0; start < query.size();) {
    auto end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    auto pair = query.substr(start, end - start);
    if (pair.substr(0, 3) == "db=") db_text = std::string(pair.substr(3));
    start = end + 1;
  }

  if (scheme == "redis") {
    if (HidesUserInfo(hostpart)) return HiddenUserInfo(kVar, url);
    auto slash = hostpart.find('/');
    std::string_view hostport = hostpart.substr(0, slash);
    if (slash != std::string_view::npos && slash + 1 < hostpart.size()) {
      db_text = std::string(hostpart.substr(slash + 1));
    }
    if (hostport.empty()) return Bad(kVar, "'" + RedactUrl(url) + "' has no host");
    std::string_view host = hostport;
    if (hostport.front() == '[') {  // [::1]:6379
      auto close = hostport.find(']');
      if (close == std::string_view::npos) return Bad(kVar, "unterminated IPv6 address");
      host = hostport.substr(1, close - 1);
      hostport = hostport.substr(close + 1);
      if (!hostport.empty() && hostport.front() != ':') return Bad(kVar, "bad IPv6 host");
    } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
      host = hostport.substr(0, colon);
      hostport = hostport.substr(colon);
    } else {
      hostport = {};
    }
    if (!hostport.empty()) {
      std::string_view port_text = hostport.substr(1);
      if (!ParseInt(port_text, address.port) || address.port < 1 || address.port > 65535) {
        return Bad(kVar, "port '" + std::string(port_text) + "' is not a number in 1..65535");
      }
    }
    if (host.empty()) return Bad(kVar, "'" + RedactUrl(url) + "' has no host");
    address.host = std::string(host);
  } else {
    if (hostpart.empty() || hostpart.front() != '/') {
      return Bad(kVar, "unix socket URL needs an absolute path (unix:///run/redis.sock)");
    }
    address.host.clear();
    address.port = 0;
    address.unix_socket = std::string(hostpart);
  }
  if (!db_text.empty()) {
    if (!ParseInt(db_text, address.db) || address.db < 0) {
      return Bad(kVar, "database '" + db_text + "' is not a non-negative number");
    }
  }
  return address;
}

Result<std::string> ParseDatabaseUrl(std::string_view url) {
  constexpr std::string_view kVar = "DATABASE_URL";
  if (url.empty()) return Bad(kVar, "is required (postgresql://user:password@host:port/db)");
  auto [scheme, rest] = SplitScheme(url);
  std::string_view base = scheme.substr(0, scheme.find('+'));
  if (scheme.empty() || (base != "postgresql" && base != "postgres")) {
    return Bad(kVar, "'" + RedactUrl(url) +
                         "' is not a PostgreSQL URL (expected postgresql://, postgres:// or a "
                         "SQLAlchemy form such as postgresql+asyncpg://)");
  }
  auto [userinfo, hostpart] = SplitUserInfo(rest);
  if (HidesUserInfo(hostpart)) return HiddenUserInfo(kVar, url);
  auto host_end = hostpart.find_first_of("/?");
  std::string_view hostport = hostpart.substr(0, host_end);
  if (auto colon = hostport.rfind(':');
      colon != std::string_view::npos && hostport.find(']') == std::string_view::npos) {
    int port = 0;
    std::string_view port_text = hostport.substr(colon + 1);
    if (!ParseInt(port_text, port) || port < 1 || port > 65535) {
      return Bad(kVar, "port '" + std::string(port_text) + "' is not a number in 1..65535");
    }
  }
  // asyncpg spells libpq's sslmode as ssl=; libpq rejects unknown parameters.
  std::string libpq = "postgresql://" + std::string(rest);
  if (auto q = libpq.find('?'); q != std::string::npos) {
    std::string query = libpq.substr(q + 1);
    std::string mapped;
    for (size_t start = 0; start <= query.size();) {
      auto end = query.find('&', start);
      if (end == std::string::npos) end = query.size();
      std::string pair = query.substr(start, end - start);
      if (pair.rfind("ssl=", 0) == 0) pair = "sslmode=" + pair.substr(4);
      if (!pair.empty()) mapped += (mapped.empty() ? "" : "&") + pair;
      start = end + 1;
    }
    libpq = libpq.substr(0, q) + (mapped.empty() ? "" : "?" + mapped);
  }
  return libpq;
}

std::string RedactUrl(std::string_view url) {
  auto [scheme, rest] = SplitScheme(url);
  auto [userinfo, hostpart] = SplitUserInfo(rest);
  std::string redacted = scheme.empty() ? "" : std::string(scheme) + "://";
  if (HidesUserInfo(hostpart)) {
    // Everything before the last '@' may be password: none of it is shown.
    return redacted + "***" + std::string(rest.substr(rest.rfind('@')));
  }
  if (userinfo.empty()) return std::string(url);
  auto colon = userinfo.find(':');
  if (colon == std::string_view::npos) {
    // A lone userinfo is a password for redis:// and a user for postgresql://.
    bool is_password = scheme.rfind("redis", 0) == 0 || scheme == "unix";
    redacted += is_password ? std::string("***") : std::string(userinfo);
  } else {
    redacted += std::string(userinfo.substr(0, colon)) + ":***";
  }
  return redacted + "@" + std::string(hostpart);
}

}  // namespace media_sync::config
