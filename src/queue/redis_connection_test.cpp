#include "queue/redis_connection.h"

#include <gtest/gtest.h>

namespace media_sync::queue {
namespace {

TEST(RedisVersionTest, AcceptsOnly62AndNewer) {
  EXPECT_TRUE(IsSupportedRedisVersion("6.2.0"));
  EXPECT_TRUE(IsSupportedRedisVersion("6.2.14"));
  EXPECT_TRUE(IsSupportedRedisVersion("7.0.15"));
  EXPECT_TRUE(IsSupportedRedisVersion("10.0.0"));
  EXPECT_FALSE(IsSupportedRedisVersion("6.0.16"));
  EXPECT_FALSE(IsSupportedRedisVersion("5.0.7"));
  EXPECT_FALSE(IsSupportedRedisVersion(""));
  EXPECT_FALSE(IsSupportedRedisVersion("seven"));
  EXPECT_FALSE(IsSupportedRedisVersion("7"));
}

TEST(RedisVersionTest, ReadsVersionFromInfo) {
  EXPECT_EQ(RedisVersionFromInfo("# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:0\r\n"),
            "7.0.15");
  EXPECT_EQ(RedisVersionFromInfo("redis_version:6.2.1"), "6.2.1");
  EXPECT_EQ(RedisVersionFromInfo("# Server\r\nredis_mode:standalone\r\n"), "");
}

TEST(LuaScriptTest, Sha1MatchesWhatRedisComputes) {
  // SHA-1 of "return 1", as SCRIPT LOAD reports it.
  EXPECT_EQ(LuaScript("return 1").sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

}  // namespace
}  // namespace media_sync::queue
