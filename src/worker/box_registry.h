// BoxRegistry: the StoreRouter of a running worker. It maps a job's
// storage_box_id to an object store built for storage_boxes.minio_endpoint
// (host:port, or an http(s):// URL), caches one store per box, re-reads the
// endpoint every `refresh` and after a configuration error, and rebuilds the
// store when the endpoint changed. A job without a box uses MINIO_ENDPOINT.
//
// Health: a box whose store failed with an outage or configuration error is
// marked down for a backoff (1 s doubling to `max_backoff`). While it is down
// its jobs are deferred without touching it; when the backoff ends, exactly
// one job probes it (the others keep waiting) and its result marks the box
// up or down again.
//
// Share of the in-flight jobs (Admit): a box that stops answering is only
// marked down when its first call times out (S3_LOW_SPEED_SECONDS, 20 s by
// default). Until then every job that reaches it hangs, and without a bound
// the jobs of one hanging box would take every slot of the process and
// starve the healthy boxes for that long. So one box holds at most
// `max_in_flight` jobs (BOX_MAX_IN_FLIGHT, by default half of
// SYNC_CONCURRENCY: the other boxes always keep at least the other half,
// from the first second of a hang, while one healthy box alone still fills
// half the slots, which is seldom what limits it: its uploads share one
// network path and DB_POOL_SIZE connections). A job beyond the cap:
//   - waits up to 1 s for one of the box's slots when the box answered a
//     call within the last second (busy, not hung: slots free up quickly);
//   - otherwise (first contact still pending, or no answer for a second)
//     is deferred after 100 ms, which only paces a thread that keeps
//     meeting such jobs. It is due again after as long as the box's oldest
//     job has been in flight (at least 1 s, at most `max_backoff`), so a
//     hang costs fewer and fewer turns the longer it lasts.
// Either way no attempt is counted: the job is not at fault.
//
// Thread-safe. The catalog is asked outside the lock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "config/s3_options.h"
#include "core/catalog.h"
#include "core/store_router.h"
#include "util/mutex.h"

namespace media_sync::worker {

class BoxRegistry final : public StoreRouter {
 public:
  using StoreFactory = std::function<Result<std::shared_ptr<ObjectStore>>(const s3::S3Options&)>;
  using Clock = std::function<TimePoint()>;

  struct Settings {
    std::chrono::seconds refresh{30};  // BOX_REFRESH_SECONDS
    std::chrono::milliseconds first_backoff{1000};
    std::chrono::seconds max_backoff{60};     // OUTAGE_BACKOFF_MAX_SECONDS
    std::chrono::seconds probe_timeout{120};  // a probe that never reports frees the box
    int max_in_flight = 0;  // BOX_MAX_IN_FLIGHT: jobs one box may hold; 0: no limit
  };

  // `defaults` holds MINIO_* (endpoint used for jobs without a box).
  BoxRegistry(s3::S3Options defaults, Catalog& catalog, StoreFactory factory, Settings settings,
              Clock clock = std::chrono::system_clock::now);

  Admission Admit(const BoxId& box, const std::stop_token& stop) override;
  std::optional<TimePoint> DownUntil(const BoxId& box) override;
  Result<std::shared_ptr<ObjectStore>> ForBox(const BoxId& box) override;
  void ReportFailure(const BoxId& box, const Error& error) override;
  void ReportSuccess(const BoxId& box) override;
  void AbandonProbe(const BoxId& box) override;

  // Every box this process has used, with its state (for readiness, the
  // metrics and the reports `status` shows). name "" is MINIO_ENDPOINT.
  struct BoxState {
    std::string name;
    std::string endpoint;
    bool up = true;
    std::string error;  // the failure that marked it down
  };
  std::vector<BoxState> States();

  // "host:port", "http://host:port/", "https://host" -> options for that box.
  static Result<s3::S3Options> OptionsForEndpoint(const s3::S3Options& defaults,
                                                  const std::string& endpoint);

 private:
  struct Box {
    std::string endpoint;
    std::shared_ptr<ObjectStore> store;
    TimePoint fetched_at{};
    bool reread = false;
    std::optional<TimePoint> down_until;
    std::optional<TimePoint> probing_since;
    std::chrono::milliseconds backoff{0};
    std::string last_error;
  };
  // The jobs of one box in flight, and when it last answered (for Admit).
  struct Load {
    std::multiset<TimePoint> started;  // one entry per slot held
    std::optional<TimePoint> last_answer;
  };
  static std::string Name(const BoxId& box) { return box.value_or(""); }
  // DownUntil() under mu_; `may_probe`: the caller can take the probe.
  std::optional<TimePoint> DownUntilLocked(const std::string& name, TimePoint now, bool may_probe)
      REQUIRES(mu_);
  Slot TakeSlot(const std::string& name, TimePoint now) REQUIRES(mu_);

  const s3::S3Options defaults_;
  Catalog& catalog_;
  StoreFactory factory_;
  const Settings settings_;
  Clock clock_;

  Mutex mu_;
  std::map<std::string, Box> boxes_ GUARDED_BY(mu_);  // "" is the default endpoint
  std::map<std::string, Load> loads_ GUARDED_BY(mu_);
  std::condition_variable_any slot_freed_;
};

}  // namespace media_sync::worker
