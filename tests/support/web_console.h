// The web console for integration tests: `media-sync web` as a child process
// on a free loopback port, and one-request HTTP calls to it with every header
// as the test gives it (support/raw_http.h for connections held open,
// trickled or flooded).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/raw_http.h"
#include "support/worker_harness.h"

namespace media_sync::testing {

struct HttpAnswer {
  int status = 0;  // 0: no answer (connection failed, closed or timed out)
  std::map<std::string, std::string> headers;  // names in lower case; the last of a name
  std::vector<std::string> set_cookies;
  std::string body;
  Json json() const;  // the body parsed (discarded when it is not JSON)
  std::string Header(const std::string& name) const;
};

// One request on a new connection (Connection: close), the answer read to
// its end. `headers` are sent as given, after Host.
HttpAnswer HttpCall(int port, const std::string& method, const std::string& target,
                    const std::map<std::string, std::string>& headers = {},
                    const std::string& body = "",
                    std::chrono::milliseconds timeout = std::chrono::seconds(15));

// `media-sync web` on 127.0.0.1 with a port of its own.
class WebConsoleProcess {
 public:
  WebConsoleProcess(const LocalStack& stack, std::map<std::string, std::string> env = {});
  int port() const { return port_; }
  WorkerProcess& process() { return *process_; }
  HttpAnswer Get(const std::string& target, const std::map<std::string, std::string>& headers = {});
  HttpAnswer Post(const std::string& target, const std::string& body,
                  const std::map<std::string, std::string>& headers = {});

 private:
  std::unique_ptr<WorkerProcess> process_;
  int port_ = 0;
};

}  // namespace media_sync::testing
