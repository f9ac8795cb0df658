#include "web/http_message.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace media_sync::web {
namespace {

constexpr std::string_view kCrlf = "\r\n";

bool IsTokenChar(char c) {
  // RFC 9110 tchar.
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), IsTokenChar);
}

std::string LowerAscii(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view TrimOws(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Whether a comma-separated header value lists `token` (any case).
bool ListsToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = TrimOws(value.substr(0, comma));
    if (LowerAscii(item) == token) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Refusal Refuse(int status, std::string reason) { return Refusal{status, std::move(reason)}; }

}  // namespace

const std::string* HttpRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return &value;
  }
  return nullptr;
}

bool HttpRequest::KeepAlive() const {
  const std::string* connection = Header("connection");
  if (minor_version == 0) return connection != nullptr && ListsToken(*connection, "keep-alive");
  return connection == nullptr || !ListsToken(*connection, "close");
}

void HttpResponse::Set(std::string name, std::string value) {
  for (auto& [key, existing] : headers) {
    if (LowerAscii(key) == LowerAscii(name)) {
      existing = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

std::optional<size_t> HeadEnd(std::string_view buffer) {
  size_t at = buffer.find("\r\n\r\n");
  if (at == std::string_view::npos) return std::nullopt;
  return at + 4;
}

std::optional<Refusal> CheckPartialHead(std::string_view buffer, const HeadLimits& limits) {
  size_t line_end = buffer.find(kCrlf);
  if (line_end == std::string_view::npos ? buffer.size() > limits.max_request_line
                                         : line_end > limits.max_request_line) {
    return Refuse(414, "the request line is longer than " +
                           std::to_string(limits.max_request_line) + " bytes");
  }
  if (buffer.size() > limits.max_head) {
    return Refuse(431,
                  "the request head is larger than " + std::to_string(limits.max_head) + " bytes");
  }
  return std::nullopt;
}

std::optional<Refusal> ParseHead(std::string_view head, const HeadLimits& limits,
                                 HttpRequest& request, ParsedHead& parsed) {
  if (auto refusal =
          CheckPartialHead(head.substr(0, head.size() > 4 ? head.size() - 4 : 0), limits)) {
    return refusal;
  }
  size_t line_end = head.find(kCrlf);
  std::string_view line = head.substr(0, line_end);
  // method SP request-target SP HTTP-version
  size_t first_space = line.find(' ');
  size_t last_space = line.rfind(' ');
  if (first_space == std::string_view::npos || first_space == last_space) {
    return Refuse(400, "malformed request line");
  }
  std::string_view method = line.substr(0, first_space);
  std::string_view target = line.substr(first_space + 1, last_space - first_space - 1);
  std::string_view version = line.substr(last_space + 1);
  if (!IsToken(method)) return Refuse(400, "malformed method");
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.') {
    return Refuse(400, "malformed HTTP version");
  }
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
    return Refuse(505, "only HTTP/1.0 and HTTP/1.1 are served");
  }
  if (target.empty() || target.front() != '/') {
    return Refuse(400, "the request target must be a path (origin form)");
  }
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return Refuse(400, "the request target holds a character that must be percent-encoded");
    }
  }
  request.method = std::string(method);
  request.target = std::string(target);
  size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  request.query =
      question == std::string_view::npos ? "" : std::string(target.substr(question + 1));
  request.minor_version = version[7] - '0';

  std::optional<size_t> content_length;
  size_t at = line_end + 2;
  while (at < head.size()) {
    size_t end = head.find(kCrlf, at);
    if (end == std::string_view::npos) end = head.size();
    std::string_view field = head.substr(at, end - at);
    at = end + 2;
    if (field.empty()) break;  // the blank line that ends the head
    if (field.front() == ' ' || field.front() == '\t') {
      return Refuse(400, "obsolete line folding is not accepted");
    }
    size_t colon = field.find(':');
    if (colon == std::string_view::npos || !IsToken(field.substr(0, colon))) {
      return Refuse(400, "malformed header field");
    }
    std::string_view value = TrimOws(field.substr(colon + 1));
    for (char c : value) {
      if (c == '\0' || c == '\r' || c == '\n') return Refuse(400, "malformed header value");
    }
    if (request.headers.size() >= limits.max_headers) {
      return Refuse(431, "more than " + std::to_string(limits.max_headers) + " header fields");
    }
    request.headers.emplace_back(LowerAscii(field.substr(0, colon)), std::string(value));
    const std::string& name = request.headers.back().first;
    if (name == "content-length") {
      size_t length = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (value.empty() || ec != std::errc() || ptr != value.data() + value.size()) {
        return Refuse(ec == std::errc::result_out_of_range ? 413 : 400, "malformed Content-Length");
      }
      if (content_length && *content_length != length) {
        return Refuse(400, "conflicting Content-Length fields");
      }
      content_length = length;
    } else if (name == "transfer-encoding") {
      return Refuse(411, "send the body with a Content-Length, not a transfer coding");
    } else if (name == "expect") {
      if (LowerAscii(value) != "100-continue") return Refuse(417, "unknown expectation");
      parsed.expect_continue = true;
    }
  }
  int hosts = static_cast<int>(std::count_if(request.headers.begin(), request.headers.end(),
                                             [](const auto& h) { return h.first == "host"; }));
  if (hosts > 1 || (hosts == 0 && request.minor_version == 1)) {
    return Refuse(400, "an HTTP/1.1 request needs exactly one Host field");
  }
  parsed.content_length = content_length.value_or(0);
  if (parsed.content_length > limits.max_body) {
    return Refuse(413, "the body is larger than " + std::to_string(limits.max_body) + " bytes");
  }
  return std::nullopt;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string SerializeResponse(const HttpResponse& response, bool keep_alive) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " +
                    std::string(ReasonPhrase(response.status)) + "\r\n";
  auto append_line = [&out](std::string_view name, std::string_view value) {
    out.append(name).append(": ");
    // A value never ends the line early, whatever it holds.
    for (char c : value) out.push_back(c == '\r' || c == '\n' || c == '\0' ? ' ' : c);
    out.append(kCrlf);
  };
  for (const auto& [name, value] : response.headers) append_line(name, value);
  append_line("Content-Length", std::to_string(response.body.size()));
  append_line("Connection", keep_alive ? "keep-alive" : "close");
  out.append(kCrlf);
  if (!response.head_only) out.append(response.body);
  return out;
}

std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int high = HexValue(text[i + 1]);
      int low = HexValue(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      c = static_cast<char>(high * 16 + low);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return std::nullopt;
    out.push_back(c);
  }
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> ParseForm(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> pairs;
  while (!text.empty()) {
    size_t amp = text.find('&');
    std::string_view item = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    auto name = PercentDecode(item.substr(0, eq), true);
    auto value = PercentDecode(eq == std::string_view::npos ? "" : item.substr(eq + 1), true);
    if (!name || !value) return std::nullopt;
    pairs.emplace_back(std::move(*name), std::move(*value));
  }
  return pairs;
}

std::optional<std::string> CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t semicolon = header.find(';');
    std::string_view item = TrimOws(header.substr(0, semicolon));
    header =
        semicolon == std::string_view::npos ? std::string_view() : header.substr(semicolon + 1);
    size_t eq = item.find('=');
    if (eq != std::string_view::npos && item.substr(0, eq) == name) {
      std::string_view value = item.substr(eq + 1);
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      return std::string(value);
    }
  }
  return std::nullopt;
}

}  // namespace media_sync::web
