// The configuration as operators write it (README, Configuration): URL
// parsing, redaction, byte sizes and LoadOptions over a fuzzed environment.
// Nothing crashes; a refused value's message names its variable; and a
// password never shows, not in a redacted URL, not in an error, not in the
// effective configuration (docs/contract.md §2 guarantee 6).
//
// Input: lines "NAME=VALUE", the environment. A line "{pw}=SECRET" sets a
// secret that replaces "{pw}" in REDIS_URL, DATABASE_URL and
// MINIO_SECRET_KEY. Every value, and the whole input, is also given to each
// parser on its own.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/options.h"
#include "config/urls.h"
#include "fuzz_support.h"

namespace media_sync::fuzz {
namespace {

constexpr std::string_view kPlaceholder = "{pw}";

// Every variable LoadOptions reads: the effective configuration names each
// one, so a setting added later is known here without a list to keep.
const std::vector<std::string>& Variables() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& entry : config::Describe(config::Options{})) out.push_back(entry.first);
    return out;
  }();
  return names;
}

// Letters and digits shifted by one, punctuation kept: the secret keeps the
// URL's shape (so the same parsing paths run) but stops looking like the
// scheme names and words the fuzzer learns from the parsers' comparisons,
// which the fixed parts of messages contain too.
std::string Rotate(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') {
      c = c == 'z' ? 'a' : static_cast<char>(c + 1);
    } else if (c >= 'A' && c <= 'Z') {
      c = c == 'Z' ? 'A' : static_cast<char>(c + 1);
    } else if (c >= '0' && c <= '9') {
      c = c == '9' ? '0' : static_cast<char>(c + 1);
    }
  }
  return out;
}

size_t Count(std::string_view haystack, std::string_view needle) {
  size_t count = 0;
  for (size_t at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

// The pieces of a secret worth looking for: every run of 6 bytes (all of it
// when shorter, down to 4) that occurs nowhere else in the inputs, so finding
// one in an output means it came from the secret. A run needs 3 letters or
// digits: one of quotes, spaces and NULs is found by chance where a message's
// own punctuation meets other input text.
std::vector<std::string_view> Telltales(std::string_view secret, std::string_view all_inputs) {
  std::vector<std::string_view> pieces;
  if (secret.size() < 4) return pieces;
  const size_t length = std::min<size_t>(secret.size(), 6);
  for (size_t i = 0; i + length <= secret.size(); ++i) {
    std::string_view piece = secret.substr(i, length);
    auto alphanumeric = std::count_if(piece.begin(), piece.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0;
    });
    if (alphanumeric >= 3 && Count(all_inputs, piece) == 1) pieces.push_back(piece);
  }
  return pieces;
}

void ExpectNoTelltale(std::string_view output, const std::vector<std::string_view>& telltales,
                      std::string_view what) {
  for (std::string_view piece : telltales) {
    if (output.find(piece) != std::string_view::npos) {
      PropertyFailed(
          "a password never shows", __FILE__, __LINE__,
          std::string(what) + ": '" + std::string(piece) + "' in " + std::string(output));
    }
  }
}

// Where "{pw}" stands for a password by the URL rules every client reads:
// right after "user:" in the authority and right before an '@'; or alone
// before the only '@' (redis:// and unix://, as redis-py reads
// redis://secret@host; a ':' in it would start the password instead).
bool PasswordPosition(std::string_view url_template, std::string_view secret) {
  size_t at = url_template.find(kPlaceholder);
  if (at == std::string_view::npos || Count(url_template, kPlaceholder) != 1) return false;
  size_t scheme_end = url_template.find("://");
  if (scheme_end == std::string_view::npos || scheme_end + 3 > at) return false;
  std::string_view scheme = url_template.substr(0, scheme_end);
  std::string_view before = url_template.substr(scheme_end + 3, at - scheme_end - 3);
  std::string_view after = url_template.substr(at + kPlaceholder.size());
  if (before.find_first_of("/?#@") != std::string_view::npos || !after.starts_with('@')) {
    return false;
  }
  if (before.empty()) {
    return (scheme.starts_with("redis") || scheme == "unix") &&
           secret.find(':') == std::string_view::npos &&
           after.find('@', 1) == std::string_view::npos;
  }
  return before.back() == ':';
}

std::string Substitute(std::string_view text, std::string_view secret) {
  std::string out(text);
  if (auto at = out.find(kPlaceholder); at != std::string::npos) {
    out.replace(at, kPlaceholder.size(), secret);
  }
  return out;
}

bool NamesAVariable(const std::string& message, const std::map<std::string, std::string>& env) {
  for (const std::string& variable : Variables()) {
    if (!message.starts_with(variable) || message.size() == variable.size()) continue;
    char after = message[variable.size()];
    if (after != '=' && after != ':' && after != ' ') continue;
    // A limit set by a related variable names the one it constrains.
    return env.count(variable) > 0 ||
           (variable == "HEALTH_STALL_SECONDS" && env.count("OUTAGE_BACKOFF_MAX_SECONDS") > 0) ||
           (variable == "S3_BUFFER_POOL" && env.count("S3_PART_SIZE") > 0);
  }
  return false;
}

void CheckValue(std::string_view value) {
  auto redis = config::ParseRedisUrl(value);
  if (redis.ok()) {
    if (redis->UsesSentinel()) {
      FUZZ_CHECK(redis->host.empty() && redis->unix_socket.empty() && redis->port == 0, value);
      FUZZ_CHECK(!redis->master_name.empty(), value);
      for (const auto& sentinel : redis->sentinels) {
        FUZZ_CHECK(!sentinel.host.empty() && sentinel.port >= 1 && sentinel.port <= 65535, value);
      }
    } else {
      FUZZ_CHECK(redis->unix_socket.empty() != redis->host.empty(), value);
      FUZZ_CHECK(redis->unix_socket.empty() ? (redis->port >= 1 && redis->port <= 65535)
                                            : redis->port == 0,
                 value);
    }
    FUZZ_CHECK(redis->db >= 0, value);
  } else {
    FUZZ_CHECK(redis.error().kind == ErrorKind::kConfiguration, redis.error().message);
    FUZZ_CHECK(redis.error().message.starts_with("REDIS_URL: "), redis.error().message);
  }
  auto database = config::ParseDatabaseUrl(value);
  if (database.ok()) {
    FUZZ_CHECK(database->starts_with("postgresql://"), *database);
  } else {
    FUZZ_CHECK(database.error().kind == ErrorKind::kConfiguration, database.error().message);
    FUZZ_CHECK(database.error().message.starts_with("DATABASE_URL: "), database.error().message);
  }
  const std::string redacted = config::RedactUrl(value);
  FUZZ_CHECK(config::RedactUrl(redacted) == redacted, redacted);
  // Nothing that could hold a secret (user info, or a password= query
  // parameter such as sentinel_password=): nothing to hide.
  if (value.find('@') == std::string_view::npos &&
      value.find("password=") == std::string_view::npos) {
    FUZZ_CHECK(redacted == value, redacted);
  }

  if (auto bytes = config::ParseByteSize(value)) {
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      FUZZ_CHECK(
          std::to_string(*bytes) ==
              std::string(value).erase(0, std::min(value.find_first_not_of('0'), value.size() - 1)),
          value);
    }
  }
}

}  // namespace
}  // namespace media_sync::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace media_sync;
  using fuzz::kPlaceholder;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  fuzz::CheckValue(input);

  // The environment as written, and the secret.
  std::map<std::string, std::string> templates;
  std::optional<std::string> secret;
  for (std::string_view line : fuzz::SplitLines(input)) {
    size_t equals = line.find('=');
    if (equals == std::string_view::npos) continue;
    std::string name(line.substr(0, equals));
    std::string value(line.substr(equals + 1));
    if (name == kPlaceholder) {
      secret = fuzz::Rotate(value);
    } else {
      templates[name] = value;
    }
  }
  if (!secret) secret = "Zx9-secret-Qv7";

  std::map<std::string, std::string> env;
  std::vector<std::string> secret_variables;
  std::string all_inputs;
  for (const auto& [name, value] : templates) {
    bool secret_here = (name == "REDIS_URL" || name == "DATABASE_URL")
                           ? fuzz::PasswordPosition(value, *secret)
                           : name == "MINIO_SECRET_KEY" && value == kPlaceholder;
    env[name] = secret_here ? fuzz::Substitute(value, *secret) : value;
    if (secret_here) secret_variables.push_back(name);
    all_inputs += name + "=" + env[name] + "\n";
  }
  for (const auto& [name, value] : env) fuzz::CheckValue(value);

  const auto telltales = fuzz::Telltales(*secret, all_inputs);
  for (const std::string& name : secret_variables) {
    if (name == "MINIO_SECRET_KEY") continue;
    const std::string& url = env[name];
    fuzz::ExpectNoTelltale(config::RedactUrl(url), telltales, name + " redacted");
    auto redis = config::ParseRedisUrl(url);
    if (!redis.ok()) fuzz::ExpectNoTelltale(redis.error().message, telltales, name + " as Redis");
    auto database = config::ParseDatabaseUrl(url);
    if (!database.ok()) {
      fuzz::ExpectNoTelltale(database.error().message, telltales, name + " as PostgreSQL");
    }
  }

  auto options = config::LoadOptions([&env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
  const auto& shown_telltales = secret_variables.empty() ? decltype(telltales){} : telltales;
  if (options.ok()) {
    std::string described;
    for (const auto& [name, value] : config::Describe(*options)) {
      described += name + "=" + value + "\n";
    }
    fuzz::ExpectNoTelltale(described, shown_telltales, "effective configuration");
  } else {
    const std::string& message = options.error().message;
    FUZZ_CHECK(options.error().kind == ErrorKind::kConfiguration, message);
    FUZZ_CHECK(fuzz::NamesAVariable(message, env), message);
    fuzz::ExpectNoTelltale(message, shown_telltales, "configuration error");
  }
  return 0;
}
