#include "web/http_message.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace media_sync::web {
namespace {

using ::testing::HasSubstr;

TEST(HttpMessageTest, ARequestIsMadeFromItsParsedHead) {
  auto parse = metrics::ParseRequestHead(
      "POST /api/failed/requeue?grep=a+b HTTP/1.1\r\nHost: c\r\nX-CSRF-Token: t\r\n"
      "Connection: close\r\nContent-Length: 2\r\n\r\n{}",
      8192);
  ASSERT_EQ(parse.state, metrics::HeadParse::State::kComplete) << parse.reason;
  HttpRequest request = HttpRequest::FromHead(std::move(parse.head));
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/api/failed/requeue");
  EXPECT_EQ(request.query, "grep=a+b");
  ASSERT_NE(request.Header("x-csrf-token"), nullptr);
  EXPECT_EQ(*request.Header("x-csrf-token"), "t");
  EXPECT_EQ(request.Header("cookie"), nullptr);
  EXPECT_FALSE(request.KeepAlive());
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
