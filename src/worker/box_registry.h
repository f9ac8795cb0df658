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
// Thread-safe. The catalog is asked outside the lock.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "config/s3_options.h"
#include "core/catalog.h"
#include "core/store_router.h"

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
  };

  // `defaults` holds MINIO_* (endpoint used for jobs without a box).
  BoxRegistry(s3::S3Options defaults, Catalog& catalog, StoreFactory factory, Settings settings,
              Clock clock = std::chrono::system_clock::now);

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
  static std::string Name(const BoxId& box) { return box.value_or(""); }

  const s3::S3Options defaults_;
  Catalog& catalog_;
  StoreFactory factory_;
  const Settings settings_;
  Clock clock_;

  std::mutex mu_;
  std::map<std::string, Box> boxes_;  // guarded by mu_; "" is the default endpoint
};

}  // namespace media_sync::worker
