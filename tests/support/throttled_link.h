// A bandwidth-limited link between a test's client and one server:
// tests/support/throttled_link.js as a child process on a free loopback
// port, holding what the client sends to `rate` bytes per second and
// counting it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "support/local_stack.h"

namespace media_sync::testing {

class ThrottledLink {
 public:
  // Forwards to upstream ("host:port") at `rate` bytes/s (0: no limit), each
  // chunk held `one_way_delay` in each direction. Aborts the test run when
  // the link does not listen within 10 s.
  ThrottledLink(const LocalStack& stack, const std::string& upstream, uint64_t rate,
                std::chrono::milliseconds one_way_delay = std::chrono::milliseconds(0));
  ~ThrottledLink();  // SIGKILLs the proxy and waits for it
  ThrottledLink(const ThrottledLink&) = delete;
  ThrottledLink& operator=(const ThrottledLink&) = delete;

  // "127.0.0.1:port": where clients connect instead of upstream.
  const std::string& endpoint() const { return endpoint_; }
  // Bytes forwarded to upstream so far (as of at most 50 ms ago).
  uint64_t bytes_sent() const;

 private:
  std::string state_dir_;
  std::string endpoint_;
  pid_t pid_ = -1;
};

}  // namespace media_sync::testing
