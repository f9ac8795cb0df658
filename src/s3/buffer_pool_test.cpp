#include "s3/buffer_pool.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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

TEST(BufferPoolTest, SmallBuffersAreLeasedAgainAndTheirCacheIsBounded) {
  BufferPool pool(8 * kMiB);
  const char* first = nullptr;
  {
    auto lease = pool.Acquire(16 * 1024, {});
    ASSERT_TRUE(lease.ok());
    first = lease->data();
  }
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.recycled_bytes(), 16u * 1024);
  {
    auto again = pool.Acquire(16 * 1024, {});
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->data(), first) << "the same mapping is leased again";
    EXPECT_EQ(pool.in_use(), 16u * 1024);
    EXPECT_EQ(pool.recycled_bytes(), 0u);
  }
  {
    auto large = pool.Acquire(BufferPool::kRecycledBufferMax + 1, {});
    ASSERT_TRUE(large.ok());
  }
  EXPECT_EQ(pool.recycled_bytes(), 16u * 1024) << "a larger buffer is unmapped";

  // Many small buffers at once: only kRecycledBytes of them stay mapped.
  {
    std::vector<BufferPool::Lease> leases;
    for (int i = 0; i < 200; ++i) {
      auto lease = pool.Acquire(16 * 1024, {});
      ASSERT_TRUE(lease.ok());
      leases.push_back(std::move(lease).value());
    }
    EXPECT_EQ(pool.in_use(), 200u * 16 * 1024);
  }
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.recycled_bytes(), BufferPool::kRecycledBytes);
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

// Caps this process's address space just above what it maps now, so that
// a large mmap fails (as under a memory limit); restored when destroyed.
class AddressSpaceCapped {
 public:
  explicit AddressSpaceCapped(uint64_t headroom) {
    getrlimit(RLIMIT_AS, &saved_);
    rlimit capped = saved_;
    capped.rlim_cur = static_cast<rlim_t>(MappedBytes() + headroom);
    setrlimit(RLIMIT_AS, &capped);
  }
  ~AddressSpaceCapped() { Lift(); }
  void Lift() { setrlimit(RLIMIT_AS, &saved_); }

 private:
  static uint64_t MappedBytes() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmSize:", 0) == 0) return std::stoull(line.substr(7)) * 1024;
    }
    return 0;
  }
  rlimit saved_{};
};

// Memory refused by the kernel is this process's shortage: the upload waits
// for it (the job is held) instead of failing as an outage of its box.
TEST(BufferPoolTest, MemoryRefusedByTheKernelIsWaitedForNotReported) {
  BufferPool pool(512 * kMiB);
  std::atomic<bool> start{false};
  std::optional<Result<BufferPool::Lease>> acquired;
  // Created (its stack mapped) before the cap.
  std::thread uploader([&] {
    while (!start.load()) std::this_thread::yield();
    acquired.emplace(pool.Acquire(256 * kMiB, {}));
  });
  AddressSpaceCapped cap(64 * kMiB);
  start = true;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (pool.failed_maps() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  const uint64_t failed = pool.failed_maps();
  cap.Lift();
  uploader.join();

  EXPECT_GE(failed, 1u) << "the mapping never failed: the test proves nothing";
  ASSERT_TRUE(acquired.has_value());
  ASSERT_TRUE(acquired->ok()) << ToString(acquired->error().kind) << ": "
                              << acquired->error().message;
  EXPECT_EQ((*acquired)->size(), 256 * kMiB);
  EXPECT_EQ(pool.in_use(), 256 * kMiB);
}

TEST(BufferPoolTest, MemoryRefusedWhileWaitingEndsOnStop) {
  BufferPool pool(512 * kMiB);
  std::stop_source stop;
  std::atomic<bool> start{false};
  std::optional<Result<BufferPool::Lease>> acquired;
  std::thread uploader([&] {
    while (!start.load()) std::this_thread::yield();
    acquired.emplace(pool.Acquire(256 * kMiB, stop.get_token()));
  });
  {
    AddressSpaceCapped cap(64 * kMiB);
    start = true;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (pool.failed_maps() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    stop.request_stop();
    uploader.join();
  }
  ASSERT_TRUE(acquired.has_value());
  ASSERT_FALSE(acquired->ok());
  EXPECT_EQ(acquired->error().kind, ErrorKind::kCancelled);
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
