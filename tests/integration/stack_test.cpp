// The local stack the other integration tests stand on: every server answers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/local_stack.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;

TEST(StackTest, RedisAnswersPingOnItsPort) {
  LocalStack& stack = SharedStack();
  EXPECT_EQ(stack.RedisCli("PING"), "PONG\n");
  EXPECT_EQ(stack.Get("REDIS_URL"), "redis://127.0.0.1:" + stack.Get("STACK_REDIS_PORT") + "/0");
}

TEST(StackTest, PostgresHasTheReferenceSchema) {
  LocalStack& stack = SharedStack();
  EXPECT_EQ(stack.Sql("SELECT count(*) FROM media_files"), "0\n");
  std::string columns = stack.Sql(
      "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns "
      "WHERE table_name IN ('media_files', 'storage_boxes')");
  EXPECT_EQ(columns,
            "created_at,file_size,id,minio_endpoint,reserved_bytes,s3_key,sha256,"
            "storage_box_id,synced_at,used_bytes\n");
  // The schema is safe to apply again.
  EXPECT_EQ(RunStatus("psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " +
                      stack.Get("STACK_POSTGRES_PORT") + " -U postgres -d media -f " +
                      SourcePath("schema/schema.sql") + " 2>&1"),
            0);
}

TEST(StackTest, BothS3rverBoxesAnswerHttpWithTheBucket) {
  LocalStack& stack = SharedStack();
  for (const std::string& endpoint :
       {stack.Get("MINIO_ENDPOINT"), stack.Get("STACK_S3_2_ENDPOINT")}) {
    std::string out;
    // An unsigned request is refused by a real S3 API, which proves one answers.
    int status = RunStatus("curl -s -o /dev/null -w '%{http_code}' http://" + endpoint + "/" +
                               stack.Get("MINIO_BUCKET") + "?list-type=2",
                           &out);
    EXPECT_EQ(status, 0) << endpoint;
    EXPECT_THAT(out, ::testing::AnyOf("200", "403")) << endpoint;
  }
  EXPECT_EQ(stack.Get("MINIO_ACCESS_KEY"), "S3RVER");
  EXPECT_THAT(stack.Get("DATABASE_URL"), HasSubstr("postgresql://"));
}

TEST(StackTest, RestartKeepsThePortAndRedisData) {
  LocalStack& stack = SharedStack();
  stack.RedisCli("SET stack-test kept");
  std::string port = stack.Get("STACK_REDIS_PORT");
  stack.Restart("redis");
  EXPECT_EQ(stack.RedisCli("GET stack-test"), "kept\n");
  EXPECT_EQ(stack.Get("STACK_REDIS_PORT"), port);
}

}  // namespace
}  // namespace media_sync::testing
