// SYNC_BANDWIDTH_LIMIT against a real s3rver: one cap shared by every
// upload in flight (a small file's PutObject, a streamed PutObject,
// multipart parts), a stop request that ends a throttled upload at once, and
// the setting as `media-sync` reads it.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <latch>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "config/options.h"
#include "core/hash.h"
#include "s3/bandwidth_limiter.h"
#include "s3/s3_client.h"
#include "s3/s3_object_store.h"
#include "support/cli_runner.h"
#include "support/local_stack.h"
#include "support/worker_harness.h"

namespace media_sync::s3 {
namespace {

using media_sync::testing::Json;
using media_sync::testing::LocalStack;
using media_sync::testing::MediaFactory;
using media_sync::testing::SharedStack;
using media_sync::testing::WorkerProcess;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;

// The cap of every S3ObjectStore in this binary: the process-wide limiter
// takes the rate it is first created with.
constexpr uint64_t kCap = 6 * kMiB;

// The S3 settings `media-sync` would read from the stack's environment with
// these variables, and straight to the first s3rver: the strict gateway in
// front of it buffers and hashes each body before forwarding it, time that is
// not the client's. Up to 5 MiB: one PutObject from a buffer; up to 16 MiB:
// one streamed PutObject; above: parts of 5 MiB, three in flight.
S3Options CappedOptions(const LocalStack& stack) {
  std::map<std::string, std::string> env = stack.Env();
  env["MINIO_ENDPOINT"] = stack.Get("STACK_S3_DIRECT_ENDPOINT");
  env["S3_PART_SIZE"] = "5MiB";
  env["S3_MULTIPART_THRESHOLD"] = "16MiB";
  env["S3_PART_PARALLELISM"] = "3";
  env["SYNC_BANDWIDTH_LIMIT"] = std::to_string(kCap);
  auto options = config::LoadOptions([&env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
  EXPECT_TRUE(options.ok()) << options.error().message;
  return options.ok() ? options->s3 : S3Options{};
}

double Seconds(std::chrono::steady_clock::duration elapsed) {
  return std::chrono::duration<double>(elapsed).count();
}

// Upper bound: the 5%. The lower bound is looser on purpose: the
// cap promises at most its rate, and this machine (two cores shared by
// s3rver, this test and other builds) may not deliver the full rate at every
// moment; 75% still fails a limiter that paces far below its setting.
void ExpectRateNearTheCap(uint64_t bytes, double seconds, uint64_t cap) {
  const double rate = static_cast<double>(bytes) / seconds;
  ::testing::Test::RecordProperty("rate_of_cap_percent",
                                  static_cast<int>(100 * rate / static_cast<double>(cap)));
  EXPECT_LE(rate, 1.05 * static_cast<double>(cap))
      << bytes << " bytes in " << seconds << " s, cap " << cap << " bytes/s";
  EXPECT_GE(rate, 0.75 * static_cast<double>(cap))
      << bytes << " bytes in " << seconds << " s, cap " << cap << " bytes/s";
}

// Seven uploads at once, through each of the three paths, 48 MiB in all:
// about 8 s at 6 MiB/s, a fraction of a second without the cap.
TEST(BandwidthLimitTest, OneCapIsSharedByEveryUploadInFlight) {
  LocalStack& stack = SharedStack();
  stack.Reset();
  MediaFactory media(stack);
  std::vector<Json> jobs;
  for (int i = 0; i < 4; ++i) jobs.push_back(media.Make(2 * kMiB, {}, 100 + i, "jpg", false));
  for (int i = 0; i < 2; ++i) jobs.push_back(media.Make(10 * kMiB, {}, 200 + i, "jpg", false));
  jobs.push_back(media.Make(20 * kMiB, {}, 300, "jpg", false));
  uint64_t total = 0;
  for (const Json& job : jobs) total += job["file_size"].get<uint64_t>();

  S3ObjectStore store(CappedOptions(stack));
  ASSERT_TRUE(store.EnsureBucket().ok());
  std::vector<Result<ObjectInfo>> results(jobs.size(), Error::Outage("not run"));
  const auto started = std::chrono::steady_clock::now();
  {
    std::vector<std::jthread> uploads;
    for (size_t i = 0; i < jobs.size(); ++i) {
      uploads.emplace_back([&, i] {
        const Json& job = jobs[i];
        int fd = open(job["local_path"].get<std::string>().c_str(), O_RDONLY | O_CLOEXEC);
        results[i] =
            store.Upload(job["s3_key"].get<std::string>(), fd, job["file_size"].get<uint64_t>(),
                         job["sha256"].get<std::string>(), {});
        close(fd);
      });
    }
  }
  const double seconds = Seconds(std::chrono::steady_clock::now() - started);
  for (size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].error().message;
    EXPECT_EQ(results[i]->size, jobs[i]["file_size"].get<uint64_t>());
    EXPECT_EQ(results[i]->sha256, jobs[i]["sha256"].get<std::string>());
  }
  ExpectRateNearTheCap(total, seconds, kCap);
}

// A body reader over `size` bytes of a fixed pattern that counts down
// `flowing` once `after` bytes were handed to curl.
S3Client::BodyReader CountingReader(uint64_t size, uint64_t after, std::latch& flowing) {
  return [size, after, &flowing, signalled = false](char* buffer, size_t capacity,
                                                    uint64_t offset) mutable -> long {
    const auto n = static_cast<size_t>(std::min<uint64_t>(capacity, size - offset));
    std::memset(buffer, 'x', n);
    if (!signalled && offset + n >= after) {
      signalled = true;
      flowing.count_down();
    }
    return static_cast<long>(n);
  };
}

// 16 MiB at 256 KiB/s would take a minute. The first 128 KiB take at least
// 0.4 s under the cap (a bucket of 12.8 KiB, grants of 4 KiB): proof the
// upload is throttled when the stop comes.
TEST(BandwidthLimitTest, AStopRequestEndsAThrottledStreamedPutAtOnce) {
  BandwidthLimiter limiter(256 * kKiB);
  S3Client client(CappedOptions(SharedStack()), &limiter);
  ASSERT_TRUE(client.EnsureBucket().ok());
  const uint64_t size = 16 * kMiB;
  std::latch flowing(1);
  std::stop_source stop;
  std::optional<Result<std::string>> put;
  const auto started = std::chrono::steady_clock::now();
  std::jthread upload([&] {
    put = client.PutObjectStream("it/bandwidth/stopped-stream", size, std::string(64, '0'), "",
                                 CountingReader(size, 128 * kKiB, flowing), {}, stop.get_token());
  });
  flowing.wait();
  const auto stopped = std::chrono::steady_clock::now();
  EXPECT_GE(Seconds(stopped - started), 0.35) << "the first 128 KiB came faster than the cap";
  stop.request_stop();
  upload.join();
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - stopped), 1.0);
  ASSERT_TRUE(put.has_value());
  ASSERT_FALSE(put->ok());
  EXPECT_EQ(put->error().kind, ErrorKind::kCancelled) << put->error().message;
}

// Multipart parts run in one curl multi handle on the calling thread; a
// stop ends them together while they wait on the cap.
TEST(BandwidthLimitTest, AStopRequestEndsThrottledPartsAtOnce) {
  BandwidthLimiter limiter(256 * kKiB);
  S3Client client(CappedOptions(SharedStack()), &limiter);
  ASSERT_TRUE(client.EnsureBucket().ok());
  const std::string key = "it/bandwidth/stopped-parts";
  auto upload_id = client.CreateMultipartUpload(key, {});
  ASSERT_TRUE(upload_id.ok()) << upload_id.error().message;
  const std::string part(5 * kMiB, 'p');
  Payload payload{std::span<const char>(part.data(), part.size()), Sha256Hex(part), ""};
  std::stop_source stop;
  std::vector<S3Client::PartTransfers::Outcome> outcomes;
  std::chrono::steady_clock::time_point stopped;
  {
    S3Client::PartTransfers transfers(client, stop.get_token());
    transfers.Start(key, *upload_id, 1, payload);
    transfers.Start(key, *upload_id, 2, payload);
    // 10 MiB at 256 KiB/s takes forty seconds: after one, no part is done
    // (without the cap, both would be).
    const auto started = std::chrono::steady_clock::now();
    while (Seconds(std::chrono::steady_clock::now() - started) < 1.0) {
      for (auto& outcome : transfers.Poll(100ms)) outcomes.push_back(std::move(outcome));
    }
    EXPECT_TRUE(outcomes.empty()) << "a part finished faster than the cap allows";
    stopped = std::chrono::steady_clock::now();
    stop.request_stop();
    while (transfers.in_flight() > 0) {
      for (auto& outcome : transfers.Poll(100ms)) outcomes.push_back(std::move(outcome));
    }
  }
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - stopped), 1.0);
  ASSERT_EQ(outcomes.size(), 2u);
  for (const auto& outcome : outcomes) {
    ASSERT_FALSE(outcome.etag.ok()) << "part " << outcome.part_number;
    EXPECT_EQ(outcome.etag.error().kind, ErrorKind::kCancelled) << outcome.etag.error().message;
  }
  (void)client.AbortMultipartUpload(key, *upload_id);  // s3rver: 405, nothing to clean
}

// The worker reads the cap from the environment and applies it to all its
// jobs: 24 MiB at 4 MiB/s cannot drain in less than about six seconds
// (start-up and the drain's end only add to the time measured; without the
// cap the drain takes two or three).
TEST(BandwidthLimitTest, TheWorkerCapsItsUploadsFromTheEnvironment) {
  LocalStack& stack = SharedStack();
  stack.Reset();
  MediaFactory media(stack);
  stack.Sql("INSERT INTO storage_boxes (id, minio_endpoint) VALUES ('box-a', '" +
            stack.Get("STACK_S3_DIRECT_ENDPOINT") + "')");
  std::vector<Json> jobs = media.MakeMany(12, 2 * kMiB, "box-a", 400);
  media.PushAll(jobs);
  const auto started = std::chrono::steady_clock::now();
  WorkerProcess worker(
      stack,
      {{"SYNC_BANDWIDTH_LIMIT", "4MiB"}, {"SYNC_CONCURRENCY", "6"}, {"BOX_MAX_IN_FLIGHT", "6"}},
      {"run", "--drain"});
  ASSERT_EQ(worker.WaitExit(120s), 0) << worker.Log();
  const double seconds = Seconds(std::chrono::steady_clock::now() - started);
  const double rate = static_cast<double>(24 * kMiB) / seconds;
  ::testing::Test::RecordProperty("rate_of_cap_percent", static_cast<int>(100 * rate / (4 * kMiB)));
  EXPECT_LE(rate, 1.05 * 4 * kMiB) << seconds << " s";
  EXPECT_THAT(worker.Log(), HasSubstr("uploads capped at 4194304 bytes/s"));
  media.ExpectSyncedExactlyOnce(jobs);
}

TEST(BandwidthLimitTest, BadValuesAreRefusedNamingTheVariable) {
  for (const char* value : {"-5", "-1M", "fast", "5 MiB/s", "4096GiB"}) {
    auto outcome =
        media_sync::testing::RunCli(SharedStack(), "config", {{"SYNC_BANDWIDTH_LIMIT", value}});
    EXPECT_EQ(outcome.code, 2) << value;
    EXPECT_THAT(outcome.all(), HasSubstr(std::string("SYNC_BANDWIDTH_LIMIT='") + value + "'"));
  }
  auto capped =
      media_sync::testing::RunCli(SharedStack(), "config", {{"SYNC_BANDWIDTH_LIMIT", "100M"}});
  EXPECT_EQ(capped.code, 0) << capped.all();
  EXPECT_THAT(capped.out, HasSubstr("100MiB/s"));
  auto off = media_sync::testing::RunCli(SharedStack(), "config", {{"SYNC_BANDWIDTH_LIMIT", ""}});
  EXPECT_EQ(off.code, 0) << off.all();
  EXPECT_THAT(off.out, HasSubstr("0 (off)"));
}

}  // namespace
}  // namespace media_sync::s3
