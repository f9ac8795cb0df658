// Shared by the fuzz targets: a property check that stops the run with the
// property named (libFuzzer saves the input that broke it), and line
// splitting for the targets whose inputs are readable text.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace media_sync::fuzz {

// Shown escaped and shortened: a finding's report must stay readable even
// when the offending value is megabytes of binary.
inline std::string Printable(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < 400; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
      out += escaped;
    }
  }
  if (text.size() > 400) out += "...";
  return out;
}

[[noreturn]] inline void PropertyFailed(const char* property, const char* file, int line,
                                        std::string_view detail) {
  std::fprintf(stderr, "\nproperty violated at %s:%d: %s\n  %s\n", file, line, property,
               Printable(detail).c_str());
  std::abort();
}

inline std::string_view DetailOf() { return {}; }
inline std::string_view DetailOf(std::string_view detail) { return detail; }

// FUZZ_CHECK(condition) or FUZZ_CHECK(condition, detail): detail (anything a
// string_view is made from) is shown when the property does not hold.
#define FUZZ_CHECK(condition, ...)                                                   \
  do {                                                                               \
    if (!(condition)) {                                                              \
      ::media_sync::fuzz::PropertyFailed(#condition, __FILE__, __LINE__,             \
                                         ::media_sync::fuzz::DetailOf(__VA_ARGS__)); \
    }                                                                                \
  } while (false)

inline std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace media_sync::fuzz
