// Operator-facing texts that runbooks and alerts grep for (docs/contract.md §1):
// defined once so every layer says them the same way.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace media_sync {

inline constexpr std::string_view kMissingEverywhere =
    "File missing from both local buffer and MinIO";

inline std::string SizeMismatch(uint64_t expected, uint64_t got) {
  return "Size mismatch: expected " + std::to_string(expected) + ", got " + std::to_string(got);
}

}  // namespace media_sync
