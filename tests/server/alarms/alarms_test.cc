#include "server/alarms/alarms.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <random>
#include <thread>

#include "core/files.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/alarms/reference_alarm_engine.h"
#include "tests/server/config_errors.h"

namespace medic::server {
namespace {

using S = AlarmState;
constexpr S I = S::kInsufficientData, O = S::kOk, A = S::kAlarm;

// Period starts are at multiples of 10 s from this origin (10 s divides it).
const WallTime kT0 = FromUnixMillis(1'800'000'000'000);

WallTime At(double seconds) {
  return kT0 + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

AlarmRule Rule(int n, int m, Comparison c = Comparison::kGreater, double threshold = 85,
               MissingData missing = MissingData::kMissing) {
  AlarmRule r;
  r.name = "R";
  r.description = "d";
  r.metric = "disk_used_percent";
  r.comparison = c;
  r.threshold = threshold;
  r.evaluation_periods = n;
  r.datapoints_to_alarm = m;
  r.period = Millis(10'000);
  r.treat_missing_data = missing;
  return r;
}

// One step of a table: a datapoint at `t` (value set), or a Tick at `t` (no value); then the
// state `want`.
struct Step {
  double t;
  std::optional<double> value;
  S want;
};

struct Case {
  std::string name;
  AlarmRule rule;
  std::vector<Step> steps;
};

void RunCases(const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    AlarmEngine engine({c.rule});
    for (size_t i = 0; i < c.steps.size(); ++i) {
      const Step& s = c.steps[i];
      if (s.value) {
        engine.Observe("h", "disk_used_percent", *s.value, At(s.t));
      } else {
        engine.Tick(At(s.t));
      }
      EXPECT_EQ(AlarmStateName(engine.StateOf("R", "h")), AlarmStateName(s.want))
          << "after step " << i << " (t=" << s.t << ")";
    }
  }
}

// One datapoint per 10 s period unless said otherwise.
TEST(AlarmEngineTest, MOutOfNSemantics) {
  RunCases({
      {"1 of 1 breaches at once", Rule(1, 1), {{1, 50, O}, {11, 90, A}, {21, 50, O}}},
      {"equal to threshold is not >", Rule(1, 1), {{1, 85, O}}},
      {">= counts equality", Rule(1, 1, Comparison::kGreaterOrEqual), {{1, 85, A}}},
      {"< for low values", Rule(1, 1, Comparison::kLess, 10), {{1, 5, A}, {11, 20, O}}},
      {"<=", Rule(1, 1, Comparison::kLessOrEqual, 10), {{1, 10, A}}},
      {"3 of 3 needs three periods in a row",
       Rule(3, 3),
       {{1, 90, I}, {11, 90, I}, {21, 50, O}, {31, 90, O}, {41, 90, O}, {51, 90, A}}},
      {"2 of 3 alarms on two bad periods in the window",
       Rule(3, 2),
       {{1, 90, I}, {11, 50, I}, {21, 90, A}, {31, 50, O}, {41, 50, O}}},
      {"2 of 3 is OK once two good periods make M impossible",
       Rule(3, 2),
       {{1, 50, I}, {11, 50, O}}},
      {"one bad period in 2 of 3 does not alarm",
       Rule(3, 2),
       {{1, 50, I}, {11, 90, I}, {21, 50, O}, {31, 50, O}}},
  });
}

TEST(AlarmEngineTest, PeriodsAggregateMaxForGreaterAndMinForLess) {
  RunCases({
      {"a breach inside a period counts even after a good value",
       Rule(1, 1),
       {{1, 90, A}, {5, 50, A}, {11, 50, O}}},
      {"< takes the lowest value of the period",
       Rule(1, 1, Comparison::kLess, 10),
       {{1, 20, O}, {2, 5, A}, {3, 20, A}, {12, 20, O}}},
      {"several datapoints in one period are one period for M of N",
       Rule(2, 2),
       {{1, 90, I}, {2, 90, I}, {3, 90, I}, {11, 90, A}}},
  });
}

// The agent's fast watch sends a report between two periodic ones: one more datapoint in the
// current period (period = the agent interval, 1 s). (2 of 2 is OK after one good period: two
// breaching ones are no longer possible in that window.)
TEST(AlarmEngineTest, AFastReportIsOneMoreDatapointOfItsPeriod) {
  auto rule = [](int n, int m) {
    AlarmRule r = Rule(n, m);
    r.period = Millis(1000);
    return r;
  };
  RunCases({
      {"1 of 1 fires on the fast datapoint itself, mid-period",
       rule(1, 1),
       {{0.1, 50, O}, {0.43, 91, A}, {1.1, 50, O}}},
      {"a fast breach then a periodic good value in the same period: the period breached (max)",
       rule(2, 2),
       {{0.1, 50, O}, {1.1, 50, O}, {1.5, 91, O}, {1.9, 50, O}, {2.1, 91, A}}},
      {"a periodic and a fast breach in one period are one period of M",
       rule(2, 2),
       {{0.1, 50, O}, {1.1, 91, O}, {1.4, 92, O}, {2.1, 91, A}}},
  });
}

TEST(AlarmEngineTest, MissingDataTreatments) {
  // Periods of 10 s: [0,10) is period 0. Tick judges a period missing once it ended plus
  // 0.5 s of grace.
  const auto missing = MissingData::kMissing, ignore = MissingData::kIgnore,
             breaching = MissingData::kBreaching, not_breaching = MissingData::kNotBreaching;
  RunCases({
      {"missing: partly missing keeps the state, all missing is INSUFFICIENT_DATA",
       Rule(3, 2, Comparison::kGreater, 85, missing),
       {{1, 90, I},
        {11, 90, A},
        {25, std::nullopt, A},    // window 0-1 (period 2 still open)
        {35, std::nullopt, A},    // periods 0, 1 breach, 2 missing: 2 of 3
        {45, std::nullopt, A},    // period 1 breaches, 2-3 missing: undetermined, stays
        {55, std::nullopt, I}}},  // periods 2-4 all missing
      {"missing: a good period with the rest missing is OK when M is out of reach",
       Rule(3, 3, Comparison::kGreater, 85, missing),
       {{1, 50, O}, {25, std::nullopt, O}, {40.4, std::nullopt, O}, {40.5, std::nullopt, I}}},
      {"ignore: all missing keeps the current state",
       Rule(3, 2, Comparison::kGreater, 85, ignore),
       {{1, 90, I}, {11, 90, A}, {45, std::nullopt, A}, {100, std::nullopt, A}, {101, 50, A},
        {111, 50, O}}},
      {"breaching: silence raises the alarm",
       Rule(3, 2, Comparison::kGreater, 85, breaching),
       {{1, 50, I}, {11, 50, O}, {30.5, std::nullopt, O}, {40.4, std::nullopt, O},
        {40.5, std::nullopt, A}, {45, 50, A}, {51, 50, O}}},
      {"notBreaching: silence is fine",
       Rule(3, 2, Comparison::kGreater, 85, not_breaching),
       {{1, 90, I}, {11, 90, A}, {25, std::nullopt, A}, {35, std::nullopt, A},
        {45, std::nullopt, O}, {200, std::nullopt, O}}},
  });
}

TEST(AlarmEngineTest, AllMissingUnderMissingGoesInsufficientData) {
  AlarmEngine engine({Rule(1, 1, Comparison::kGreater, 85, MissingData::kMissing)});
  engine.Observe("h", "disk_used_percent", 90, At(1));
  EXPECT_EQ(engine.StateOf("R", "h"), A);
  // Period 1 [10 s, 20 s) is judged from 20.5 s.
  EXPECT_TRUE(engine.Tick(At(20.4)).empty());
  auto t = engine.Tick(At(20.5));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].from, A);
  EXPECT_EQ(t[0].to, I);
  EXPECT_EQ(t[0].at, At(20.5));
  EXPECT_NE(t[0].reason.find("1 missing (missing)"), std::string::npos) << t[0].reason;
}

TEST(AlarmEngineTest, ClearThresholdHoldsTheAlarmUntilValuesFallBelowIt) {
  AlarmRule r = Rule(1, 1);
  r.clear_threshold = 80;
  AlarmRule down = Rule(1, 1, Comparison::kLess, 10);
  down.clear_threshold = 15;
  RunCases({
      {"> 85 clears at <= 80",
       r,
       {{1, 83, O}, {11, 86, A}, {21, 83, A}, {31, 81, A}, {41, 80, O}, {51, 83, O}, {61, 86, A}}},
      {"< 10 clears at >= 15", down, {{1, 5, A}, {11, 12, A}, {21, 15, O}, {31, 12, O}}},
  });
  AlarmEngine engine({r});
  engine.Observe("h", "disk_used_percent", 86, At(1));
  auto t = engine.Observe("h", "disk_used_percent", 70, At(11));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_NE(t[0].reason.find("clear threshold"), std::string::npos) << t[0].reason;
}

TEST(AlarmEngineTest, LateDatapointsOutsideTheWindowAreDropped) {
  AlarmEngine engine({Rule(1, 1)});
  engine.Observe("h", "disk_used_percent", 50, At(21));
  EXPECT_TRUE(engine.Observe("h", "disk_used_percent", 99, At(1)).empty());
  EXPECT_EQ(engine.StateOf("R", "h"), O);
}

TEST(AlarmEngineTest, LabelsSelectTheSeries) {
  AlarmRule root = Rule(1, 1);
  AlarmRule logs = Rule(1, 1);
  logs.name = "Logs";
  logs.labels = {{"mount", "/var/log"}};
  AlarmEngine engine({root, logs});
  engine.Observe("h", "disk_used_percent{mount=\"/var/log\"}", 95, At(1));
  EXPECT_EQ(engine.StateOf("Logs", "h"), A);
  EXPECT_EQ(engine.StateOf("R", "h"), I) << "no labels watches the unlabelled series only";
  engine.Observe("h", "disk_used_percent{mount=\"/srv\"}", 95, At(1));
  EXPECT_EQ(engine.StateOf("R", "h"), I);
  engine.Observe("h", "disk_used_percent", 10, At(1));
  EXPECT_EQ(engine.StateOf("R", "h"), O);
  EXPECT_EQ(engine.StateOf("Logs", "h"), A);
}

TEST(SeriesNameTest, RoundTripsTheAgentsFormat) {
  struct Case {
    std::string series;
    std::string metric;
    std::map<std::string, std::string> labels;
  };
  const std::vector<Case> cases = {
      {"mem_used_percent", "mem_used_percent", {}},
      {"disk_used_percent{mount=\"/var/log\"}", "disk_used_percent", {{"mount", "/var/log"}}},
      {"x{a=\"1\",b=\"q\\\"uote\"}", "x", {{"a", "1"}, {"b", "q\"uote"}}},
      {"unhealthy:web", "unhealthy:web", {}},
      {"broken{mount=/x}", "broken{mount=/x}", {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.series);
    auto [metric, labels] = ParseSeriesName(c.series);
    EXPECT_EQ(metric, c.metric);
    EXPECT_EQ(labels, c.labels);
    if (metric == c.metric && !labels.empty()) {
      EXPECT_EQ(SeriesName(metric, labels), c.series);
    }
  }
}

TEST(AlarmEngineTest, TransitionsAreReportedOncePerChangeWithTheirTime) {
  AlarmEngine engine(DefaultAlarmRules());
  auto t = engine.Observe("web-1", "unhealthy:web", 1, At(1));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].rule, "Nginx-Down-ALB");
  EXPECT_EQ(t[0].host, "web-1");
  EXPECT_EQ(t[0].from, I);
  EXPECT_EQ(t[0].to, A);
  EXPECT_EQ(t[0].at, At(1));
  EXPECT_FALSE(t[0].remediating);
  EXPECT_TRUE(engine.Observe("web-1", "unhealthy:web", 1, At(2)).empty());
  t = engine.Observe("web-1", "unhealthy:web", 0, At(3));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, O);
  auto all = engine.All();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].since, At(3));
  EXPECT_EQ(all[0].last_value, 0);
  EXPECT_FALSE(all[0].reason.empty());
}

// Sub-second healing: with the defaults an unhealthy datapoint is ALARM on that datapoint.
TEST(AlarmEngineTest, DefaultsAlarmOnTheFirstBreachingDatapoint) {
  AlarmEngine engine(DefaultAlarmRules(), Millis(1000));
  for (const auto& [series, value, rule] :
       std::vector<std::tuple<std::string, double, std::string>>{
           {"disk_used_percent", 86, "Disk-Critical-ASG"},
           {"mem_used_percent", 91, "Memory-Exhaustion-ASG"},
           {"unhealthy:web", 1, "Nginx-Down-ALB"}}) {
    SCOPED_TRACE(rule);
    engine.Observe("h", series, 0, At(0.2));
    EXPECT_EQ(engine.StateOf(rule, "h"), O);
    auto t = engine.Observe("h", series, value, At(1.3));
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].to, A);
    // Silence does not change them (missing data ignored): Host-Unreachable covers it.
    EXPECT_TRUE(engine.Tick(At(60)).empty());
    EXPECT_EQ(engine.StateOf(rule, "h"), A);
  }
}

TEST(AlarmEngineTest, HostUnreachableAfterThreeSilentPeriodsAndBackOnReport) {
  AlarmEngine engine(DefaultAlarmRules(), Millis(1000));
  EXPECT_TRUE(engine.Tick(At(100)).empty()) << "hosts that never reported have no series";
  for (double s = 0.5; s < 10; s += 1) {
    engine.Observe("web-1", "heartbeat", 1, At(s));
  }
  EXPECT_EQ(engine.StateOf("Host-Unreachable", "web-1"), O);
  // Last report at 9.5 s (period [5,10)). Periods [10,15) [15,20) [20,25) are silent; the last
  // is judged at 25 s + 0.5 s of grace: 16 s after the last report.
  EXPECT_TRUE(engine.Tick(At(25.4)).empty());
  auto t = engine.Tick(At(25.5));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].rule, "Host-Unreachable");
  EXPECT_EQ(t[0].to, A);
  EXPECT_NE(t[0].reason.find("3 of 3 periods < 1"), std::string::npos) << t[0].reason;
  t = engine.Observe("web-1", "heartbeat", 1, At(30));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, O);
}

TEST(AlarmEngineTest, AnExpectedHostThatNeverReportsBecomesUnreachable) {
  // After a server restart the hosts it knew are expected: no datapoint needed to judge them.
  AlarmEngine engine(DefaultAlarmRules(), Millis(1000));
  engine.Expect("web-1", "heartbeat", At(12));  // judging starts with period [15,20)
  engine.Expect("web-2", "heartbeat", At(12));
  engine.Expect("web-1", "no_rule_watches_this", At(12));
  EXPECT_EQ(engine.StateOf("Host-Unreachable", "web-1"), I);
  EXPECT_EQ(engine.All().size(), 2u);
  EXPECT_TRUE(engine.Tick(At(20)).empty()) << "the partial period [10,15) is not held against it";
  engine.Observe("web-2", "heartbeat", 1, At(21));  // web-2 is back
  EXPECT_TRUE(engine.Tick(At(30.4)).empty());
  auto t = engine.Tick(At(30.5));  // [15,20) [20,25) [25,30) silent for web-1
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].host, "web-1");
  EXPECT_EQ(t[0].to, A);
  EXPECT_EQ(engine.StateOf("Host-Unreachable", "web-2"), O);
  // Expecting a host that has a state changes nothing.
  engine.Expect("web-1", "heartbeat", At(31));
  EXPECT_EQ(engine.StateOf("Host-Unreachable", "web-1"), A);
}

TEST(AlarmEngineTest, RemediatingFlagsTransitionsAndShowsInStatus) {
  AlarmEngine engine(DefaultAlarmRules());
  engine.Observe("web-1", "unhealthy:web", 1, At(1));
  engine.SetRemediating("Nginx-Down-ALB", "web-1", true);
  EXPECT_TRUE(engine.IsRemediating("Nginx-Down-ALB", "web-1"));
  EXPECT_FALSE(engine.IsRemediating("Nginx-Down-ALB", "web-2"));
  auto all = engine.All();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(all[0].remediating);
  auto t = engine.Observe("web-1", "unhealthy:web", 0, At(3));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_TRUE(t[0].remediating);
  t = engine.Observe("web-1", "unhealthy:web", 1, At(5));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, A);
  EXPECT_TRUE(t[0].remediating) << "a relapse during remediation opens no new incident";
  engine.SetRemediating("Nginx-Down-ALB", "web-1", false);
  t = engine.Observe("web-1", "unhealthy:web", 0, At(7));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_FALSE(t[0].remediating);
  EXPECT_FALSE(engine.All()[0].remediating);
}

// Evaluation is driven by datapoints and deadlines (issue 13): a Tick with nothing due evaluates
// nothing, however many series there are.
TEST(AlarmEngineScaleTest, ATickWithNothingDueEvaluatesNothing) {
  AlarmEngine engine(DefaultAlarmRules(), Millis(1000));
  constexpr int kHosts = 2000;
  for (int h = 0; h < kHosts; ++h) {
    const std::string host = "host-" + std::to_string(h);
    engine.Observe(host, "disk_used_percent", 40, At(1.2));
    engine.Observe(host, "mem_used_percent", 30, At(1.2));
    engine.Observe(host, "unhealthy:web", 0, At(1.2));
    engine.Observe(host, "heartbeat", 1, At(1.2));
  }
  const AlarmEngineStats before = engine.stats();
  EXPECT_EQ(before.series, 4u * kHosts);
  EXPECT_EQ(before.evaluations, 4u * kHosts) << "one evaluation per datapoint";
  for (double t = 1.3; t < 10.4; t += 0.1) {  // 90 ticks, every 100 ms, as the server does
    EXPECT_TRUE(engine.Tick(At(t)).empty());
  }
  const AlarmEngineStats after = engine.stats();
  EXPECT_EQ(after.evaluations, before.evaluations) << "no deadline was due before 10.5 s";
  EXPECT_EQ(after.tick_evaluations, 0u);
  // Only Host-Unreachable (heartbeat, missing data breaching) waits on time: one deadline per
  // host. The three reference alarms ignore missing data: time alone never changes them.
  EXPECT_EQ(after.timers, static_cast<uint64_t>(kHosts));
}

TEST(AlarmEngineScaleTest, MissingPeriodDeadlinesFireAtTheRightTimeForEveryHost) {
  AlarmEngine engine(DefaultAlarmRules(), Millis(1000));
  constexpr int kHosts = 1000;
  // Host i reports every second from 0.5 s until 9.5 s (period [5,10)), hosts >= 500 go on to
  // 14.5 s (period [10,15)).
  for (double t = 0.5; t < 15; t += 1) {
    for (int h = 0; h < kHosts; ++h) {
      if (t < 10 || h >= kHosts / 2) {
        engine.Observe("host-" + std::to_string(h), "heartbeat", 1, At(t));
      }
    }
    EXPECT_TRUE(engine.Tick(At(t + 0.05)).empty());
  }
  const uint64_t observed = engine.stats().evaluations;
  for (int ms = 14'600; ms <= 25'400; ms += 100) {  // the server's 100 ms ticks
    ASSERT_TRUE(engine.Tick(kT0 + Millis(ms)).empty()) << ms;
  }
  // [10,15) [15,20) [20,25) silent: judged at 25 s + 0.5 s of grace, for the first half only.
  auto t = engine.Tick(At(25.5));
  ASSERT_EQ(t.size(), static_cast<size_t>(kHosts / 2));
  for (const auto& tr : t) {
    EXPECT_EQ(tr.rule, "Host-Unreachable");
    EXPECT_EQ(tr.to, A);
    EXPECT_EQ(tr.at, At(25.5));
    EXPECT_LT(std::stoi(tr.host.substr(5)), kHosts / 2) << tr.host;
  }
  EXPECT_EQ(engine.Counts().alarm, kHosts / 2);
  // Evaluated on time: at 15.5 s and 20.5 s (a period closed, still OK) and at 25.5 s, per
  // silent host; the other half at 20.5 s and 25.5 s. Nothing else.
  EXPECT_EQ(engine.stats().evaluations - observed,
            static_cast<uint64_t>(3 * kHosts / 2 + 2 * kHosts / 2));
  EXPECT_TRUE(engine.Tick(At(30.4)).empty());
  t = engine.Tick(At(30.5));
  EXPECT_EQ(t.size(), static_cast<size_t>(kHosts / 2)) << "the other half, one period later";
  EXPECT_EQ(engine.Counts().alarm, kHosts);
  // In ALARM under `breaching`, time cannot clear it: no deadline is left.
  EXPECT_EQ(engine.stats().timers, 0u);
  EXPECT_TRUE(engine.Tick(At(300)).empty());
}

TEST(AlarmEngineScaleTest, ALongGapIsOneEvaluationAtTheTick) {
  AlarmEngine engine({Rule(3, 2, Comparison::kGreater, 85, MissingData::kNotBreaching)});
  engine.Observe("h", "disk_used_percent", 90, At(1));
  engine.Observe("h", "disk_used_percent", 90, At(11));
  ASSERT_EQ(engine.StateOf("R", "h"), A);
  const uint64_t before = engine.stats().evaluations;
  auto t = engine.Tick(At(500));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, O);
  EXPECT_EQ(t[0].at, At(500));
  EXPECT_EQ(engine.stats().evaluations - before, 1u);
}

// Counts are kept on every change: they equal a recount of All() after any operation.
TEST(AlarmEngineScaleTest, CountsFollowEveryChangeWithoutARecount) {
  AlarmEngine engine(DefaultAlarmRules(), Millis(1000));
  std::mt19937 rng(7);
  auto recount = [&]() {
    AlarmCounts c;
    for (const auto& a : engine.All()) {
      (a.state == O ? c.ok : a.state == A ? c.alarm : c.insufficient_data) += 1;
    }
    return c;
  };
  const std::vector<std::string> series = {"disk_used_percent", "mem_used_percent", "unhealthy:web",
                                           "heartbeat"};
  double now = 0;
  for (int step = 0; step < 3000; ++step) {
    SCOPED_TRACE(step);
    const std::string host = "h" + std::to_string(rng() % 40);
    switch (rng() % 10) {
      case 0:
        engine.Forget(host);
        break;
      case 1:
        engine.Expect(host, "heartbeat", At(now));
        break;
      case 2:
        engine.Tick(At(now));
        break;
      default:
        engine.Observe(host, series[rng() % series.size()], static_cast<double>(rng() % 100),
                       At(now));
    }
    now += (rng() % 1000) / 1000.0;
    const AlarmCounts want = recount();
    const AlarmCounts got = engine.Counts();
    ASSERT_EQ(got.ok, want.ok);
    ASSERT_EQ(got.alarm, want.alarm);
    ASSERT_EQ(got.insufficient_data, want.insufficient_data);
  }
  AlarmCounts by_rule;
  for (const auto& r : engine.rules()) {
    const AlarmCounts c = engine.CountsOf(r.name);
    by_rule.ok += c.ok;
    by_rule.alarm += c.alarm;
    by_rule.insufficient_data += c.insufficient_data;
  }
  EXPECT_EQ(by_rule.ok, engine.Counts().ok);
  EXPECT_EQ(by_rule.alarm, engine.Counts().alarm);
  EXPECT_EQ(by_rule.insufficient_data, engine.Counts().insufficient_data);
  EXPECT_EQ(engine.CountsOf("No-Such-Alarm").ok, 0);
}

std::vector<std::string> Keys(const std::vector<AlarmStatus>& all) {
  std::vector<std::string> out;
  for (const auto& a : all) {
    out.push_back(a.host + "/" + a.rule);
  }
  return out;
}

TEST(AlarmEngineListTest, FiltersSelectAndPagesWalkInHostRuleOrder) {
  AlarmEngine engine(DefaultAlarmRules(), Millis(1000));
  // 300 hosts over every shard; every fifth has a full disk, every seventh stops reporting.
  for (int h = 0; h < 300; ++h) {
    const std::string host = (h % 2 ? "web-" : "db-") + std::to_string(h);
    engine.Observe(host, "disk_used_percent", h % 5 == 0 ? 95 : 40, At(1));
    engine.Observe(host, "mem_used_percent", 30, At(1));
    engine.Observe(host, "heartbeat", 1, At(1));
    if (h % 7 != 0) {
      engine.Observe(host, "heartbeat", 1, At(19));
    }
  }
  engine.Tick(At(20.5));  // the silent ones: [5,10) [10,15) [15,20) empty
  const std::vector<AlarmStatus> all = engine.All();
  ASSERT_EQ(all.size(), 900u);
  ASSERT_TRUE(std::is_sorted(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return std::tie(a.host, a.rule) < std::tie(b.host, b.rule);
  }));
  auto expect = [&](const AlarmQuery& q) {
    std::vector<AlarmStatus> want;
    for (const auto& a : all) {
      if ((!q.state || a.state == *q.state) && (q.host.empty() || a.host == q.host) &&
          a.host.starts_with(q.host_prefix) && (q.alarm.empty() || a.rule == q.alarm)) {
        want.push_back(a);
      }
    }
    return Keys(want);
  };
  struct Case {
    std::string name;
    AlarmQuery query;
  };
  std::vector<Case> cases = {
      {"everything", {}},
      {"ALARM", {.state = A}},
      {"OK", {.state = O}},
      {"INSUFFICIENT_DATA", {.state = I}},
      {"one host", {.host = "web-35"}},
      {"a host that is not there", {.host = "web-9999"}},
      {"prefix", {.host_prefix = "web-1"}},
      {"prefix and ALARM", {.state = A, .host_prefix = "db-"}},
      {"one alarm", {.alarm = "Host-Unreachable"}},
      {"one alarm in ALARM", {.state = A, .alarm = "Host-Unreachable"}},
      {"one alarm in ALARM on a prefix",
       {.state = A, .host_prefix = "web-", .alarm = "Disk-Critical-ASG"}},
  };
  size_t alarming = 0;
  for (const auto& a : all) {
    alarming += a.state == A ? 1 : 0;
  }
  ASSERT_GT(alarming, 50u);
  ASSERT_EQ(static_cast<int64_t>(alarming), engine.Counts().alarm);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::vector<std::string> want = expect(c.query);
    AlarmPage whole = engine.List(c.query);
    EXPECT_EQ(Keys(whole.alarms), want);
    EXPECT_FALSE(whole.more);
    // Walked in pages of 1, 7 and 1000 with the cursor: the same, in the same order.
    for (size_t limit : {size_t{1}, size_t{7}, size_t{1000}}) {
      SCOPED_TRACE(limit);
      AlarmQuery q = c.query;
      q.limit = limit;
      std::vector<std::string> walked;
      for (int pages = 0; pages < 1000; ++pages) {
        AlarmPage page = engine.List(q);
        ASSERT_LE(page.alarms.size(), limit);
        for (const auto& k : Keys(page.alarms)) {
          walked.push_back(k);
        }
        if (!page.more) {
          break;
        }
        ASSERT_FALSE(page.alarms.empty());
        q.after_host = page.alarms.back().host;
        q.after_rule = page.alarms.back().rule;
      }
      EXPECT_EQ(walked, want);
    }
  }
  // A cursor that names no rule still orders: after ("web-35", "E") comes web-35's
  // Host-Unreachable.
  AlarmPage page = engine.List({.host = "web-35", .after_host = "web-35", .after_rule = "E"});
  EXPECT_EQ(Keys(page.alarms),
            (std::vector<std::string>{"web-35/Host-Unreachable", "web-35/Memory-Exhaustion-ASG"}));
  EXPECT_TRUE(engine.List({.alarm = "No-Such-Alarm"}).alarms.empty());
}

// The reference engine (the one before issue 13, kept in reference_alarm_engine.h) and this one
// agree on every transition and every state, for random rules and random datapoints, late
// datapoints, expectations, forgets and ticks.
TEST(AlarmEngineDifferentialTest, SameTransitionsAndStatesAsTheReferenceEngine) {
  std::mt19937 rng(13);
  for (int round = 0; round < 150; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::vector<AlarmRule> rules;
    const int count = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < count; ++i) {
      const int n = 1 + static_cast<int>(rng() % 4);
      const int m = 1 + static_cast<int>(rng() % n);
      const Comparison c = static_cast<Comparison>(rng() % 4);
      const MissingData missing = static_cast<MissingData>(rng() % 4);
      AlarmRule r = Rule(n, m, c, 50, missing);
      r.name = "R" + std::to_string(i);
      r.period = Millis(std::vector<int>{0, 1000, 2000, 5000}[rng() % 4]);
      if (rng() % 3 == 0) {
        const bool up = c == Comparison::kGreater || c == Comparison::kGreaterOrEqual;
        r.clear_threshold = up ? 40 : 60;
      }
      if (rng() % 4 == 0) {
        r.labels = {{"mount", "/x"}};
      }
      rules.push_back(r);
    }
    AlarmEngine engine(rules, Millis(1000));
    reference_model::ReferenceAlarmEngine reference(rules, Millis(1000));
    const std::vector<std::string> series = {"disk_used_percent", "disk_used_percent{mount=\"/x\"}",
                                             "heartbeat"};
    int64_t now_ms = 1'800'000'000'000 + static_cast<int64_t>(rng() % 10'000);
    auto sorted = [](std::vector<AlarmTransition> t) {
      std::sort(t.begin(), t.end(), [](const auto& a, const auto& b) {
        return std::tie(a.host, a.rule) < std::tie(b.host, b.rule);
      });
      return t;
    };
    for (int step = 0; step < 400; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const std::string host = "h" + std::to_string(rng() % 4);
      const int op = static_cast<int>(rng() % 20);
      std::vector<AlarmTransition> got, want;
      if (op < 11) {
        // Mostly now, sometimes late (an older sample of a report), values around 50.
        const int64_t t = now_ms - (rng() % 4 == 0 ? static_cast<int64_t>(rng() % 12'000) : 0);
        const double v = std::vector<double>{30, 45, 50, 55, 70}[rng() % 5];
        const std::string& s = series[rng() % series.size()];
        got = engine.Observe(host, s, v, FromUnixMillis(t));
        want = reference.Observe(host, s, v, FromUnixMillis(t));
      } else if (op < 18) {
        got = sorted(engine.Tick(FromUnixMillis(now_ms)));
        want = sorted(reference.Tick(FromUnixMillis(now_ms)));
      } else if (op < 19 && rng() % 2 == 0) {
        // The wall clock stepped back: a Tick behind the ones before.
        const WallTime back = FromUnixMillis(now_ms - static_cast<int64_t>(rng() % 20'000));
        got = sorted(engine.Tick(back));
        want = sorted(reference.Tick(back));
      } else if (op < 19) {
        const std::string& s = series[rng() % series.size()];
        engine.Expect(host, s, FromUnixMillis(now_ms));
        reference.Expect(host, s, FromUnixMillis(now_ms));
      } else if (rng() % 4 == 0) {
        engine.Forget(host);
        reference.Forget(host);
      }
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].rule, want[i].rule);
        EXPECT_EQ(got[i].host, want[i].host);
        EXPECT_EQ(got[i].from, want[i].from);
        EXPECT_EQ(got[i].to, want[i].to);
        EXPECT_EQ(got[i].at, want[i].at);
        EXPECT_EQ(got[i].reason, want[i].reason);
      }
      const auto g = engine.All(), w = reference.All();
      ASSERT_EQ(Keys(g), Keys(w));
      for (size_t i = 0; i < g.size(); ++i) {
        ASSERT_EQ(g[i].state, w[i].state) << Keys(g)[i];
        ASSERT_EQ(g[i].since, w[i].since) << Keys(g)[i];
        ASSERT_EQ(g[i].last_value, w[i].last_value) << Keys(g)[i];
        ASSERT_EQ(g[i].reason, w[i].reason) << Keys(g)[i];
      }
      now_ms += std::vector<int64_t>{0, 100, 100, 100, 700, 2500, 9000}[rng() % 7];
    }
  }
}

// Reports from many threads, ticks, listings and forgets at once (for the sanitizers): the
// counts stay equal to a recount at the end.
TEST(AlarmEngineScaleTest, ConcurrentObserveTickListAndForget) {
  AlarmEngine engine(DefaultAlarmRules(), Millis(1000));
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < 3; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 4000; ++i) {
        const std::string host = "h" + std::to_string((i * 7 + w) % 200);
        engine.Observe(host, "heartbeat", 1, At(i / 100.0));
        engine.Observe(host, "disk_used_percent", (i % 3) ? 40 : 95, At(i / 100.0));
        if (i % 500 == 0) {
          engine.Forget(host);
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; !stop; ++i) {
      engine.Tick(At(i / 10.0));
      engine.List({.state = A, .limit = 10});
      engine.SetRemediating("Disk-Critical-ASG", "h1", i % 2 == 0);
    }
  });
  for (int w = 0; w < 3; ++w) {
    threads[w].join();
  }
  stop = true;
  threads.back().join();
  int64_t alarm = 0, total = 0;
  for (const auto& a : engine.All()) {
    alarm += a.state == A ? 1 : 0;
    ++total;
  }
  EXPECT_EQ(engine.Counts().alarm, alarm);
  EXPECT_EQ(static_cast<int64_t>(engine.stats().series), total);
}

TEST(AlarmEngineTest, HostsAreIndependent) {
  AlarmEngine engine(DefaultAlarmRules());
  engine.Observe("web-1", "disk_used_percent", 95, At(1));
  engine.Observe("web-2", "disk_used_percent", 10, At(1));
  EXPECT_EQ(engine.StateOf("Disk-Critical-ASG", "web-1"), A);
  EXPECT_EQ(engine.StateOf("Disk-Critical-ASG", "web-2"), O);
  EXPECT_EQ(engine.StateOf("Disk-Critical-ASG", "web-3"), I);
}

TEST(AlarmEngineTest, DefaultRulesCarryTheReferenceNamesAndThresholds) {
  auto rules = DefaultAlarmRules();
  ASSERT_EQ(rules.size(), 4u);
  EXPECT_EQ(rules[0].name, "Disk-Critical-ASG");
  EXPECT_EQ(rules[0].metric, "disk_used_percent");
  EXPECT_EQ(rules[0].threshold, 85);
  EXPECT_EQ(rules[1].name, "Memory-Exhaustion-ASG");
  EXPECT_EQ(rules[1].threshold, 90);
  EXPECT_EQ(rules[2].name, "Nginx-Down-ALB");
  EXPECT_EQ(rules[2].metric, "unhealthy:web");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rules[i].comparison, Comparison::kGreater);
    EXPECT_EQ(rules[i].evaluation_periods, 1);
    EXPECT_EQ(rules[i].datapoints_to_alarm, 1);
    EXPECT_EQ(rules[i].period, Millis(0)) << "the agent interval";
  }
  EXPECT_EQ(rules[3].name, "Host-Unreachable");
  EXPECT_EQ(rules[3].metric, "heartbeat");
  EXPECT_EQ(rules[3].comparison, Comparison::kLess);
  EXPECT_EQ(rules[3].period, Millis(5000));
  EXPECT_EQ(rules[3].treat_missing_data, MissingData::kBreaching);
  for (const auto& r : rules) {
    EXPECT_TRUE(ValidateAlarmRule(r).has_value()) << r.name;
  }
  AlarmEngine engine(rules, Millis(2000));
  EXPECT_EQ(engine.FindRule("Disk-Critical-ASG")->period, Millis(2000));
}

TEST(ValidateAlarmRuleTest, RejectsBadRules) {
  struct Case {
    std::string name;
    std::function<void(AlarmRule&)> change;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"M > N", [](AlarmRule& r) { r.datapoints_to_alarm = 4; }, "datapoints_to_alarm"},
      {"N = 0", [](AlarmRule& r) { r.evaluation_periods = 0; }, "evaluation_periods"},
      {"clear above threshold", [](AlarmRule& r) { r.clear_threshold = 90; }, "clear_threshold"},
      {"labels in metric", [](AlarmRule& r) { r.metric = "x{a=\"b\"}"; }, "labels"},
      {"short period", [](AlarmRule& r) { r.period = Millis(10); }, "period"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    AlarmRule r = Rule(3, 2);
    c.change(r);
    auto s = ValidateAlarmRule(r);
    ASSERT_FALSE(s.has_value());
    EXPECT_NE(s.error().message.find(c.want), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find("'R'"), std::string::npos) << s.error().message;
  }
}

TEST(AlarmConfigTest, AlarmsSectionOverridesDefaultsByNameAndAddsRules) {
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"),
                              "agent_interval: 2s\n"
                              "alarms:\n"
                              "  Disk-Critical-ASG: {threshold: 80, clear_threshold: 75}\n"
                              "  Log-Volume-Full:\n"
                              "    description: logs\n"
                              "    metric: disk_used_percent\n"
                              "    labels: {mount: /var/log}\n"
                              "    comparison: \">=\"\n"
                              "    threshold: 90\n"
                              "    period: 10s\n"
                              "    evaluation_periods: 3\n"
                              "    datapoints_to_alarm: 2\n"
                              "    treat_missing_data: notBreaching\n"
                              "target_groups:\n"
                              "  web: {interval: 1s, timeout: 500ms}\n")
                  .has_value());
  auto c = LoadServerConfig(dir.File("s.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  ASSERT_EQ(c->alarm_rules.size(), 5u);
  const AlarmRule& disk = c->alarm_rules[0];
  EXPECT_EQ(disk.name, "Disk-Critical-ASG");
  EXPECT_EQ(disk.threshold, 80);
  EXPECT_EQ(disk.clear_threshold, 75);
  EXPECT_EQ(disk.metric, "disk_used_percent") << "fields not given keep the default";
  const AlarmRule& logs = c->alarm_rules[4];
  EXPECT_EQ(logs.name, "Log-Volume-Full");
  EXPECT_EQ(SeriesName(logs.metric, logs.labels), "disk_used_percent{mount=\"/var/log\"}");
  EXPECT_EQ(logs.comparison, Comparison::kGreaterOrEqual);
  EXPECT_EQ(logs.period, Millis(10'000));
  EXPECT_EQ(logs.evaluation_periods, 3);
  EXPECT_EQ(logs.datapoints_to_alarm, 2);
  EXPECT_EQ(logs.treat_missing_data, MissingData::kNotBreaching);
  ASSERT_EQ(c->target_groups.size(), 1u);
  EXPECT_EQ(c->target_groups[0].interval, Millis(1000));
  // The engine gives the defaults the agent interval as their period.
  AlarmEngine engine(c->alarm_rules, Millis(c->agent_interval_ms));
  EXPECT_EQ(engine.FindRule("Memory-Exhaustion-ASG")->period, Millis(2000));
  EXPECT_EQ(engine.FindRule("Host-Unreachable")->period, Millis(5000));
}

// Issue 19: a threshold overridden in config shows in the description (the incident's
// alarm_description); a description of the config's own stays as written.
TEST(AlarmConfigTest, AnOverriddenThresholdShowsInTheAlarmDescription) {
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"),
                              "alarms:\n"
                              "  Disk-Critical-ASG: {threshold: 80}\n"
                              "  Memory-Exhaustion-ASG: {threshold: 75, comparison: \">=\"}\n"
                              "  Host-Unreachable: {period: 10s}\n"
                              "  Nginx-Down-ALB: {description: Web tier down, threshold: 0.5}\n"
                              "  Inodes-Low: {metric: inode_free_percent, comparison: \"<\", "
                              "threshold: 5}\n")
                  .has_value());
  auto c = LoadServerConfig(dir.File("s.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  std::map<std::string, std::string> got;
  for (const AlarmRule& r : c->alarm_rules) {
    got[r.name] = r.description;
  }
  EXPECT_EQ(got["Disk-Critical-ASG"], "Disk usage above 80% on the root volume");
  EXPECT_EQ(got["Memory-Exhaustion-ASG"], "Memory usage at or above 75%");
  EXPECT_EQ(got["Host-Unreachable"], "The host's agent has not reported for 30 seconds");
  EXPECT_EQ(got["Nginx-Down-ALB"], "Web tier down");
  EXPECT_EQ(got["Inodes-Low"], "inode_free_percent < 5");
  // And the built-in ones, unchanged.
  for (const AlarmRule& r : DefaultAlarmRules()) {
    EXPECT_EQ(r.description, DescribeRule(r));
  }
  EXPECT_EQ(DefaultAlarmRules()[0].description, "Disk usage above 85% on the root volume");
}

TEST(AlarmConfigTest, ErrorsNameFileLineAndProblem) {
  test::ExpectConfigErrors({
      {"alarms:\n  Disk-Critical-ASG:\n    colour: red\n", ":3: unknown alarm key 'colour'"},
      {"alarms:\n  New-One: {threshold: 5}\n", ":2: new alarm 'New-One' needs 'metric'"},
      {"alarms:\n  X: {metric: m, threshold: 1, comparison: '=='}\n", ":2: comparison must be"},
      {"alarms:\n  X: {metric: m, threshold: 1, evaluation_periods: 2, datapoints_to_alarm: 3}\n",
       ":2: alarm 'X': datapoints_to_alarm must be"},
      {"alarms:\n  Disk-Critical-ASG: {clear_threshold: 90}\n", ":2: alarm 'Disk-Critical-ASG': "
                                                                   "clear_threshold"},
      {"alarms:\n  X: {metric: m, threshold: 1, treat_missing_data: zero}\n",
       ":2: treat_missing_data must be"},
      {"alarms:\n  X: {metric: m, threshold: high}\n", ":2: wrong type for 'threshold'"},
      {"alarms:\n  X: {metric: m, threshold: 1, period: soon}\n", ":2: period must be"},
      {"alarms: [a, b]\n", ":1: alarms must map"},
      {"target_groups:\n  web: {timeout: 9s}\n", ":2: target group 'web': timeout"},
      {"target_groups:\n  web: {matcher: 2xx}\n", ":2: target group 'web': matcher"},
      {"target_groups:\n  web:\n    port: 80\n", ":3: unknown target group key 'port'"},
  });
}

}  // namespace
}  // namespace medic::server
