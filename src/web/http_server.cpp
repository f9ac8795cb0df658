#include "web/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "util/fd.h"
#include "util/mutex.h"

namespace media_sync::web {
namespace {

using Clock = std::chrono::steady_clock;

// Bytes read per readable event: every connection gets its turn.
constexpr size_t kReadChunk = size_t{16} * 1024;
// Events taken per epoll_wait, connections accepted per wake-up.
constexpr int kEventsPerWait = 64;
constexpr int kAcceptsPerWake = 64;
// How often deadlines are looked at, at the latest.
constexpr std::chrono::milliseconds kTick{100};
// When no connection may be replaced (all are being handled, or the process
// is out of descriptors): how long newcomers wait in the kernel's queue.
constexpr std::chrono::milliseconds kAcceptRetry{100};
// epoll tags of the two descriptors that are not connections (whose tags are
// their ids, counted from 1: never a descriptor number, which can be reused).
constexpr uint64_t kListenTag = UINT64_MAX;
constexpr uint64_t kWakeTag = UINT64_MAX - 1;

Error BadAddress(std::string_view variable, const std::string& address, const std::string& why) {
  return Error::Configuration(std::string(variable) + "='" + address + "': " + why);
}

std::string PeerName(const sockaddr_storage& address) {
  std::array<char, INET6_ADDRSTRLEN> text{};
  int port = 0;
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    inet_ntop(AF_INET, &v4.sin_addr, text.data(), text.size());
    port = ntohs(v4.sin_port);
    return std::string(text.data()) + ":" + std::to_string(port);
  }
  if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    inet_ntop(AF_INET6, &v6.sin6_addr, text.data(), text.size());
    port = ntohs(v6.sin6_port);
    return "[" + std::string(text.data()) + "]:" + std::to_string(port);
  }
  return "unknown";
}

}  // namespace

class HttpServer::Impl {
 public:
  Impl(const HttpServerLimits& limits, HttpHandler& handler) : limits_(limits), handler_(handler) {}

  ~Impl() { Stop(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  Status Bind(const std::string& address, std::string_view variable);
  void Run();  // starts the threads
  void Stop();

  int port() const { return port_; }
  HttpServerStats Stats() const {
    HttpServerStats stats;
    stats.accepted = accepted_.load();
    stats.requests = requests_.load();
    stats.replaced = replaced_.load();
    stats.timed_out = timed_out_.load();
    stats.refused = refused_.load();
    stats.open = open_.load();
    return stats;
  }

 private:
  enum class Phase {
    kReading,     // waiting for (the rest of) a request, head and body
    kHandling,    // a handler thread works on it; the socket is out of epoll
    kWriting,     // sending a response
    kDiscarding,  // answered and half-closed: dropping what the client still sends
  };

  struct Connection {
    uint64_t id = 0;
    UniqueFd fd;
    std::string peer;
    Phase phase = Phase::kReading;
    // Last progress (accepted, request read, response sent): the connection
    // that made none for the longest is the one a newcomer replaces.
    Clock::time_point progress;
    Clock::time_point deadline;  // of the current phase
    std::string in;              // read and not yet consumed
    bool head_parsed = false;
    size_t head_size = 0;
    uint64_t body_size = 0;
    HttpRequest request;
    std::string out;  // the response being sent
    size_t sent = 0;
    bool close_after_write = false;
    size_t discarded = 0;
    bool in_epoll = false;
  };

  struct Task {
    uint64_t connection = 0;
    HttpRequest request;
  };
  struct Done {
    uint64_t connection = 0;
    HttpResponse response;
    bool keep_alive = false;
  };

  void Loop();
  void HandlerLoop(const std::stop_token& stop);

  void AcceptAll(Clock::time_point now);
  // Closes the connection that made no progress for the longest, when that
  // is at least replace_after and no handler works on it; false when none.
  bool ReplaceOne(Clock::time_point now);
  // When ReplaceOne may next succeed.
  Clock::time_point NextReplaceable(Clock::time_point now) const;
  void PauseAccepting(Clock::time_point until);
  void OnReadable(Connection& c, const std::array<char, kReadChunk>& buffer, size_t got);
  void OnWritable(Connection& c);
  // Consumes what `in` holds: parses the head, collects the body, dispatches.
  void Process(Connection& c, bool line_ended);
  void Dispatch(Connection& c);
  void Respond(Connection& c, HttpResponse response, bool keep_alive);
  void Refuse(Connection& c, int status, const std::string& reason);
  void StartReading(Connection& c, Clock::time_point now);
  void StartDiscarding(Connection& c, Clock::time_point now);
  void Close(uint64_t id);
  void TakeCompletions();
  void ExpireDeadlines(Clock::time_point now);
  void Watch(Connection& c, uint32_t events);
  void Unwatch(Connection& c);
  void Wake() const;

  const HttpServerLimits limits_;
  HttpHandler& handler_;
  UniqueFd listen_fd_;
  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;  // eventfd: completions are ready, or stop
  int port_ = 0;

  // Event thread only.
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
  uint64_t next_id_ = 1;
  Clock::time_point last_sweep_;
  // While set, the listening socket is out of epoll: newcomers wait in the
  // kernel's queue until then.
  std::optional<Clock::time_point> accept_paused_until_;

  Mutex mu_;
  std::condition_variable_any task_ready_;
  std::deque<Task> tasks_ GUARDED_BY(mu_);
  std::vector<Done> done_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;

  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> replaced_{0};
  std::atomic<uint64_t> timed_out_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<int> open_{0};

  std::vector<std::jthread> handlers_;
  std::thread event_thread_;  // last: joined before the members it uses go away
};

Status HttpServer::Impl::Bind(const std::string& address, std::string_view variable) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return BadAddress(variable, address, "expected host:port");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string port_text = address.substr(colon + 1);
  int port = -1;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port < 0 ||
      port > 65535) {
    return BadAddress(variable, address, "port must be a number from 0 to 65535");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int resolved =
      getaddrinfo(host.empty() ? nullptr : host.c_str(), port_text.c_str(), &hints, &found);
  if (resolved != 0) {
    return BadAddress(variable, address, std::string("cannot resolve: ") + gai_strerror(resolved));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
  std::string why = "no address to listen on";
  for (addrinfo* at = addresses.get(); at != nullptr; at = at->ai_next) {
    UniqueFd fd(
        socket(at->ai_family, at->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, at->ai_protocol));
    if (!fd) {
      why = std::strerror(errno);
      continue;
    }
    int on = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd.get(), at->ai_addr, at->ai_addrlen) != 0 || listen(fd.get(), SOMAXCONN) != 0) {
      why = std::strerror(errno);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &length);
    port_ = bound.ss_family == AF_INET6
                ? ntohs(reinterpret_cast<const sockaddr_in6&>(bound).sin6_port)
                : ntohs(reinterpret_cast<const sockaddr_in&>(bound).sin_port);
    listen_fd_ = std::move(fd);
    break;
  }
  if (!listen_fd_) {
    return BadAddress(variable, address, "cannot listen there (" + why + ")");
  }
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  wake_fd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!epoll_fd_ || !wake_fd_) {
    return Error::Configuration(std::string("web server: ") + std::strerror(errno));
  }
  for (auto [fd, tag] :
       {std::pair{listen_fd_.get(), kListenTag}, std::pair{wake_fd_.get(), kWakeTag}}) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = tag;
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event);
  }
  return Ok();
}

void HttpServer::Impl::Run() {
  for (int i = 0; i < std::max(1, limits_.handler_threads); ++i) {
    handlers_.emplace_back([this](const std::stop_token& stop) { HandlerLoop(stop); });
  }
  event_thread_ = std::thread([this] { Loop(); });
}

void HttpServer::Impl::Stop() {
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_ = true;
  Wake();
  task_ready_.notify_all();
  if (event_thread_.joinable()) event_thread_.join();
  for (auto& handler : handlers_) handler.request_stop();
  task_ready_.notify_all();
  handlers_.clear();  // joins
  connections_.clear();
}

void HttpServer::Impl::Wake() const {
  uint64_t one = 1;
  // A full counter already wakes the loop: nothing to do about EAGAIN.
  [[maybe_unused]] ssize_t written = write(wake_fd_.get(), &one, sizeof(one));
}

void HttpServer::Impl::HandlerLoop(const std::stop_token& stop) {
  while (true) {
    Task task;
    {
      MutexLock lock(mu_);
      task_ready_.wait(lock, stop, [this] {
        mu_.AssertHeld();
        return !tasks_.empty() || stopping_;
      });
      if (stop.stop_requested() || stopping_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    HttpResponse response = handler_.Handle(task.request);
    bool keep_alive = task.request.KeepAlive();
    {
      MutexLock lock(mu_);
      done_.push_back(Done{task.connection, std::move(response), keep_alive});
    }
    Wake();
  }
}

void HttpServer::Impl::Loop() {
  std::array<epoll_event, kEventsPerWait> events{};
  std::array<char, kReadChunk> buffer{};
  last_sweep_ = Clock::now();
  while (!stop_) {
    int count =
        epoll_wait(epoll_fd_.get(), events.data(), kEventsPerWait, static_cast<int>(kTick.count()));
    Clock::time_point now = Clock::now();
    for (int i = 0; i < count; ++i) {
      uint64_t tag = events[static_cast<size_t>(i)].data.u64;
      uint32_t flags = events[static_cast<size_t>(i)].events;
      if (tag == kListenTag) {
        AcceptAll(now);
        continue;
      }
      if (tag == kWakeTag) {
        uint64_t value = 0;
        [[maybe_unused]] ssize_t got = read(wake_fd_.get(), &value, sizeof(value));
        TakeCompletions();
        continue;
      }
      // A connection closed earlier in this batch has no entry any more.
      auto it = connections_.find(tag);
      if (it == connections_.end()) continue;
      Connection& c = *it->second;
      if ((flags & EPOLLERR) != 0) {
        Close(c.id);
      } else if (c.phase == Phase::kWriting && (flags & (EPOLLOUT | EPOLLHUP)) != 0) {
        OnWritable(c);
      } else if ((flags & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0 &&
                 (c.phase == Phase::kReading || c.phase == Phase::kDiscarding)) {
        // Never more than the request can still need: the head's limit, or
        // the rest of the announced body (pipelined bytes wait in the kernel).
        size_t room = buffer.size();
        if (c.phase == Phase::kReading) {
          size_t needed =
              c.head_parsed ? c.head_size + c.body_size : limits_.connection.max_request_head + 1;
          room = needed > c.in.size() ? std::min(room, needed - c.in.size()) : 0;
        }
        if (room == 0) {
          Process(c, true);
          continue;
        }
        ssize_t got = recv(c.fd.get(), buffer.data(), room, 0);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (got <= 0) {
          Close(c.id);  // the client is gone, or hung up after its answer
          continue;
        }
        OnReadable(c, buffer, static_cast<size_t>(got));
      }
    }
    if (accept_paused_until_ && now >= *accept_paused_until_) {
      accept_paused_until_.reset();
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u64 = kListenTag;
      epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, listen_fd_.get(), &event);
    }
    if (now - last_sweep_ >= kTick) {
      last_sweep_ = now;
      ExpireDeadlines(now);
    }
  }
}

void HttpServer::Impl::Watch(Connection& c, uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = c.id;
  epoll_ctl(epoll_fd_.get(), c.in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd.get(), &event);
  c.in_epoll = true;
}

void HttpServer::Impl::Unwatch(Connection& c) {
  if (!c.in_epoll) return;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
  c.in_epoll = false;
}

void HttpServer::Impl::PauseAccepting(Clock::time_point until) {
  if (!accept_paused_until_) epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listen_fd_.get(), nullptr);
  accept_paused_until_ = until;
}

void HttpServer::Impl::AcceptAll(Clock::time_point now) {
  for (int i = 0; i < kAcceptsPerWake; ++i) {
    if (connections_.size() >= limits_.connection.max_connections && !ReplaceOne(now)) {
      return PauseAccepting(NextReplaceable(now));
    }
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    int fd = accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&address), &length,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: one of ours makes room, else newcomers wait a
        // little (the rest of the process needs its descriptors).
        if (ReplaceOne(now)) continue;
        PauseAccepting(now + kAcceptRetry);
      }
      return;  // EAGAIN: none left to accept
    }
    ++accepted_;
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    auto connection = std::make_unique<Connection>();
    connection->id = next_id_++;
    connection->fd.reset(fd);
    connection->peer = PeerName(address);
    Connection& c = *connection;
    connections_[c.id] = std::move(connection);
    ++open_;
    StartReading(c, now);
  }
}

bool HttpServer::Impl::ReplaceOne(Clock::time_point now) {
  Connection* oldest = nullptr;
  for (auto& [id, connection] : connections_) {
    if (connection->phase == Phase::kHandling) continue;
    if (oldest == nullptr || connection->progress < oldest->progress) oldest = connection.get();
  }
  if (oldest == nullptr || now - oldest->progress < limits_.connection.replace_after) return false;
  ++replaced_;
  Close(oldest->id);
  return true;
}

Clock::time_point HttpServer::Impl::NextReplaceable(Clock::time_point now) const {
  std::optional<Clock::time_point> oldest;
  for (const auto& [id, connection] : connections_) {
    if (connection->phase == Phase::kHandling) continue;
    if (!oldest || connection->progress < *oldest) oldest = connection->progress;
  }
  if (!oldest) return now + kAcceptRetry;  // every one is being handled
  return std::max(now + std::chrono::milliseconds(1), *oldest + limits_.connection.replace_after);
}

void HttpServer::Impl::StartReading(Connection& c, Clock::time_point now) {
  c.phase = Phase::kReading;
  c.progress = now;
  // The whole of the next request (head and body) must arrive by then: this
  // is also how long a kept-alive connection may wait idle.
  c.deadline = now + limits_.connection.request_timeout;
  c.head_parsed = false;
  c.head_size = 0;
  c.body_size = 0;
  c.request = HttpRequest{};
  c.out.clear();
  c.sent = 0;
  Watch(c, EPOLLIN | EPOLLRDHUP);
  // A pipelined request may already be here, whole.
  if (!c.in.empty()) Process(c, true);
}

void HttpServer::Impl::StartDiscarding(Connection& c, Clock::time_point now) {
  // Closing with unread bytes would reset the connection and could destroy
  // the answer before the client read it: what the client still sends (a
  // refused body) is dropped first, a bounded amount for a bounded time.
  shutdown(c.fd.get(), SHUT_WR);
  c.phase = Phase::kDiscarding;
  c.progress = now;
  c.deadline = now + limits_.connection.discard_timeout;
  c.in = std::string();
  c.discarded = 0;
  Watch(c, EPOLLIN | EPOLLRDHUP);
}

void HttpServer::Impl::OnReadable(Connection& c, const std::array<char, kReadChunk>& buffer,
                                  size_t got) {
  if (c.phase == Phase::kDiscarding) {
    c.discarded += got;
    if (c.discarded >= limits_.connection.max_discard) Close(c.id);
    return;
  }
  c.in.append(buffer.data(), got);
  // A head can only end with a line: the parser looks again only when one
  // ended, or the head passed its limit, so a head trickled a byte at a
  // time costs its length once per line, not once per byte.
  bool line_ended = std::find(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(got),
                              '\n') != buffer.begin() + static_cast<std::ptrdiff_t>(got);
  Process(c, line_ended || c.in.size() == got);
}

void HttpServer::Impl::Process(Connection& c, bool line_ended) {
  if (!c.head_parsed) {
    const size_t max_head = limits_.connection.max_request_head;
    if (!line_ended && c.in.size() <= max_head) return;
    metrics::HeadParse parse = metrics::ParseRequestHead(c.in, max_head);
    switch (parse.state) {
      case metrics::HeadParse::State::kIncomplete:
        return;
      case metrics::HeadParse::State::kRejected:
        return Refuse(c, parse.status, parse.reason);
      case metrics::HeadParse::State::kComplete:
        break;
    }
    if (parse.head.transfer_encoding) {
      return Refuse(c, 411, "send the body with a Content-Length, not a transfer coding");
    }
    if (parse.head.content_length > limits_.max_body) {
      return Refuse(c, 413,
                    "the body is larger than " + std::to_string(limits_.max_body) + " bytes");
    }
    c.head_parsed = true;
    c.head_size = parse.consumed;
    c.body_size = parse.head.content_length;
    c.request = HttpRequest::FromHead(std::move(parse.head));
    const std::string* expect = c.request.Header("expect");
    if (expect != nullptr && (*expect == "100-continue" || *expect == "100-Continue") &&
        c.in.size() < c.head_size + c.body_size) {
      // Into an idle socket's buffer: a client that does not wait for it
      // sends its body all the same.
      constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      [[maybe_unused]] ssize_t sent =
          send(c.fd.get(), kContinue.data(), kContinue.size(), MSG_NOSIGNAL);
    }
  }
  if (c.in.size() < c.head_size + c.body_size) return;  // more body to come
  c.request.body = c.in.substr(c.head_size, c.body_size);
  c.in.erase(0, c.head_size + c.body_size);
  Dispatch(c);
}

void HttpServer::Impl::Dispatch(Connection& c) {
  ++requests_;
  c.progress = Clock::now();
  c.request.peer = c.peer;
  if (auto quick = handler_.Quick(c.request)) {
    return Respond(c, std::move(*quick), c.request.KeepAlive());
  }
  {
    MutexLock lock(mu_);
    if (tasks_.size() < limits_.max_waiting) {
      tasks_.push_back(Task{c.id, std::move(c.request)});
      c.phase = Phase::kHandling;
      Unwatch(c);
      task_ready_.notify_one();
      return;
    }
  }
  HttpResponse busy = handler_.Refused(503, "the console is busy: try again in a moment");
  busy.Set("Retry-After", "1");
  ++refused_;
  Respond(c, std::move(busy), c.request.KeepAlive());
}

void HttpServer::Impl::Refuse(Connection& c, int status, const std::string& reason) {
  ++refused_;
  c.request.method.clear();  // the head may not even have parsed: no HEAD special case
  Respond(c, handler_.Refused(status, reason), false);
}

void HttpServer::Impl::Respond(Connection& c, HttpResponse response, bool keep_alive) {
  if (c.request.method == "HEAD") response.head_only = true;
  keep_alive = keep_alive && !stop_;
  c.out = SerializeResponse(response, keep_alive);
  c.sent = 0;
  c.close_after_write = !keep_alive;
  c.phase = Phase::kWriting;
  c.deadline = Clock::now() + limits_.connection.response_timeout;
  const uint64_t id = c.id;
  OnWritable(c);  // may close the connection, or go on to the next request
  auto it = connections_.find(id);
  if (it != connections_.end() && it->second->phase == Phase::kWriting) {
    Watch(*it->second, EPOLLOUT);
  }
}

void HttpServer::Impl::OnWritable(Connection& c) {
  while (c.sent < c.out.size()) {
    ssize_t wrote = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (wrote < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // EPOLLOUT calls again
      if (errno == EINTR) continue;
      return Close(c.id);
    }
    c.sent += static_cast<size_t>(wrote);
  }
  c.out = std::string();  // gives the response's memory back
  const Clock::time_point now = Clock::now();
  if (c.close_after_write) return StartDiscarding(c, now);
  StartReading(c, now);
}

void HttpServer::Impl::Close(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  Unwatch(*it->second);
  connections_.erase(it);  // closes the socket
  --open_;
}

void HttpServer::Impl::TakeCompletions() {
  std::vector<Done> done;
  {
    MutexLock lock(mu_);
    done.swap(done_);
  }
  for (auto& completed : done) {
    auto it = connections_.find(completed.connection);
    if (it == connections_.end()) continue;
    Respond(*it->second, std::move(completed.response), completed.keep_alive);
  }
}

void HttpServer::Impl::ExpireDeadlines(Clock::time_point now) {
  std::vector<uint64_t> expired;
  for (auto& [id, connection] : connections_) {
    if (connection->phase != Phase::kHandling && connection->deadline <= now) {
      expired.push_back(id);
    }
  }
  for (uint64_t id : expired) {
    auto it = connections_.find(id);
    if (it == connections_.end()) continue;
    // A request not whole in time, a response not taken, an idle connection:
    // closed, as the endpoint does (a client this slow reads no answer).
    if (it->second->phase != Phase::kDiscarding) ++timed_out_;
    Close(id);
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { impl_->Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address,
                                                      std::string_view variable,
                                                      const HttpServerLimits& limits,
                                                      HttpHandler& handler) {
  auto impl = std::make_unique<Impl>(limits, handler);
  if (Status bound = impl->Bind(address, variable); !bound) return bound.error();
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port(); }

HttpServerStats HttpServer::Stats() const { return impl_->Stats(); }

}  // namespace media_sync::web
