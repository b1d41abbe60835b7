#include "server/fleet/target_groups.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "server/alarms/alarms.h"
#include "server/fleet/target_group_config.h"

namespace medic::server {
namespace {

// The server probes only what is on the registering host itself.
TEST(CheckTargetOnHostTest, Table) {
  struct Case {
    const char* url;
    const char* peer;
    bool ok;
  };
  for (const Case& c : std::vector<Case>{
           {"http://127.0.0.1:8080/health", "127.0.0.1", true},
           {"http://127.0.0.2/health", "127.0.0.1", true},  // loopback agent, loopback target
           {"http://localhost:81/", "127.0.0.1", true},
           {"http://[::1]:81/health", "::1", true},
           {"http://127.0.0.1/health", "::ffff:127.0.0.1", true},
           {"https://10.1.2.3:443/health", "10.1.2.3", true},
           {"http://10.1.2.3/health", "10.1.2.4", false},        // another host
           {"http://127.0.0.1:6379/", "10.1.2.3", false},        // the server's own loopback
           {"http://localhost/", "10.1.2.3", false},
           {"http://169.254.169.254/latest/meta-data/", "10.1.2.3", false},  // cloud metadata
           {"http://metadata.internal/", "127.0.0.1", false},   // a name
           {"http://user@127.0.0.1/", "127.0.0.1", false},
           {"http://[::1/health", "::1", false},
           {"127.0.0.1/health", "127.0.0.1", false},
           {"http://127.0.0.1/", "", false},
       }) {
    SCOPED_TRACE(std::string(c.url) + " from " + c.peer);
    Status s = CheckTargetOnHost(c.url, c.peer);
    EXPECT_EQ(s.has_value(), c.ok) << (s ? "" : s.error().ToString());
    if (!s) {
      EXPECT_NE(s.error().message.find(std::string("target ") + c.url + " is refused"),
                std::string::npos);
    }
  }
  EXPECT_EQ(PeerAddress("127.0.0.1:5555"), "127.0.0.1");
  EXPECT_EQ(PeerAddress("::1:5555"), "::1");
}

const WallTime kT0 = FromUnixMillis(1'800'000'000'000);
WallTime At(double s) { return kT0 + Millis(static_cast<int64_t>(s * 1000)); }

std::vector<protocol::RegisterRequest::Target> Web(const std::string& url) {
  return {{"web", url}};
}

TEST(StatusMatchesTest, Table) {
  struct Case {
    std::string matcher;
    int status;
    bool ok;  // the matcher parses
    bool match;
  };
  const std::vector<Case> cases = {
      {"200-399", 200, true, true},   {"200-399", 302, true, true},
      {"200-399", 404, true, false},  {"200", 200, true, true},
      {"200", 201, true, false},      {"200,302", 302, true, true},
      {"200, 204", 204, true, true},  {"500-599,200", 503, true, true},
      {"", 200, false, false},        {"2xx", 200, false, false},
      {"399-200", 300, false, false}, {"200-", 200, false, false},
      {"99", 99, false, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.matcher + " vs " + std::to_string(c.status));
    auto m = StatusMatches(c.matcher, c.status);
    ASSERT_EQ(m.has_value(), c.ok);
    if (c.ok) {
      EXPECT_EQ(*m, c.match);
    }
  }
}

// Drives one member through its probes with explicit time; returns the feeds of each probe.
class TargetGroupsTest : public ::testing::Test {
 protected:
  // Runs the probe due at `t` with `status` (0 = refused). Expects exactly one due probe.
  std::vector<TargetFeed> Probe(double t, int status) {
    auto due = groups_.DueProbes(At(t));
    EXPECT_EQ(due.size(), 1u) << "at " << t;
    if (due.empty()) {
      return {};
    }
    Result<int> r = status == 0 ? Result<int>(Unavailable("connection refused")) : status;
    return groups_.OnProbeResult(due[0], r, At(t));
  }
  static std::string Values(const std::vector<TargetFeed>& feeds) {
    std::string out;
    for (const auto& f : feeds) {
      out += f.host + " " + f.series + "=" + std::to_string(static_cast<int>(f.value)) + ";";
    }
    return out;
  }
  TargetHealth HealthOf(const std::string& host) {
    for (const auto& g : groups_.Snapshot()) {
      for (const auto& m : g.members) {
        if (m.host == host) {
          return m.health;
        }
      }
    }
    ADD_FAILURE() << "no member " << host;
    return TargetHealth::kInitial;
  }

  // `web` and `www` (a second configured group, default settings).
  static std::vector<TargetGroupConfig> WebAndWww() {
    TargetGroupConfig www;
    www.name = "www";
    return {TargetGroupConfig{}, www};
  }

  TargetGroups groups_{WebAndWww()};
};

TEST_F(TargetGroupsTest, ThresholdsDecideHealthyAndUnhealthy) {
  groups_.Register("web-1", Web("http://127.0.0.1:1/"), At(0));
  EXPECT_EQ(HealthOf("web-1"), TargetHealth::kInitial);
  EXPECT_EQ(Values(Probe(0, 200)), "") << "one success of 2: still initial, nothing to feed";
  EXPECT_TRUE(groups_.DueProbes(At(4.9)).empty()) << "interval 5 s";
  EXPECT_EQ(Values(Probe(5, 200)), "web-1 unhealthy:web=0;");
  EXPECT_EQ(HealthOf("web-1"), TargetHealth::kHealthy);
  EXPECT_EQ(Values(Probe(10, 0)), "web-1 unhealthy:web=0;") << "one failure of 2";
  EXPECT_EQ(Values(Probe(15, 503)), "web-1 unhealthy:web=1;");
  EXPECT_EQ(HealthOf("web-1"), TargetHealth::kUnhealthy);
  auto snap = groups_.Snapshot();
  ASSERT_EQ(snap.size(), 2u);  // web, www
  EXPECT_EQ(snap[0].config.name, "web");
  EXPECT_EQ(snap[0].unhealthy_count, 1);
  EXPECT_EQ(snap[0].members[0].detail, "HTTP 503");
  EXPECT_EQ(Values(Probe(20, 200)), "web-1 unhealthy:web=1;") << "one success of 2";
  EXPECT_EQ(Values(Probe(25, 302)), "web-1 unhealthy:web=0;") << "302 is within 200-399";
  EXPECT_EQ(groups_.Snapshot()[0].unhealthy_count, 0);
  EXPECT_EQ(groups_.Snapshot()[0].healthy_count, 1);
}

TEST_F(TargetGroupsTest, AFailingAgentCheckIsUnhealthyAtOnce) {
  groups_.Register("web-1", Web("http://127.0.0.1:1/"), At(0));
  Probe(0, 200);
  Probe(5, 200);
  TargetFeed f = groups_.OnAgentCheck("web-1", "web", false, At(6));
  EXPECT_EQ(f.series, "unhealthy:web");
  EXPECT_EQ(f.value, 1);
  EXPECT_EQ(f.t, At(6));
  EXPECT_EQ(HealthOf("web-1"), TargetHealth::kUnhealthy);
  // The probes still pass: the agent's recovery alone makes it healthy again.
  EXPECT_EQ(groups_.OnAgentCheck("web-1", "web", true, At(7)).value, 0);
  EXPECT_EQ(HealthOf("web-1"), TargetHealth::kHealthy);
}

TEST_F(TargetGroupsTest, AgentRecoveryIsConfirmedByOneImmediateProbe) {
  groups_.Register("web-1", Web("http://127.0.0.1:1/"), At(0));
  Probe(0, 200);
  Probe(5, 200);
  groups_.OnAgentCheck("web-1", "web", false, At(6));
  Probe(10, 0);
  EXPECT_EQ(Values(Probe(15, 0)), "web-1 unhealthy:web=1;");
  // The agent says nginx is back: still unhealthy until a probe agrees, which runs at once.
  EXPECT_EQ(groups_.OnAgentCheck("web-1", "web", true, At(16)).value, 1);
  EXPECT_EQ(Values(Probe(16, 200)), "web-1 unhealthy:web=0;") << "one success confirms";
  EXPECT_EQ(HealthOf("web-1"), TargetHealth::kHealthy);
}

TEST_F(TargetGroupsTest, AgentRecoveryThatTheProbeContradictsStaysUnhealthy) {
  groups_.Register("web-1", Web("http://127.0.0.1:1/"), At(0));
  Probe(0, 0);
  Probe(5, 0);
  groups_.OnAgentCheck("web-1", "web", false, At(6));
  groups_.OnAgentCheck("web-1", "web", true, At(7));
  EXPECT_EQ(Values(Probe(7, 0)), "web-1 unhealthy:web=1;");
  EXPECT_EQ(groups_.OnAgentCheck("web-1", "web", true, At(8)).value, 1);
  EXPECT_TRUE(groups_.DueProbes(At(11.9)).empty()) << "back on the interval";
  Probe(12, 200);
  EXPECT_EQ(Values(Probe(17, 200)), "web-1 unhealthy:web=0;");
}

TEST_F(TargetGroupsTest, ChecksOfHostsOutsideAGroupPassThrough) {
  TargetFeed f = groups_.OnAgentCheck("web-9", "web", false, At(1));
  EXPECT_EQ(f.host, "web-9");
  EXPECT_EQ(f.series, "unhealthy:web");
  EXPECT_EQ(f.value, 1);
  EXPECT_EQ(groups_.OnAgentCheck("web-9", "db", true, At(1)).value, 0);
  EXPECT_EQ(groups_.OnAgentCheck("web-9", "db", true, At(1)).series, "unhealthy:db");
}

TEST_F(TargetGroupsTest, RegisterReplacesMembershipsAndDropsStaleResults) {
  groups_.Register("web-1", Web("http://127.0.0.1:1/"), At(0));
  auto due = groups_.DueProbes(At(0));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_TRUE(groups_.DueProbes(At(0)).empty()) << "one probe in flight per member";
  EXPECT_TRUE(groups_.Register("web-1", {{"www", "http://127.0.0.1:2/health"}}, At(1)).empty());
  EXPECT_TRUE(groups_.OnProbeResult(due[0], 503, At(1)).empty());
  auto snap = groups_.Snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_TRUE(snap[0].members.empty());  // web
  EXPECT_EQ(snap[1].config.name, "www");
  ASSERT_EQ(snap[1].members.size(), 1u);
  // Re-registering the same URL keeps the state.
  Probe(1, 200);
  Probe(6, 200);
  groups_.Register("web-1", {{"www", "http://127.0.0.1:2/health"}}, At(7));
  EXPECT_EQ(HealthOf("web-1"), TargetHealth::kHealthy);
}

// Only the server's config makes groups (issue 12): an agent naming another group creates
// nothing, and the ignored names come back once each for the registration's answer.
TEST_F(TargetGroupsTest, AGroupNotInTheConfigIsIgnoredAndNamed) {
  const auto ignored = groups_.Register("web-1",
                                        {{"api", "http://127.0.0.1:2/"},
                                         {"web", "http://127.0.0.1:1/"},
                                         {"api", "http://127.0.0.1:3/"},
                                         {"zz-9", "http://127.0.0.1:4/"}},
                                        At(0));
  EXPECT_EQ(ignored, (std::vector<std::string>{"api", "zz-9"}));
  auto snap = groups_.Snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0].config.name, "web");
  EXPECT_EQ(snap[0].members.size(), 1u);
  EXPECT_EQ(snap[1].config.name, "www");
  EXPECT_EQ(groups_.DueProbes(At(0)).size(), 1u) << "only the web target is probed";
}

TEST(TargetGroupsConfigTest, PathReplacesTheRegisteredPath) {
  TargetGroupConfig g;
  g.path = "/healthz";
  TargetGroups groups({g});
  groups.Register("web-1", Web("http://127.0.0.1:8081/index.html"), At(0));
  groups.Register("web-2", Web("http://127.0.0.1:8082"), At(0));
  auto due = groups.DueProbes(At(0));
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].url, "http://127.0.0.1:8081/healthz");
  EXPECT_EQ(due[1].url, "http://127.0.0.1:8082/healthz");
  EXPECT_EQ(due[0].timeout, Millis(2000));
}

TEST(TargetGroupsConfigTest, YamlOverridesAndAddsGroups) {
  auto groups = DefaultTargetGroups();
  YAML::Node node = YAML::Load(
      "web: {interval: 1s, timeout: 500ms, healthy_threshold: 3, matcher: '200'}\n"
      "api: {path: /health}\n");
  ASSERT_TRUE(ParseTargetGroupsYaml(node, "s.yaml", groups).has_value());
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].interval, Millis(1000));
  EXPECT_EQ(groups[0].timeout, Millis(500));
  EXPECT_EQ(groups[0].healthy_threshold, 3);
  EXPECT_EQ(groups[0].unhealthy_threshold, 2);
  EXPECT_EQ(groups[0].matcher, "200");
  EXPECT_EQ(groups[1].name, "api");
  EXPECT_EQ(groups[1].path, "/health");
}

// The checker's RunOnce with a fake prober and a manual clock, feeding a real alarm engine.
class FakeProber : public Prober {
 public:
  explicit FakeProber(int* status) : status_(status) {}
  Result<int> Probe(const std::string& url, Millis) override {
    urls.push_back(url);
    if (*status_ == 0) {
      return Unavailable("connection refused");
    }
    return *status_;
  }
  std::vector<std::string> urls;

 private:
  int* status_;
};

TEST(TargetGroupCheckerTest, RunOnceProbesDueMembersAndFeedsTheAlarm) {
  ManualClock clock(kT0);
  TargetGroups groups;
  AlarmEngine alarms(DefaultAlarmRules(), Millis(1000));
  std::vector<AlarmTransition> transitions;
  int status = 200;
  TargetGroupChecker checker(
      groups, clock, [&status] { return std::make_unique<FakeProber>(&status); },
      [&](const std::vector<TargetFeed>& feeds) {
        for (const auto& f : feeds) {
          auto t = alarms.Observe(f.host, f.series, f.value, f.t);
          transitions.insert(transitions.end(), t.begin(), t.end());
        }
      });
  groups.Register("web-1", Web("http://127.0.0.1:1/"), clock.Now());
  for (int i = 0; i < 2; ++i) {
    checker.RunOnce();
    clock.Advance(std::chrono::seconds(5));
  }
  EXPECT_EQ(alarms.StateOf("Nginx-Down-ALB", "web-1"), AlarmState::kOk);
  status = 0;
  for (int i = 0; i < 2; ++i) {
    checker.RunOnce();
    clock.Advance(std::chrono::seconds(5));
  }
  EXPECT_EQ(alarms.StateOf("Nginx-Down-ALB", "web-1"), AlarmState::kAlarm);
  ASSERT_EQ(transitions.size(), 2u);
  EXPECT_EQ(transitions[1].to, AlarmState::kAlarm);
  checker.RunOnce();
  EXPECT_EQ(transitions.size(), 2u) << "no second transition while still unhealthy";
}

}  // namespace
}  // namespace medic::server
