// HttpServer: the web console's HTTP/1.1 server. It keeps the bounds of
// `media-sync run`'s endpoint (metrics/http_endpoint.h), with the same
// settings and the same request parser (metrics/http_request.h), and adds
// what the console needs and that endpoint refuses: small request bodies,
// and handlers that call Redis and PostgreSQL, which must not run on the
// thread that serves every connection.
//
// One event thread owns every socket (epoll, non-blocking): it reads request
// heads and bodies within fixed limits, writes responses, and holds each
// connection to its deadlines, so that a client that trickles its head,
// never sends its body, or never reads its response costs one socket for a
// bounded time, never a thread. A complete request goes to the handler:
// first HttpHandler::Quick on the event thread (answers from memory: pages,
// assets, refusals), else Handle on one of a few handler threads (calls to
// Redis and PostgreSQL), through a bounded queue; a full queue is answered
// 503 at once.
//
// Connections are capped. A newcomer beyond the cap replaces the open
// connection that made no progress (accepted, request read, response sent)
// for the longest, once that is at least replace_after; a request being
// handled is never cut. When none is that old, newcomers wait in the
// kernel's queue. A request the server refuses (400, 411, 413, 414, 431,
// 505) is answered and the connection closed after a bounded discard of
// what the client still sends.
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
#include "metrics/http_endpoint.h"
#include "web/http_message.h"

namespace media_sync::web {

struct HttpServerLimits {
  // The endpoint's own bounds, with its values: max_connections (256),
  // replace_after (250 ms), max_request_head (8 KiB), request_timeout (5 s
  // for a whole request, from the connection's accept or its previous
  // response: also the keep-alive idle time), response_timeout (10 s), and
  // what is discarded after a refusal (1 MiB, 1 s).
  metrics::EndpointLimits connection;
  // The body of a request: changes send a little JSON, the login form less.
  size_t max_body = size_t{64} * 1024;
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
  // too large, no handler thread free), on the event thread.
  virtual HttpResponse Refused(int status, const std::string& reason) = 0;
};

// What the server did, for logs and tests.
struct HttpServerStats {
  uint64_t accepted = 0;
  uint64_t requests = 0;
  uint64_t replaced = 0;   // closed to make room for a newer connection
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
