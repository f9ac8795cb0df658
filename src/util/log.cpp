#include "util/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace media_sync {
namespace {

// %* : the message escaped for a JSON string, so that quotes, backslashes
// and control characters in a job's text cannot break the line.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string escaped = JsonEscape(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// The fields of the LogEvent being formatted on this thread. spdlog's
// synchronous logger formats in the calling thread, so the flag formatters
// below see them.
thread_local const std::initializer_list<LogField>* current_fields = nullptr;

// %F: the current event's fields, as ` key=value` (text) or `,"key":value` (JSON).
class FieldsFlag : public spdlog::custom_flag_formatter {
 public:
  explicit FieldsFlag(bool json) : json_(json) {}
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    if (current_fields == nullptr) return;
    std::string out;
    for (const auto& field : *current_fields) {
      if (json_) {
        out += ",\"" + JsonEscape(field.key) + "\":";
        out += field.number ? field.value : "\"" + JsonEscape(field.value) + "\"";
      } else if (!field.value.empty()) {  // text lines leave out what is not there
        bool quote = field.value.find_first_of(" \"=") != std::string::npos;
        out += " " + std::string(field.key) + "=";
        out += quote ? "\"" + JsonEscape(field.value) + "\"" : JsonEscape(field.value);
      }
    }
    dest.append(out.data(), out.data() + out.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<FieldsFlag>(json_);
  }

 private:
  bool json_;
};

}  // namespace

void LogEvent(spdlog::level::level_enum level, std::string_view event,
              std::initializer_list<LogField> fields) {
  current_fields = &fields;
  spdlog::log(level, "{}", event);
  current_fields = nullptr;
}

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", static_cast<unsigned char>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out;
}

void SetupLogging(const std::string& level, bool json) {
  auto logger = spdlog::stderr_logger_mt("media-sync");
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  if (json) {
    formatter->add_flag<JsonMessageFlag>('*');
    formatter->add_flag<FieldsFlag>('F', true).set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","thread":%t,"msg":"%*"%F})");
  } else {
    formatter->add_flag<FieldsFlag>('F', false)
        .set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ [%t] %v%F");
  }
  logger->set_formatter(std::move(formatter));
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace media_sync
