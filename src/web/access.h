// Who may read and who may change things in the web console.
//
// Two tokens come from the configuration: WEB_READ_TOKEN (when set, reading
// needs it or WEB_TOKEN) and WEB_TOKEN (without it nothing may be changed).
// A request proves one with `Authorization: Bearer <token>`, or with the
// session cookie a login form set. Tokens are compared in constant time
// (their SHA-256 digests, with CRYPTO_memcmp: neither content nor length
// leaks). Sessions live in this process's memory: random ids, a lifetime,
// a bounded number (the oldest goes first), and a CSRF token each, which a
// change made with the cookie must send back in X-CSRF-Token.
//
// Thread-safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "util/mutex.h"

namespace media_sync::web {

enum class Role { kNone, kRead, kWrite };

std::string_view ToString(Role role);  // "none", "read", "write"

struct AccessSettings {
  std::string read_token;   // WEB_READ_TOKEN; empty: reading needs no token
  std::string write_token;  // WEB_TOKEN; empty: no change is allowed
  std::chrono::seconds session_lifetime{12 * 3600};
  size_t max_sessions = 1024;
};

// How a request identified itself.
struct Caller {
  Role role = Role::kNone;  // what its credentials grant (kNone without any)
  enum class Via { kNothing, kBearer, kCookie } via = Via::kNothing;
  bool bad_credentials = false;  // it sent a token or a session that is not valid
  std::string session_id;        // kCookie
  std::string csrf_token;        // kCookie: what a change must send back
};

class AccessControl {
 public:
  explicit AccessControl(AccessSettings settings);

  bool ReadNeedsToken() const { return !settings_.read_token.empty(); }
  bool ChangesEnabled() const { return !settings_.write_token.empty(); }

  // From the Authorization header when it carries a Bearer token, else the
  // session cookie (another scheme, a proxy's Basic say, is not looked at).
  Caller Identify(const std::string* authorization, const std::string* cookie_header) const;

  // What a token grants: kWrite for WEB_TOKEN, kRead for WEB_READ_TOKEN.
  Role RoleOf(std::string_view token) const;

  // A new session for `role`; returns its id (the cookie's value).
  std::string OpenSession(Role role);
  void CloseSession(const std::string& id);

  // Whether `csrf` is the token of the caller's session.
  static bool CsrfMatches(const Caller& caller, const std::string* csrf);

  static constexpr std::string_view kCookieName = "media_sync_session";

 private:
  struct Session {
    Role role = Role::kNone;
    std::string csrf_token;
    std::chrono::steady_clock::time_point expires;
  };

  const AccessSettings settings_;
  mutable Mutex mu_;
  // By the SHA-256 of the id: a lookup's timing says nothing of live ids.
  std::map<std::string, Session> sessions_ GUARDED_BY(mu_);
};

// a == b without a timing difference that depends on where they differ, or
// on their lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `bytes` random bytes from OpenSSL's CSPRNG, as hex.
std::string RandomHex(size_t bytes);

}  // namespace media_sync::web
