#include "agent/health_check.h"

#include <gtest/gtest.h>

#include "tests/agent/fakes.h"

namespace medic::agent {
namespace {

using testing::FakeServer;
using testing::JsonResponse;

CheckConfig WebCheck() {
  CheckConfig c;
  c.name = "web";
  c.url = "http://127.0.0.1:1/health";
  c.timeout = Millis(1000);
  return c;
}

TEST(ClassifyHttpCheck, Table) {
  struct Case {
    std::string_view name;
    Result<HttpResponse> response;
    bool healthy;
    std::string detail;
  };
  const Case cases[] = {
      {"200", JsonResponse(200, ""), true, "HTTP 200 in 2 ms"},
      {"302 is in 200-399", JsonResponse(302, ""), true, "HTTP 302 in 2 ms"},
      {"502", JsonResponse(502, ""), false, "HTTP 502 in 2 ms (expected 200-399)"},
      {"refused", Unavailable("GET http://x: Couldn't connect to server"), false,
       "connection refused"},
      {"timeout", DeadlineExceeded("GET http://x: Timeout was reached"), false,
       "timeout after 1000 ms"},
      {"empty reply", Unavailable("GET http://x: Server returned nothing (Empty reply)"), false,
       "connection closed without a response"},
      {"other", Unavailable("GET http://x: Could not resolve host"), false,
       "error: GET http://x: Could not resolve host"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    const CheckOutcome o = ClassifyHttpCheck(c.response, Millis(2), WebCheck());
    EXPECT_EQ(o.healthy, c.healthy);
    EXPECT_EQ(o.detail, c.detail);
  }
}

TEST(CheckStates, TransitionsThenCurrentState) {
  CheckStates states(/*max_pending_transitions=*/3);
  protocol::CheckResult r{"web", true, "HTTP 200 in 1 ms", WallTime{}};
  EXPECT_TRUE(states.Update(r));  // the first result is a change
  r.detail = "HTTP 200 in 2 ms";
  r.t += Millis(1000);
  EXPECT_FALSE(states.Update(r));  // same health, new detail
  r.healthy = false;
  r.detail = "connection refused";
  r.t += Millis(1000);
  EXPECT_TRUE(states.Update(r));

  uint64_t token = 0;
  auto report = states.ForReport(&token);
  ASSERT_EQ(report.size(), 2u);  // both transitions; the second is also the current state
  EXPECT_TRUE(report[0].healthy);
  EXPECT_EQ(report[0].detail, "HTTP 200 in 1 ms");
  EXPECT_FALSE(report[1].healthy);
  EXPECT_EQ(report[1].detail, "connection refused");

  r.detail = "connection refused again";
  r.t += Millis(1000);
  EXPECT_FALSE(states.Update(r));
  report = states.ForReport(&token);
  ASSERT_EQ(report.size(), 3u);  // two transitions + the newer current state
  EXPECT_EQ(report[2].detail, "connection refused again");
  states.MarkSent(token);
  EXPECT_FALSE(states.has_pending());
  EXPECT_EQ(states.ForReport(&token).size(), 1u);

  // Bounded: only the newest transitions are kept while the server is away.
  for (int i = 0; i < 10; ++i) {
    r.healthy = !r.healthy;
    r.t += Millis(1000);
    states.Update(r);
  }
  EXPECT_EQ(states.ForReport(&token).size(), 3u);
}

TEST(HealthChecker, RunsDueChecksAndReportsChanges) {
  ManualClock clock;
  FakeServer server;
  int status = 200;
  server.SetHandler([&](const HttpRequest& req) -> Result<HttpResponse> {
    EXPECT_EQ(req.url, "http://127.0.0.1:1/health");
    EXPECT_EQ(req.timeout, Millis(1000));
    if (status == 0) {
      return Unavailable("Couldn't connect to server");
    }
    return JsonResponse(status, "");
  });
  auto http = server.NewClient();
  CheckStates states;
  int changes = 0;
  CheckConfig c = WebCheck();
  c.interval = Millis(1000);
  HealthChecker checker({c}, states, clock, [&] { ++changes; });

  SteadyTime now = clock.SteadyNow();
  EXPECT_EQ(checker.RunOnce(*http, now), now + Millis(1000));
  EXPECT_EQ(changes, 1);
  EXPECT_EQ(server.requests().size(), 1u);

  // Not due yet: nothing runs.
  checker.RunOnce(*http, now + Millis(500));
  EXPECT_EQ(server.requests().size(), 1u);

  status = 0;
  checker.RunOnce(*http, now + Millis(1000));
  EXPECT_EQ(changes, 2);
  uint64_t token;
  auto report = states.ForReport(&token);
  EXPECT_FALSE(report.back().healthy);
  EXPECT_EQ(report.back().detail, "connection refused");
  EXPECT_EQ(report.back().t, clock.Now());
}

}  // namespace
}  // namespace medic::agent
