#include "util/sha256_filter.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace media_sync {
namespace {

std::string HexOf(uint64_t n, char tag) {
  char text[65];
  std::snprintf(text, sizeof(text), "%c%063llx", tag, static_cast<unsigned long long>(n));
  return text;
}

TEST(Sha256FilterTest, NeverMissesWhatWasAddedAndRarelyNamesWhatWasNot) {
  constexpr uint64_t kAdded = 100000;
  Sha256Filter filter(kAdded, 42);
  for (uint64_t i = 0; i < kAdded; ++i) filter.Add(HexOf(i, 'a'));
  for (uint64_t i = 0; i < kAdded; ++i) ASSERT_TRUE(filter.MightContain(HexOf(i, 'a'))) << i;
  int false_hits = 0;
  for (uint64_t i = 0; i < kAdded; ++i) false_hits += filter.MightContain(HexOf(i, 'b')) ? 1 : 0;
  EXPECT_LT(false_hits, static_cast<int>(kAdded / 200)) << "more than 0.5% false hits";
}

TEST(Sha256FilterTest, MemoryIsCappedWhateverTheQueueHolds) {
  EXPECT_EQ(Sha256Filter(1'000'000'000, 1).bytes(), Sha256Filter::kMaxBytes);
  EXPECT_LE(Sha256Filter(0, 1).bytes(), 8u * 1024);
  EXPECT_LE(Sha256Filter(1000, 1).bytes(), 8u * 1024);
}

TEST(Sha256FilterTest, AFalseHitOfOneFilterIsNotOneOfTheNext) {
  // Overfilled on purpose, so that false hits are many.
  Sha256Filter first(100, 1);
  Sha256Filter second(100, 2);
  for (uint64_t i = 0; i < 12000; ++i) {
    first.Add(HexOf(i, 'a'));
    second.Add(HexOf(i, 'a'));
  }
  int in_first = 0;
  int in_both = 0;
  for (uint64_t i = 0; i < 20000; ++i) {
    bool a = first.MightContain(HexOf(i, 'c'));
    in_first += a ? 1 : 0;
    in_both += a && second.MightContain(HexOf(i, 'c')) ? 1 : 0;
  }
  ASSERT_GT(in_first, 100);
  EXPECT_LT(in_both, in_first / 2);
}

}  // namespace
}  // namespace media_sync
