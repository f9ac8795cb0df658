// Sha256Filter: a Bloom filter of sha256 strings in a fixed amount of
// memory, whatever the number added. Reconcile keeps in it the sha256 of
// every job held in Redis, which can run into the millions during a backlog:
// a set of the strings themselves grew with the queue (about 130 bytes each).
//
// MightContain() never answers false for a string added; it answers true
// for one not added with a small probability (about 0.1% at 16 bits per
// string added, more once `expected` is exceeded or the size cap is hit).
// Each filter takes its own random seed, so a string falsely reported in one
// filter is, all but surely, not in the next one made.
//
// Thread-safety: none. Pure logic.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace media_sync {

class Sha256Filter {
 public:
  // Memory at most.
  static constexpr uint64_t kMaxBytes = uint64_t{16} << 20;
  // Sized for `expected` strings at 16 bits each (at least 8 KiB, at most
  // kMaxBytes).
  Sha256Filter(uint64_t expected, uint64_t seed);

  void Add(std::string_view text);
  bool MightContain(std::string_view text) const;

  uint64_t bytes() const { return bits_.size() * sizeof(uint64_t); }

 private:
  // The two hashes every probe position is derived from.
  std::pair<uint64_t, uint64_t> Hashes(std::string_view text) const;

  std::vector<uint64_t> bits_;
  uint64_t mask_ = 0;  // bit count - 1 (a power of two)
  uint64_t seed_ = 0;
};

}  // namespace media_sync
