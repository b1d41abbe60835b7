#include "server/alarms.h"

#include <gtest/gtest.h>

namespace medic::server {
namespace {

AlarmRule Rule(int n, int m, Comparison c = Comparison::kGreater, double threshold = 85) {
  return AlarmRule{"R", "d", "disk_used_percent", c, threshold, n, m};
}

struct Case {
  std::string name;
  AlarmRule rule;
  std::vector<double> values;
  std::vector<AlarmState> want;  // the state after each datapoint
};

TEST(AlarmEngineTest, MOutOfNSemantics) {
  using S = AlarmState;
  const S I = S::kInsufficientData, O = S::kOk, A = S::kAlarm;
  const std::vector<Case> cases = {
      {"1 of 1 breaches at once", Rule(1, 1), {50, 90, 50}, {O, A, O}},
      {"equal to threshold is not > ", Rule(1, 1), {85}, {O}},
      {">= counts equality", Rule(1, 1, Comparison::kGreaterOrEqual), {85}, {A}},
      {"< for low values", Rule(1, 1, Comparison::kLess, 10), {5, 20}, {A, O}},
      {"<= ", Rule(1, 1, Comparison::kLessOrEqual, 10), {10}, {A}},
      {"3 of 3 needs three in a row", Rule(3, 3), {90, 90, 50, 90, 90, 90}, {I, I, O, O, O, A}},
      {"2 of 3 alarms on two bad in the window", Rule(3, 2), {90, 50, 90, 50, 50}, {I, I, A, O, O}},
      {"2 of 3 is OK once two good ones make M impossible", Rule(3, 2), {50, 50}, {I, O}},
      {"one bad point in 2 of 3 does not alarm", Rule(3, 2), {50, 90, 50, 50}, {I, I, O, O}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    AlarmEngine engine({c.rule});
    for (size_t i = 0; i < c.values.size(); ++i) {
      engine.Observe("h", "disk_used_percent", c.values[i], WallTime{});
      EXPECT_EQ(engine.StateOf("R", "h"), c.want[i]) << "after datapoint " << i;
    }
  }
}

TEST(AlarmEngineTest, TransitionsAreReportedOncePerChange) {
  AlarmEngine engine(DefaultAlarmRules());
  auto t = engine.Observe("web-1", "unhealthy:web", 1, WallTime{});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].rule, "Nginx-Down-ALB");
  EXPECT_EQ(t[0].host, "web-1");
  EXPECT_EQ(t[0].from, AlarmState::kInsufficientData);
  EXPECT_EQ(t[0].to, AlarmState::kAlarm);
  EXPECT_TRUE(engine.Observe("web-1", "unhealthy:web", 1, WallTime{}).empty());
  t = engine.Observe("web-1", "unhealthy:web", 0, WallTime{});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlarmState::kOk);
}

TEST(AlarmEngineTest, HostsAreIndependent) {
  AlarmEngine engine(DefaultAlarmRules());
  engine.Observe("web-1", "disk_used_percent", 95, WallTime{});
  engine.Observe("web-2", "disk_used_percent", 10, WallTime{});
  EXPECT_EQ(engine.StateOf("Disk-Critical-ASG", "web-1"), AlarmState::kAlarm);
  EXPECT_EQ(engine.StateOf("Disk-Critical-ASG", "web-2"), AlarmState::kOk);
  EXPECT_EQ(engine.StateOf("Disk-Critical-ASG", "web-3"), AlarmState::kInsufficientData);
}

TEST(AlarmEngineTest, DefaultRulesCarryTheReferenceNamesAndThresholds) {
  auto rules = DefaultAlarmRules();
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].name, "Disk-Critical-ASG");
  EXPECT_EQ(rules[0].threshold, 85);
  EXPECT_EQ(rules[1].name, "Memory-Exhaustion-ASG");
  EXPECT_EQ(rules[1].threshold, 90);
  EXPECT_EQ(rules[2].name, "Nginx-Down-ALB");
  EXPECT_EQ(rules[2].metric, "unhealthy:web");
}

}  // namespace
}  // namespace medic::server
