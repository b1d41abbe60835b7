// SessionRegistry (sessions, CSRF, sign-in codes) on a ManualClock, and the cookie parser.

#include "server/http/sessions.h"

#include <gtest/gtest.h>

#include <set>

#include "server/http/http_types.h"

namespace medic::server {
namespace {

// What the Router checks: the live session `id`, and `csrf` as its CSRF token.
bool CsrfOf(const SessionRegistry& sessions, std::string_view id, std::string_view csrf) {
  auto session = sessions.Find(id);
  return session.has_value() && CsrfMatches(*session, csrf);
}

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

const Principal kAlice{"alice", Role::kOperator};
const Principal kBob{"bob", Role::kViewer};

TEST(SessionRegistryTest, CreateAndFind) {
  ManualClock clock;
  SessionRegistry sessions(clock, {});
  const NewSession s = sessions.Create(kAlice);
  EXPECT_GE(s.id.size(), 32u);  // >= 128 bits of hex
  EXPECT_GE(s.csrf.size(), 32u);
  EXPECT_NE(s.id, s.csrf);
  EXPECT_EQ(s.expires_at, clock.Now() + hours(12));
  auto found = sessions.Find(s.id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->principal.name, "alice");
  EXPECT_EQ(found->principal.role, Role::kOperator);
  EXPECT_EQ(found->csrf, s.csrf);
  EXPECT_NE(sessions.Create(kAlice).id, s.id);
  for (const std::string& bad :
       std::vector<std::string>{"", "x", s.csrf, s.id + "0", s.id.substr(1)}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(sessions.Find(bad).error().code, ErrorCode::kUnauthenticated);
  }
}

TEST(SessionRegistryTest, ExpiresAfterItsLifetime) {
  ManualClock clock;
  SessionRegistry sessions(clock, {.lifetime = minutes(30)});
  const NewSession s = sessions.Create(kAlice);
  clock.Advance(minutes(30) - seconds(1));
  EXPECT_TRUE(sessions.Find(s.id).has_value());
  EXPECT_TRUE(CsrfOf(sessions, s.id, s.csrf));
  clock.Advance(seconds(1));
  EXPECT_EQ(sessions.Find(s.id).error().code, ErrorCode::kUnauthenticated);
  EXPECT_FALSE(CsrfOf(sessions, s.id, s.csrf));
  sessions.Create(kBob);  // purges the expired one
  EXPECT_EQ(sessions.session_count(), 1u);
}

TEST(SessionRegistryTest, OldestIsEvictedWhenFull) {
  ManualClock clock;
  SessionRegistry sessions(clock, {.max_sessions = 3});
  std::vector<NewSession> made;
  for (int i = 0; i < 5; ++i) {
    made.push_back(sessions.Create(kAlice));
    clock.Advance(seconds(1));
  }
  EXPECT_EQ(sessions.session_count(), 3u);
  EXPECT_FALSE(sessions.Find(made[0].id).has_value());
  EXPECT_FALSE(sessions.Find(made[1].id).has_value());
  for (int i = 2; i < 5; ++i) {
    EXPECT_TRUE(sessions.Find(made[i].id).has_value()) << i;
  }
}

TEST(SessionRegistryTest, RemoveAndRemoveByName) {
  ManualClock clock;
  SessionRegistry sessions(clock, {});
  const NewSession a1 = sessions.Create(kAlice);
  const NewSession a2 = sessions.Create(kAlice);
  const NewSession b = sessions.Create(kBob);
  const SignInCode code = sessions.CreateCode(kAlice);
  EXPECT_EQ(sessions.RemoveByName("alice"), 2);
  EXPECT_FALSE(sessions.Find(a1.id).has_value());
  EXPECT_FALSE(sessions.Find(a2.id).has_value());
  EXPECT_FALSE(sessions.Redeem(code.code).has_value());  // its codes go too
  EXPECT_TRUE(sessions.Find(b.id).has_value());
  EXPECT_TRUE(sessions.Remove(b.id));
  EXPECT_FALSE(sessions.Remove(b.id));
  EXPECT_FALSE(sessions.Find(b.id).has_value());
}

TEST(SessionRegistryTest, CsrfCompare) {
  ManualClock clock;
  SessionRegistry sessions(clock, {});
  const NewSession s = sessions.Create(kAlice);
  const NewSession other = sessions.Create(kBob);
  struct Case {
    std::string id, csrf;
    bool want;
  };
  const std::vector<Case> cases = {
      {s.id, s.csrf, true},
      {s.id, "", false},
      {s.id, other.csrf, false},
      {s.id, s.csrf.substr(1), false},
      {s.id, s.csrf + "x", false},
      {"", s.csrf, false},
      {other.id, s.csrf, false},
      {s.csrf, s.id, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.id + " / " + c.csrf);
    EXPECT_EQ(CsrfOf(sessions, c.id, c.csrf), c.want);
  }
}

TEST(SessionRegistryTest, CodesAreSingleUseAndExpire) {
  ManualClock clock;
  SessionRegistry sessions(clock, {});
  const SignInCode code = sessions.CreateCode(kAlice);
  EXPECT_GE(code.code.size(), 32u);
  EXPECT_EQ(code.expires_at, clock.Now() + minutes(5));
  auto p = sessions.Redeem(code.code);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->name, "alice");
  EXPECT_EQ(p->role, Role::kOperator);
  EXPECT_EQ(sessions.Redeem(code.code).error().code, ErrorCode::kUnauthenticated);

  const SignInCode late = sessions.CreateCode(kBob);
  clock.Advance(minutes(5));
  EXPECT_EQ(sessions.Redeem(late.code).error().code, ErrorCode::kUnauthenticated);
  EXPECT_FALSE(sessions.Redeem("").has_value());
  EXPECT_FALSE(sessions.Redeem("0123").has_value());
}

TEST(SessionRegistryTest, CodesAreBounded) {
  ManualClock clock;
  SessionRegistry sessions(clock, {.max_codes = 2});
  const SignInCode first = sessions.CreateCode(kAlice);
  const SignInCode second = sessions.CreateCode(kAlice);
  const SignInCode third = sessions.CreateCode(kAlice);
  EXPECT_FALSE(sessions.Redeem(first.code).has_value());
  EXPECT_TRUE(sessions.Redeem(second.code).has_value());
  EXPECT_TRUE(sessions.Redeem(third.code).has_value());
}

TEST(SessionRegistryDeathTest, AgentMayNotHaveASession) {
  ManualClock clock;
  SessionRegistry sessions(clock, {});
  EXPECT_DEATH(sessions.Create(Principal{"agent", Role::kAgent}), "");
}

TEST(FindCookieTest, Table) {
  struct Case {
    std::string header, want;
  };
  const std::vector<Case> cases = {
      {"", ""},
      {"medic_session=abc", "abc"},
      {"a=1; medic_session=abc; b=2", "abc"},
      {"a=1;medic_session=abc", "abc"},
      {"  medic_session = abc  ", "abc"},
      {"\tmedic_session=\"abc\"", "abc"},
      {"medic_session=\"", "\""},
      {"medic_session=", ""},
      {"medic_session", ""},
      {"xmedic_session=abc", ""},
      {"medic_sessionx=abc", ""},
      {"medic_session=first; medic_session=second", "first"},
      {";;;=;=x;medic_session=v;", "v"},
      {"a=b=c; medic_session=x=y", "x=y"},
      {std::string(20000, ';'), ""},
      {std::string(20000, '='), ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.header.substr(0, 60));
    EXPECT_EQ(FindCookie(c.header, "medic_session"), c.want);
  }
}

TEST(SecurityHeadersTest, EveryOneIsThere) {
  std::map<std::string, std::string> got(SecurityHeaders().begin(), SecurityHeaders().end());
  EXPECT_EQ(got["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(got["X-Frame-Options"], "DENY");
  EXPECT_EQ(got["Content-Security-Policy"], "default-src 'self'; frame-ancestors 'none'");
  EXPECT_EQ(got["Referrer-Policy"], "no-referrer");
  EXPECT_EQ(got["Cache-Control"], "no-store");
}

}  // namespace
}  // namespace medic::server
