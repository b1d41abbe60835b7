#pragma once

// Dashboard sessions and single-use sign-in codes, kept in memory only: a restart signs every
// browser out. Pure (no sockets, no threads of its own); time comes from the injected Clock.
//
// A session is a random id (256 bits, from the kernel's CSPRNG like the API tokens) that the
// browser holds in an HttpOnly cookie, bound to the principal (name, role) of the token it was
// made from, with a CSRF token that state-changing requests must echo. Only SHA-256 hashes of
// session ids and sign-in codes are kept. Both tables are bounded: the oldest entry gives way.

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"
#include "server/http/router.h"

namespace medic::server {

struct SessionOptions {
  Millis lifetime = std::chrono::hours(12);
  size_t max_sessions = 1000;
  Millis code_lifetime = std::chrono::minutes(5);
  size_t max_codes = 100;
};

// What a new session hands to the browser, once.
struct NewSession {
  std::string id;    // the cookie's value
  std::string csrf;  // for the X-CSRF-Token header
  WallTime expires_at;
};

struct SessionInfo {
  Principal principal;
  std::string csrf;
  WallTime expires_at;
};

struct SignInCode {
  std::string code;
  WallTime expires_at;
};

// Thread-safe.
// True when `csrf` is the session's CSRF token (not empty; constant-time compare).
bool CsrfMatches(const SessionInfo& session, std::string_view csrf);

class SessionRegistry {
 public:
  SessionRegistry(const Clock& clock, SessionOptions options);

  // REQUIRES: principal.role is viewer, operator or admin (the caller checks; this aborts).
  NewSession Create(const Principal& principal);
  // The live session with this id; Unauthenticated when unknown or expired.
  Result<SessionInfo> Find(std::string_view id) const;
  // Forgets one session; false when there was none.
  bool Remove(std::string_view id);
  // Forgets every session and sign-in code of that principal name (its token was revoked);
  // returns how many sessions.
  int RemoveByName(const std::string& name);

  // A code valid once, for options.code_lifetime, that Redeem turns into `principal`.
  // Same REQUIRES as Create.
  SignInCode CreateCode(const Principal& principal);
  // The code's principal, once; Unauthenticated when unknown, used or expired.
  Result<Principal> Redeem(std::string_view code);

  size_t session_count() const;
  const SessionOptions& options() const { return options_; }

 private:
  struct Session {
    Principal principal;
    std::string csrf;
    WallTime expires_at;
    uint64_t seq;  // creation order, for eviction
  };
  struct Code {
    Principal principal;
    WallTime expires_at;
    uint64_t seq;
  };
  void PurgeLocked(WallTime now);

  const Clock& clock_;
  const SessionOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, Session> sessions_;  // by SHA-256 of the id. Guarded by mu_.
  std::map<std::string, Code> codes_;        // by SHA-256 of the code. Guarded by mu_.
  uint64_t next_seq_ = 0;                    // Guarded by mu_.
};

// Compares two secrets in time that depends only on their lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace medic::server
