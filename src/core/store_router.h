// Chooses the object store of a job's storage box and keeps track of which
// boxes are down, so that only a down box's jobs wait (docs/contract.md §2.4).
// The real implementation is worker::BoxRegistry.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "core/object_store.h"
#include "core/result.h"

namespace media_sync {

// Implementations are thread-safe.
class StoreRouter {
 public:
  using BoxId = std::optional<std::string>;  // nullopt: the default MINIO_ENDPOINT
  using TimePoint = std::chrono::system_clock::time_point;

  virtual ~StoreRouter() = default;

  // When the box is marked down: the time it may be tried again. nullopt
  // when it is usable now.
  virtual std::optional<TimePoint> DownUntil(const BoxId& box) = 0;

  // The store of the box. kJobRetryable "Unknown storage box X" when the
  // catalog has no such box; kOutage when the catalog cannot be asked.
  virtual Result<std::shared_ptr<ObjectStore>> ForBox(const BoxId& box) = 0;

  // A call to the box's store failed with an outage or configuration error:
  // mark it down (checked again with backoff). Configuration errors also
  // make the next ForBox re-read the box's endpoint.
  virtual void ReportFailure(const BoxId& box, const Error& error) = 0;
  // A call to the box's store succeeded: the box is up.
  virtual void ReportSuccess(const BoxId& box) = 0;
  // The job that DownUntil() chose to probe the box ended without calling
  // its store (a local fault): let the next job probe instead.
  virtual void AbandonProbe(const BoxId& box) = 0;
};

}  // namespace media_sync
