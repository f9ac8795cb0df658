// One process-wide budget of upload buffer memory.
//
// Every upload buffer (a whole small file, or one multipart part) is leased
// from a BufferPool whose total is S3Options::buffer_pool_bytes, so the memory
// of all uploads together stays bounded whatever the file sizes and the number
// of jobs in flight.
//
// Buffers are mapped with mmap and unmapped when the lease ends, so freed
// memory goes straight back to the operating system (no malloc arena keeps it
// and RSS falls after a burst). Small buffers (a small file each, up to
// kRecycledBufferMax) are the exception: up to kRecycledBytes of them stay
// mapped, beside the budget, and are leased again to the next request of the
// same size, sparing each small file an mmap, its page faults and an munmap
// (whose TLB shootdown interrupts every thread of the process).
//
// Deadlock rule for callers: never block in Acquire while holding a lease that
// is not yet handed to a transfer that will finish on its own. Multipart
// uploads use TryAcquire while they have parts in flight and Acquire only when
// they hold nothing.
//
// Thread-safety: all methods are thread-safe. A Lease is move-only and owned
// by one thread at a time; it must not outlive its pool.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <utility>
#include <vector>

#include "core/result.h"
#include "util/mutex.h"

namespace media_sync::s3 {

class BufferPool {
 public:
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { Release(); }

    char* data() const { return data_; }
    size_t size() const { return size_; }
    explicit operator bool() const { return data_ != nullptr; }

   private:
    friend class BufferPool;
    Lease(BufferPool* pool, char* data, size_t size, size_t charged)
        : pool_(pool), data_(data), size_(size), charged_(charged) {}
    void Release();

    BufferPool* pool_ = nullptr;
    char* data_ = nullptr;
    size_t size_ = 0;
    size_t charged_ = 0;  // bytes taken from the budget (size rounded to pages)
  };

  static constexpr size_t kRecycledBufferMax = size_t{64} * 1024;
  static constexpr size_t kRecycledBytes = size_t{1} << 20;

  explicit BufferPool(uint64_t capacity_bytes);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Blocks until `size` bytes fit in the budget or stop is requested
  // (kCancelled). A request larger than the whole budget is kConfiguration:
  // it could never be served. When the kernel refuses the memory (mmap
  // fails: the process's limits, or the host's memory pressure) the call
  // keeps waiting, retrying with backoff (up to 5 s, sooner when a lease is
  // returned) and logging why: the shortage is this process's, not the
  // box's nor the job's, so the job is held, never failed or deferred.
  Result<Lease> Acquire(size_t size, const std::stop_token& stop);
  // Non-blocking: a lease, or nullopt when the budget is exhausted or the
  // memory cannot be mapped right now.
  Result<std::optional<Lease>> TryAcquire(size_t size);

  uint64_t capacity() const { return capacity_; }
  uint64_t in_use() const;
  // How many times mapping a buffer failed (memory refused by the kernel).
  uint64_t failed_maps() const;
  // Bytes of small buffers kept mapped for reuse (at most kRecycledBytes).
  uint64_t recycled_bytes() const;

  // The process-wide pool, created on first use with `capacity_bytes`; later
  // calls return the same pool whatever they pass.
  static BufferPool& Process(uint64_t capacity_bytes);

 private:
  // A lease, or nullopt (errno set) when mmap failed.
  std::optional<Lease> MapLocked(size_t size, size_t charged) REQUIRES(mutex_);
  void Return(char* data, size_t charged);

  const uint64_t capacity_;
  mutable Mutex mutex_;
  std::condition_variable_any freed_;
  uint64_t in_use_ GUARDED_BY(mutex_) = 0;
  uint64_t returns_ GUARDED_BY(mutex_) = 0;  // leases returned so far
  uint64_t failed_maps_ GUARDED_BY(mutex_) = 0;
  // Small buffers kept mapped for reuse (memory, charged size), at most
  // kRecycledBytes in all.
  std::vector<std::pair<char*, size_t>> recycled_ GUARDED_BY(mutex_);
  size_t recycled_bytes_ GUARDED_BY(mutex_) = 0;
};

}  // namespace media_sync::s3
