#include "web/access.h"

#include <gtest/gtest.h>

#include <string>

namespace media_sync::web {
namespace {

const std::string kRead = "read-token-0123456789";
const std::string kWrite = "write-token-0123456789";

TEST(AccessTest, TokensGrantTheirRoleOnly) {
  AccessControl access({kRead, kWrite});
  EXPECT_TRUE(access.ReadNeedsToken());
  EXPECT_TRUE(access.ChangesEnabled());
  EXPECT_EQ(access.RoleOf(kWrite), Role::kWrite);
  EXPECT_EQ(access.RoleOf(kRead), Role::kRead);
  EXPECT_EQ(access.RoleOf(""), Role::kNone);
  EXPECT_EQ(access.RoleOf(kWrite + "x"), Role::kNone);
  EXPECT_EQ(access.RoleOf(kWrite.substr(0, kWrite.size() - 1)), Role::kNone);

  std::string bearer = "Bearer " + kWrite;
  Caller caller = access.Identify(&bearer, nullptr);
  EXPECT_EQ(caller.role, Role::kWrite);
  EXPECT_EQ(caller.via, Caller::Via::kBearer);
  std::string lower = "bearer " + kRead;
  EXPECT_EQ(access.Identify(&lower, nullptr).role, Role::kRead);
  std::string wrong = "Bearer nope";
  caller = access.Identify(&wrong, nullptr);
  EXPECT_EQ(caller.role, Role::kNone);
  EXPECT_TRUE(caller.bad_credentials);
  // A proxy's Basic authentication passed through is not a token of ours:
  // neither granted anything nor refused; a session cookie still counts.
  std::string basic = "Basic dXNlcjpwYXNz";
  Caller proxied = access.Identify(&basic, nullptr);
  EXPECT_EQ(proxied.role, Role::kNone);
  EXPECT_EQ(proxied.via, Caller::Via::kNothing);
  EXPECT_FALSE(proxied.bad_credentials);
  std::string cookie =
      std::string(AccessControl::kCookieName) + "=" + access.OpenSession(Role::kRead);
  EXPECT_EQ(access.Identify(&basic, &cookie).role, Role::kRead);
  EXPECT_EQ(access.Identify(nullptr, nullptr).via, Caller::Via::kNothing);
}

TEST(AccessTest, NoTokenSetGrantsNothing) {
  AccessControl access({"", ""});
  EXPECT_FALSE(access.ReadNeedsToken());
  EXPECT_FALSE(access.ChangesEnabled());
  // An empty token never matches an unset one.
  EXPECT_EQ(access.RoleOf(""), Role::kNone);
  std::string empty_bearer = "Bearer ";
  EXPECT_EQ(access.Identify(&empty_bearer, nullptr).role, Role::kNone);
}

TEST(AccessTest, SessionsCarryTheirRoleAndCsrfToken) {
  AccessControl access({kRead, kWrite});
  std::string id = access.OpenSession(Role::kWrite);
  EXPECT_EQ(id.size(), 64u);
  std::string cookie = "other=1; " + std::string(AccessControl::kCookieName) + "=" + id;
  Caller caller = access.Identify(nullptr, &cookie);
  EXPECT_EQ(caller.via, Caller::Via::kCookie);
  EXPECT_EQ(caller.role, Role::kWrite);
  EXPECT_EQ(caller.csrf_token.size(), 64u);
  EXPECT_NE(caller.csrf_token, id);
  EXPECT_TRUE(AccessControl::CsrfMatches(caller, &caller.csrf_token));
  std::string wrong = caller.csrf_token;
  wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(AccessControl::CsrfMatches(caller, &wrong));
  EXPECT_FALSE(AccessControl::CsrfMatches(caller, nullptr));

  // Another session has another id and CSRF token.
  std::string other = access.OpenSession(Role::kRead);
  std::string other_cookie = std::string(AccessControl::kCookieName) + "=" + other;
  Caller reader = access.Identify(nullptr, &other_cookie);
  EXPECT_EQ(reader.role, Role::kRead);
  EXPECT_NE(reader.csrf_token, caller.csrf_token);
  EXPECT_FALSE(AccessControl::CsrfMatches(reader, &caller.csrf_token));

  access.CloseSession(id);
  Caller closed = access.Identify(nullptr, &cookie);
  EXPECT_EQ(closed.role, Role::kNone);
  EXPECT_TRUE(closed.bad_credentials);
}

TEST(AccessTest, SessionsExpireAndStayBounded) {
  AccessSettings settings{kRead, kWrite};
  settings.session_lifetime = std::chrono::seconds(0);
  AccessControl expiring(settings);
  std::string cookie =
      std::string(AccessControl::kCookieName) + "=" + expiring.OpenSession(Role::kWrite);
  EXPECT_EQ(expiring.Identify(nullptr, &cookie).role, Role::kNone);

  settings.session_lifetime = std::chrono::seconds(3600);
  settings.max_sessions = 2;
  AccessControl bounded(settings);
  std::string first = bounded.OpenSession(Role::kWrite);
  bounded.OpenSession(Role::kWrite);
  bounded.OpenSession(Role::kWrite);  // the oldest goes
  std::string first_cookie = std::string(AccessControl::kCookieName) + "=" + first;
  EXPECT_EQ(bounded.Identify(nullptr, &first_cookie).role, Role::kNone);
}

TEST(AccessTest, ConstantTimeEqualsComparesWholeValues) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_NE(RandomHex(16), RandomHex(16));
  EXPECT_EQ(RandomHex(16).size(), 32u);
}

}  // namespace
}  // namespace media_sync::web
