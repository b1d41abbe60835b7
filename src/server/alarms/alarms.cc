#include "server/alarms/alarms.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <mutex>
#include <set>
#include <tuple>

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

namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::string_view ComparisonWords(Comparison c) {
  switch (c) {
    case Comparison::kGreater: return "above";
    case Comparison::kGreaterOrEqual: return "at or above";
    case Comparison::kLess: return "below";
    case Comparison::kLessOrEqual: return "at or below";
  }
  return "?";
}

}  // namespace

std::string DescribeRule(const AlarmRule& r) {
  const bool plain = r.labels.empty();
  const std::string words = std::string(ComparisonWords(r.comparison)) + " " + Num(r.threshold);
  if (r.name == "Disk-Critical-ASG" && plain && r.metric == "disk_used_percent") {
    return "Disk usage " + words + "% on the root volume";
  }
  if (r.name == "Memory-Exhaustion-ASG" && plain && r.metric == "mem_used_percent") {
    return "Memory usage " + words + "%";
  }
  if (r.name == "Nginx-Down-ALB" && plain && r.metric == "unhealthy:web" &&
      r.comparison == Comparison::kGreater && r.threshold == 0) {
    return "Unhealthy hosts in the web target group (nginx not answering)";
  }
  if (r.name == "Host-Unreachable" && plain && r.metric == kHeartbeatSeries &&
      r.comparison == Comparison::kLess && r.threshold == 1 && r.period.count() > 0) {
    return "The host's agent has not reported for " +
           Num(static_cast<double>(r.period.count() * r.datapoints_to_alarm) / 1000) +
           " seconds";
  }
  return SeriesName(r.metric, r.labels) + " " + std::string(ComparisonSymbol(r.comparison)) + " " +
         Num(r.threshold);
}

std::vector<AlarmRule> DefaultAlarmRules() {
  auto fast = [](std::string name, std::string metric, double threshold) {
    AlarmRule r;
    r.name = std::move(name);
    r.metric = std::move(metric);
    r.comparison = Comparison::kGreater;
    r.threshold = threshold;
    r.evaluation_periods = 1;
    r.datapoints_to_alarm = 1;
    r.period = Millis(0);  // the agent interval
    // A silent host is Host-Unreachable's business: its other alarms keep their state.
    r.treat_missing_data = MissingData::kIgnore;
    r.description = DescribeRule(r);
    return r;
  };
  std::vector<AlarmRule> rules = {
      fast("Disk-Critical-ASG", "disk_used_percent", 85),
      fast("Memory-Exhaustion-ASG", "mem_used_percent", 90),
      fast("Nginx-Down-ALB", "unhealthy:web", 0),
  };
  AlarmRule unreachable;
  unreachable.name = "Host-Unreachable";
  unreachable.metric = std::string(kHeartbeatSeries);
  unreachable.comparison = Comparison::kLess;
  unreachable.threshold = 1;
  unreachable.period = Millis(5000);
  unreachable.evaluation_periods = 3;
  unreachable.datapoints_to_alarm = 3;
  unreachable.treat_missing_data = MissingData::kBreaching;
  unreachable.description = DescribeRule(unreachable);
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

}  // namespace

namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int64_t kNoPeriod = std::numeric_limits<int64_t>::min();
constexpr size_t kShardCount = 16;
// A listing copies at most this many series per lock hold.
constexpr size_t kListChunk = 128;

size_t StateSlot(AlarmState s) { return static_cast<size_t>(s); }

}  // namespace

// One (rule, host): the rule's last N periods and its state.
struct AlarmEngine::Series {
  struct Bucket {
    int64_t period = kNoPeriod;
    double value = 0;
  };
  // Period k's aggregate is in ring[k mod N] when its `period` is k; anything else there is an
  // older period that left the window.
  std::vector<Bucket> ring;
  int64_t first_period = 0;  // periods before this one are "not yet", never missing
  int64_t newest_period = 0;
  int64_t window_end = kNoPeriod;  // the newest period of the last evaluation's window
  int64_t due_ms = kNever;         // the queued deadline (Unix ms), kNever: none
  WallTime last_eval;
  uint64_t born_tick = 0;  // the shard's Tick count when the series began
  AlarmState state = AlarmState::kInsufficientData;
  WallTime since;
  double last_value = 0;
  std::string reason = "no evaluation yet";
  bool remediating = false;

  size_t SlotOf(int64_t k) const {
    const auto n = static_cast<int64_t>(ring.size());
    return static_cast<size_t>(((k % n) + n) % n);
  }
  const Bucket* Find(int64_t k) const {
    const Bucket& b = ring[SlotOf(k)];
    return b.period == k ? &b : nullptr;
  }
  Bucket& Slot(int64_t k) { return ring[SlotOf(k)]; }
};

struct AlarmEngine::HostAlarms {
  std::string name;
  std::vector<std::optional<Series>> by_rule;  // indexed by rule; sized once
  // The heartbeat: watched once a heartbeat was seen or expected; the latest such time.
  bool liveness_watched = false;
  WallTime last_heartbeat;
};

struct AlarmEngine::Shard {
  // A deadline: evaluate (rule, host) at due_ms. Superseded when the series' due_ms moved.
  struct Timer {
    int64_t due_ms;
    HostAlarms* host;
    uint32_t rule;
    bool operator>(const Timer& o) const { return due_ms > o.due_ms; }
  };
  // (host, rule's position in name order): the listing order.
  struct Key {
    std::string_view host;
    uint32_t rank;
    bool operator<(const Key& o) const { return host != o.host ? host < o.host : rank < o.rank; }
  };

  mutable std::mutex mu;
  // Guarded by mu: the hosts (by name, and in name order), the non-OK states in listing order
  // (by_state[INSUFFICIENT_DATA], by_state[ALARM]; the OK slot stays empty), the deadlines
  // (a min-heap) and the remediating holds (rule, host).
  std::unordered_map<std::string, std::unique_ptr<HostAlarms>, StringHash, std::equal_to<>> hosts;
  std::map<std::string_view, HostAlarms*> ordered;
  std::set<Key> by_state[3];
  std::vector<Timer> timers;
  std::set<std::pair<std::string, std::string>> remediating;
  uint64_t ticks = 0;  // how many Ticks ran
  // (tick number, time) of the Ticks no later Tick passed in time: the times fall from front to
  // back, so the latest time of the Ticks after number b is the first entry numbered above b.
  // One entry while the clock runs forward.
  std::vector<std::pair<uint64_t, WallTime>> tick_maxima;

  // The latest time of a Tick numbered above `born`, if any.
  std::optional<WallTime> LatestTickSince(uint64_t born) const {
    auto it = std::upper_bound(tick_maxima.begin(), tick_maxima.end(), born,
                               [](uint64_t b, const auto& e) { return b < e.first; });
    return it == tick_maxima.end() ? std::nullopt : std::optional<WallTime>(it->second);
  }
};

AlarmEngine::AlarmEngine(std::vector<AlarmRule> rules, Millis default_period)
    : rules_(std::move(rules)),
      silent_after_(3 * std::max(default_period, Millis(100))),
      shards_(std::make_unique<Shard[]>(kShardCount)) {
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].period.count() <= 0) {
      rules_[i].period = std::max(default_period, Millis(100));
    }
    rules_by_series_[SeriesName(rules_[i].metric, rules_[i].labels)].push_back(
        static_cast<uint32_t>(i));
    if (!rules_[i].labels.empty()) {
      labelled_metrics_.insert(rules_[i].metric);
    }
  }
  by_rank_.resize(rules_.size());
  for (uint32_t i = 0; i < rules_.size(); ++i) {
    by_rank_[i] = i;
  }
  std::stable_sort(by_rank_.begin(), by_rank_.end(),
                   [&](uint32_t a, uint32_t b) { return rules_[a].name < rules_[b].name; });
  rank_.resize(rules_.size());
  for (uint32_t r = 0; r < by_rank_.size(); ++r) {
    rank_[by_rank_[r]] = r;
  }
  rule_counts_ = std::make_unique<std::atomic<int64_t>[]>(rules_.size() * 3);
}

AlarmEngine::~AlarmEngine() = default;

AlarmEngine::Shard& AlarmEngine::ShardOf(std::string_view host) const {
  return shards_[std::hash<std::string_view>{}(host) % kShardCount];
}

const std::vector<uint32_t>* AlarmEngine::RulesOf(std::string_view series) const {
  if (auto it = rules_by_series_.find(series); it != rules_by_series_.end()) {
    return &it->second;
  }
  // The agent writes labels in key order, as SeriesName does; only a labelled series of a metric
  // some rule watches with labels needs the slow path (its labels might be out of order).
  const size_t brace = series.find('{');
  if (brace == std::string_view::npos || !labelled_metrics_.contains(series.substr(0, brace))) {
    return nullptr;
  }
  auto parsed = ParseSeriesName(series);
  auto it = rules_by_series_.find(SeriesName(parsed.first, parsed.second));
  return it == rules_by_series_.end() ? nullptr : &it->second;
}

std::optional<uint32_t> AlarmEngine::RuleIndex(std::string_view name) const {
  for (uint32_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].name == name) {
      return i;
    }
  }
  return std::nullopt;
}

AlarmEngine::HostAlarms* AlarmEngine::FindHost(Shard& shard, std::string_view host, bool create) {
  if (auto it = shard.hosts.find(host); it != shard.hosts.end()) {
    return it->second.get();
  }
  if (!create) {
    return nullptr;
  }
  auto entry = std::make_unique<HostAlarms>();
  entry->name = std::string(host);
  entry->by_rule.resize(rules_.size());
  HostAlarms* raw = entry.get();
  shard.ordered.emplace(raw->name, raw);
  shard.hosts.emplace(raw->name, std::move(entry));
  return raw;
}

AlarmEngine::Series& AlarmEngine::MakeSeries(Shard& shard, HostAlarms& host, uint32_t rule_index,
                                             WallTime t) {
  Series& s = host.by_rule[rule_index].emplace();
  s.ring.resize(static_cast<size_t>(rules_[rule_index].evaluation_periods));
  s.since = t;
  s.last_eval = t;
  s.born_tick = shard.ticks;
  s.remediating = shard.remediating.count({rules_[rule_index].name, host.name}) > 0;
  shard.by_state[StateSlot(AlarmState::kInsufficientData)].insert({host.name, rank_[rule_index]});
  counts_[StateSlot(AlarmState::kInsufficientData)].fetch_add(1, std::memory_order_relaxed);
  rule_counts_[rule_index * 3 + StateSlot(AlarmState::kInsufficientData)].fetch_add(
      1, std::memory_order_relaxed);
  return s;
}

void AlarmEngine::SetState(Shard& shard, HostAlarms& host, uint32_t rule_index, AlarmState from,
                           AlarmState to) {
  const Shard::Key key{host.name, rank_[rule_index]};
  if (from != AlarmState::kOk) {
    shard.by_state[StateSlot(from)].erase(key);
  }
  if (to != AlarmState::kOk) {
    shard.by_state[StateSlot(to)].insert(key);
  }
  counts_[StateSlot(from)].fetch_sub(1, std::memory_order_relaxed);
  counts_[StateSlot(to)].fetch_add(1, std::memory_order_relaxed);
  rule_counts_[rule_index * 3 + StateSlot(from)].fetch_sub(1, std::memory_order_relaxed);
  rule_counts_[rule_index * 3 + StateSlot(to)].fetch_add(1, std::memory_order_relaxed);
}

std::optional<AlarmTransition> AlarmEngine::Evaluate(Shard& shard, HostAlarms& host,
                                                     uint32_t rule_index, WallTime now) {
  const AlarmRule& rule = rules_[rule_index];
  Series& s = *host.by_rule[rule_index];
  evaluations_.fetch_add(1, std::memory_order_relaxed);
  // Time never runs backwards for a series: not behind its last evaluation, nor behind a Tick
  // that ran since it began (each Tick used to evaluate every series, and this keeps that).
  now = std::max(now, s.last_eval);
  if (auto tick = shard.LatestTickSince(s.born_tick)) {
    now = std::max(now, *tick);
  }
  s.last_eval = now;
  const int n = rule.evaluation_periods;
  const int m = rule.datapoints_to_alarm;
  const int64_t closed = PeriodIndex(now - Grace(rule.period), rule.period) - 1;
  const int64_t last = std::max(closed, s.newest_period);
  const int64_t first = last - n + 1;
  s.window_end = last;

  const bool in_alarm = s.state == AlarmState::kAlarm;
  const double threshold =
      in_alarm && rule.clear_threshold ? *rule.clear_threshold : rule.threshold;
  int breaching = 0, good = 0, missing = 0;
  for (int64_t k = std::max(first, s.first_period); k <= last; ++k) {
    // Periods before the series began are "no data yet": not missing, never counted.
    if (const Series::Bucket* b = s.Find(k)) {
      (Breaches(rule.comparison, threshold, b->value) ? breaching : good) += 1;
      continue;
    }
    ++missing;
    switch (rule.treat_missing_data) {
      case MissingData::kBreaching: ++breaching; break;
      case MissingData::kNotBreaching: ++good; break;
      case MissingData::kMissing:
      case MissingData::kIgnore:
        break;
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
  // A silent host is Host-Unreachable's alarm alone (one dead host, one incident).
  const bool held =
      next == AlarmState::kAlarm && rule.metric != kHeartbeatSeries && Silent(host, now);
  if (held) {
    next = AlarmState::kInsufficientData;
  }
  // Otherwise undetermined: the state stays (ignore; or too few real periods to decide).
  if (next == s.state) {
    return std::nullopt;
  }
  // A transition: only now is the reason worth its formatting.
  std::string reason = std::to_string(breaching) + " of " + std::to_string(n) + " periods " +
                       std::string(ComparisonSymbol(rule.comparison)) + " " + Num(threshold);
  if (in_alarm && rule.clear_threshold) {
    reason += " (clear threshold)";
  }
  if (s.newest_period >= first) {
    if (const Series::Bucket* b = s.Find(s.newest_period)) {
      reason += ", latest period " + Num(b->value);
    }
  }
  if (missing > 0) {
    reason += ", " + std::to_string(missing) + " missing (" +
              std::string(MissingDataName(rule.treat_missing_data)) + ")";
  }
  if (held) {
    reason += "; held: no report from the host for " +
              Num(static_cast<double>(ToUnixMillis(now) - ToUnixMillis(host.last_heartbeat)) /
                  1000) +
              " s";
  }
  AlarmTransition t{rule.name, host.name, s.state, next, now, reason, s.remediating};
  SetState(shard, host, rule_index, s.state, next);
  s.state = next;
  s.since = now;
  s.reason = std::move(reason);
  return t;
}

// When time alone can next change a (rule, host), from its last evaluation. As the window slides
// over periods without data, B and G (docs/ALARMS.md) can only shrink, except that a missing
// period adds to B under `breaching` and to G under `notBreaching`. So: `ignore` never changes
// on time; `missing` only when the whole window is missing (to INSUFFICIENT_DATA); `breaching`
// outside ALARM and `notBreaching` outside OK at each period that closes.
void AlarmEngine::Arm(Shard& shard, HostAlarms& host, uint32_t rule_index) {
  const AlarmRule& rule = rules_[rule_index];
  Series& s = *host.by_rule[rule_index];
  const int64_t p = rule.period.count();
  const int64_t grace = Grace(rule.period).count();
  int64_t due = kNever;
  switch (rule.treat_missing_data) {
    case MissingData::kIgnore:
      break;
    case MissingData::kMissing:
      if (s.state != AlarmState::kInsufficientData) {
        // The window [last-N+1, last] is all missing once last-N+1 > newest, and period `last`
        // is judged at its end plus the grace.
        due = (s.newest_period + rule.evaluation_periods + 1) * p + grace;
      }
      break;
    case MissingData::kBreaching:
      if (s.state != AlarmState::kAlarm) {
        due = (s.window_end + 2) * p + grace;
      }
      break;
    case MissingData::kNotBreaching:
      if (s.state != AlarmState::kOk) {
        due = (s.window_end + 2) * p + grace;
      }
      break;
  }
  if (due == s.due_ms) {
    return;  // already queued (or nothing to queue)
  }
  s.due_ms = due;
  if (due != kNever) {
    shard.timers.push_back({due, &host, rule_index});
    std::push_heap(shard.timers.begin(), shard.timers.end(), std::greater<>());
  }
}

std::vector<AlarmTransition> AlarmEngine::Observe(std::string_view host, std::string_view series,
                                                  double value, WallTime t) {
  std::vector<AlarmTransition> out;
  const std::vector<uint32_t>* rules = RulesOf(series);
  if (rules == nullptr) {
    return out;
  }
  Shard& shard = ShardOf(host);
  std::lock_guard<std::mutex> lock(shard.mu);
  HostAlarms& h = *FindHost(shard, host, /*create=*/true);
  if (series == kHeartbeatSeries) {
    h.last_heartbeat = h.liveness_watched ? std::max(h.last_heartbeat, t) : t;
    h.liveness_watched = true;
  }
  for (uint32_t i : *rules) {
    const AlarmRule& rule = rules_[i];
    const int64_t k = PeriodIndex(t, rule.period);
    Series* s = h.by_rule[i] ? &*h.by_rule[i] : nullptr;
    if (s == nullptr) {
      s = &MakeSeries(shard, h, i, t);
      s->first_period = k;
      s->newest_period = k;
    }
    if (k <= s->newest_period - rule.evaluation_periods) {
      continue;  // too late: that period left the window
    }
    Series::Bucket& b = s->Slot(k);
    if (b.period != k) {
      b = {k, value};
    } else {
      b.value = Upward(rule.comparison) ? std::max(b.value, value) : std::min(b.value, value);
    }
    s->first_period = std::min(s->first_period, k);
    s->newest_period = std::max(s->newest_period, k);
    s->last_value = value;
    if (auto tr = Evaluate(shard, h, i, t)) {
      out.push_back(std::move(*tr));
    }
    Arm(shard, h, i);
  }
  return out;
}

void AlarmEngine::Expect(std::string_view host, std::string_view series, WallTime now) {
  const std::vector<uint32_t>* rules = RulesOf(series);
  if (rules == nullptr) {
    return;
  }
  Shard& shard = ShardOf(host);
  std::lock_guard<std::mutex> lock(shard.mu);
  HostAlarms& h = *FindHost(shard, host, /*create=*/true);
  if (series == kHeartbeatSeries && !h.liveness_watched) {
    h.liveness_watched = true;
    h.last_heartbeat = now;  // silent from now on until it reports
  }
  for (uint32_t i : *rules) {
    if (h.by_rule[i]) {
      continue;
    }
    // The period `now` falls in is partly gone: judging starts with the next, whole one.
    const int64_t k = PeriodIndex(now, rules_[i].period) + 1;
    Series& s = MakeSeries(shard, h, i, now);
    s.first_period = k;
    s.newest_period = k - 1;
    s.window_end = k - 1;
    s.reason = "expected, no datapoint yet";
    Arm(shard, h, i);
  }
}

bool AlarmEngine::Seed(std::string_view host, const std::string& rule, AlarmState state,
                       WallTime since, std::string reason, WallTime now) {
  const std::optional<uint32_t> i = RuleIndex(rule);
  if (!i) {
    return false;
  }
  Shard& shard = ShardOf(host);
  std::lock_guard<std::mutex> lock(shard.mu);
  HostAlarms& h = *FindHost(shard, host, /*create=*/true);
  if (h.by_rule[*i]) {
    return false;
  }
  // No periods yet: the first datapoint's period starts the window (as Observe's would), and
  // no deadline is armed until then.
  const int64_t k = PeriodIndex(now, rules_[*i].period);
  Series& s = MakeSeries(shard, h, *i, now);
  s.first_period = k + 1;
  s.newest_period = k;
  s.window_end = k;
  if (state != AlarmState::kInsufficientData) {
    SetState(shard, h, *i, AlarmState::kInsufficientData, state);
  }
  s.state = state;
  s.since = since;
  s.reason = std::move(reason);
  return true;
}

void AlarmEngine::Forget(const std::string& host) {
  Shard& shard = ShardOf(host);
  std::lock_guard<std::mutex> lock(shard.mu);
  std::erase_if(shard.remediating, [&](const auto& key) { return key.second == host; });
  auto it = shard.hosts.find(host);
  if (it == shard.hosts.end()) {
    return;
  }
  HostAlarms* h = it->second.get();
  for (uint32_t i = 0; i < h->by_rule.size(); ++i) {
    if (!h->by_rule[i]) {
      continue;
    }
    const AlarmState st = h->by_rule[i]->state;
    shard.by_state[StateSlot(st)].erase({h->name, rank_[i]});
    counts_[StateSlot(st)].fetch_sub(1, std::memory_order_relaxed);
    rule_counts_[i * 3 + StateSlot(st)].fetch_sub(1, std::memory_order_relaxed);
  }
  std::erase_if(shard.timers, [&](const Shard::Timer& t) { return t.host == h; });
  std::make_heap(shard.timers.begin(), shard.timers.end(), std::greater<>());
  shard.ordered.erase(h->name);
  shard.hosts.erase(it);
}

std::vector<AlarmTransition> AlarmEngine::Tick(WallTime now) {
  std::vector<AlarmTransition> out;
  const int64_t now_ms = ToUnixMillis(now);
  std::vector<Shard::Timer> due;
  for (size_t i = 0; i < kShardCount; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard<std::mutex> lock(shard.mu);
    ++shard.ticks;
    while (!shard.tick_maxima.empty() && shard.tick_maxima.back().second <= now) {
      shard.tick_maxima.pop_back();
    }
    shard.tick_maxima.emplace_back(shard.ticks, now);
    due.clear();
    while (!shard.timers.empty() && shard.timers.front().due_ms <= now_ms) {
      std::pop_heap(shard.timers.begin(), shard.timers.end(), std::greater<>());
      due.push_back(shard.timers.back());
      shard.timers.pop_back();
    }
    for (const Shard::Timer& t : due) {
      std::optional<Series>& s = t.host->by_rule[t.rule];
      if (!s || s->due_ms != t.due_ms) {
        continue;  // superseded by a later deadline
      }
      s->due_ms = kNever;
      tick_evaluations_.fetch_add(1, std::memory_order_relaxed);
      if (auto tr = Evaluate(shard, *t.host, t.rule, now)) {
        const bool unreachable =
            tr->to == AlarmState::kAlarm && rules_[t.rule].metric == kHeartbeatSeries;
        out.push_back(std::move(*tr));
        if (unreachable) {
          HoldSilentHost(shard, *t.host, now, out);
        }
      }
      Arm(shard, *t.host, t.rule);
    }
  }
  return out;
}

bool AlarmEngine::Silent(const HostAlarms& host, WallTime now) const {
  return host.liveness_watched && now - host.last_heartbeat > silent_after_;
}

void AlarmEngine::HoldSilentHost(Shard& shard, HostAlarms& host, WallTime now,
                                 std::vector<AlarmTransition>& out) {
  for (uint32_t i = 0; i < host.by_rule.size(); ++i) {
    std::optional<Series>& s = host.by_rule[i];
    if (!s || s->state != AlarmState::kAlarm || rules_[i].metric == kHeartbeatSeries) {
      continue;
    }
    std::string reason = "held: the host is unreachable (no report for " +
                         Num(static_cast<double>(ToUnixMillis(now) -
                                                 ToUnixMillis(host.last_heartbeat)) /
                             1000) +
                         " s)";
    out.push_back(AlarmTransition{rules_[i].name, host.name, s->state,
                                  AlarmState::kInsufficientData, now, reason, s->remediating});
    SetState(shard, host, i, s->state, AlarmState::kInsufficientData);
    s->state = AlarmState::kInsufficientData;
    s->since = now;
    s->reason = std::move(reason);
    Arm(shard, host, i);
  }
}

void AlarmEngine::SetRemediating(const std::string& rule, const std::string& host,
                                 bool remediating) {
  Shard& shard = ShardOf(host);
  std::lock_guard<std::mutex> lock(shard.mu);
  if (remediating) {
    shard.remediating.insert({rule, host});
  } else {
    shard.remediating.erase({rule, host});
  }
  auto i = RuleIndex(rule);
  HostAlarms* h = FindHost(shard, host, /*create=*/false);
  if (i && h != nullptr && h->by_rule[*i]) {
    h->by_rule[*i]->remediating = remediating;
  }
}

bool AlarmEngine::IsRemediating(const std::string& rule, const std::string& host) const {
  Shard& shard = ShardOf(host);
  std::lock_guard<std::mutex> lock(shard.mu);
  return shard.remediating.count({rule, host}) > 0;
}

AlarmState AlarmEngine::StateOf(const std::string& rule, const std::string& host) const {
  auto i = RuleIndex(rule);
  if (!i) {
    return AlarmState::kInsufficientData;
  }
  Shard& shard = ShardOf(host);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.hosts.find(host);
  if (it == shard.hosts.end() || !it->second->by_rule[*i]) {
    return AlarmState::kInsufficientData;
  }
  return it->second->by_rule[*i]->state;
}

std::vector<AlarmStatus> AlarmEngine::All() const { return List(AlarmQuery{}).alarms; }

// Walks one shard in (host, rule) order from the query's cursor, kListChunk series per lock hold,
// until `want` states matched or the shard (or the host filter's range) ends.
void AlarmEngine::CollectShard(const Shard& shard, const AlarmQuery& q,
                               std::optional<uint32_t> rule, size_t want,
                               std::vector<AlarmStatus>& out) const {
  // The next key to look at: (host, rank) with host == pos_host and rank >= pos_rank, or any
  // later host.
  std::string pos_host = q.after_host;
  uint32_t pos_rank = 0;
  if (!q.after_host.empty()) {
    pos_rank = static_cast<uint32_t>(by_rank_.size());
    for (uint32_t r = 0; r < by_rank_.size(); ++r) {
      if (rules_[by_rank_[r]].name > q.after_rule) {
        pos_rank = r;
        break;
      }
    }
  }
  const std::string& range = !q.host.empty() ? q.host : q.host_prefix;
  if (!range.empty() && pos_host < range) {
    pos_host = range;
    pos_rank = 0;
  }
  auto in_range = [&](std::string_view host) {
    return !q.host.empty() ? host == q.host : host.starts_with(q.host_prefix);
  };
  const std::set<Shard::Key>* index =
      q.state && *q.state != AlarmState::kOk ? &shard.by_state[StateSlot(*q.state)] : nullptr;
  size_t matched = 0;
  bool done = false;
  while (!done && matched < want) {
    std::lock_guard<std::mutex> lock(shard.mu);
    size_t budget = kListChunk;
    auto take = [&](const HostAlarms& h, uint32_t r) {
      const uint32_t i = by_rank_[r];
      const Series& s = *h.by_rule[i];
      out.push_back(AlarmStatus{rules_[i].name, h.name, s.state, s.since, s.last_value, s.reason,
                                s.remediating});
      ++matched;
    };
    if (index != nullptr) {
      auto it = index->lower_bound({pos_host, pos_rank});
      for (; it != index->end() && budget > 0 && matched < want; ++it, --budget) {
        if (!in_range(it->host)) {
          break;
        }
        if (!rule || rank_[*rule] == it->rank) {
          take(*shard.ordered.at(it->host), it->rank);
        }
      }
      if (it == index->end() || (budget > 0 && matched < want)) {
        done = true;  // the index ended, or the host range did
      } else {
        pos_host = std::string(it->host);
        pos_rank = it->rank;
      }
      continue;
    }
    auto it = shard.ordered.lower_bound(pos_host);
    uint32_t r = it != shard.ordered.end() && it->first == pos_host ? pos_rank : 0;
    bool stop = false;
    for (; it != shard.ordered.end() && budget > 0 && matched < want; ++it, r = 0) {
      if (!in_range(it->first)) {
        stop = true;
        break;
      }
      const HostAlarms& h = *it->second;
      for (; r < by_rank_.size() && budget > 0 && matched < want; ++r) {
        const std::optional<Series>& s = h.by_rule[by_rank_[r]];
        if (!s) {
          continue;
        }
        --budget;
        if ((!rule || *rule == by_rank_[r]) && (!q.state || *q.state == s->state)) {
          take(h, r);
        }
      }
      if (r < by_rank_.size()) {
        break;  // out of budget (or enough) inside this host: resume at (host, r)
      }
    }
    if (stop || it == shard.ordered.end()) {
      done = true;
    } else {
      pos_host = it->first;
      pos_rank = r;
    }
  }
}

AlarmPage AlarmEngine::List(const AlarmQuery& q) const {
  AlarmPage page;
  std::optional<uint32_t> rule;
  if (!q.alarm.empty()) {
    rule = RuleIndex(q.alarm);
    if (!rule) {
      return page;
    }
  }
  // Each shard's first limit+1 matches hold the first limit+1 overall.
  const size_t want = q.limit == SIZE_MAX ? SIZE_MAX : q.limit + 1;
  if (!q.host.empty()) {
    CollectShard(ShardOf(q.host), q, rule, want, page.alarms);
  } else {
    for (size_t i = 0; i < kShardCount; ++i) {
      CollectShard(shards_[i], q, rule, want, page.alarms);
    }
  }
  std::sort(page.alarms.begin(), page.alarms.end(), [](const AlarmStatus& a, const AlarmStatus& b) {
    return std::tie(a.host, a.rule) < std::tie(b.host, b.rule);
  });
  if (page.alarms.size() > q.limit) {
    page.alarms.resize(q.limit);
    page.more = true;
  }
  return page;
}

AlarmCounts AlarmEngine::Counts() const {
  return {counts_[StateSlot(AlarmState::kOk)].load(std::memory_order_relaxed),
          counts_[StateSlot(AlarmState::kAlarm)].load(std::memory_order_relaxed),
          counts_[StateSlot(AlarmState::kInsufficientData)].load(std::memory_order_relaxed)};
}

AlarmCounts AlarmEngine::CountsOf(std::string_view rule) const {
  auto i = RuleIndex(rule);
  if (!i) {
    return {};
  }
  auto at = [&](AlarmState s) {
    return rule_counts_[*i * 3 + StateSlot(s)].load(std::memory_order_relaxed);
  };
  return {at(AlarmState::kOk), at(AlarmState::kAlarm), at(AlarmState::kInsufficientData)};
}

AlarmEngineStats AlarmEngine::stats() const {
  AlarmEngineStats st;
  st.evaluations = evaluations_.load(std::memory_order_relaxed);
  st.tick_evaluations = tick_evaluations_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kShardCount; ++i) {
    std::lock_guard<std::mutex> lock(shards_[i].mu);
    st.timers += shards_[i].timers.size();
  }
  const AlarmCounts c = Counts();
  st.series = static_cast<uint64_t>(c.ok + c.alarm + c.insufficient_data);
  return st;
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
