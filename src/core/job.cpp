#include "core/job.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/hash.h"

namespace media_sync {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kFailureFields[] = {"error", "failed_at", "attempts"};

Error Invalid(const std::string& problem) {
  return Error::JobPermanent("Invalid job: " + problem).As(FaultClass::kInvalidJob);
}

// Nesting depth of a JSON text, counted outside strings, so a hostile payload
// is refused before the parser sees it.
int NestingDepth(std::string_view text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

std::optional<Json> ParseBounded(std::string_view payload) {
  if (payload.size() > kMaxJobBytes || NestingDepth(payload) > kMaxJobDepth) return std::nullopt;
  Json document = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return std::nullopt;
  return document;
}

std::string Quote(std::string_view text) {
  // JSON-quoted and shortened, so a hostile value cannot flood the message.
  std::string shown(text.substr(0, 200));
  if (text.size() > 200) shown += "...";
  return Json(shown).dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<std::string> RequiredString(const Json& document, const char* field) {
  auto it = document.find(field);
  if (it == document.end() || it->is_null()) return Invalid(std::string("missing field ") + field);
  if (!it->is_string()) {
    return Invalid(std::string(field) + " must be a string, got " + it->type_name());
  }
  return it->get<std::string>();
}

std::string_view Extension(std::string_view path) {
  auto slash = path.rfind('/');
  auto dot = path.rfind('.');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) return {};
  return path.substr(dot + 1);
}

// The first control character of UTF-8 text (C0, DEL, or C1, which UTF-8
// writes as 0xC2 0x80..0x9F), as "U+001B at byte 4"; nullopt when there is none.
std::optional<std::string> ControlCharacterIn(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    auto byte = static_cast<unsigned char>(text[i]);
    unsigned code = byte;
    if (byte >= 0x80) {
      // Only a two-byte sequence starting 0xC2 can be C1; other bytes from
      // 0x80 are parts of letters.
      auto next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
      code = byte == 0xc2 && next >= 0x80 && next <= 0x9f ? next : 0xa0;
    }
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) {
      char where[48];
      std::snprintf(where, sizeof(where), "U+%04X at byte %zu", code, i);
      return std::string(where);
    }
  }
  return std::nullopt;
}

bool IsExtension(std::string_view ext) {
  if (ext.empty() || ext.size() > 16) return false;
  for (char c : ext) {
    if (!std::isalnum(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

std::string ContentKey(std::string_view sha256, std::string_view extension) {
  std::string key = "media/";
  key.append(sha256.substr(0, 2)).append("/").append(sha256.substr(2, 2)).append("/");
  key.append(sha256);
  if (!extension.empty()) key.append(".").append(extension);
  return key;
}

Result<Job> ParseJob(std::string_view payload) {
  if (payload.size() > kMaxJobBytes) {
    return Invalid("payload of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
                   std::to_string(kMaxJobBytes));
  }
  if (NestingDepth(payload) > kMaxJobDepth) {
    return Invalid("JSON nested deeper than " + std::to_string(kMaxJobDepth) + " levels");
  }
  Json document = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return Invalid("payload is not valid JSON");
  if (!document.is_object()) {
    return Invalid(std::string("payload must be a JSON object, got ") + document.type_name());
  }

  Job job;
  if (document.contains("failed_at")) {
    // An operator requeued a failed entry: it starts a fresh retry budget.
    for (auto field : kFailureFields) document.erase(std::string(field));
    if (document.contains("retry_count")) document["retry_count"] = 0;
    job.requeued_from_failed = true;
  }
  // Measured as the worker may write it: a retry re-serialises the job with
  // its count (up to 1000), which may lengthen it (1e14 becomes
  // 100000000000000.0); the same size whatever count it holds, so a job
  // accepted once is accepted after every rewrite.
  Json rewritten = document;
  rewritten["retry_count"] = 1000;
  const size_t written = rewritten.dump(-1, ' ', false, Json::error_handler_t::replace).size();
  if (written > kMaxJobJsonBytes) {
    return Invalid("payload of " + std::to_string(written) +
                   " bytes (as re-serialised) exceeds the limit of " +
                   std::to_string(kMaxJobJsonBytes) + " (" + std::to_string(kMaxJobBytes) +
                   " less room for the worker's retry and failure fields)");
  }

  auto sha256 = RequiredString(document, "sha256");
  if (!sha256) return sha256.error();
  job.sha256 = *sha256;
  for (char& c : job.sha256) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (job.sha256.size() != 64 ||
      job.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Invalid("sha256 must be 64 hexadecimal characters, got " + Quote(*sha256));
  }

  auto local_path = RequiredString(document, "local_path");
  if (!local_path) return local_path.error();
  job.local_path = *local_path;
  if (job.local_path.empty() || job.local_path.find('\0') != std::string::npos) {
    return Invalid("local_path must be a non-empty path without NUL bytes");
  }
  // No producer names a file so; in a log line it would forge lines.
  if (auto control = ControlCharacterIn(job.local_path)) {
    return Invalid("local_path must not hold control characters (" + *control +
                   "): " + Quote(job.local_path));
  }

  auto s3_key = RequiredString(document, "s3_key");
  if (!s3_key) return s3_key.error();
  job.s3_key = *s3_key;
  std::string_view extension = Extension(job.s3_key);
  if (extension.empty()) extension = Extension(job.local_path);
  std::string expected = ContentKey(job.sha256, extension);
  if (job.s3_key != expected || (!extension.empty() && !IsExtension(extension))) {
    return Invalid("s3_key " + Quote(job.s3_key) + " does not match sha256 (expected " +
                   Quote(IsExtension(extension) ? expected : ContentKey(job.sha256, "<ext>")) +
                   ")");
  }

  auto size = document.find("file_size");
  if (size == document.end() || size->is_null()) return Invalid("missing field file_size");
  if (size->is_number_integer() && (size->is_number_unsigned() || size->get<int64_t>() >= 0)) {
    job.file_size = size->get<uint64_t>();
  } else if (size->is_number_integer()) {
    return Invalid("file_size must be a non-negative integer, got " + size->dump());
  } else {
    return Invalid(std::string("file_size must be a non-negative integer, got ") +
                   (size->is_number_float() ? size->dump() : size->type_name()));
  }

  if (auto box = document.find("storage_box_id"); box != document.end() && !box->is_null()) {
    if (box->is_string() && !box->get<std::string>().empty()) {
      if (auto problem = BoxIdProblem(box->get_ref<const std::string&>())) return Invalid(*problem);
      job.storage_box_id = box->get<std::string>();
    } else if (box->is_number_integer()) {
      job.storage_box_id = box->dump();
    } else {
      return Invalid(std::string("storage_box_id must be a non-empty string, got ") +
                     (box->is_string() ? "an empty string" : box->type_name()));
    }
  }

  if (auto queued = document.find("queued_at"); queued != document.end() && !queued->is_null()) {
    if (!queued->is_string()) {
      return Invalid(std::string("queued_at must be a string, got ") + queued->type_name());
    }
    // Informational (job latency): a time we cannot read is left out, not a fault.
    job.queued_at = ParseIsoTimestamp(queued->get<std::string>());
  }

  if (auto retries = document.find("retry_count");
      retries != document.end() && !retries->is_null()) {
    bool non_negative = retries->is_number_unsigned() ||
                        (retries->is_number_integer() && retries->get<int64_t>() >= 0);
    if (!non_negative || retries->get<uint64_t>() > 1000) {
      return Invalid("retry_count must be a non-negative integer, got " + retries->dump());
    }
    job.retry_count = static_cast<int>(retries->get<uint64_t>());
  }

  job.payload = job.requeued_from_failed ? document.dump() : std::string(payload);
  return job;
}

std::optional<std::string> BoxIdProblem(std::string_view box) {
  if (box.empty()) return "storage_box_id must be a non-empty string, got an empty string";
  // A box id is a storage_boxes key: it reaches SQL (where PostgreSQL refuses
  // U+0000, and libpq would cut the value short at it), metric labels and logs.
  if (auto control = ControlCharacterIn(box)) {
    return "storage_box_id must not hold control characters (" + *control + "): " + Quote(box);
  }
  return std::nullopt;
}

std::string MakeJobPayload(const NewJob& job) {
  Json document{{"sha256", job.sha256},
                {"s3_key", job.s3_key},
                {"local_path", job.local_path},
                {"storage_box_id", job.storage_box_id ? Json(*job.storage_box_id) : Json(nullptr)},
                {"file_size", job.file_size},
                {"queued_at", IsoTimestamp(job.queued_at)},
                {"retry_count", 0}};
  return document.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string WithRetryCount(std::string_view payload, int retry_count) {
  auto document = ParseBounded(payload);
  if (!document || !document->is_object()) return std::string(payload);
  (*document)["retry_count"] = retry_count;
  return document->dump();
}

std::optional<std::chrono::system_clock::time_point> ParseIsoTimestamp(std::string_view text) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, consumed = 0;
  std::string copy(text.substr(0, 64));
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute,
                  &second, &consumed) != 6 ||
      month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  // The clock counts nanoseconds in 64 bits (1677 to 2262): a year outside
  // would overflow the conversion below, which is undefined behaviour and in
  // practice a wrapped time that shows as a job queued a century ago.
  if (year < 1678 || year > 2261) return std::nullopt;
  std::string_view rest = std::string_view(copy).substr(static_cast<size_t>(consumed));
  std::chrono::milliseconds fraction{0};
  if (!rest.empty() && rest.front() == '.') {
    size_t digits = 1;
    int64_t millis = 0;
    for (; digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]));
         ++digits) {
      if (digits <= 3) millis = millis * 10 + (rest[digits] - '0');
    }
    for (size_t pad = digits; pad <= 3; ++pad) millis *= 10;
    fraction = std::chrono::milliseconds(millis);
    rest.remove_prefix(digits);
  }
  std::chrono::minutes offset{0};
  if (rest == "Z" || rest.empty()) {
    // No zone: the platform writes UTC.
  } else if ((rest.front() == '+' || rest.front() == '-') && rest.size() == 6 && rest[3] == ':') {
    int hours = (rest[1] - '0') * 10 + (rest[2] - '0');
    int minutes = (rest[4] - '0') * 10 + (rest[5] - '0');
    offset = std::chrono::minutes(hours * 60 + minutes) * (rest.front() == '+' ? 1 : -1);
  } else {
    return std::nullopt;
  }
  std::chrono::sys_days days = std::chrono::year_month_day(
      std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
      std::chrono::day(static_cast<unsigned>(day)));
  return std::chrono::system_clock::time_point(days) + std::chrono::hours(hour) +
         std::chrono::minutes(minute) + std::chrono::seconds(second) + fraction - offset;
}

std::string IsoTimestamp(std::chrono::system_clock::time_point when) {
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch());
  auto seconds = static_cast<std::time_t>(millis.count() / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(millis.count() % 1000));
  return text;
}

std::string FailedEntry(std::string_view payload, std::string_view error, int attempts,
                        std::chrono::system_clock::time_point now) {
  auto document = ParseBounded(payload);
  Json entry;
  if (document && document->is_object()) {
    entry = std::move(*document);
  } else {
    // Not a job object: keep every byte. JSON strings hold only UTF-8, so
    // anything else is kept base64-encoded.
    try {
      (void)Json(std::string(payload)).dump();
      entry["raw"] = std::string(payload);
    } catch (const Json::type_error&) {
      entry["raw_base64"] = Base64(payload);
    }
  }
  // Cut, so the entry of any job fits ParseJob's limit when the runbook
  // requeues it (a UTF-8 sequence cut short is replaced on output).
  entry["error"] = error.size() > kMaxFailedErrorBytes
                       ? std::string(error.substr(0, kMaxFailedErrorBytes)) + "..."
                       : std::string(error);
  entry["failed_at"] = IsoTimestamp(now);
  entry["attempts"] = attempts;
  return entry.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace media_sync
