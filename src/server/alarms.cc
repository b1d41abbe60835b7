#include "server/alarms.h"

#include <cstdio>

namespace medic::server {

std::string_view AlarmStateName(AlarmState s) {
  switch (s) {
    case AlarmState::kInsufficientData: return "INSUFFICIENT_DATA";
    case AlarmState::kOk: return "OK";
    case AlarmState::kAlarm: return "ALARM";
  }
  return "UNKNOWN";
}

std::string_view ComparisonSymbol(Comparison c) {
  switch (c) {
    case Comparison::kGreater: return ">";
    case Comparison::kGreaterOrEqual: return ">=";
    case Comparison::kLess: return "<";
    case Comparison::kLessOrEqual: return "<=";
  }
  return "?";
}

std::vector<AlarmRule> DefaultAlarmRules() {
  return {
      {"Disk-Critical-ASG", "Disk usage above 85% on the root volume", "disk_used_percent",
       Comparison::kGreater, 85, 1, 1},
      {"Memory-Exhaustion-ASG", "Memory usage above 90%", "mem_used_percent",
       Comparison::kGreater, 90, 1, 1},
      {"Nginx-Down-ALB", "Unhealthy hosts in the web target group (nginx not answering)",
       "unhealthy:web", Comparison::kGreater, 0, 1, 1},
  };
}

AlarmEngine::AlarmEngine(std::vector<AlarmRule> rules) : rules_(std::move(rules)) {}

namespace {

bool Breaches(const AlarmRule& r, double v) {
  switch (r.comparison) {
    case Comparison::kGreater: return v > r.threshold;
    case Comparison::kGreaterOrEqual: return v >= r.threshold;
    case Comparison::kLess: return v < r.threshold;
    case Comparison::kLessOrEqual: return v <= r.threshold;
  }
  return false;
}

}  // namespace

std::vector<AlarmTransition> AlarmEngine::Observe(const std::string& host,
                                                  const std::string& metric, double value,
                                                  WallTime t) {
  std::vector<AlarmTransition> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& rule : rules_) {
    if (rule.metric != metric) {
      continue;
    }
    Series& s = series_[{rule.name, host}];
    s.values.push_back(value);
    while (s.values.size() > static_cast<size_t>(rule.evaluation_periods)) {
      s.values.pop_front();
    }
    int breaching = 0;
    for (double v : s.values) {
      breaching += Breaches(rule, v) ? 1 : 0;
    }
    const int n = static_cast<int>(s.values.size());
    AlarmState next;
    if (breaching >= rule.datapoints_to_alarm) {
      next = AlarmState::kAlarm;
    } else if (n - breaching > rule.evaluation_periods - rule.datapoints_to_alarm) {
      // Enough datapoints are fine that M breaching ones are impossible within the window.
      next = AlarmState::kOk;
    } else {
      next = s.state == AlarmState::kInsufficientData ? AlarmState::kInsufficientData : s.state;
    }
    if (next != s.state) {
      char reason[160];
      std::snprintf(reason, sizeof(reason), "%d of %d datapoints %s %g (last %g)", breaching, n,
                    std::string(ComparisonSymbol(rule.comparison)).c_str(), rule.threshold,
                    value);
      out.push_back(AlarmTransition{rule.name, host, s.state, next, t, reason});
      s.state = next;
      s.since = t;
    }
  }
  return out;
}

AlarmState AlarmEngine::StateOf(const std::string& rule, const std::string& host) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find({rule, host});
  return it == series_.end() ? AlarmState::kInsufficientData : it->second.state;
}

std::vector<AlarmStatus> AlarmEngine::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<AlarmStatus> out;
  for (const auto& [key, s] : series_) {
    out.push_back(AlarmStatus{key.first, key.second, s.state, s.since,
                              s.values.empty() ? 0.0 : s.values.back()});
  }
  return out;
}

const AlarmRule* AlarmEngine::FindRule(const std::string& name) const {
  for (const auto& r : rules_) {
    if (r.name == name) {
      return &r;
    }
  }
  return nullptr;
}

}  // namespace medic::server
