#include "s3/buffer_pool.h"

#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "util/liveness.h"

namespace media_sync::s3 {
namespace {

size_t PageRounded(size_t size) {
  static const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t rounded = (size + page - 1) / page * page;
  return rounded == 0 ? page : rounded;
}

}  // namespace

BufferPool::Lease& BufferPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::exchange(other.pool_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    charged_ = std::exchange(other.charged_, 0);
  }
  return *this;
}

void BufferPool::Lease::Release() {
  if (pool_ != nullptr) pool_->Return(data_, charged_);
  pool_ = nullptr;
  data_ = nullptr;
  size_ = 0;
  charged_ = 0;
}

BufferPool::BufferPool(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}

BufferPool::~BufferPool() {
  for (const auto& [memory, charged] : recycled_) munmap(memory, charged);
}

uint64_t BufferPool::in_use() const {
  MutexLock lock(mutex_);
  return in_use_;
}

uint64_t BufferPool::recycled_bytes() const {
  MutexLock lock(mutex_);
  return recycled_bytes_;
}

uint64_t BufferPool::failed_maps() const {
  MutexLock lock(mutex_);
  return failed_maps_;
}

std::optional<BufferPool::Lease> BufferPool::MapLocked(size_t size, size_t charged) {
  for (auto it = recycled_.rbegin(); it != recycled_.rend(); ++it) {
    if (it->second != charged) continue;
    char* reused = it->first;
    recycled_.erase(std::next(it).base());
    recycled_bytes_ -= charged;
    in_use_ += charged;
    return Lease(this, reused, size, charged);
  }
  void* memory = mmap(nullptr, charged, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    ++failed_maps_;
    return std::nullopt;
  }
  in_use_ += charged;
  return Lease(this, static_cast<char*>(memory), size, charged);
}

Result<BufferPool::Lease> BufferPool::Acquire(size_t size, const std::stop_token& stop) {
  using namespace std::chrono_literals;
  const size_t charged = PageRounded(size);
  if (charged > capacity_) {
    return Error::Configuration("Upload buffer of " + std::to_string(size) +
                                " bytes exceeds S3_BUFFER_POOL (" + std::to_string(capacity_) +
                                " bytes)");
  }
  std::chrono::milliseconds backoff = 100ms;
  MutexLock lock(mutex_);
  while (true) {
    if (!freed_.wait(lock, stop, [&] {
          mutex_.AssertHeld();
          return in_use_ + charged <= capacity_;
        })) {
      return Error::Cancelled("Stopped while waiting for upload buffer memory");
    }
    if (auto lease = MapLocked(size, charged)) return std::move(*lease);
    spdlog::warn(
        "cannot map an upload buffer of {} bytes: {}; the upload waits (retrying in {} ms)",
        charged, std::strerror(errno), backoff.count());
    Liveness::Beat();  // waiting out a shortage is not a stall
    const uint64_t returns = returns_;
    if (!freed_.wait_for(lock, stop, backoff,
                         [&] {
                           mutex_.AssertHeld();
                           return returns_ != returns;
                         }) &&
        stop.stop_requested()) {
      return Error::Cancelled("Stopped while waiting for upload buffer memory");
    }
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
  }
}

Result<std::optional<BufferPool::Lease>> BufferPool::TryAcquire(size_t size) {
  const size_t charged = PageRounded(size);
  if (charged > capacity_) {
    return Error::Configuration("Upload buffer of " + std::to_string(size) +
                                " bytes exceeds S3_BUFFER_POOL (" + std::to_string(capacity_) +
                                " bytes)");
  }
  MutexLock lock(mutex_);
  if (in_use_ + charged > capacity_) return std::optional<Lease>();
  // A failed mmap is a shortage like an exhausted budget: the caller keeps
  // its parts moving and waits in Acquire once it holds none.
  return MapLocked(size, charged);
}

void BufferPool::Return(char* data, size_t charged) {
  bool kept = false;
  {
    MutexLock lock(mutex_);
    in_use_ -= charged;
    ++returns_;
    if (charged <= kRecycledBufferMax && recycled_bytes_ + charged <= kRecycledBytes) {
      recycled_.emplace_back(data, charged);
      recycled_bytes_ += charged;
      kept = true;
    }
  }
  if (!kept) munmap(data, charged);
  freed_.notify_all();
}

BufferPool& BufferPool::Process(uint64_t capacity_bytes) {
  static auto* pool = new BufferPool(capacity_bytes);  // lives as long as the process
  return *pool;
}

}  // namespace media_sync::s3
