// Hostile clients on raw sockets, each kind run by a thread of its own until
// destroyed, for the tests that hold an HTTP server to its bounds whatever
// clients do: `media-sync run`'s endpoint (metrics_endpoint_test) and the web
// console (web_console_test). Each kind aims at one path the server serves.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace media_sync::testing {

// Waits `period`, or less when the load is stopped: the pace of a client.
// False once it is stopped.
bool Pause(const std::stop_token& stop, std::chrono::milliseconds period);

// One kind of hostile client, run by its own thread until destroyed.
class HostileLoad {
 public:
  virtual ~HostileLoad() = default;
  // What the load did, for the test's figures ("connections 1200").
  virtual std::string Done() const = 0;
};

struct Load {
  std::string name;
  std::function<std::unique_ptr<HostileLoad>(int port, const std::atomic<bool>& over_memory)> start;
};

void PrintTo(const Load& load, std::ostream* out);

// Every kind, aimed at `path` (the one the server serves most, "/metrics",
// "/api/status"): idle connections held, heads trickled a byte a second, a
// mebibyte request line, a mebibyte header, binary junk, two hundred
// concurrent kept-alive requests, a gibibyte POST body.
std::vector<Load> HostileLoads(const std::string& path);

// The resident memory of `pid`, sampled every 50 ms; `over` is set once it
// passed `limit`.
class MemoryWatch {
 public:
  MemoryWatch(pid_t pid, int64_t limit);
  int64_t peak() const { return peak_; }
  const std::atomic<bool>& over() const { return over_; }

 private:
  std::atomic<int64_t> peak_ = 0;
  std::atomic<bool> over_ = false;
  std::jthread thread_;
};

// `env` for a server whose memory a MemoryWatch bounds. Under
// AddressSanitizer, with a small quarantine: ASan holds what is freed (256
// MiB by default) to catch a use after free, and the bound would weigh that
// quarantine rather than the server. Elsewhere, `env` as it is.
std::map<std::string, std::string> WithBoundedQuarantine(std::map<std::string, std::string> env);

}  // namespace media_sync::testing
