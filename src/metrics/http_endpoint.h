// The HTTP endpoint of `media-sync run` (METRICS_ADDRESS): GET /metrics,
// /healthz and /readyz, served by cpp-httplib on its own threads. The
// handlers must be cheap and thread-safe: they read state that other
// threads keep up to date, and never call out to Redis, PostgreSQL or S3
// (a scrape must not load the services, nor hang when they do).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "core/result.h"

namespace httplib {
class Server;
}

namespace media_sync::metrics {

struct Probe {
  bool ok = true;
  std::string body;  // JSON for the probes
};

struct EndpointHandlers {
  std::function<std::string()> metrics;  // Prometheus text
  std::function<Probe()> health;         // /healthz: alive and making progress
  std::function<Probe()> readiness;      // /readyz: can do useful work now
};

class HttpEndpoint {
 public:
  // Binds `address` ("host:port", "[v6]:port", ":port" for all interfaces)
  // and starts serving. A malformed address or one that cannot be bound is
  // kConfiguration naming METRICS_ADDRESS.
  static Result<std::unique_ptr<HttpEndpoint>> Start(const std::string& address,
                                                     const EndpointHandlers& handlers);
  ~HttpEndpoint();  // stops serving and joins its threads
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  int port() const { return port_; }

 private:
  HttpEndpoint() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace media_sync::metrics
