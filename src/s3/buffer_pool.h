// One process-wide budget of upload buffer memory.
//
// Every upload buffer (a whole small file, or one multipart part) is leased
// from a BufferPool whose total is S3Options::buffer_pool_bytes, so the memory
// of all uploads together stays bounded whatever the file sizes and the number
// of jobs in flight.
//
// Buffers are mapped with mmap and unmapped when the lease ends, so freed
// memory goes straight back to the operating system (no malloc arena keeps it
// and RSS falls after a burst).
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
#include <mutex>
#include <optional>
#include <stop_token>

#include "core/result.h"

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

  explicit BufferPool(uint64_t capacity_bytes);
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

  // The process-wide pool, created on first use with `capacity_bytes`; later
  // calls return the same pool whatever they pass.
  static BufferPool& Process(uint64_t capacity_bytes);

 private:
  // A lease, or nullopt (errno set) when mmap failed.
  std::optional<Lease> MapLocked(size_t size, size_t charged);
  void Return(char* data, size_t charged);

  const uint64_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable_any freed_;
  uint64_t in_use_ = 0;       // guarded by mutex_
  uint64_t returns_ = 0;      // guarded by mutex_: leases returned so far
  uint64_t failed_maps_ = 0;  // guarded by mutex_
};

}  // namespace media_sync::s3
