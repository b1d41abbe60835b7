#include "server/http/sessions.h"

#include <algorithm>
#include <cstdlib>

#include "core/files.h"
#include "core/sha256.h"

namespace medic::server {

namespace {

bool MaySignIn(Role role) {
  return role == Role::kViewer || role == Role::kOperator || role == Role::kAdmin;
}

// Erases the entry with the smallest seq.
template <typename Map>
void EraseOldest(Map& map) {
  auto oldest = std::min_element(map.begin(), map.end(), [](const auto& a, const auto& b) {
    return a.second.seq < b.second.seq;
  });
  if (oldest != map.end()) {
    map.erase(oldest);
  }
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

SessionRegistry::SessionRegistry(const Clock& clock, SessionOptions options)
    : clock_(clock), options_(options) {
  if (options_.max_sessions == 0 || options_.max_codes == 0 || options_.lifetime <= Millis(0) ||
      options_.code_lifetime <= Millis(0)) {
    std::abort();  // the config loader rejects these
  }
}

void SessionRegistry::PurgeLocked(WallTime now) {
  std::erase_if(sessions_, [now](const auto& s) { return s.second.expires_at <= now; });
  std::erase_if(codes_, [now](const auto& c) { return c.second.expires_at <= now; });
}

NewSession SessionRegistry::Create(const Principal& principal) {
  if (!MaySignIn(principal.role)) {
    std::abort();
  }
  NewSession out{RandomHex(32), RandomHex(16), {}};
  const WallTime now = clock_.Now();
  out.expires_at = now + options_.lifetime;
  std::lock_guard<std::mutex> lock(mu_);
  PurgeLocked(now);
  while (sessions_.size() >= options_.max_sessions) {
    EraseOldest(sessions_);
  }
  sessions_[Sha256Hex(out.id)] = Session{principal, out.csrf, out.expires_at, next_seq_++};
  return out;
}

Result<SessionInfo> SessionRegistry::Find(std::string_view id) const {
  if (id.empty()) {
    return Unauthenticated("no session");
  }
  const std::string hash = Sha256Hex(id);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(hash);
  if (it == sessions_.end() || it->second.expires_at <= clock_.Now()) {
    return Unauthenticated("session expired or unknown; sign in again");
  }
  return SessionInfo{it->second.principal, it->second.csrf, it->second.expires_at};
}

bool CsrfMatches(const SessionInfo& session, std::string_view csrf) {
  return !csrf.empty() && ConstantTimeEquals(session.csrf, csrf);
}

bool SessionRegistry::Remove(std::string_view id) {
  const std::string hash = Sha256Hex(id);
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.erase(hash) > 0;
}

int SessionRegistry::RemoveByName(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(codes_, [&](const auto& c) { return c.second.principal.name == name; });
  return static_cast<int>(
      std::erase_if(sessions_, [&](const auto& s) { return s.second.principal.name == name; }));
}

SignInCode SessionRegistry::CreateCode(const Principal& principal) {
  if (!MaySignIn(principal.role)) {
    std::abort();
  }
  SignInCode out{RandomHex(16), {}};
  const WallTime now = clock_.Now();
  out.expires_at = now + options_.code_lifetime;
  std::lock_guard<std::mutex> lock(mu_);
  PurgeLocked(now);
  while (codes_.size() >= options_.max_codes) {
    EraseOldest(codes_);
  }
  codes_[Sha256Hex(out.code)] = Code{principal, out.expires_at, next_seq_++};
  return out;
}

Result<Principal> SessionRegistry::Redeem(std::string_view code) {
  if (code.empty()) {
    return Unauthenticated("no sign-in code");
  }
  const std::string hash = Sha256Hex(code);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = codes_.find(hash);
  if (it == codes_.end()) {
    return Unauthenticated("sign-in code unknown or already used");
  }
  const Code found = it->second;
  codes_.erase(it);  // single use, even when expired
  if (found.expires_at <= clock_.Now()) {
    return Unauthenticated("sign-in code expired");
  }
  return found.principal;
}

size_t SessionRegistry::session_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

}  // namespace medic::server
