#include "util/sha256_filter.h"

#include <algorithm>
#include <bit>

namespace media_sync {
namespace {

constexpr int kProbes = 8;  // near the optimum for 16 bits per string

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

Sha256Filter::Sha256Filter(uint64_t expected, uint64_t seed) : seed_(seed) {
  const uint64_t min_bits = uint64_t{8} << 13;  // 8 KiB
  const uint64_t max_bits = kMaxBytes * 8;
  const uint64_t wanted = expected > max_bits / 16 ? max_bits : expected * 16;
  const uint64_t bits = std::bit_ceil(std::clamp(wanted, min_bits, max_bits));
  bits_.assign(bits / 64, 0);
  mask_ = bits - 1;
}

std::pair<uint64_t, uint64_t> Sha256Filter::Hashes(std::string_view text) const {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed_;  // FNV-1a, seeded
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return {Mix(h), Mix(h ^ seed_ ^ 0x5851f42d4c957f2dULL) | 1};
}

void Sha256Filter::Add(std::string_view text) {
  auto [a, b] = Hashes(text);
  for (int i = 0; i < kProbes; ++i, a += b) bits_[(a & mask_) >> 6] |= uint64_t{1} << (a & 63);
}

bool Sha256Filter::MightContain(std::string_view text) const {
  auto [a, b] = Hashes(text);
  for (int i = 0; i < kProbes; ++i, a += b) {
    if ((bits_[(a & mask_) >> 6] & (uint64_t{1} << (a & 63))) == 0) return false;
  }
  return true;
}

}  // namespace media_sync
