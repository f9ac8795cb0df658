// An ObjectStore that makes sure its bucket exists before the first call
// (HeadBucket, then CreateBucket when missing, as the seed does), once per
// store. A failure to check (box down) is retried on the next call; a bucket
// that cannot be created is a configuration error of the box.
//
// Thread-safe: concurrent first calls wait for one check.
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include "core/object_store.h"

namespace media_sync::worker {

class BucketCreatingStore final : public ObjectStore {
 public:
  using EnsureBucket = std::function<Status(std::stop_token)>;

  BucketCreatingStore(std::shared_ptr<ObjectStore> store, EnsureBucket ensure_bucket)
      : store_(std::move(store)), ensure_bucket_(std::move(ensure_bucket)) {}

  Result<std::optional<ObjectInfo>> Stat(const std::string& key, std::stop_token stop) override {
    if (auto ready = Ready(stop); !ready) return ready.error();
    return store_->Stat(key, std::move(stop));
  }

  Result<ObjectInfo> Upload(const std::string& key, int fd, uint64_t size,
                            const std::string& sha256_hex, std::stop_token stop) override {
    if (auto ready = Ready(stop); !ready) return ready.error();
    return store_->Upload(key, fd, size, sha256_hex, std::move(stop));
  }

 private:
  Status Ready(const std::stop_token& stop) {
    std::lock_guard lock(mutex_);
    if (ensured_) return Ok();
    Status status = ensure_bucket_(stop);
    ensured_ = status.ok();
    return status;
  }

  std::shared_ptr<ObjectStore> store_;
  EnsureBucket ensure_bucket_;
  std::mutex mutex_;
  bool ensured_ = false;  // guarded by mutex_
};

}  // namespace media_sync::worker
