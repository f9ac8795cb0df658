// Chooses the object store of a job's storage box and keeps track of which
// boxes are down, so that only a down box's jobs wait (docs/contract.md §2.4).
// The real implementation is worker::BoxRegistry.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>

#include "core/object_store.h"
#include "core/result.h"

namespace media_sync {

// Implementations are thread-safe.
class StoreRouter {
 public:
  using BoxId = std::optional<std::string>;  // nullopt: the default MINIO_ENDPOINT
  using TimePoint = std::chrono::system_clock::time_point;

  // A job's claim on one of its box's in-flight slots; given back when
  // destroyed. Move-only; empty when the router keeps no count.
  class Slot {
   public:
    Slot() = default;
    explicit Slot(std::function<void()> release) : release_(std::move(release)) {}
    Slot(Slot&& other) noexcept : release_(std::exchange(other.release_, nullptr)) {}
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        Reset();
        release_ = std::exchange(other.release_, nullptr);
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Reset(); }
    void Reset() {
      if (auto release = std::exchange(release_, nullptr)) release();
    }

   private:
    std::function<void()> release_;
  };

  // Whether a job for the box may run now. Either `defer_until` is set (the
  // box is down, or holds as many jobs as it may: the job waits until then
  // and no attempt is counted; `reason` says why), or the job holds `slot`
  // until it ends.
  struct Admission {
    std::optional<TimePoint> defer_until;
    std::string reason;
    Slot slot;
  };

  virtual ~StoreRouter() = default;

  // Asked once per job, before ForBox. May wait (bounded, returns early on
  // `stop`) for a slot of a box that is busy but answering. The default has
  // no per-box limit: it defers while DownUntil() says the box is down.
  virtual Admission Admit(const BoxId& box, const std::stop_token& stop) {
    (void)stop;
    Admission admission;
    admission.defer_until = DownUntil(box);
    if (admission.defer_until) {
      admission.reason = "Storage box " + box.value_or("(default)") + " is down";
    }
    return admission;
  }

  // When the box is marked down: the time it may be tried again. nullopt
  // when it is usable now (and, once its backoff ended, the caller is the one
  // job that probes it).
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
  // The job that Admit() or DownUntil() chose to probe the box ended without
  // calling its store (a local fault): let the next job probe instead.
  virtual void AbandonProbe(const BoxId& box) = 0;
};

}  // namespace media_sync
