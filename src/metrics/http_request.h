// The little of HTTP/1.x that the metrics endpoint needs: reading one request
// head (request line and headers) from the bytes a client sent so far, and
// writing one response. Pure functions, no I/O, so that every hostile input
// is a unit test.
//
// The endpoint serves GET and HEAD without a body; anything else is refused
// with a status, never read further. The head is bounded (`max_head` bytes):
// a client cannot make the parser hold more.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace media_sync::metrics {

struct RequestHead {
  std::string method;       // as sent: GET, HEAD, POST, ...
  std::string path;         // the target without its query string
  bool keep_alive = false;  // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only when asked
  bool has_body = false;    // Content-Length > 0 or any Transfer-Encoding
};

struct HeadParse {
  enum class State {
    kIncomplete,  // no end of head yet, and nothing wrong so far: read more
    kComplete,    // `head` is the request; it took `consumed` bytes
    kRejected,    // answer `status` (`reason` says why) and close
  };
  State state = State::kIncomplete;
  RequestHead head;
  size_t consumed = 0;
  int status = 0;
  std::string reason;
};

// Reads the request head at the start of `buffer`. Ends of line are CRLF or
// LF. Refused at once, without waiting for more bytes: a request line that
// is not printable ASCII (binary junk, a TLS handshake) as 400; a head of
// more than `max_head` bytes as 414 (no end of the request line yet) or 431;
// a malformed header line or Content-Length as 400; a version other than
// HTTP/1.0 or 1.1 as 505.
HeadParse ParseRequestHead(std::string_view buffer, size_t max_head);

// "OK", "Not Found", ... for the statuses the endpoint answers.
std::string_view StatusReason(int status);

// A whole response: status line, Content-Type, Content-Length, Connection
// (keep-alive or close), `extra_headers` (each ending in CRLF), then `body`
// unless `head_only` (a HEAD request gets the length of the body it would
// have had).
std::string MakeResponse(int status, std::string_view content_type, std::string_view body,
                         bool keep_alive, bool head_only, std::string_view extra_headers = {});

}  // namespace media_sync::metrics
