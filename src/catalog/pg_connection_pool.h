// A small pool of libpq connections shared by the worker's threads.
// Internal to the catalog folder.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "catalog/pg_connection.h"
#include "core/result.h"
#include "util/mutex.h"

namespace media_sync::catalog {

struct PgPoolStats {
  int open = 0;           // connections in use or idle
  int idle = 0;           // connections waiting in the pool
  uint64_t connects = 0;  // successful connects since construction
};

// Thread-safe. Connections are made lazily, at most `size` at once; a caller
// that finds all of them in use waits for one to come back (every holder is
// bounded by its own deadlines, so the wait is too). A connection that broke,
// or comes back with a transaction still open, is closed instead of pooled.
class PgConnectionPool {
 public:
  PgConnectionPool(std::string conninfo, int size, std::chrono::milliseconds connect_timeout,
                   std::string application_name);
  PgConnectionPool(const PgConnectionPool&) = delete;
  PgConnectionPool& operator=(const PgConnectionPool&) = delete;

  // Exclusive use of one connection until destruction, which returns it.
  class Lease {
   public:
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)),
          connection_(std::move(other.connection_)),
          fresh_(other.fresh_) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    PgConnection& operator*() { return *connection_; }
    PgConnection* operator->() { return &*connection_; }
    // True when connected for this lease (not reused from the pool).
    bool fresh() const { return fresh_; }

   private:
    friend class PgConnectionPool;
    Lease(PgConnectionPool* pool, PgConnection connection, bool fresh)
        : pool_(pool), connection_(std::move(connection)), fresh_(fresh) {}
    PgConnectionPool* pool_;
    std::optional<PgConnection> connection_;
    bool fresh_;
  };

  // An idle connection that still looks alive, else a new one.
  // Errors: kOutage when connecting fails.
  Result<Lease> Acquire();

  // Closes every idle connection (after one of them was found dead, the
  // others most likely are too: the server restarted).
  void DropIdle();

  PgPoolStats Stats() const;

 private:
  void Release(PgConnection connection);

  const std::string conninfo_;
  const int size_;
  const std::chrono::milliseconds connect_timeout_;
  const std::string application_name_;

  mutable Mutex mutex_;
  std::condition_variable_any returned_;  // signalled when idle_ grows or open_ shrinks
  std::vector<PgConnection> idle_ GUARDED_BY(mutex_);
  int open_ GUARDED_BY(mutex_) = 0;
  std::atomic<uint64_t> connects_{0};
};

}  // namespace media_sync::catalog
