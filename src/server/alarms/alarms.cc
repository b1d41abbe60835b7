#include "server/alarms/alarms.h"

#include <algorithm>
#include <cmath>
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

Result<Comparison> ParseComparison(std::string_view symbol) {
  for (Comparison c : {Comparison::kGreater, Comparison::kGreaterOrEqual, Comparison::kLess,
                       Comparison::kLessOrEqual}) {
    if (symbol == ComparisonSymbol(c)) {
      return c;
    }
  }
  return InvalidArgument("comparison must be one of > >= < <=, not '" + std::string(symbol) +
                         "'");
}

std::string_view MissingDataName(MissingData m) {
  switch (m) {
    case MissingData::kMissing: return "missing";
    case MissingData::kNotBreaching: return "notBreaching";
    case MissingData::kBreaching: return "breaching";
    case MissingData::kIgnore: return "ignore";
  }
  return "?";
}

Result<MissingData> ParseMissingData(std::string_view name) {
  for (MissingData m : {MissingData::kMissing, MissingData::kNotBreaching,
                        MissingData::kBreaching, MissingData::kIgnore}) {
    if (name == MissingDataName(m)) {
      return m;
    }
  }
  return InvalidArgument(
      "treat_missing_data must be one of missing, notBreaching, breaching, ignore, not '" +
      std::string(name) + "'");
}

std::vector<AlarmRule> DefaultAlarmRules() {
  auto fast = [](std::string name, std::string description, std::string metric,
                 double threshold) {
    AlarmRule r;
    r.name = std::move(name);
    r.description = std::move(description);
    r.metric = std::move(metric);
    r.comparison = Comparison::kGreater;
    r.threshold = threshold;
    r.evaluation_periods = 1;
    r.datapoints_to_alarm = 1;
    r.period = Millis(0);  // the agent interval
    // A silent host is Host-Unreachable's business: its other alarms keep their state.
    r.treat_missing_data = MissingData::kIgnore;
    return r;
  };
  std::vector<AlarmRule> rules = {
      fast("Disk-Critical-ASG", "Disk usage above 85% on the root volume", "disk_used_percent",
           85),
      fast("Memory-Exhaustion-ASG", "Memory usage above 90%", "mem_used_percent", 90),
      fast("Nginx-Down-ALB", "Unhealthy hosts in the web target group (nginx not answering)",
           "unhealthy:web", 0),
  };
  AlarmRule unreachable;
  unreachable.name = "Host-Unreachable";
  unreachable.description = "The host's agent has not reported for 15 seconds";
  unreachable.metric = "heartbeat";
  unreachable.comparison = Comparison::kLess;
  unreachable.threshold = 1;
  unreachable.period = Millis(5000);
  unreachable.evaluation_periods = 3;
  unreachable.datapoints_to_alarm = 3;
  unreachable.treat_missing_data = MissingData::kBreaching;
  rules.push_back(std::move(unreachable));
  return rules;
}

Status ValidateAlarmRule(const AlarmRule& r) {
  const std::string who = "alarm '" + r.name + "': ";
  if (r.name.empty() || r.name.size() > 128) {
    return InvalidArgument("an alarm needs a name of 1..128 characters");
  }
  if (r.metric.empty() || r.metric.find('{') != std::string::npos) {
    return InvalidArgument(who + "metric must be a metric name (labels go under 'labels')");
  }
  if (r.evaluation_periods < 1 || r.evaluation_periods > 1000) {
    return InvalidArgument(who + "evaluation_periods must be 1..1000");
  }
  if (r.datapoints_to_alarm < 1 || r.datapoints_to_alarm > r.evaluation_periods) {
    return InvalidArgument(who + "datapoints_to_alarm must be 1..evaluation_periods");
  }
  if (r.period.count() < 0 || (r.period.count() > 0 && r.period.count() < 100)) {
    return InvalidArgument(who + "period must be at least 100ms");
  }
  if (!std::isfinite(r.threshold)) {
    return InvalidArgument(who + "threshold must be a number");
  }
  if (r.clear_threshold) {
    const bool upward =
        r.comparison == Comparison::kGreater || r.comparison == Comparison::kGreaterOrEqual;
    if (!std::isfinite(*r.clear_threshold) ||
        (upward ? *r.clear_threshold > r.threshold : *r.clear_threshold < r.threshold)) {
      return InvalidArgument(who + "clear_threshold must be on the OK side of threshold (" +
                             std::string(upward ? "<=" : ">=") + " threshold)");
    }
  }
  return OkStatus();
}

std::string SeriesName(const std::string& metric,
                       const std::map<std::string, std::string>& labels) {
  if (labels.empty()) {
    return metric;
  }
  std::string out = metric + "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) {
      out += ",";
    }
    first = false;
    out += k + "=\"";
    for (char c : v) {
      if (c == '"' || c == '\\') {
        out.push_back('\\');
      }
      out.push_back(c);
    }
    out += "\"";
  }
  return out + "}";
}

std::pair<std::string, std::map<std::string, std::string>> ParseSeriesName(
    std::string_view series) {
  const size_t brace = series.find('{');
  if (brace == std::string_view::npos || series.back() != '}') {
    return {std::string(series), {}};
  }
  std::map<std::string, std::string> labels;
  size_t i = brace + 1;
  const size_t end = series.size() - 1;
  while (i < end) {
    const size_t eq = series.find('=', i);
    if (eq == std::string_view::npos || eq + 1 >= end || series[eq + 1] != '"') {
      return {std::string(series), {}};
    }
    std::string key(series.substr(i, eq - i));
    std::string value;
    size_t j = eq + 2;
    for (; j < end && series[j] != '"'; ++j) {
      if (series[j] == '\\' && j + 1 < end) {
        ++j;
      }
      value.push_back(series[j]);
    }
    if (j >= end || key.empty()) {
      return {std::string(series), {}};
    }
    labels[key] = value;
    i = j + 1;
    if (i < end && series[i] == ',') {
      ++i;
    }
  }
  return {std::string(series.substr(0, brace)), labels};
}

bool Breaches(Comparison c, double threshold, double v) {
  switch (c) {
    case Comparison::kGreater: return v > threshold;
    case Comparison::kGreaterOrEqual: return v >= threshold;
    case Comparison::kLess: return v < threshold;
    case Comparison::kLessOrEqual: return v <= threshold;
  }
  return false;
}

namespace {

bool Upward(Comparison c) { return c == Comparison::kGreater || c == Comparison::kGreaterOrEqual; }

int64_t PeriodIndex(WallTime t, Millis period) {
  const int64_t ms = ToUnixMillis(t);
  const int64_t p = period.count();
  return ms >= 0 ? ms / p : -((-ms + p - 1) / p);
}

// A period is judged missing once it ended and this much more time passed (a report in
// flight across the boundary): a tenth of the period, at most 500 ms.
Millis Grace(Millis period) { return std::min(period / 10, Millis(500)); }

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

}  // namespace

AlarmEngine::AlarmEngine(std::vector<AlarmRule> rules, Millis default_period)
    : rules_(std::move(rules)) {
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].period.count() <= 0) {
      rules_[i].period = std::max(default_period, Millis(100));
    }
    rules_by_series_[SeriesName(rules_[i].metric, rules_[i].labels)].push_back(i);
  }
}

std::optional<AlarmTransition> AlarmEngine::Evaluate(size_t rule_index, const std::string& host,
                                                     Series& s, WallTime now) {
  const AlarmRule& rule = rules_[rule_index];
  now = std::max(now, s.last_eval);
  s.last_eval = now;
  const int n = rule.evaluation_periods;
  const int m = rule.datapoints_to_alarm;
  const int64_t closed = PeriodIndex(now - Grace(rule.period), rule.period) - 1;
  const int64_t last = std::max(closed, s.newest_period);
  const int64_t first = last - n + 1;
  s.buckets.erase(s.buckets.begin(), s.buckets.lower_bound(first));

  const bool in_alarm = s.state == AlarmState::kAlarm;
  const double threshold =
      in_alarm && rule.clear_threshold ? *rule.clear_threshold : rule.threshold;
  int breaching = 0, good = 0, undetermined = 0, missing = 0;
  for (int64_t k = first; k <= last; ++k) {
    if (k < s.first_period) {
      ++undetermined;  // before the series began: no data yet, not missing data
      continue;
    }
    auto it = s.buckets.find(k);
    if (it != s.buckets.end()) {
      (Breaches(rule.comparison, threshold, it->second) ? breaching : good) += 1;
      continue;
    }
    ++missing;
    switch (rule.treat_missing_data) {
      case MissingData::kBreaching: ++breaching; break;
      case MissingData::kNotBreaching: ++good; break;
      case MissingData::kMissing:
      case MissingData::kIgnore: ++undetermined; break;
    }
  }
  AlarmState next = s.state;
  if (breaching >= m) {
    next = AlarmState::kAlarm;
  } else if (good > n - m) {
    next = AlarmState::kOk;  // M breaching periods are impossible in this window
  } else if (missing == n && rule.treat_missing_data == MissingData::kMissing) {
    next = AlarmState::kInsufficientData;
  }
  // Otherwise undetermined: the state stays (ignore; or too few real periods to decide).
  std::string reason = std::to_string(breaching) + " of " + std::to_string(n) + " periods " +
                       std::string(ComparisonSymbol(rule.comparison)) + " " + Num(threshold);
  if (in_alarm && rule.clear_threshold) {
    reason += " (clear threshold)";
  }
  auto newest = s.buckets.find(s.newest_period);
  if (newest != s.buckets.end()) {
    reason += ", latest period " + Num(newest->second);
  }
  if (missing > 0) {
    reason += ", " + std::to_string(missing) + " missing (" +
              std::string(MissingDataName(rule.treat_missing_data)) + ")";
  }
  if (next == s.state) {
    return std::nullopt;
  }
  AlarmTransition t{rule.name, host, s.state, next, now, reason,
                    remediating_.count({rule.name, host}) > 0};
  s.state = next;
  s.since = now;
  s.reason = reason;
  return t;
}

std::vector<AlarmTransition> AlarmEngine::Observe(const std::string& host,
                                                  const std::string& series, double value,
                                                  WallTime t) {
  std::vector<AlarmTransition> out;
  auto parsed = ParseSeriesName(series);
  auto rules = rules_by_series_.find(SeriesName(parsed.first, parsed.second));
  if (rules == rules_by_series_.end()) {
    return out;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i : rules->second) {
    const AlarmRule& rule = rules_[i];
    const int64_t k = PeriodIndex(t, rule.period);
    auto [it, created] = series_.try_emplace({i, host});
    Series& s = it->second;
    if (created) {
      s.first_period = k;
      s.newest_period = k;
      s.since = t;
      s.last_eval = t;
    }
    if (k <= s.newest_period - rule.evaluation_periods) {
      continue;  // too late: that period left the window
    }
    auto [b, fresh] = s.buckets.try_emplace(k, value);
    if (!fresh) {
      b->second = Upward(rule.comparison) ? std::max(b->second, value)
                                          : std::min(b->second, value);
    }
    s.first_period = std::min(s.first_period, k);
    s.newest_period = std::max(s.newest_period, k);
    s.last_value = value;
    if (auto tr = Evaluate(i, host, s, t)) {
      out.push_back(std::move(*tr));
    }
  }
  return out;
}

void AlarmEngine::Expect(const std::string& host, const std::string& series, WallTime now) {
  auto parsed = ParseSeriesName(series);
  auto rules = rules_by_series_.find(SeriesName(parsed.first, parsed.second));
  if (rules == rules_by_series_.end()) {
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i : rules->second) {
    // The period `now` falls in is partly gone: judging starts with the next, whole one.
    const int64_t k = PeriodIndex(now, rules_[i].period) + 1;
    auto [it, created] = series_.try_emplace({i, host});
    if (created) {
      it->second.first_period = k;
      it->second.newest_period = k - 1;
      it->second.since = now;
      it->second.last_eval = now;
      it->second.reason = "expected, no datapoint yet";
    }
  }
}

void AlarmEngine::Forget(const std::string& host) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(series_, [&](const auto& entry) { return entry.first.second == host; });
  std::erase_if(remediating_, [&](const auto& key) { return key.second == host; });
}

std::vector<AlarmTransition> AlarmEngine::Tick(WallTime now) {
  std::vector<AlarmTransition> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, s] : series_) {
    if (auto tr = Evaluate(key.first, key.second, s, now)) {
      out.push_back(std::move(*tr));
    }
  }
  return out;
}

void AlarmEngine::SetRemediating(const std::string& rule, const std::string& host,
                                 bool remediating) {
  std::lock_guard<std::mutex> lock(mu_);
  if (remediating) {
    remediating_.insert({rule, host});
  } else {
    remediating_.erase({rule, host});
  }
}

bool AlarmEngine::IsRemediating(const std::string& rule, const std::string& host) const {
  std::lock_guard<std::mutex> lock(mu_);
  return remediating_.count({rule, host}) > 0;
}

AlarmState AlarmEngine::StateOf(const std::string& rule, const std::string& host) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].name == rule) {
      auto it = series_.find({i, host});
      return it == series_.end() ? AlarmState::kInsufficientData : it->second.state;
    }
  }
  return AlarmState::kInsufficientData;
}

std::vector<AlarmStatus> AlarmEngine::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<AlarmStatus> out;
  for (const auto& [key, s] : series_) {
    const std::string& rule = rules_[key.first].name;
    out.push_back(AlarmStatus{rule, key.second, s.state, s.since, s.last_value, s.reason,
                              remediating_.count({rule, key.second}) > 0});
  }
  std::sort(out.begin(), out.end(), [](const AlarmStatus& a, const AlarmStatus& b) {
    return std::tie(a.host, a.rule) < std::tie(b.host, b.rule);
  });
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
