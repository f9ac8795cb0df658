#include "metrics/http_endpoint.h"

#include <httplib.h>

#include <charconv>

namespace media_sync::metrics {
namespace {

constexpr const char* kPrometheusText = "text/plain; version=0.0.4; charset=utf-8";

Error BadAddress(const std::string& address, const std::string& why) {
  return Error::Configuration("METRICS_ADDRESS='" + address + "': " + why);
}

}  // namespace

Result<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(const std::string& address,
                                                          const EndpointHandlers& handlers) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return BadAddress(address, "expected host:port");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  std::string port_text = address.substr(colon + 1);
  int port = -1;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port < 0 ||
      port > 65535) {
    return BadAddress(address, "port must be a number from 0 to 65535");
  }

  std::unique_ptr<HttpEndpoint> endpoint(new HttpEndpoint());
  endpoint->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *endpoint->server_;
  // Few, short requests: a small pool keeps the threads the scrapes cost low.
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  server.Get("/metrics",
             [render = handlers.metrics](const httplib::Request&, httplib::Response& response) {
               response.set_content(render(), kPrometheusText);
             });
  auto probe = [](std::function<Probe()> check) {
    return [check = std::move(check)](const httplib::Request&, httplib::Response& response) {
      Probe result = check();
      response.status = result.ok ? 200 : 503;
      response.set_content(result.body, "application/json");
    };
  };
  server.Get("/healthz", probe(handlers.health));
  server.Get("/readyz", probe(handlers.readiness));

  // Port 0: any free port (tests), reported by port().
  endpoint->port_ =
      port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (endpoint->port_ < 0) {
    return BadAddress(address, "cannot listen there (in use, or not an address of this host)");
  }
  endpoint->thread_ = std::thread([&server] { server.listen_after_bind(); });
  return endpoint;
}

HttpEndpoint::~HttpEndpoint() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace media_sync::metrics
