// Process-wide logging on spdlog: LOG_LEVEL and LOG_FORMAT (text for people,
// json lines for log shippers). Everything logs to stderr.
#pragma once

#include <spdlog/common.h>

#include <initializer_list>
#include <string>
#include <string_view>

namespace media_sync {

// level: trace|debug|info|warn|error|critical|off; json: one JSON object per line.
void SetupLogging(const std::string& level, bool json);

// A field of a structured log line. Numbers are written unquoted in JSON.
struct LogField {
  std::string_view key;
  std::string value;
  bool number = false;
};

// One structured line: `<event> key=value ...` as text, or
// {"ts":..,"level":..,"thread":..,"msg":"<event>","key":"value",...} as JSON.
void LogEvent(spdlog::level::level_enum level, std::string_view event,
              std::initializer_list<LogField> fields);

// `text` as a JSON string body (no quotes): for the json log pattern.
std::string JsonEscape(std::string_view text);

}  // namespace media_sync
