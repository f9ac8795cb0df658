// What a job payload and a failed entry look like, worked out independently
// of src/core/job.h, for the checks that hold the worker's parser to them:
// the hostile corpus test (tests/integration/) and the job fuzzer (fuzz/).
// Header-only, on nlohmann-json alone, so the fuzz build needs nothing more.
#pragma once

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace media_sync::testing {

// A sha256 as jobs carry it: 64 lower-case hex digits.
inline bool IsLowerHexSha256(std::string_view text) {
  return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// The bytes of standard base64 (a failed entry's raw_base64); nullopt for a
// character outside the alphabet. Padding ends the text.
inline std::optional<std::string> DecodeBase64(std::string_view text) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    if (c == '=') break;
    size_t value = kAlphabet.find(c);
    if (value == std::string_view::npos) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  return out;
}

// Brackets deep, as ParseJob counts them (a scalar is 0, "{}" is 1).
inline int Depth(const nlohmann::ordered_json& value) {
  if (!value.is_structured()) return 0;
  int deepest = 0;
  for (const auto& child : value) deepest = std::max(deepest, Depth(child));
  return deepest + 1;
}

}  // namespace media_sync::testing
