#include "config/urls.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>
#include <vector>

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

// A scheme as RFC 3986 spells it: a letter, then letters, digits, '+', '-'
// and '.'.
bool IsScheme(std::string_view text) {
  auto is_alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  return !text.empty() && is_alpha(text.front()) &&
         std::all_of(text.begin(), text.end(), [&](char c) {
           return is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
         });
}

// Splits "scheme://rest" into its scheme and rest; empty scheme when the text
// does not start with one (a "://" later on, in a query value say, is not a
// scheme's: taking it for one would let redaction change what it parses).
std::pair<std::string_view, std::string_view> SplitScheme(std::string_view url) {
  auto pos = url.find("://");
  if (pos == std::string_view::npos || !IsScheme(url.substr(0, pos))) return {{}, url};
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

// "host", "host:port", "[v6]" or "[v6]:port"; the problem, if any.
std::optional<std::string> ParseHostPort(std::string_view hostport, int default_port,
                                         HostPort& out) {
  std::string_view host = hostport;
  if (!hostport.empty() && hostport.front() == '[') {  // [::1]:6379
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return "unterminated IPv6 address";
    host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty() && hostport.front() != ':') return "bad IPv6 host";
  } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    hostport = hostport.substr(colon);
  } else {
    hostport = {};
  }
  out.port = default_port;
  if (!hostport.empty()) {
    std::string_view port_text = hostport.substr(1);
    if (!ParseInt(port_text, out.port) || out.port < 1 || out.port > 65535) {
      return "port '" + std::string(port_text) + "' is not a number in 1..65535";
    }
  }
  out.host = std::string(host);
  return std::nullopt;
}

}  // namespace

Result<RedisAddress> ParseRedisUrl(std::string_view url) {
  constexpr std::string_view kVar = "REDIS_URL";
  RedisAddress address;
  auto [scheme, rest] = SplitScheme(url);
  if (scheme.empty()) {
    return Bad(kVar, "'" + RedactUrl(url) +
                         "' is not a URL (expected redis://[user:password@]host:port/db, "
                         "unix:///path/to/socket?db=N or "
                         "redis+sentinel://host:26379,host2:26379/MASTER_NAME/db)");
  }
  if (scheme == "rediss") {
    return Bad(kVar, "TLS (rediss://) is not supported; use redis:// or a unix socket");
  }
  if (scheme != "redis" && scheme != "unix" && scheme != "redis+unix" &&
      scheme != "redis+sentinel") {
    return Bad(kVar, "unsupported scheme '" + std::string(scheme) +
                         "' (expected redis://, unix://, redis+unix:// or redis+sentinel://)");
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
    if (pair.substr(0, 18) == "sentinel_password=") {
      address.sentinel_password = PercentDecode(pair.substr(18));
    }
    if (pair.substr(0, 18) == "sentinel_username=") {
      address.sentinel_username = PercentDecode(pair.substr(18));
    }
    start = end + 1;
  }

  if (scheme == "redis") {
    auto slash = hostpart.find('/');
    std::string_view hostport = hostpart.substr(0, slash);
    if (slash != std::string_view::npos && slash + 1 < hostpart.size()) {
      db_text = std::string(hostpart.substr(slash + 1));
    }
    if (hostport.empty()) return Bad(kVar, "'" + RedactUrl(url) + "' has no host");
    HostPort server;
    if (auto problem = ParseHostPort(hostport, 6379, server)) return Bad(kVar, *problem);
    if (server.host.empty()) return Bad(kVar, "'" + RedactUrl(url) + "' has no host");
    address.host = std::move(server.host);
    address.port = server.port;
  } else if (scheme == "redis+sentinel") {
    const std::string kForm =
        " (expected redis+sentinel://[user:password@]host:26379,host2:26379/MASTER_NAME/db)";
    auto slash = hostpart.find('/');
    std::string_view hosts = hostpart.substr(0, slash);
    if (hosts.empty()) return Bad(kVar, "'" + RedactUrl(url) + "' names no Sentinel" + kForm);
    int index = 0;
    for (size_t start = 0; start <= hosts.size(); ++index) {
      auto comma = hosts.find(',', start);
      if (comma == std::string_view::npos) comma = hosts.size();
      std::string_view entry = hosts.substr(start, comma - start);
      std::string which = "Sentinel " + std::to_string(index + 1);
      if (entry.empty()) {
        std::string problem = "'" + RedactUrl(url) + "': ";
        problem += which;
        problem += " of the list is empty";
        problem += kForm;
        return Bad(kVar, problem);
      }
      HostPort sentinel;
      if (auto problem = ParseHostPort(entry, kDefaultSentinelPort, sentinel)) {
        return Bad(kVar, which + ": " + *problem);
      }
      if (sentinel.host.empty()) return Bad(kVar, which + " has no host");
      address.sentinels.push_back(std::move(sentinel));
      start = comma + 1;
    }
    std::string_view path =
        slash == std::string_view::npos ? std::string_view() : hostpart.substr(slash + 1);
    auto next = path.find('/');
    std::string master = PercentDecode(path.substr(0, next));
    if (master.empty()) {
      return Bad(kVar, "'" + RedactUrl(url) + "' names no master" + kForm);
    }
    if (master.find_first_of(" \t\r\n") != std::string::npos) {
      return Bad(kVar, "master name '" + master + "' must not contain white space");
    }
    if (next != std::string_view::npos) {
      std::string_view db_part = path.substr(next + 1);
      if (db_part.find('/') != std::string_view::npos) {
        return Bad(kVar, "'" + RedactUrl(url) + "' has more path than /MASTER_NAME/db" + kForm);
      }
      if (!db_part.empty()) db_text = std::string(db_part);
    }
    address.master_name = std::move(master);
    address.host.clear();
    address.port = 0;
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
  std::string_view hostports = hostpart.substr(0, host_end);
  // libpq's several hosts: h1:p1,h2:p2 (tried in order; target_session_attrs
  // picks the primary). Each port is checked here, for a message that names it.
  for (size_t start = 0; start <= hostports.size();) {
    auto comma = hostports.find(',', start);
    if (comma == std::string_view::npos) comma = hostports.size();
    std::string_view entry = hostports.substr(start, comma - start);
    HostPort ignored;
    if (!entry.empty()) {
      if (auto problem = ParseHostPort(entry, 5432, ignored)) return Bad(kVar, *problem);
    }
    start = comma + 1;
  }
  // asyncpg spells libpq's sslmode as ssl=; libpq rejects unknown parameters.
  // SQLAlchemy names several hosts as repeated host=h:p parameters, which
  // libpq spells host=h1,h2&port=p1,p2 (a repeated host= would keep the last).
  std::string libpq = "postgresql://" + std::string(rest);
  if (auto q = libpq.find('?'); q != std::string::npos) {
    std::string query = libpq.substr(q + 1);
    std::vector<std::string> pairs;
    std::vector<HostPort> query_hosts;
    std::string single_host_pair;  // kept as written when it is the only host, without port
    bool query_host_has_port = false;
    for (size_t start = 0; start <= query.size();) {
      auto end = query.find('&', start);
      if (end == std::string::npos) end = query.size();
      std::string pair = query.substr(start, end - start);
      start = end + 1;
      if (pair.rfind("ssl=", 0) == 0) pair = "sslmode=" + pair.substr(4);
      if (pair.rfind("host=", 0) == 0) {
        std::string value = PercentDecode(pair.substr(5));
        HostPort host;
        if (!value.empty() && value.front() != '/' && value.find(':') != std::string::npos) {
          if (auto problem = ParseHostPort(value, 0, host)) return Bad(kVar, *problem);
          query_host_has_port = true;
        } else {
          host.host = value;
        }
        query_hosts.push_back(std::move(host));
        single_host_pair = pair;
        continue;
      }
      if (!pair.empty()) pairs.push_back(std::move(pair));
    }
    if (query_hosts.size() == 1 && !query_host_has_port) {
      pairs.push_back(single_host_pair);
    } else if (!query_hosts.empty()) {
      std::string hosts = "host=";
      std::string ports = "port=";
      for (size_t i = 0; i < query_hosts.size(); ++i) {
        hosts += (i == 0 ? "" : ",") + query_hosts[i].host;
        ports += (i == 0 ? "" : ",") +
                 (query_hosts[i].port > 0 ? std::to_string(query_hosts[i].port) : std::string());
      }
      pairs.push_back(hosts);
      if (query_host_has_port) pairs.push_back(ports);
    }
    std::string mapped;
    for (const std::string& pair : pairs) mapped += (mapped.empty() ? "" : "&") + pair;
    libpq = libpq.substr(0, q) + (mapped.empty() ? "" : "?" + mapped);
  }
  return libpq;
}

namespace {

// password= (libpq) and sentinel_password= (redis+sentinel://) query values
// replaced by "***".
std::string MaskQuerySecrets(std::string text) {
  auto q = text.find('?');
  if (q == std::string::npos) return text;
  for (size_t start = q + 1; start < text.size();) {
    auto end = text.find('&', start);
    if (end == std::string::npos) end = text.size();
    std::string_view pair = std::string_view(text).substr(start, end - start);
    for (std::string_view key : {"password=", "sentinel_password="}) {
      if (pair.substr(0, key.size()) == key && pair.size() > key.size()) {
        text.replace(start + key.size(), pair.size() - key.size(), "***");
        end = start + key.size() + 3;
        break;
      }
    }
    start = end + 1;
  }
  return text;
}

}  // namespace

std::string RedactUrl(std::string_view url) {
  auto [scheme, rest] = SplitScheme(url);
  auto [userinfo, hostpart] = SplitUserInfo(rest);
  std::string redacted = scheme.empty() ? "" : std::string(scheme) + "://";
  if (HidesUserInfo(hostpart)) {
    // Everything before the last '@' may be password: none of it is shown.
    return MaskQuerySecrets(redacted + "***" + std::string(rest.substr(rest.rfind('@'))));
  }
  if (userinfo.empty()) return MaskQuerySecrets(std::string(url));
  auto colon = userinfo.find(':');
  if (colon == std::string_view::npos) {
    // A lone userinfo is a password for redis:// and a user for postgresql://.
    bool is_password = scheme.rfind("redis", 0) == 0 || scheme == "unix";
    redacted += is_password ? std::string("***") : std::string(userinfo);
  } else {
    redacted += std::string(userinfo.substr(0, colon)) + ":***";
  }
  return MaskQuerySecrets(redacted + "@" + std::string(hostpart));
}

}  // namespace media_sync::config
