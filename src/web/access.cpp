#include "web/access.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>
#include <utility>
#include <vector>

#include "core/hash.h"
#include "web/http_message.h"

namespace media_sync::web {

std::string_view ToString(Role role) {
  switch (role) {
    case Role::kRead:
      return "read";
    case Role::kWrite:
      return "write";
    case Role::kNone:
      break;
  }
  return "none";
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Digests of equal length, compared without an early exit.
  const std::string da = Sha256Raw(a);
  const std::string db = Sha256Raw(b);
  return CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
}

std::string RandomHex(size_t bytes) {
  std::vector<unsigned char> random(bytes);
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
    // Without randomness no session is safe: better to stop than to guess.
    std::abort();
  }
  return ToHex(std::string_view(reinterpret_cast<const char*>(random.data()), random.size()));
}

AccessControl::AccessControl(AccessSettings settings) : settings_(std::move(settings)) {}

Role AccessControl::RoleOf(std::string_view token) const {
  // Both compared whatever the first gave, so the time says nothing either.
  bool write = !settings_.write_token.empty() && ConstantTimeEquals(token, settings_.write_token);
  bool read = !settings_.read_token.empty() && ConstantTimeEquals(token, settings_.read_token);
  if (write) return Role::kWrite;
  if (read) return Role::kRead;
  return Role::kNone;
}

Caller AccessControl::Identify(const std::string* authorization,
                               const std::string* cookie_header) const {
  Caller caller;
  constexpr std::string_view kScheme = "bearer ";
  // Only a Bearer token is ours: a proxy's own authentication (Basic, say)
  // may pass its Authorization header through, and says nothing here.
  if (authorization != nullptr && authorization->size() >= kScheme.size() &&
      std::equal(kScheme.begin(), kScheme.end(), authorization->begin(),
                 [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); })) {
    caller.via = Caller::Via::kBearer;
    caller.role = RoleOf(std::string_view(*authorization).substr(kScheme.size()));
    caller.bad_credentials = caller.role == Role::kNone;
    return caller;
  }
  if (cookie_header == nullptr) return caller;
  auto id = CookieValue(*cookie_header, kCookieName);
  if (!id) return caller;
  caller.via = Caller::Via::kCookie;
  MutexLock lock(mu_);
  auto it = sessions_.find(Sha256Hex(*id));
  if (it == sessions_.end() || it->second.expires <= std::chrono::steady_clock::now()) {
    caller.bad_credentials = true;
    return caller;
  }
  caller.role = it->second.role;
  caller.session_id = *id;
  caller.csrf_token = it->second.csrf_token;
  return caller;
}

std::string AccessControl::OpenSession(Role role) {
  std::string id = RandomHex(32);
  auto now = std::chrono::steady_clock::now();
  MutexLock lock(mu_);
  std::erase_if(sessions_, [now](const auto& entry) { return entry.second.expires <= now; });
  while (!sessions_.empty() && sessions_.size() >= settings_.max_sessions) {
    auto oldest = std::min_element(
        sessions_.begin(), sessions_.end(),
        [](const auto& a, const auto& b) { return a.second.expires < b.second.expires; });
    sessions_.erase(oldest);
  }
  sessions_[Sha256Hex(id)] = Session{role, RandomHex(32), now + settings_.session_lifetime};
  return id;
}

void AccessControl::CloseSession(const std::string& id) {
  MutexLock lock(mu_);
  sessions_.erase(Sha256Hex(id));
}

bool AccessControl::CsrfMatches(const Caller& caller, const std::string* csrf) {
  return caller.via == Caller::Via::kCookie && !caller.csrf_token.empty() && csrf != nullptr &&
         ConstantTimeEquals(*csrf, caller.csrf_token);
}

}  // namespace media_sync::web
