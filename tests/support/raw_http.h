// HTTP on a raw TCP connection, byte by byte, for tests that play hostile
// clients of `media-sync run`'s endpoint (and the well-behaved probe beside
// them). Every call is bounded by a timeout; nothing here retries.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/fd.h"

namespace media_sync::testing {

struct HttpReply {
  int status = 0;  // 0: no whole response before the deadline
  std::string headers;
  std::string body;
};

// One non-blocking TCP connection to 127.0.0.1:`port`.
class RawConnection {
 public:
  explicit RawConnection(int port);

  bool connected() const { return connected_; }
  int fd() const { return fd_.get(); }

  // Sends all of `bytes`; false when the peer closed or reset the connection,
  // or `timeout` passed first.
  bool Send(std::string_view bytes, std::chrono::milliseconds timeout);
  // One response: its head, then Content-Length bytes of body.
  HttpReply ReadResponse(std::chrono::milliseconds timeout);
  // True once the peer closed (or reset) the connection, reading and
  // dropping what it sends meanwhile for at most `timeout`.
  bool Closed(std::chrono::milliseconds timeout);

 private:
  // Reads what arrives before the deadline: false on timeout or close.
  bool Fill(std::chrono::steady_clock::time_point deadline);

  UniqueFd fd_;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
};

// GET `path` on a fresh connection (Connection: close), as an
// orchestrator's probe does; the reply (status 0 when none came within
// `timeout`) and how long it took from the connect.
struct ProbeResult {
  HttpReply reply;
  std::chrono::milliseconds took{0};
};
ProbeResult Probe(int port, const std::string& path, std::chrono::milliseconds timeout);

// The resident set of process `pid` (VmRSS), in bytes; -1 when it is gone.
int64_t ResidentBytes(pid_t pid);

}  // namespace media_sync::testing
