#include "s3/buffer_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "s3/s3_object_store.h"

namespace media_sync::s3 {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

TEST(BufferPoolTest, LeasesAreChargedAndReturned) {
  BufferPool pool(4 * kMiB);
  {
    auto lease = pool.Acquire(3 * kMiB, {});
    ASSERT_TRUE(lease.ok());
    std::memset(lease->data(), 0xab, lease->size());
    EXPECT_EQ(pool.in_use(), 3 * kMiB);
    auto second = pool.TryAcquire(2 * kMiB);
    ASSERT_TRUE(second.ok());
    EXPECT_FALSE(second->has_value()) << "over budget";
  }
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(BufferPoolTest, RequestLargerThanTheBudgetIsConfiguration) {
  BufferPool pool(kMiB);
  auto lease = pool.Acquire(2 * kMiB, {});
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.error().kind, ErrorKind::kConfiguration);
}

TEST(BufferPoolTest, AcquireWaitsForAReleaseAndStopsOnRequest) {
  BufferPool pool(2 * kMiB);
  auto held = pool.Acquire(2 * kMiB, {});
  ASSERT_TRUE(held.ok());

  std::stop_source stop;
  std::thread stopper([&] { stop.request_stop(); });
  auto cancelled = pool.Acquire(kMiB, stop.get_token());
  stopper.join();
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.error().kind, ErrorKind::kCancelled);

  std::atomic<bool> acquired{false};
  std::thread waiter([&] {
    auto lease = pool.Acquire(kMiB, {});
    acquired = lease.ok();
  });
  held = Result<BufferPool::Lease>(BufferPool::Lease());  // release the 2 MiB
  waiter.join();
  EXPECT_TRUE(acquired.load());
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(PartSizeTest, StaysWithinS3Limits) {
  EXPECT_EQ(S3ObjectStore::PartSizeFor(200 * kMiB, 8 * kMiB), 8 * kMiB);
  EXPECT_EQ(S3ObjectStore::PartSizeFor(20 * kMiB, kMiB), 5 * kMiB) << "5 MiB minimum";
  EXPECT_EQ(S3ObjectStore::PartSizeFor(20 * kMiB, 5 * kMiB + 1), 6 * kMiB) << "whole MiB";
  const uint64_t five_tib = 5ull << 40;
  const uint64_t part = S3ObjectStore::PartSizeFor(five_tib, 8 * kMiB);
  EXPECT_LE((five_tib + part - 1) / part, 10000u) << "at most 10,000 parts";
  EXPECT_EQ(part % kMiB, 0u);
}

}  // namespace
}  // namespace media_sync::s3
