// Process-wide logging on spdlog: LOG_LEVEL and LOG_FORMAT (text for people,
// json lines for log shippers). Everything logs to stderr.
#pragma once

#include <string>

namespace media_sync {

// level: trace|debug|info|warn|error|critical|off; json: one JSON object per line.
void SetupLogging(const std::string& level, bool json);

// `text` as a JSON string body (no quotes): for the json log pattern.
std::string JsonEscape(std::string_view text);

}  // namespace media_sync
