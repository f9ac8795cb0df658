// media-sync over HTTPS, as production reaches a distant storage box: a stack
// started with TLS (scripts/stack.sh, STACK_TLS=1) serves the strict gateway
// and the second s3rver over HTTPS with a certificate of a test CA made with
// openssl, and the worker trusts that CA through MINIO_CA_FILE
// (MINIO_SECURE=true). One stack for the binary, its own: the shared one
// speaks plain HTTP.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "s3/s3_client.h"
#include "support/local_stack.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

[[maybe_unused]] const bool kOwnStack = SkipSharedStack();

// The gateway's counts (connections accepted, TLS handshakes, resumed
// sessions) since it started or was last reset.
nlohmann::json GatewayStats(const LocalStack& stack, bool reset) {
  return nlohmann::json::parse(
      Run("curl -sS --fail " +
          ShellQuote(stack.Get("STACK_S3_GATEWAY_STATS_URL") + (reset ? "?reset=1" : ""))));
}

TEST(TlsStackTest, WorkerSyncsToBothBoxesOverHttpsAndReusesItsConnections) {
  LocalStack stack(LocalStack::Params{.tls = true});
  ASSERT_EQ(stack.Get("MINIO_SECURE"), "true");
  ASSERT_THAT(stack.Get("STACK_S3_URL"), ::testing::StartsWith("https://"));
  MediaFactory media(stack);
  media.AddTwoBoxes();
  // Small files to both boxes (one PutObject each), and one file past
  // S3_PART_SIZE for the streamed path.
  std::vector<Json> jobs = media.MakeMany(24, 16 * 1024, "box-a", 1);
  std::vector<Json> box_b = media.MakeMany(24, 16 * 1024, "box-b", 100);
  jobs.insert(jobs.end(), box_b.begin(), box_b.end());
  jobs.push_back(media.Make((9u << 20) + 5, "box-a", 500));
  media.PushAll(jobs);
  GatewayStats(stack, /*reset=*/true);

  constexpr int kConcurrency = 4;
  WorkerProcess worker(
      stack, {{"SYNC_CONCURRENCY", std::to_string(kConcurrency)}, {"METRICS_ADDRESS", ""}},
      {"run", "--drain"});
  ASSERT_EQ(worker.WaitExit(180s), 0) << worker.Log();
  // Read before the objects are read back through the gateway below.
  nlohmann::json stats = GatewayStats(stack, /*reset=*/false);
  EXPECT_THAT(worker.Log(), HasSubstr("summary: synced 49, already synced 0, failed 0"));
  media.ExpectSyncedExactlyOnce(jobs);

  // 25 files to the gateway's box over HTTPS: connections are kept across
  // jobs, so the handshakes are bounded by the threads, not the files.
  const int handshakes = stats["tls_handshakes"].get<int>();
  Measure("tls_handshakes_for_25_files", handshakes, "handshakes");
  Measure("tls_resumed_sessions", stats["tls_resumed"].get<int>(), "handshakes");
  EXPECT_GE(handshakes, 1) << stats.dump();
  EXPECT_LE(handshakes, 2 * kConcurrency) << stats.dump();
  EXPECT_EQ(stats["tcp_connections"].get<int>(), handshakes) << "every connection speaks TLS";

  // A restarted gateway serves HTTPS again (the stack remembers it).
  stack.Restart("s3gateway");
  s3::S3Options options;
  options.endpoint = stack.Get("MINIO_ENDPOINT");
  options.secure = true;
  options.ca_file = stack.Get("MINIO_CA_FILE");
  options.access_key = stack.Get("MINIO_ACCESS_KEY");
  options.secret_key = stack.Get("MINIO_SECRET_KEY");
  options.bucket = stack.Get("MINIO_BUCKET");
  s3::S3Client client(options);
  auto bucket = client.HeadBucket();
  ASSERT_TRUE(bucket.ok()) << bucket.error().message;
  EXPECT_TRUE(*bucket);

  // The gateway tells a resumed TLS session from a full handshake (the
  // bench's figure): curl resumes its session on a second connection.
  GatewayStats(stack, /*reset=*/true);
  const std::string url = ShellQuote(stack.Get("STACK_S3_URL") + "/");
  media_sync::testing::Run("curl -s -o /dev/null -o /dev/null -H 'Connection: close' --cacert " +
                           ShellQuote(stack.Get("MINIO_CA_FILE")) + " " + url + " " + url);
  stats = GatewayStats(stack, /*reset=*/false);
  EXPECT_EQ(stats["tls_handshakes"].get<int>(), 2) << stats.dump();
  EXPECT_EQ(stats["tls_resumed"].get<int>(), 1) << stats.dump();
}

}  // namespace
}  // namespace media_sync::testing
