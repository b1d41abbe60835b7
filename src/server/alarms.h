#pragma once

// The alarm engine: per (rule, host) state OK / ALARM / INSUFFICIENT_DATA from datapoints,
// "M out of N" like the cloud alarms it replaces. Pure: Observe() takes a datapoint and the
// time and returns the transitions; no I/O, no clock. Thread-safe. See docs/ALARMS.md.

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/json.h"

namespace medic::server {

enum class AlarmState { kInsufficientData, kOk, kAlarm };
std::string_view AlarmStateName(AlarmState s);

enum class Comparison { kGreater, kGreaterOrEqual, kLess, kLessOrEqual };
std::string_view ComparisonSymbol(Comparison c);

struct AlarmRule {
  std::string name;         // "Disk-Critical-ASG"
  std::string description;  // shown as the incident's alarm_description
  // The datapoint series the rule watches. Host metrics by name ("disk_used_percent"); target
  // group health as "unhealthy:<group>" (1 when the host fails the group's check, else 0).
  std::string metric;
  Comparison comparison = Comparison::kGreater;
  double threshold = 0;
  int evaluation_periods = 1;   // N: how many latest datapoints are considered
  int datapoints_to_alarm = 1;  // M: how many of them must breach
};

// The three alarms of the reference system, under their exact names.
std::vector<AlarmRule> DefaultAlarmRules();

struct AlarmTransition {
  std::string rule;
  std::string host;
  AlarmState from;
  AlarmState to;
  WallTime at;
  std::string reason;  // "1 of 1 datapoints > 0 (last 1)"
};

struct AlarmStatus {
  std::string rule;
  std::string host;
  AlarmState state;
  WallTime since;
  double last_value;
};

// Read access to current alarm states, for the incident manager's verification step.
class AlarmStateView {
 public:
  virtual ~AlarmStateView() = default;
  virtual AlarmState StateOf(const std::string& rule, const std::string& host) const = 0;
};

class AlarmEngine : public AlarmStateView {
 public:
  explicit AlarmEngine(std::vector<AlarmRule> rules);

  // Feeds one datapoint of `metric` for `host`; returns the state changes it causes.
  std::vector<AlarmTransition> Observe(const std::string& host, const std::string& metric,
                                       double value, WallTime t);

  AlarmState StateOf(const std::string& rule, const std::string& host) const override;
  std::vector<AlarmStatus> All() const;
  const std::vector<AlarmRule>& rules() const { return rules_; }
  const AlarmRule* FindRule(const std::string& name) const;

 private:
  struct Series {
    std::deque<double> values;
    AlarmState state = AlarmState::kInsufficientData;
    WallTime since;
  };
  const std::vector<AlarmRule> rules_;
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Series> series_;  // Guarded by mu_.
};

}  // namespace medic::server
