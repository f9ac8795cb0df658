#include "web/http_message.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace media_sync::web {
namespace {

using ::testing::HasSubstr;

struct Parsed {
  std::optional<Refusal> refusal;
  HttpRequest request;
  ParsedHead head;
};

Parsed Parse(const std::string& text, HeadLimits limits = {}) {
  Parsed parsed;
  auto end = HeadEnd(text);
  EXPECT_TRUE(end.has_value()) << text;
  parsed.refusal = ParseHead(std::string_view(text).substr(0, end.value_or(0)), limits,
                             parsed.request, parsed.head);
  return parsed;
}

int Status(const std::string& text, HeadLimits limits = {}) {
  auto parsed = Parse(text, limits);
  return parsed.refusal ? parsed.refusal->status : 200;
}

TEST(HttpMessageTest, ParsesARequestHead) {
  auto parsed = Parse(
      "POST /api/failed/requeue?x=1 HTTP/1.1\r\nHost: console\r\nContent-Type: application/json\r\n"
      "Content-Length: 15\r\nX-Empty:\r\n\r\n{\"indexes\":[0]}");
  ASSERT_FALSE(parsed.refusal) << parsed.refusal->reason;
  EXPECT_EQ(parsed.request.method, "POST");
  EXPECT_EQ(parsed.request.path, "/api/failed/requeue");
  EXPECT_EQ(parsed.request.query, "x=1");
  EXPECT_EQ(parsed.head.content_length, 15u);
  ASSERT_NE(parsed.request.Header("content-type"), nullptr);
  EXPECT_EQ(*parsed.request.Header("content-type"), "application/json");
  ASSERT_NE(parsed.request.Header("x-empty"), nullptr);
  EXPECT_EQ(*parsed.request.Header("x-empty"), "");
  EXPECT_TRUE(parsed.request.KeepAlive());
}

TEST(HttpMessageTest, RefusesWhatItDoesNotServe) {
  EXPECT_EQ(Status("GET / HTTP/1.1\r\n\r\n"), 400);  // no Host
  EXPECT_EQ(Status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
  EXPECT_EQ(Status("GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(Status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(Status("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(Status("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), 400);
  EXPECT_EQ(Status("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n"), 400);
  EXPECT_EQ(Status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), 411);
  EXPECT_EQ(Status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400);
  EXPECT_EQ(Status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 400);
  EXPECT_EQ(Status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            413);
  EXPECT_EQ(Status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n"), 413);
  EXPECT_EQ(Status("POST / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n"), 417);
  auto parsed =
      Parse("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  EXPECT_FALSE(parsed.refusal);
  EXPECT_TRUE(parsed.head.expect_continue);
}

TEST(HttpMessageTest, LimitsTheHeadBeforeItEnds) {
  HeadLimits limits;
  limits.max_request_line = 100;
  limits.max_head = 300;
  limits.max_headers = 3;
  // An endless request line is refused once past its limit, without its end.
  auto line = CheckPartialHead("GET /" + std::string(200, 'a'), limits);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->status, 414);
  EXPECT_FALSE(CheckPartialHead("GET /" + std::string(50, 'a'), limits));
  auto head = CheckPartialHead("GET / HTTP/1.1\r\n" + std::string(400, 'x'), limits);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 431);
  EXPECT_EQ(Status("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits), 431);
  EXPECT_EQ(Status("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", limits), 200);
}

TEST(HttpMessageTest, KeepAliveFollowsTheVersionAndConnection) {
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n").request.KeepAlive());
  EXPECT_FALSE(Parse("GET / HTTP/1.0\r\n\r\n").request.KeepAlive());
  EXPECT_TRUE(Parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").request.KeepAlive());
}

TEST(HttpMessageTest, SerializesWithoutLettingAValueEndTheLine) {
  HttpResponse response;
  response.status = 404;
  response.Set("X-Test", "a\r\nSet-Cookie: evil=1");
  response.body = "gone";
  std::string bytes = SerializeResponse(response, false);
  EXPECT_THAT(bytes, HasSubstr("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(bytes, HasSubstr("X-Test: a  Set-Cookie: evil=1\r\n"));
  EXPECT_THAT(bytes, HasSubstr("Content-Length: 4\r\nConnection: close\r\n\r\ngone"));
  response.head_only = true;
  EXPECT_THAT(SerializeResponse(response, true), ::testing::EndsWith("keep-alive\r\n\r\n"));
}

TEST(HttpMessageTest, DecodesFormsAndCookies) {
  auto form = ParseForm("token=a%2Bb+c&next=%2Ffailed%3Fx%3D1&flag");
  ASSERT_TRUE(form);
  ASSERT_EQ(form->size(), 3u);
  EXPECT_EQ((*form)[0], (std::pair<std::string, std::string>{"token", "a+b c"}));
  EXPECT_EQ((*form)[1].second, "/failed?x=1");
  EXPECT_EQ((*form)[2].second, "");
  EXPECT_FALSE(ParseForm("a=%zz"));
  EXPECT_FALSE(ParseForm("a=%0"));
  EXPECT_FALSE(ParseForm("a=%00"));
  EXPECT_EQ(PercentDecode("a+b%20c", false), "a+b c");

  EXPECT_EQ(CookieValue("a=1; media_sync_session=abc; b=2", "media_sync_session"), "abc");
  EXPECT_EQ(CookieValue("media_sync_session=\"q\"", "media_sync_session"), "q");
  EXPECT_FALSE(CookieValue("xmedia_sync_session=abc", "media_sync_session"));
}

}  // namespace
}  // namespace media_sync::web
