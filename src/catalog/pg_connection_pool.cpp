#include "catalog/pg_connection_pool.h"

#include <algorithm>

namespace media_sync::catalog {

PgConnectionPool::PgConnectionPool(std::string conninfo, int size,
                                   std::chrono::milliseconds connect_timeout,
                                   std::string application_name)
    : conninfo_(std::move(conninfo)),
      size_(std::max(1, size)),
      connect_timeout_(connect_timeout),
      application_name_(std::move(application_name)) {}

PgConnectionPool::Lease::~Lease() {
  if (pool_ != nullptr && connection_) pool_->Release(std::move(*connection_));
}

Result<PgConnectionPool::Lease> PgConnectionPool::Acquire() {
  MutexLock lock(mutex_);
  for (;;) {
    while (!idle_.empty()) {
      PgConnection candidate = std::move(idle_.back());
      idle_.pop_back();
      lock.Unlock();
      bool alive = candidate.CheckIdle();
      if (alive) return Lease(this, std::move(candidate), /*fresh=*/false);
      {
        PgConnection closing = std::move(candidate);  // closed outside the lock
      }
      lock.Relock();
      --open_;
    }
    if (open_ < size_) break;
    returned_.wait(lock);
  }
  ++open_;  // reserve the slot, connect without holding the lock
  lock.Unlock();

  Result<PgConnection> connected =
      PgConnection::Connect(conninfo_, connect_timeout_, application_name_);
  if (!connected.ok()) {
    lock.Relock();
    --open_;
    returned_.notify_one();
    return connected.error();
  }
  connects_.fetch_add(1, std::memory_order_relaxed);
  return Lease(this, std::move(connected).value(), /*fresh=*/true);
}

void PgConnectionPool::Release(PgConnection connection) {
  bool reusable = !connection.broken() && connection.transaction_status() == PQTRANS_IDLE;
  if (!reusable) {
    { PgConnection closing = std::move(connection); }  // PQfinish outside the lock
    MutexLock lock(mutex_);
    --open_;
    returned_.notify_one();
    return;
  }
  MutexLock lock(mutex_);
  idle_.push_back(std::move(connection));
  returned_.notify_one();
}

void PgConnectionPool::DropIdle() {
  std::vector<PgConnection> closing;
  {
    MutexLock lock(mutex_);
    closing.swap(idle_);
    open_ -= static_cast<int>(closing.size());
    returned_.notify_all();
  }
}

PgPoolStats PgConnectionPool::Stats() const {
  MutexLock lock(mutex_);
  return PgPoolStats{open_, static_cast<int>(idle_.size()),
                     connects_.load(std::memory_order_relaxed)};
}

}  // namespace media_sync::catalog
