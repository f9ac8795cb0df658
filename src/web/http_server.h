// HttpServer: the web console's HTTP/1.1 server, built so that no client can
// starve the others or bloat the process, whatever it sends or withholds.
//
// One event thread owns every socket (epoll, non-blocking): it reads request
// heads and bodies within fixed limits (web/http_message.h), writes
// responses, and enforces deadlines on each phase of a connection, so a
// client that trickles its head, never sends its body, or never reads its
// response costs one idle socket for a bounded time, never a thread. A
// complete request goes to the handler: first HttpHandler::Quick on the event
// thread (answers from memory: pages, assets, refusals), else Handle on one
// of a few handler threads (calls to Redis and PostgreSQL), through a bounded
// queue; a full queue is answered 503 at once.
//
// Connections are capped. A new connection beyond the cap closes the open
// one that has waited longest in a phase the client drives (reading its
// request, receiving a response, idle between requests): a client holding
// connections open loses its oldest ones to newcomers, and a request being
// handled is never cut. Answers to broken requests (400, 408, 413, 414, 431,
// ...) close the connection after a short lingering read.
//
// Thread-safety: Start and the destructor on one thread; the handler's
// Handle runs on several handler threads at once, Quick and Refused on the
// event thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "web/http_message.h"

namespace media_sync::web {

struct HttpServerLimits {
  HeadLimits head;               // request line, head and body sizes
  size_t max_connections = 256;  // open at once; beyond, the longest waiting one is closed
  // A connection waiting for a request's first byte (new, or kept alive).
  std::chrono::milliseconds idle_timeout{5000};
  // From a request's first byte to its last, head and body.
  std::chrono::milliseconds request_timeout{10000};
  // To send one response.
  std::chrono::milliseconds write_timeout{10000};
  int max_requests_per_connection = 1000;
  int handler_threads = 4;
  size_t max_waiting = 64;  // complete requests waiting for a handler thread
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // On the event thread, for every complete request: a response when one can
  // be given from memory without blocking, else nullopt to have Handle()
  // called on a handler thread.
  virtual std::optional<HttpResponse> Quick(const HttpRequest& request) = 0;
  // On a handler thread; may block on services within their timeouts.
  virtual HttpResponse Handle(const HttpRequest& request) = 0;
  // The response to a request refused by the server itself (malformed or
  // too large, too slow, no handler thread free), on the event thread.
  virtual HttpResponse Refused(int status, const std::string& reason) = 0;
};

// What the server did, for logs and tests.
struct HttpServerStats {
  uint64_t accepted = 0;
  uint64_t requests = 0;
  uint64_t evicted = 0;    // closed to make room for a newer connection
  uint64_t timed_out = 0;  // closed at a deadline
  uint64_t refused = 0;    // answered by Refused()
  int open = 0;            // connections open now
};

class HttpServer {
 public:
  // Binds `address` ("host:port", "[v6]:port"; port 0 picks a free one) and
  // starts serving with `handler`, which must outlive the server. An address
  // that is malformed or cannot be bound is kConfiguration naming `variable`.
  static Result<std::unique_ptr<HttpServer>> Start(const std::string& address,
                                                   std::string_view variable,
                                                   const HttpServerLimits& limits,
                                                   HttpHandler& handler);
  ~HttpServer();  // stops serving; handlers running finish first
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  HttpServerStats Stats() const;

 private:
  class Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace media_sync::web
