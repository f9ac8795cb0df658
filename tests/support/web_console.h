// The web console for integration tests: `media-sync web` as a child process
// on a free loopback port, and a small HTTP/1.1 client for it over plain
// sockets (so a test controls every byte: headers, bodies, connections held
// open or trickled).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

// A raw connection, for the tests of the server's limits.
class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Sends what the socket takes within `timeout`; returns how many bytes.
  size_t Send(const std::string& bytes,
              std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Reads until the peer closes or `timeout`; what came.
  std::string ReadAll(std::chrono::milliseconds timeout);
  // True when the peer closed the connection (a read gives EOF or a reset)
  // within `timeout`.
  bool ClosedWithin(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
};

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
