// The endpoint on a loopback port, against clients on raw sockets: what it
// answers, and that no client can delay another's probe or make it hold more
// than its limits. The limits are small here so that every bound is reached
// in a fraction of a second; tests/integration/metrics_endpoint_test.cpp runs
// the defaults in `media-sync run`.
#include "metrics/http_endpoint.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <optional>
#include <vector>

#include "util/fd.h"

namespace media_sync::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Reply {
  int status = 0;  // 0: no whole response before the deadline
  std::string headers;
  std::string body;
};

// One TCP connection to the endpoint, driven byte by byte.
class RawClient {
 public:
  explicit RawClient(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }

  bool connected() const { return connected_; }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t sent = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(sent));
    }
    return true;
  }

  // Reads one response (head, then Content-Length bytes of body, none after
  // a HEAD request), waiting at most `timeout`.
  Reply Read(std::chrono::milliseconds timeout, bool head_request = false) {
    auto deadline = Clock::now() + timeout;
    size_t end_of_head = std::string::npos;
    while ((end_of_head = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(deadline)) return {};
    }
    Reply reply;
    reply.headers = buffer_.substr(0, end_of_head + 4);
    std::from_chars(reply.headers.data() + 9, reply.headers.data() + 12, reply.status);
    size_t length = 0;
    if (auto at = reply.headers.find("Content-Length: "); at != std::string::npos) {
      std::from_chars(reply.headers.data() + at + 16, reply.headers.data() + reply.headers.size(),
                      length);
    }
    if (head_request) length = 0;
    while (buffer_.size() < end_of_head + 4 + length) {
      if (!Fill(deadline)) return {};
    }
    reply.body = buffer_.substr(end_of_head + 4, length);
    buffer_.erase(0, end_of_head + 4 + length);
    return reply;
  }

  // True when the endpoint closed the connection within `timeout` (what it
  // sent before is dropped).
  bool ClosedWithin(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Fill(deadline)) buffer_.clear();
    return closed_;
  }

 private:
  // Reads what arrives before the deadline; false on timeout or close.
  bool Fill(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd request{fd_.get(), POLLIN, 0};
    if (::poll(&request, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[64 * 1024];
    ssize_t got = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
    if (got <= 0) {
      closed_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<size_t>(got));
    return true;
  }

  UniqueFd fd_;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
};

class HttpEndpointTest : public ::testing::Test {
 protected:
  void Start(EndpointLimits limits) {
    EndpointHandlers handlers;
    handlers.metrics = [this] {
      ++renders_;
      return metrics_text_;
    };
    handlers.health = [this] { return Probe{healthy_.load(), "{\"healthy\":true}\n"}; };
    handlers.readiness = [] { return Probe{false, "{\"ready\":false}\n"}; };
    auto endpoint = HttpEndpoint::Start("127.0.0.1:0", handlers, limits);
    ASSERT_TRUE(endpoint.ok()) << endpoint.error().message;
    endpoint_ = std::move(*endpoint);
  }

  // A probe on a fresh connection, and how long it took.
  std::pair<Reply, Clock::duration> TimedProbe(const std::string& path = "/healthz") {
    auto started = Clock::now();
    RawClient client(endpoint_->port());
    client.Send("GET " + path + " HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
    Reply reply = client.Read(3s);
    return {reply, Clock::now() - started};
  }

  static EndpointLimits SmallLimits() {
    EndpointLimits limits;
    limits.max_connections = 16;
    limits.replace_after = 50ms;
    limits.max_request_head = 1024;
    limits.request_timeout = 400ms;
    limits.response_timeout = 400ms;
    limits.max_discard = 64 * 1024;
    limits.discard_timeout = 200ms;
    return limits;
  }

  std::string metrics_text_ = "# TYPE up gauge\nup 1\n";
  std::atomic<int> renders_ = 0;
  std::atomic<bool> healthy_ = true;
  std::unique_ptr<HttpEndpoint> endpoint_;
};

TEST_F(HttpEndpointTest, ServesMetricsAndProbesOnOneKeptConnection) {
  Start({});
  RawClient client(endpoint_->port());
  ASSERT_TRUE(client.connected());
  client.Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  Reply metrics = client.Read(2s);
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.headers, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_EQ(metrics.body, metrics_text_);

  healthy_ = false;
  client.Send("GET /healthz HTTP/1.1\r\n\r\n");
  Reply health = client.Read(2s);
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.body, "{\"healthy\":true}\n");

  client.Send("HEAD /readyz HTTP/1.1\r\n\r\n");
  Reply ready = client.Read(2s, /*head_request=*/true);
  EXPECT_EQ(ready.status, 503);
  EXPECT_THAT(ready.headers, HasSubstr("Content-Length: 16\r\n"));

  client.Send("GET /nothing-here HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(client.Read(2s).status, 404);
  EXPECT_TRUE(client.ClosedWithin(2s));
}

TEST_F(HttpEndpointTest, PipelinedRequestsAreAnsweredInOrder) {
  Start({});
  RawClient client(endpoint_->port());
  client.Send(
      "GET /healthz HTTP/1.1\r\n\r\nGET /readyz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(client.Read(2s).status, 200);
  EXPECT_EQ(client.Read(2s).status, 503);
  EXPECT_EQ(client.Read(2s).body, metrics_text_);
}

TEST_F(HttpEndpointTest, RefusesWhatItDoesNotServeAndNeverReadsABody) {
  Start(SmallLimits());
  struct Case {
    std::string request;
    int status;
  };
  for (const Case& hostile : std::vector<Case>{
           {"POST /metrics HTTP/1.1\r\nContent-Length: 1073741824\r\n\r\n", 405},
           {"GET /metrics HTTP/1.1\r\nContent-Length: 1073741824\r\n\r\n", 413},
           {"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 413},
           {"GET /" + std::string(2000, 'a'), 414},
           {"GET / HTTP/1.1\r\nX-Big: " + std::string(2000, 'a'), 431},
           {std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11), 400},
       }) {
    RawClient client(endpoint_->port());
    client.Send(hostile.request);
    Reply reply = client.Read(2s);
    EXPECT_EQ(reply.status, hostile.status) << hostile.request.substr(0, 60);
    EXPECT_THAT(reply.headers, HasSubstr("Connection: close"));
    if (hostile.status == 405) {
      EXPECT_THAT(reply.headers, HasSubstr("Allow: GET, HEAD"));
    }
    // The body that follows is dropped up to max_discard, then the
    // connection is closed: sending on finds it gone.
    std::string body(16 * 1024, 'x');
    bool gone = false;
    for (int i = 0; i < 64 && !gone; ++i) gone = !client.Send(body) || client.ClosedWithin(10ms);
    EXPECT_TRUE(gone || client.ClosedWithin(1s)) << hostile.request.substr(0, 60);
  }
  EXPECT_EQ(renders_, 0);
}

TEST_F(HttpEndpointTest, AConnectionThatSendsNoWholeRequestInTimeIsClosed) {
  Start(SmallLimits());
  RawClient silent(endpoint_->port());
  RawClient trickling(endpoint_->port());
  auto started = Clock::now();
  for (char c : std::string("GET /healthz HTTP/1.1\r\nHost: x\r\n")) {
    if (!trickling.Send(std::string(1, c)) || trickling.ClosedWithin(30ms)) break;
  }
  EXPECT_TRUE(silent.ClosedWithin(2s));
  EXPECT_TRUE(trickling.ClosedWithin(2s));
  EXPECT_LT(Clock::now() - started, 1500ms);
}

TEST_F(HttpEndpointTest, AProbeIsAnsweredAtOnceWhileOthersHoldConnections) {
  EndpointLimits limits;  // the defaults: nothing times out during the test
  limits.max_connections = 64;
  metrics_text_ = std::string(4 * 1024 * 1024, '#');  // more than the socket buffers take
  Start(limits);
  std::vector<std::unique_ptr<RawClient>> others;
  for (int i = 0; i < 16; ++i) {  // connected, silent
    others.push_back(std::make_unique<RawClient>(endpoint_->port()));
  }
  for (int i = 0; i < 8; ++i) {  // half a request line
    others.push_back(std::make_unique<RawClient>(endpoint_->port()));
    others.back()->Send("GET /metr");
  }
  for (int i = 0; i < 8; ++i) {  // asks for a large response and never reads it
    others.push_back(std::make_unique<RawClient>(endpoint_->port()));
    others.back()->Send("GET /metrics HTTP/1.1\r\n\r\n");
  }
  for (int i = 0; i < 5; ++i) {
    auto [reply, took] = TimedProbe();
    EXPECT_EQ(reply.status, 200);
    EXPECT_LT(took, 500ms);
  }
}

TEST_F(HttpEndpointTest, ANewConnectionReplacesTheOneIdleForTheLongestAtTheLimit) {
  Start(SmallLimits());
  std::vector<std::unique_ptr<RawClient>> idle;
  for (size_t i = 0; i < SmallLimits().max_connections; ++i) {
    idle.push_back(std::make_unique<RawClient>(endpoint_->port()));
  }
  auto [reply, took] = TimedProbe();
  EXPECT_EQ(reply.status, 200);
  EXPECT_LT(took, 300ms);  // replace_after (50 ms), not request_timeout (400 ms)
  // The first idle connection made room for it.
  EXPECT_TRUE(idle.front()->ClosedWithin(100ms));
}

TEST_F(HttpEndpointTest, AnAddressThatCannotBeUsedNamesTheVariable) {
  auto malformed = HttpEndpoint::Start("9108", {}, {});
  ASSERT_FALSE(malformed.ok());
  EXPECT_THAT(malformed.error().message, StartsWith("METRICS_ADDRESS='9108'"));
  EXPECT_EQ(malformed.error().kind, ErrorKind::kConfiguration);

  Start({});
  auto taken = HttpEndpoint::Start("127.0.0.1:" + std::to_string(endpoint_->port()), {}, {});
  ASSERT_FALSE(taken.ok());
  EXPECT_THAT(taken.error().message, HasSubstr("cannot listen there"));
}

}  // namespace
}  // namespace media_sync::metrics
