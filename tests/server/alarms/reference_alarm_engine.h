#pragma once

// The alarm engine as it was before evaluation became deadline-driven (issue 13): one map of
// every (rule, host) series, Tick() re-evaluating all of them, a reason built on every
// evaluation. Kept as the reference model for the differential test: the new engine must give
// the same transitions (rule, host, from, to, at, reason) and the same states for any sequence of
// datapoints, expectations and ticks. Test-only; no locking.

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server/alarms/alarms.h"

namespace medic::server::reference_model {

class ReferenceAlarmEngine {
 public:
  ReferenceAlarmEngine(std::vector<AlarmRule> rules, Millis default_period)
      : rules_(std::move(rules)) {
    for (size_t i = 0; i < rules_.size(); ++i) {
      if (rules_[i].period.count() <= 0) {
        rules_[i].period = std::max(default_period, Millis(100));
      }
      rules_by_series_[SeriesName(rules_[i].metric, rules_[i].labels)].push_back(i);
    }
  }

  std::vector<AlarmTransition> Observe(const std::string& host, const std::string& series,
                                       double value, WallTime t) {
    std::vector<AlarmTransition> out;
    auto parsed = ParseSeriesName(series);
    auto rules = rules_by_series_.find(SeriesName(parsed.first, parsed.second));
    if (rules == rules_by_series_.end()) {
      return out;
    }
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
        continue;
      }
      auto [b, fresh] = s.buckets.try_emplace(k, value);
      if (!fresh) {
        const bool up = rule.comparison == Comparison::kGreater ||
                        rule.comparison == Comparison::kGreaterOrEqual;
        b->second = up ? std::max(b->second, value) : std::min(b->second, value);
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

  void Expect(const std::string& host, const std::string& series, WallTime now) {
    auto parsed = ParseSeriesName(series);
    auto rules = rules_by_series_.find(SeriesName(parsed.first, parsed.second));
    if (rules == rules_by_series_.end()) {
      return;
    }
    for (size_t i : rules->second) {
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

  void Forget(const std::string& host) {
    std::erase_if(series_, [&](const auto& entry) { return entry.first.second == host; });
  }

  std::vector<AlarmTransition> Tick(WallTime now) {
    std::vector<AlarmTransition> out;
    for (auto& [key, s] : series_) {
      if (auto tr = Evaluate(key.first, key.second, s, now)) {
        out.push_back(std::move(*tr));
      }
    }
    return out;
  }

  std::vector<AlarmStatus> All() const {
    std::vector<AlarmStatus> out;
    for (const auto& [key, s] : series_) {
      out.push_back(AlarmStatus{rules_[key.first].name, key.second, s.state, s.since, s.last_value,
                                s.reason, false});
    }
    std::sort(out.begin(), out.end(), [](const AlarmStatus& a, const AlarmStatus& b) {
      return std::tie(a.host, a.rule) < std::tie(b.host, b.rule);
    });
    return out;
  }

 private:
  struct Series {
    std::map<int64_t, double> buckets;
    int64_t first_period = 0;
    int64_t newest_period = 0;
    WallTime last_eval;
    AlarmState state = AlarmState::kInsufficientData;
    WallTime since;
    double last_value = 0;
    std::string reason = "no evaluation yet";
  };

  static int64_t PeriodIndex(WallTime t, Millis period) {
    const int64_t ms = ToUnixMillis(t);
    const int64_t p = period.count();
    return ms >= 0 ? ms / p : -((-ms + p - 1) / p);
  }
  static Millis Grace(Millis period) { return std::min(period / 10, Millis(500)); }
  static std::string Num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", v);
    return buf;
  }

  std::optional<AlarmTransition> Evaluate(size_t rule_index, const std::string& host, Series& s,
                                          WallTime now) {
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
    int breaching = 0, good = 0, missing = 0;
    for (int64_t k = first; k <= last; ++k) {
      if (k < s.first_period) {
        continue;
      }
      auto it = s.buckets.find(k);
      if (it != s.buckets.end()) {
        (Breaches(rule.comparison, threshold, it->second) ? breaching : good) += 1;
        continue;
      }
      ++missing;
      if (rule.treat_missing_data == MissingData::kBreaching) {
        ++breaching;
      } else if (rule.treat_missing_data == MissingData::kNotBreaching) {
        ++good;
      }
    }
    AlarmState next = s.state;
    if (breaching >= m) {
      next = AlarmState::kAlarm;
    } else if (good > n - m) {
      next = AlarmState::kOk;
    } else if (missing == n && rule.treat_missing_data == MissingData::kMissing) {
      next = AlarmState::kInsufficientData;
    }
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
    AlarmTransition t{rule.name, host, s.state, next, now, reason, false};
    s.state = next;
    s.since = now;
    s.reason = reason;
    return t;
  }

  std::vector<AlarmRule> rules_;
  std::map<std::string, std::vector<size_t>> rules_by_series_;
  std::map<std::pair<size_t, std::string>, Series> series_;
};

}  // namespace medic::server::reference_model
