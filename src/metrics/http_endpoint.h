// The HTTP endpoint of `media-sync run` (METRICS_ADDRESS): GET /metrics,
// /healthz and /readyz. /healthz is the liveness probe an orchestrator
// restarts the worker by, so no client may delay it or make the process
// hold much: whatever other clients do, a probe is answered as soon as its
// request has arrived.
//
// One thread runs one poll() loop over non-blocking sockets; no read or
// write ever waits, so a client that sends nothing, trickles, or never reads
// its response holds only its own connection, each within bounds
// (EndpointLimits): a head of at most max_request_head bytes that must
// arrive within request_timeout, a response that must be taken within
// response_timeout, no request body ever read (refused with 405 or 413 and
// the connection closed), and at most max_connections connections, where a
// new one replaces the connection that waited longest without a request.
//
// The handlers run on that thread: they must be cheap and thread-safe, read
// state other threads keep up to date, and never call out to Redis,
// PostgreSQL or S3 (a scrape must not load the services, nor hang when they
// do). Scrapes answered in the same round of the loop share one rendering.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "core/result.h"

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

// What one client can make the endpoint hold, and for how long. The
// defaults bound the endpoint's memory to about max_connections x
// (max_request_head + one /metrics response): a few MiB.
struct EndpointLimits {
  // Connections open at once. At the limit, a new connection replaces the
  // open one that made no progress (accepted, request read, response sent)
  // for the longest, once that is at least replace_after; when none is that
  // old, new connections wait in the kernel's queue until one is.
  size_t max_connections = 256;
  std::chrono::milliseconds replace_after{250};
  // Request line and headers together (Prometheus and kubelet send a few
  // hundred bytes). Longer: 414 or 431, and the connection is closed.
  size_t max_request_head = size_t{8} * 1024;
  // A whole request head must arrive within this long after the connection
  // was accepted or its previous response was sent (so also the keep-alive
  // idle time); else the connection is closed.
  std::chrono::milliseconds request_timeout{5000};
  // A response must be taken by the client within this long.
  std::chrono::milliseconds response_timeout{10000};
  // After refusing a request that announced a body, the connection reads and
  // drops at most this much of it, for at most this long, before closing, so
  // that the client sees the refusal rather than a reset.
  size_t max_discard = size_t{1024} * 1024;
  std::chrono::milliseconds discard_timeout{1000};
};

class HttpEndpoint {
 public:
  // Binds `address` ("host:port", "[v6]:port", ":port" for all IPv4
  // interfaces; the host may be a name) and starts serving on a thread of its
  // own. A malformed address or one that cannot be bound is kConfiguration
  // naming METRICS_ADDRESS.
  static Result<std::unique_ptr<HttpEndpoint>> Start(const std::string& address,
                                                     EndpointHandlers handlers,
                                                     EndpointLimits limits = {});
  ~HttpEndpoint();  // stops serving, closes every connection and joins the thread
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  int port() const { return port_; }

 private:
  class Loop;
  explicit HttpEndpoint(std::unique_ptr<Loop> loop, int port);

  std::unique_ptr<Loop> loop_;
  std::jthread thread_;
  int port_ = 0;
};

}  // namespace media_sync::metrics
