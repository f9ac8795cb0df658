#include "s3/buffer_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace media_sync::s3 {
namespace {

size_t PageRounded(size_t size) {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
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

uint64_t BufferPool::in_use() const {
  std::lock_guard lock(mutex_);
  return in_use_;
}

Result<BufferPool::Lease> BufferPool::MapLocked(size_t size, size_t charged) {
  void* memory = mmap(nullptr, charged, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    return Error::Outage("Cannot map an upload buffer of " + std::to_string(charged) +
                         " bytes: " + std::strerror(errno));
  }
  in_use_ += charged;
  return Lease(this, static_cast<char*>(memory), size, charged);
}

Result<BufferPool::Lease> BufferPool::Acquire(size_t size, std::stop_token stop) {
  const size_t charged = PageRounded(size);
  if (charged > capacity_) {
    return Error::Configuration("Upload buffer of " + std::to_string(size) +
                                " bytes exceeds S3_BUFFER_POOL (" + std::to_string(capacity_) +
                                " bytes)");
  }
  std::unique_lock lock(mutex_);
  if (!freed_.wait(lock, stop, [&] { return in_use_ + charged <= capacity_; })) {
    return Error::Cancelled("Stopped while waiting for upload buffer memory");
  }
  return MapLocked(size, charged);
}

Result<std::optional<BufferPool::Lease>> BufferPool::TryAcquire(size_t size) {
  const size_t charged = PageRounded(size);
  if (charged > capacity_) {
    return Error::Configuration("Upload buffer of " + std::to_string(size) +
                                " bytes exceeds S3_BUFFER_POOL (" + std::to_string(capacity_) +
                                " bytes)");
  }
  std::lock_guard lock(mutex_);
  if (in_use_ + charged > capacity_) return std::optional<Lease>();
  auto lease = MapLocked(size, charged);
  if (!lease.ok()) return lease.error();
  return std::optional<Lease>(std::move(lease).value());
}

void BufferPool::Return(char* data, size_t charged) {
  munmap(data, charged);
  {
    std::lock_guard lock(mutex_);
    in_use_ -= charged;
  }
  freed_.notify_all();
}

BufferPool& BufferPool::Process(uint64_t capacity_bytes) {
  static BufferPool* pool = new BufferPool(capacity_bytes);  // lives as long as the process
  return *pool;
}

}  // namespace media_sync::s3
