#include "metrics/http_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace media_sync::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using State = HeadParse::State;

constexpr size_t kMax = 8 * 1024;

TEST(HttpRequestTest, ReadsAPrometheusScrape) {
  std::string request =
      "GET /metrics HTTP/1.1\r\nHost: w1:9108\r\nUser-Agent: Prometheus/2.53.0\r\n"
      "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\nAccept-Encoding: gzip\r\n"
      "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
  HeadParse parse = ParseRequestHead(request + "GET /healthz", kMax);
  ASSERT_EQ(parse.state, State::kComplete) << parse.reason;
  EXPECT_EQ(parse.head.method, "GET");
  EXPECT_EQ(parse.head.path, "/metrics");
  EXPECT_TRUE(parse.head.keep_alive);
  EXPECT_FALSE(parse.head.has_body);
  EXPECT_EQ(parse.consumed, request.size());  // the pipelined request after it is left
}

TEST(HttpRequestTest, KeepAliveFollowsTheVersionAndTheConnectionHeader) {
  auto keep_alive = [](const std::string& request) {
    HeadParse parse = ParseRequestHead(request, kMax);
    EXPECT_EQ(parse.state, State::kComplete) << request;
    return parse.head.keep_alive;
  };
  EXPECT_FALSE(keep_alive("GET /healthz HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(keep_alive("GET /healthz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET /healthz HTTP/1.1\r\nconnection: keep-alive, CLOSE\r\n\r\n"));
  EXPECT_TRUE(keep_alive("GET /healthz HTTP/1.1\n\n"));  // bare LF line ends
}

TEST(HttpRequestTest, TheQueryStringIsNotPartOfThePath) {
  HeadParse parse = ParseRequestHead("HEAD /readyz?verbose=1 HTTP/1.1\r\n\r\n", kMax);
  ASSERT_EQ(parse.state, State::kComplete);
  EXPECT_EQ(parse.head.method, "HEAD");
  EXPECT_EQ(parse.head.path, "/readyz");
}

TEST(HttpRequestTest, EmptyLinesBeforeARequestAreSkipped) {
  HeadParse parse = ParseRequestHead("\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n", kMax);
  ASSERT_EQ(parse.state, State::kComplete);
  EXPECT_EQ(parse.head.path, "/healthz");
}

TEST(HttpRequestTest, AnnouncedBodiesAreFlagged) {
  EXPECT_TRUE(ParseRequestHead("POST /metrics HTTP/1.1\r\nContent-Length: 1073741824\r\n\r\n", kMax)
                  .head.has_body);
  EXPECT_TRUE(
      ParseRequestHead("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", kMax).head.has_body);
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", kMax).head.has_body);
}

TEST(HttpRequestTest, AHeadNotYetWholeAsksForMore) {
  for (std::string partial : {"", "G", "GET", "GET /metr", "GET /metrics HTTP/1.1\r",
                              "GET /metrics HTTP/1.1\r\nHost: x\r\n", "GET / HTTP/1.1\r\nHo"}) {
    EXPECT_EQ(ParseRequestHead(partial, kMax).state, State::kIncomplete) << partial;
  }
}

struct Refusal {
  std::string name;
  std::string bytes;
  int status;
};

class HttpRequestRefusalTest : public ::testing::TestWithParam<Refusal> {};

TEST_P(HttpRequestRefusalTest, IsRefusedWithAStatus) {
  HeadParse parse = ParseRequestHead(GetParam().bytes, kMax);
  ASSERT_EQ(parse.state, State::kRejected);
  EXPECT_EQ(parse.status, GetParam().status) << parse.reason;
  EXPECT_FALSE(parse.reason.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, HttpRequestRefusalTest,
    ::testing::Values(
        // Refused from their first bytes, without waiting for a line's end.
        Refusal{"BinaryJunk", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03", 10), 400},
        Refusal{"NulByte", std::string("GET /\0", 6), 400},
        Refusal{"LowerCaseMethod", "get /metrics", 400},
        Refusal{"MethodOfJunk", "{\"json\": true}", 400},
        Refusal{"OverlongMethod", std::string(17, 'G'), 400},
        // Bounded: a request line or head past the limit.
        Refusal{"RequestLineOfOneMebibyte", "GET /" + std::string(1024 * 1024, 'a'), 414},
        Refusal{"RequestLineJustPastTheLimit", "GET /" + std::string(kMax, 'a'), 414},
        Refusal{"HeaderOfOneMebibyte", "GET / HTTP/1.1\r\nX-Big: " + std::string(1024 * 1024, 'a'),
                431},
        Refusal{"WholeHeadPastTheLimit",
                "GET / HTTP/1.1\r\nX-Big: " + std::string(kMax, 'a') + "\r\n\r\n", 431},
        Refusal{"ManySmallHeaders",
                [] {
                  std::string head = "GET / HTTP/1.1\r\n";
                  while (head.size() <= kMax) head += "X-A: b\r\n";
                  return head;
                }(),
                431},
        // Malformed.
        Refusal{"NoVersion", "GET /metrics\r\n\r\n", 400},
        Refusal{"ExtraSpaces", "GET  /metrics HTTP/1.1\r\n\r\n", 400},
        Refusal{"Http2Preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
        Refusal{"HeaderWithoutColon", "GET / HTTP/1.1\r\nHost\r\n\r\n", 400},
        Refusal{"FoldedHeader", "GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n", 400},
        Refusal{"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
        Refusal{"ControlCharacterInValue", std::string("GET / HTTP/1.1\r\nX-A: b\x01\r\n\r\n"),
                400},
        Refusal{"NegativeContentLength", "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        Refusal{"ContentLengthPast64Bits",
                "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
        Refusal{"TwoContentLengths",
                "GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n", 400}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return info.param.name; });

TEST(HttpRequestTest, ResponsesSayTheirLengthAndWhetherTheConnectionStays) {
  std::string response = MakeResponse(503, "application/json", "{\"healthy\":false}\n",
                                      /*keep_alive=*/true, /*head_only=*/false);
  EXPECT_THAT(response, StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_THAT(response, HasSubstr("\r\nContent-Length: 18\r\n"));
  EXPECT_THAT(response, HasSubstr("\r\nConnection: keep-alive\r\n"));
  EXPECT_THAT(response, HasSubstr("\r\n\r\n{\"healthy\":false}\n"));

  std::string head = MakeResponse(405, "text/plain", "no\n", /*keep_alive=*/false,
                                  /*head_only=*/true, "Allow: GET, HEAD\r\n");
  EXPECT_THAT(head, HasSubstr("\r\nContent-Length: 3\r\n"));
  EXPECT_THAT(head, HasSubstr("\r\nConnection: close\r\nAllow: GET, HEAD\r\n\r\n"));
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");  // no body for HEAD
}

}  // namespace
}  // namespace media_sync::metrics
