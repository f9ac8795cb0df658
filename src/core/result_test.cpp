#include "core/result.h"

#include <gtest/gtest.h>

namespace media_sync {
namespace {

Result<int> Half(int n) {
  if (n % 2 != 0) return Error::JobPermanent("odd number " + std::to_string(n));
  return n / 2;
}

TEST(ResultTest, CarriesValueOrClassifiedError) {
  auto half = Half(8);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(*half, 4);
  auto odd = Half(3);
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.error().kind, ErrorKind::kJobPermanent);
  EXPECT_EQ(odd.error().message, "odd number 3");
  EXPECT_TRUE(odd.error().IsJobFault());
}

TEST(ResultTest, WrapKeepsKindAndPrefixesContext) {
  Error wrapped = Error::Outage("connection refused").Wrap("HeadObject media/ab/cd/x.jpg");
  EXPECT_EQ(wrapped.kind, ErrorKind::kOutage);
  EXPECT_EQ(wrapped.message, "HeadObject media/ab/cd/x.jpg: connection refused");
}

TEST(ResultTest, StatusDefaultsToOk) {
  Status ok = Ok();
  EXPECT_TRUE(ok.ok());
  Status failed = Error::Cancelled("shutting down");
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(ToString(failed.error().kind), "cancelled");
}

}  // namespace
}  // namespace media_sync
