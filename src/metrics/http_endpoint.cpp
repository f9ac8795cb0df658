#include "metrics/http_endpoint.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <vector>

#include "metrics/http_request.h"
#include "util/fd.h"

namespace media_sync::metrics {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kPrometheusText = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kJson = "application/json";
constexpr std::string_view kPlainText = "text/plain; charset=utf-8";
constexpr std::string_view kAllowHeader = "Allow: GET, HEAD\r\n";

// Bytes taken from a socket per read.
constexpr size_t kReadChunk = size_t{16} * 1024;
// When the process is out of descriptors and no connection may be replaced:
// how long new connections wait in the kernel's queue before the next try.
constexpr std::chrono::milliseconds kAcceptRetry{100};
// The longest one poll() sleeps, so that a clock jump cannot stall deadlines.
constexpr std::chrono::milliseconds kMaxPollWait{1000};

Error BadAddress(const std::string& address, const std::string& why) {
  return Error::Configuration("METRICS_ADDRESS='" + address + "': " + why);
}

// Listens on the first address `host` resolves to that can be bound.
Result<UniqueFd> Listen(const std::string& address, const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string port_text = std::to_string(port);
  if (int resolved = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found);
      resolved != 0) {
    return BadAddress(address, "cannot resolve '" + host + "': " + ::gai_strerror(resolved));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  std::string why = "no address";
  for (const addrinfo* candidate = found; candidate != nullptr; candidate = candidate->ai_next) {
    UniqueFd listener(::socket(candidate->ai_family,
                               candidate->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                               candidate->ai_protocol));
    if (!listener) {
      why = std::strerror(errno);
      continue;
    }
    // A restarted worker binds again at once, past connections in TIME_WAIT.
    int one = 1;
    (void)::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(listener.get(), candidate->ai_addr, candidate->ai_addrlen) != 0 ||
        ::listen(listener.get(), SOMAXCONN) != 0) {
      why = std::strerror(errno);
      continue;
    }
    return listener;
  }
  return BadAddress(address, "cannot listen there: " + why);
}

int BoundPort(int listener) {
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  if (::getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &length) != 0) return -1;
  if (bound.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
}

struct Connection {
  enum class State {
    kReading,     // waiting for (the rest of) a request head
    kWriting,     // sending a response
    kDiscarding,  // response sent, our side shut: dropping what the client still sends
    kClosed,
  };
  UniqueFd fd;
  State state = State::kReading;
  std::string in;   // bytes of the next request head, at most max_request_head + 1
  std::string out;  // the response being sent
  size_t written = 0;
  bool keep_alive = false;  // after `out`: read the next request, or close
  size_t discarded = 0;
  // Last progress (accepted, request read, response sent): the connection
  // that made none for the longest is the one a new connection replaces.
  Clock::time_point progress;
  Clock::time_point deadline;  // of the current state
};

}  // namespace

class HttpEndpoint::Loop {
 public:
  Loop(UniqueFd listener, UniqueFd wake, EndpointHandlers handlers, EndpointLimits limits)
      : listener_(std::move(listener)),
        wake_(std::move(wake)),
        handlers_(std::move(handlers)),
        limits_(limits) {}

  void Run(const std::stop_token& stop);

  // Ends the poll() under way (from another thread).
  void Wake() const {
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof(one));
  }

  int listener() const { return listener_.get(); }

 private:
  using State = Connection::State;

  void Accept(Clock::time_point now);
  // Closes the connection that made no progress for the longest, if that is
  // at least replace_after; false when there is none.
  bool ReplaceOne(Clock::time_point now);
  Clock::time_point NextReplaceable() const;

  void OnReadable(Connection& connection, Clock::time_point now);
  // Serves what the connection's bytes allow without waiting: sends what
  // can be sent, then takes the next request already read.
  void Advance(Connection& connection, Clock::time_point now);
  // Sends what the socket takes; true once the whole response went out.
  bool Flush(Connection& connection);
  void Respond(Connection& connection, const RequestHead& head, Clock::time_point now);
  void Refuse(Connection& connection, int status, std::string_view reason,
              std::string_view extra_headers, Clock::time_point now);
  void StartResponse(Connection& connection, std::string response, bool keep_alive,
                     Clock::time_point now);
  void AfterResponse(Connection& connection, Clock::time_point now);
  static void Close(Connection& connection);

  const std::string& MetricsText();

  UniqueFd listener_;
  UniqueFd wake_;
  const EndpointHandlers handlers_;
  const EndpointLimits limits_;
  std::vector<Connection> connections_;
  Clock::time_point accept_paused_until_{};
  // The /metrics text of this round, rendered for its first scrape.
  std::optional<std::string> metrics_text_;
};

void HttpEndpoint::Loop::Run(const std::stop_token& stop) {
  std::vector<pollfd> polled;
  while (!stop.stop_requested()) {
    Clock::time_point now = Clock::now();
    const bool accepting = now >= accept_paused_until_;
    Clock::time_point wake_at = accepting ? now + kMaxPollWait : accept_paused_until_;
    polled.clear();
    polled.push_back({wake_.get(), POLLIN, 0});
    // A negative descriptor is skipped by poll(): new connections wait.
    polled.push_back({accepting ? listener_.get() : -1, POLLIN, 0});
    for (const Connection& connection : connections_) {
      polled.push_back({connection.fd.get(),
                        static_cast<short>(connection.state == State::kWriting ? POLLOUT : POLLIN),
                        0});
      wake_at = std::min(wake_at, connection.deadline);
    }
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now);
    wait = std::clamp(wait, std::chrono::milliseconds(0), kMaxPollWait);
    int ready = ::poll(polled.data(), polled.size(), static_cast<int>(wait.count()));
    if (ready < 0 && errno != EINTR) {
      // Only EINVAL or ENOMEM: nothing to serve this round; try again later.
      accept_paused_until_ = Clock::now() + kAcceptRetry;
      continue;
    }
    if (polled[0].revents != 0) continue;  // woken: the loop's condition says why

    now = Clock::now();
    metrics_text_.reset();
    for (size_t i = 0; i < connections_.size(); ++i) {
      Connection& connection = connections_[i];
      short events = polled[i + 2].revents;
      if ((events & (POLLERR | POLLNVAL)) != 0) {
        Close(connection);
      } else if (connection.state == State::kWriting && (events & (POLLOUT | POLLHUP)) != 0) {
        Advance(connection, now);
      } else if ((events & (POLLIN | POLLHUP)) != 0) {
        OnReadable(connection, now);
      }
      if (connection.state != State::kClosed && now >= connection.deadline) Close(connection);
    }
    std::erase_if(connections_,
                  [](const Connection& connection) { return connection.state == State::kClosed; });
    if ((polled[1].revents & POLLIN) != 0) Accept(now);
  }
}

void HttpEndpoint::Loop::Accept(Clock::time_point now) {
  for (;;) {
    if (connections_.size() >= limits_.max_connections && !ReplaceOne(now)) {
      accept_paused_until_ = NextReplaceable();
      return;
    }
    int accepted = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (accepted < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: one of ours makes room, else new connections
        // wait a little (the rest of the process needs its descriptors).
        if (ReplaceOne(now)) continue;
        accept_paused_until_ = now + kAcceptRetry;
      }
      return;  // EAGAIN: none left to accept
    }
    Connection connection;
    connection.fd = UniqueFd(accepted);
    connection.progress = now;
    connection.deadline = now + limits_.request_timeout;
    connections_.push_back(std::move(connection));
  }
}

bool HttpEndpoint::Loop::ReplaceOne(Clock::time_point now) {
  auto oldest = std::min_element(
      connections_.begin(), connections_.end(),
      [](const Connection& a, const Connection& b) { return a.progress < b.progress; });
  if (oldest == connections_.end() || now - oldest->progress < limits_.replace_after) return false;
  connections_.erase(oldest);
  return true;
}

Clock::time_point HttpEndpoint::Loop::NextReplaceable() const {
  auto oldest = std::min_element(
      connections_.begin(), connections_.end(),
      [](const Connection& a, const Connection& b) { return a.progress < b.progress; });
  if (oldest == connections_.end()) return Clock::now() + kAcceptRetry;
  return oldest->progress + limits_.replace_after;
}

void HttpEndpoint::Loop::OnReadable(Connection& connection, Clock::time_point now) {
  std::array<char, kReadChunk> chunk{};
  size_t want = chunk.size();
  if (connection.state == State::kReading) {
    // One byte past the limit is enough to know the head is too long.
    want = std::min(want, limits_.max_request_head + 1 - connection.in.size());
  }
  ssize_t got = ::recv(connection.fd.get(), chunk.data(), want, 0);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (got <= 0) {  // the client closed, or the connection failed
    Close(connection);
    return;
  }
  if (connection.state == State::kDiscarding) {
    connection.discarded += static_cast<size_t>(got);
    if (connection.discarded >= limits_.max_discard) Close(connection);
    return;
  }
  connection.in.append(chunk.data(), static_cast<size_t>(got));
  Advance(connection, now);
}

void HttpEndpoint::Loop::Advance(Connection& connection, Clock::time_point now) {
  for (;;) {
    if (connection.state == State::kWriting) {
      if (!Flush(connection)) return;
      AfterResponse(connection, now);
      continue;
    }
    if (connection.state != State::kReading) return;
    HeadParse parse = ParseRequestHead(connection.in, limits_.max_request_head);
    switch (parse.state) {
      case HeadParse::State::kIncomplete:
        return;
      case HeadParse::State::kRejected:
        Refuse(connection, parse.status, parse.reason, {}, now);
        break;
      case HeadParse::State::kComplete:
        connection.in.erase(0, parse.consumed);
        Respond(connection, parse.head, now);
        break;
    }
  }
}

bool HttpEndpoint::Loop::Flush(Connection& connection) {
  while (connection.written < connection.out.size()) {
    ssize_t sent = ::send(connection.fd.get(), connection.out.data() + connection.written,
                          connection.out.size() - connection.written, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    if (sent < 0) {
      Close(connection);
      return false;
    }
    connection.written += static_cast<size_t>(sent);
  }
  return true;
}

void HttpEndpoint::Loop::Respond(Connection& connection, const RequestHead& head,
                                 Clock::time_point now) {
  const bool head_only = head.method == "HEAD";
  if (head.method != "GET" && !head_only) {
    Refuse(connection, 405, "only GET and HEAD are served", kAllowHeader, now);
    return;
  }
  if (head.has_body) {
    // Never read: a body is what a client could make the process hold.
    Refuse(connection, 413, "requests with a body are not served", {}, now);
    return;
  }
  int status = 200;
  std::string_view type = kJson;
  std::string probe_body;
  std::string_view body;
  if (head.path == "/metrics") {
    type = kPrometheusText;
    body = MetricsText();
  } else if (head.path == "/healthz" || head.path == "/readyz") {
    Probe probe = head.path == "/healthz" ? handlers_.health() : handlers_.readiness();
    status = probe.ok ? 200 : 503;
    probe_body = std::move(probe.body);
    body = probe_body;
  } else {
    status = 404;
    type = kPlainText;
    body = "not found: /metrics, /healthz and /readyz are served here\n";
  }
  StartResponse(connection, MakeResponse(status, type, body, head.keep_alive, head_only),
                head.keep_alive, now);
}

void HttpEndpoint::Loop::Refuse(Connection& connection, int status, std::string_view reason,
                                std::string_view extra_headers, Clock::time_point now) {
  std::string body(reason);
  body += '\n';
  StartResponse(connection,
                MakeResponse(status, kPlainText, body, /*keep_alive=*/false, /*head_only=*/false,
                             extra_headers),
                /*keep_alive=*/false, now);
}

void HttpEndpoint::Loop::StartResponse(Connection& connection, std::string response,
                                       bool keep_alive, Clock::time_point now) {
  connection.out = std::move(response);
  connection.written = 0;
  connection.keep_alive = keep_alive;
  connection.state = State::kWriting;
  connection.progress = now;
  connection.deadline = now + limits_.response_timeout;
}

void HttpEndpoint::Loop::AfterResponse(Connection& connection, Clock::time_point now) {
  connection.out = std::string();  // gives the response's memory back
  connection.written = 0;
  connection.progress = now;
  if (connection.keep_alive) {
    connection.state = State::kReading;
    connection.deadline = now + limits_.request_timeout;
    return;
  }
  // Our side is done. Closing with unread bytes would reset the connection
  // and could destroy the response before the client read it, so what the
  // client still sends (a refused body) is dropped for a bounded time first.
  connection.in = std::string();
  (void)::shutdown(connection.fd.get(), SHUT_WR);
  connection.state = State::kDiscarding;
  connection.deadline = now + limits_.discard_timeout;
}

void HttpEndpoint::Loop::Close(Connection& connection) {
  connection.fd.reset();
  connection.state = State::kClosed;
}

const std::string& HttpEndpoint::Loop::MetricsText() {
  if (!metrics_text_) metrics_text_ = handlers_.metrics();
  return *metrics_text_;
}

Result<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(const std::string& address,
                                                          EndpointHandlers handlers,
                                                          EndpointLimits limits) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return BadAddress(address, "expected host:port");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  std::string port_text = address.substr(colon + 1);
  int port = -1;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port < 0 ||
      port > 65535) {
    return BadAddress(address, "port must be a number from 0 to 65535");
  }

  auto listener = Listen(address, host, port);
  if (!listener) return listener.error();
  // Port 0: any free port (tests), reported by port().
  int bound = BoundPort(listener->get());
  if (bound < 0) return BadAddress(address, std::string("getsockname: ") + std::strerror(errno));
  UniqueFd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake) return Error::Outage(std::string("eventfd: ") + std::strerror(errno));
  auto loop =
      std::make_unique<Loop>(std::move(*listener), std::move(wake), std::move(handlers), limits);
  return std::unique_ptr<HttpEndpoint>(new HttpEndpoint(std::move(loop), bound));
}

HttpEndpoint::HttpEndpoint(std::unique_ptr<Loop> loop, int port)
    : loop_(std::move(loop)), port_(port) {
  thread_ = std::jthread([loop = loop_.get()](const std::stop_token& stop) { loop->Run(stop); });
}

HttpEndpoint::~HttpEndpoint() {
  thread_.request_stop();
  loop_->Wake();
  thread_.join();
}

}  // namespace media_sync::metrics
