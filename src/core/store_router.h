// Chooses the object store of a job's storage box and keeps track of which
// boxes are down, so that only a down box's jobs wait (docs/contract.md §2.4).
// The real implementation is worker::BoxRegistry.
#pragma once

#include <chrono>
#include <cstdint>
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

  // A move-only claim, given back when destroyed (empty when the router
  // keeps no count): `release` learns whether the work it covered ended well
  // (with the bytes it moved) or not (nullopt: failed, stopped, or not the
  // box's doing).
  class Claim {
   public:
    using Release = std::function<void(std::optional<uint64_t> bytes_if_ok)>;
    Claim() = default;
    explicit Claim(Release release) : release_(std::move(release)) {}
    Claim(Claim&& other) noexcept : release_(std::exchange(other.release_, nullptr)) {}
    Claim& operator=(Claim&& other) noexcept {
      if (this != &other) {
        Reset();
        release_ = std::exchange(other.release_, nullptr);
      }
      return *this;
    }
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    ~Claim() { Reset(); }
    // Given back: the work failed or was abandoned.
    void Reset() {
      if (auto release = std::exchange(release_, nullptr)) release(std::nullopt);
    }
    // Given back after the box did its part well, moving `bytes`.
    void Succeeded(uint64_t bytes) {
      if (auto release = std::exchange(release_, nullptr)) release(bytes);
    }
    explicit operator bool() const { return static_cast<bool>(release_); }

   private:
    Release release_;
  };
  // A job's claim on one of its box's in-flight slots, held while the box
  // works for it (the upload, or the HeadObject of a job without a local file).
  using Slot = Claim;
  // A job thread's claim to take one more job from the queue (AwaitIntake),
  // held from before the take until Admit turns it into a slot or a deferral.
  using Ticket = Claim;

  // Whether a job for the box may run now. Either `defer_until` is set (the
  // box is down, or holds as many jobs as it may: the job waits until then
  // and no attempt is counted; `reason` says why), or the job holds `slot`
  // until the box has done its part.
  struct Admission {
    std::optional<TimePoint> defer_until;
    std::string reason;
    Slot slot;
  };

  virtual ~StoreRouter() = default;

  // Blocks until the process may take one more job: while the jobs it
  // holds before their upload (taken, or waiting for a box's slot) and those
  // uploading fill what the boxes in use can take, taking more would only
  // hold jobs that wait. nullopt after `max_wait` or on `stop` (the caller
  // checks its own state and asks again). The default never blocks.
  virtual std::optional<Ticket> AwaitIntake(const std::stop_token& stop,
                                            std::chrono::milliseconds max_wait) {
    (void)stop;
    (void)max_wait;
    return Ticket();
  }

  // Asked once per job, before ForBox; consumes the job's `ticket` (if any).
  // May wait (returns early on `stop`) for a slot of a box that is busy but
  // answering. The default has no per-box limit: it defers while DownUntil()
  // says the box is down.
  virtual Admission Admit(const BoxId& box, const std::stop_token& stop, Ticket ticket) {
    (void)stop;
    ticket.Reset();
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
