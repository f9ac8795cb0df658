// HTTP/1.1 messages as the web console's server hands them to the console
// and writes them back: a request whose head metrics/http_request.h parsed
// (the parser `media-sync run`'s endpoint uses), with its body; a response
// with any headers, put into bytes; and the decoding the console needs
// (percent-escapes, forms and queries, cookies). Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/http_request.h"

namespace media_sync::web {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // as sent: GET, POST, ...
  std::string path;    // the target before '?', still percent-encoded
  std::string query;   // after '?', still encoded ("" when none)
  Headers headers;     // names in lower case, in the order sent
  std::string body;
  std::string peer;  // "address:port" of the client
  bool keep_alive = false;

  // The request of a parsed head (its body comes apart).
  static HttpRequest FromHead(metrics::RequestHead head);
  // The first header of that (lower-case) name, or nullptr.
  const std::string* Header(std::string_view name) const;
  // Whether the connection may carry another request after this one.
  bool KeepAlive() const { return keep_alive; }
};

struct HttpResponse {
  int status = 200;
  Headers headers;  // besides Content-Length and Connection, which the server writes
  std::string body;
  bool head_only = false;  // a HEAD request: the headers of the body, not the body

  void Set(std::string name, std::string value);
};

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
