#pragma once

// The alarm engine: per (rule, host) state OK / ALARM / INSUFFICIENT_DATA, "M out of N periods"
// like the cloud alarms it replaces, with missing-data treatment and an optional clear threshold
// (hysteresis). Pure: Observe() takes a datapoint and its time, Tick() takes the time; both
// return the transitions they cause. No I/O, no clock. Thread-safe. See docs/ALARMS.md.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"

namespace medic::server {

enum class AlarmState { kInsufficientData, kOk, kAlarm };
std::string_view AlarmStateName(AlarmState s);

enum class Comparison { kGreater, kGreaterOrEqual, kLess, kLessOrEqual };
std::string_view ComparisonSymbol(Comparison c);
Result<Comparison> ParseComparison(std::string_view symbol);
// True when `v` is on the alarming side of `threshold`: v > threshold for kGreater, and so on.
bool Breaches(Comparison c, double threshold, double v);

// How a period without any datapoint counts (CloudWatch's TreatMissingData).
enum class MissingData { kMissing, kNotBreaching, kBreaching, kIgnore };
std::string_view MissingDataName(MissingData m);  // "missing", "notBreaching", ...
Result<MissingData> ParseMissingData(std::string_view name);

struct AlarmRule {
  std::string name;         // "Disk-Critical-ASG"
  std::string description;  // shown as the incident's alarm_description
  // The datapoint series the rule watches. Host metrics by name ("disk_used_percent"); target
  // group health as "unhealthy:<group>" (1 when the host fails the group's check, else 0); the
  // agent's liveness as "heartbeat" (1 per report).
  std::string metric;
  Comparison comparison = Comparison::kGreater;
  double threshold = 0;
  int evaluation_periods = 1;   // N: how many latest periods are considered
  int datapoints_to_alarm = 1;  // M: how many of them must breach
  // The series' labels, exactly: {"mount": "/var/log"} watches disk_used_percent{mount="/var/log"}.
  // Empty: the unlabelled series only.
  std::map<std::string, std::string> labels;
  // Datapoints are aggregated per period (max for > and >=, min for < and <=). 0: the agent
  // interval (the engine's default period).
  Millis period{0};
  MissingData treat_missing_data = MissingData::kMissing;
  // Hysteresis: in ALARM, a period counts as breaching while it breaches this value instead of
  // `threshold` (for > / >= it must be <= threshold, for < / <= >= threshold).
  std::optional<double> clear_threshold;
};

// The alarms of the reference system under their exact names (period = the agent interval,
// M = N = 1, missing data ignored), plus Host-Unreachable (heartbeat < 1 for 3 of 3 periods of
// 5 s, missing data breaching).
std::vector<AlarmRule> DefaultAlarmRules();

// Checks one rule's fields (name, N, M, period, clear threshold side). Messages name the rule.
Status ValidateAlarmRule(const AlarmRule& rule);

// The series name of a metric with labels, as the agent writes it: disk_used_percent{mount="/x"}
// (labels in key order, '"' and '\' escaped).
std::string SeriesName(const std::string& metric, const std::map<std::string, std::string>& labels);
// Splits a series name into metric and labels; a name that does not parse is a bare metric.
std::pair<std::string, std::map<std::string, std::string>> ParseSeriesName(std::string_view series);

struct AlarmTransition {
  std::string rule;
  std::string host;
  AlarmState from;
  AlarmState to;
  WallTime at;
  std::string reason;  // "1 of 1 periods > 85 (latest 91)"
  // The (rule, host) is held as remediating (SetRemediating): the change is real and visible,
  // but it must not open another incident.
  bool remediating = false;
};

struct AlarmStatus {
  std::string rule;
  std::string host;
  AlarmState state;
  WallTime since;  // the last transition (or when the series began)
  double last_value;
  std::string reason;
  bool remediating = false;
};

// Read access to current alarm states, for the incident manager's verification step.
class AlarmStateView {
 public:
  virtual ~AlarmStateView() = default;
  virtual AlarmState StateOf(const std::string& rule, const std::string& host) const = 0;
  // The remediating hold (see AlarmEngine::SetRemediating). Default: no hold (test fakes).
  virtual void SetRemediating(const std::string& /*rule*/, const std::string& /*host*/,
                              bool /*remediating*/) {}
};

class AlarmEngine : public AlarmStateView {
 public:
  // Rules with period 0 use `default_period` (the agent interval).
  explicit AlarmEngine(std::vector<AlarmRule> rules, Millis default_period = Millis(1000));

  // Feeds one datapoint of `series` ("disk_used_percent", "disk_used_percent{mount=\"/x\"}")
  // for `host` at time t, evaluates every rule on that series at t, returns the state changes.
  // A (rule, host) has no state until its first datapoint.
  std::vector<AlarmTransition> Observe(const std::string& host, const std::string& series,
                                       double value, WallTime t);

  // Starts watching `series` of `host` without a datapoint: every rule on that series gets a
  // state (INSUFFICIENT_DATA) from the period after `now`'s, so periods that then close empty
  // count as missing. The server expects a heartbeat from every host it knew before a restart:
  // one that never reports again raises Host-Unreachable. No-op where a state exists.
  void Expect(const std::string& host, const std::string& series, WallTime now);

  // Drops every state of `host` (a host removed from the fleet): no alarm is judged for it until
  // it reports again.
  void Forget(const std::string& host);

  // Evaluates every (rule, host) at `now`: periods that closed without a datapoint count as
  // missing. Call periodically (the server does every 100 ms).
  std::vector<AlarmTransition> Tick(WallTime now);

  // The incident manager holds (rule, host) while a remediation is in flight: transitions are
  // still computed and reported, flagged `remediating`, so the caller opens no new incident.
  void SetRemediating(const std::string& rule, const std::string& host,
                      bool remediating) override;
  bool IsRemediating(const std::string& rule, const std::string& host) const;

  AlarmState StateOf(const std::string& rule, const std::string& host) const override;
  std::vector<AlarmStatus> All() const;
  const std::vector<AlarmRule>& rules() const { return rules_; }
  const AlarmRule* FindRule(const std::string& name) const;

 private:
  struct Series {
    std::map<int64_t, double> buckets;  // period index -> aggregate, the last N periods
    int64_t first_period = 0;           // periods before this one are "not yet", never missing
    int64_t newest_period = 0;
    WallTime last_eval;
    AlarmState state = AlarmState::kInsufficientData;
    WallTime since;
    double last_value = 0;
    std::string reason = "no evaluation yet";
  };
  // REQUIRES: mu_ held.
  std::optional<AlarmTransition> Evaluate(size_t rule_index, const std::string& host,
                                          Series& s, WallTime now);

  std::vector<AlarmRule> rules_;
  std::map<std::string, std::vector<size_t>> rules_by_series_;  // canonical series -> rules
  mutable std::mutex mu_;
  std::map<std::pair<size_t, std::string>, Series> series_;   // Guarded by mu_.
  std::set<std::pair<std::string, std::string>> remediating_;  // Guarded by mu_.
};

}  // namespace medic::server
