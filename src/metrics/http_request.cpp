#include "metrics/http_request.h"

#include <charconv>
#include <cstdint>
#include <optional>

namespace media_sync::metrics {
namespace {

// Methods are short upper-case tokens; anything longer is not HTTP.
constexpr size_t kMaxMethod = 16;

HeadParse Rejected(int status, std::string reason) {
  HeadParse parse;
  parse.state = HeadParse::State::kRejected;
  parse.status = status;
  parse.reason = std::move(reason);
  return parse;
}

bool IsPrintable(char c) { return c >= 0x20 && c <= 0x7e; }

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

// RFC 9110 tchar.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || IsUpper(c) || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

char Lower(char c) { return IsUpper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string_view TrimSpaces(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The line starting at `from`, without its CR LF or LF; npos end when no LF
// has arrived yet.
struct Line {
  std::string_view text;
  size_t next = std::string_view::npos;  // where the following line starts
};

Line LineAt(std::string_view buffer, size_t from) {
  size_t newline = buffer.find('\n', from);
  if (newline == std::string_view::npos) return Line{buffer.substr(from)};
  std::string_view text = buffer.substr(from, newline - from);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return Line{text, newline + 1};
}

// What can be told of a request line before all of it arrived: junk is
// refused without waiting for the rest of it.
std::optional<HeadParse> CheckPartialRequestLine(std::string_view partial) {
  // A lone CR may be the first half of the line's end.
  if (!partial.empty() && partial.back() == '\r') partial.remove_suffix(1);
  for (char c : partial) {
    if (!IsPrintable(c)) return Rejected(400, "request line is not printable ASCII");
  }
  std::string_view method = partial.substr(0, partial.find(' '));
  for (char c : method) {
    if (!IsUpper(c)) return Rejected(400, "malformed method");
  }
  if (method.size() > kMaxMethod) return Rejected(400, "malformed method");
  return std::nullopt;
}

std::optional<HeadParse> ParseRequestLine(std::string_view line, RequestHead& head, bool& http10) {
  if (auto junk = CheckPartialRequestLine(line)) return junk;
  size_t first = line.find(' ');
  size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos || line.find(' ', second + 1) != std::string_view::npos) {
    return Rejected(400, "malformed request line");
  }
  std::string_view method = line.substr(0, first);
  std::string_view target = line.substr(first + 1, second - first - 1);
  std::string_view version = line.substr(second + 1);
  if (method.empty() || target.empty()) return Rejected(400, "malformed request line");
  if (version == "HTTP/1.1") {
    http10 = false;
  } else if (version == "HTTP/1.0") {
    http10 = true;
  } else if (version.substr(0, 5) == "HTTP/") {
    return Rejected(505, "HTTP version not supported");
  } else {
    return Rejected(400, "malformed request line");
  }
  head.method = std::string(method);
  head.path = std::string(target.substr(0, target.find_first_of("?#")));
  return std::nullopt;
}

}  // namespace

HeadParse ParseRequestHead(std::string_view buffer, size_t max_head) {
  // Empty lines before a request are allowed (RFC 9112 2.2): a client may
  // send one after a previous body.
  size_t start = 0;
  while (start < buffer.size() && (buffer[start] == '\r' || buffer[start] == '\n')) ++start;

  Line request_line = LineAt(buffer, start);
  if (request_line.next == std::string_view::npos) {
    if (auto junk = CheckPartialRequestLine(request_line.text)) return *std::move(junk);
    if (buffer.size() > max_head) return Rejected(414, "request line too long");
    return {};
  }

  HeadParse parse;
  bool http10 = false;
  if (auto refused = ParseRequestLine(request_line.text, parse.head, http10)) {
    return *std::move(refused);
  }
  std::optional<bool> connection_keep_alive;
  bool seen_length = false;
  size_t at = request_line.next;
  for (;;) {
    Line line = LineAt(buffer, at);
    if (line.next == std::string_view::npos) {
      if (buffer.size() > max_head) return Rejected(431, "request header fields too large");
      return {};
    }
    if (line.next > max_head) return Rejected(431, "request header fields too large");
    at = line.next;
    if (line.text.empty()) break;  // end of the head

    size_t colon = line.text.find(':');
    if (colon == 0 || colon == std::string_view::npos) {
      return Rejected(400, "malformed header line");
    }
    std::string_view name = line.text.substr(0, colon);
    for (char c : name) {
      // Also refuses folded lines (leading space) and spaces before the colon.
      if (!IsTokenChar(c)) return Rejected(400, "malformed header name");
    }
    std::string_view value = TrimSpaces(line.text.substr(colon + 1));
    for (char c : value) {
      // Control characters other than tab; bytes from 0x80 are allowed (obs-text).
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        return Rejected(400, "control character in a header value");
      }
    }

    if (EqualsIgnoringCase(name, "Content-Length")) {
      uint64_t length = 0;
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (seen_length || value.empty() || error != std::errc() ||
          end != value.data() + value.size()) {
        return Rejected(400, "malformed Content-Length");
      }
      seen_length = true;
      parse.head.has_body = parse.head.has_body || length > 0;
    } else if (EqualsIgnoringCase(name, "Transfer-Encoding")) {
      parse.head.has_body = true;
    } else if (EqualsIgnoringCase(name, "Connection")) {
      // A comma-separated list of options.
      while (!value.empty()) {
        size_t comma = value.find(',');
        std::string_view option = TrimSpaces(value.substr(0, comma));
        if (EqualsIgnoringCase(option, "close")) connection_keep_alive = false;
        if (EqualsIgnoringCase(option, "keep-alive") && connection_keep_alive != false) {
          connection_keep_alive = true;
        }
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
      }
    }
  }
  parse.state = HeadParse::State::kComplete;
  parse.consumed = at;
  parse.head.keep_alive = connection_keep_alive.value_or(!http10);
  return parse;
}

std::string_view StatusReason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string MakeResponse(int status, std::string_view content_type, std::string_view body,
                         bool keep_alive, bool head_only, std::string_view extra_headers) {
  std::string response = "HTTP/1.1 " + std::to_string(status) + " ";
  response.append(StatusReason(status));
  response.append("\r\nContent-Type: ").append(content_type);
  response.append("\r\nContent-Length: ").append(std::to_string(body.size()));
  response.append("\r\nCache-Control: no-store");
  response.append(keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
  response.append(extra_headers);
  response.append("\r\n");
  if (!head_only) response.append(body);
  return response;
}

}  // namespace media_sync::metrics
