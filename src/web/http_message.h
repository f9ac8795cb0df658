// HTTP/1.1 messages as the web console's server reads and writes them
// (RFC 9110, 9112): the request head parsed within fixed limits, query and
// form decoding, cookies, and the response put into bytes. Pure functions,
// no I/O: web/http_server.h owns the sockets.
//
// Only what the console needs is accepted: origin-form targets, bodies with
// Content-Length (no chunked request bodies), no obsolete line folding.
// Every refusal carries the status to answer with and a short reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace media_sync::web {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // as sent: GET, POST, ...
  std::string target;  // the request target, path and query
  std::string path;    // the target before '?', still percent-encoded
  std::string query;   // after '?', still encoded ("" when none)
  int minor_version = 1;
  Headers headers;  // names in lower case, in the order sent
  std::string body;
  std::string peer;  // "address:port" of the client

  // The first header of that (lower-case) name, or nullptr.
  const std::string* Header(std::string_view name) const;
  // Whether the connection may carry another request after this one.
  bool KeepAlive() const;
};

struct HttpResponse {
  int status = 200;
  Headers headers;  // besides Content-Length and Connection, which the server writes
  std::string body;
  bool head_only = false;  // a HEAD request: the headers of the body, not the body

  void Set(std::string name, std::string value);
};

struct HeadLimits {
  size_t max_request_line = size_t{8} * 1024;
  size_t max_head = size_t{16} * 1024;  // request line and headers together
  size_t max_headers = 64;
  size_t max_body = size_t{64} * 1024;
};

// Why a request head is refused: the status to answer (400, 411, 413, 414,
// 431, 501, 505) and a reason for the body.
struct Refusal {
  int status = 400;
  std::string reason;
};

// Where the head ends in `buffer` (the offset just past the blank line), or
// nullopt while it has not arrived yet.
std::optional<size_t> HeadEnd(std::string_view buffer);

// While the head is incomplete: the refusal due once it can no longer fit
// the limits (414 for a request line past its limit, 431 for a head past
// its), so that a client sending an endless line is answered at once and
// never buffered further.
std::optional<Refusal> CheckPartialHead(std::string_view buffer, const HeadLimits& limits);

// Parses a complete head (as delimited by HeadEnd) into `request` (method,
// target, path, query, version, headers) and the body length it announces.
struct ParsedHead {
  size_t content_length = 0;
  bool expect_continue = false;  // Expect: 100-continue
};
std::optional<Refusal> ParseHead(std::string_view head, const HeadLimits& limits,
                                 HttpRequest& request, ParsedHead& parsed);

// The bytes of a response: status line, headers, Content-Length, Connection
// and the body (not for head_only).
std::string SerializeResponse(const HttpResponse& response, bool keep_alive);

std::string_view ReasonPhrase(int status);

// %XX decoding; with `plus_is_space`, '+' is a space (forms and queries).
// nullopt for a malformed escape or a decoded NUL byte.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);

// name=value pairs of a query or an application/x-www-form-urlencoded body,
// decoded; nullopt when one does not decode.
std::optional<std::vector<std::pair<std::string, std::string>>> ParseForm(std::string_view text);

// The value of one cookie of a Cookie header ("a=1; b=2"), or nullopt.
std::optional<std::string> CookieValue(std::string_view header, std::string_view name);

}  // namespace media_sync::web
