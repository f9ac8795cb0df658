#include "util/human_bytes.h"

#include <gtest/gtest.h>

namespace media_sync {
namespace {

TEST(HumanBytesTest, DecimalUnitsWithOneDecimalAboveBytes) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(999), "999 B");
  EXPECT_EQ(HumanBytes(1000), "1.0 KB");
  EXPECT_EQ(HumanBytes(4096), "4.1 KB");
  EXPECT_EQ(HumanBytes(1.5e9), "1.5 GB");
  EXPECT_EQ(HumanBytes(2e15), "2.0 PB");
  EXPECT_EQ(HumanBytes(3e18), "3000.0 PB") << "the largest unit holds what is above it";
}

}  // namespace
}  // namespace media_sync
