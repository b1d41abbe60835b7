#pragma once

// The alarm engine: per (rule, host) state OK / ALARM / INSUFFICIENT_DATA, "M out of N periods"
// like the cloud alarms it replaces, with missing-data treatment and an optional clear threshold
// (hysteresis). Pure: Observe() takes a datapoint and its time, Tick() takes the time; both
// return the transitions they cause. No I/O, no clock. Thread-safe. See docs/ALARMS.md
// ("Evaluation" and "How the engine evaluates").

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
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

// The series every agent report carries (1 per report): the host's liveness. Host-Unreachable
// watches it; while it is silent, the host's other rules are held out of ALARM (AlarmEngine).
inline constexpr std::string_view kHeartbeatSeries = "heartbeat";

// The alarms of the reference system under their exact names (period = the agent interval,
// M = N = 1, missing data ignored), plus Host-Unreachable (heartbeat < 1 for 3 of 3 periods of
// 5 s, missing data breaching).
std::vector<AlarmRule> DefaultAlarmRules();

// The description a rule gets when its config gives none, following its fields: the built-in
// rules' wording with the threshold as configured ("Disk usage above 80% on the root volume"),
// else "<series> <comparison> <threshold>". ParseAlarmsYaml keeps a built-in rule's description
// in step with an overridden threshold unless the config sets `description` itself.
std::string DescribeRule(const AlarmRule& rule);

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
  // Where the state came from: "" for this engine; "alertmanager", "sns" for an external alarm
  // (server/ingest/), published through the same way.
  std::string source;
};

struct AlarmStatus {
  std::string rule;
  std::string host;
  AlarmState state;
  WallTime since;  // the last transition (or when the series began)
  double last_value;
  std::string reason;  // the last transition's (built only on a transition)
  bool remediating = false;
};

// Which alarm states AlarmEngine::List returns, in (host, rule) order.
struct AlarmQuery {
  std::optional<AlarmState> state;  // only this state; none: every state
  std::string host;                 // only this host; empty: every host
  std::string host_prefix;          // only hosts whose name starts with this; empty: every host
  std::string alarm;                // only this rule (by name); empty: every rule
  // The cursor: only (host, rule) pairs after (after_host, after_rule) in (host, rule) order.
  // Empty after_host: from the start.
  std::string after_host;
  std::string after_rule;
  size_t limit = SIZE_MAX;  // at most this many
};

struct AlarmPage {
  std::vector<AlarmStatus> alarms;
  bool more = false;  // more states match after the last one (List with the cursor moved on)
};

// Counts kept up to date on every change (no recount): the (rule, host) pairs with a state.
struct AlarmCounts {
  int64_t ok = 0;
  int64_t alarm = 0;
  int64_t insufficient_data = 0;
};

struct AlarmEngineStats {
  uint64_t evaluations = 0;       // every evaluation of a (rule, host), by Observe and by Tick
  uint64_t tick_evaluations = 0;  // those Tick ran: a deadline was due
  uint64_t series = 0;            // (rule, host) pairs with a state
  uint64_t timers = 0;            // deadline entries queued (superseded ones included)
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

// One dead host, one alarm: a host whose heartbeat is watched (a report seen, or Expect) and
// silent for silent_after() (three agent intervals) has its other rules held out of ALARM: a
// state that would become ALARM becomes INSUFFICIENT_DATA instead, with a reason saying so, and
// when the heartbeat rule itself goes to ALARM (Host-Unreachable), the host's other ALARM states
// go to INSUFFICIENT_DATA. The next datapoint after the host reports again is judged as usual.
//
// Evaluation is driven by datapoints and deadlines only: Observe evaluates the rules on the
// datapoint's series for that host; every (rule, host) that time alone can change (a period that
// closes missing under `breaching` / `notBreaching`, a window gone all missing under `missing`)
// has a deadline in a min-heap, and Tick evaluates only those due. A Tick with nothing due
// evaluates nothing. States live in shards by host (one mutex each, held for one host's work or
// a bounded chunk of a listing); counts by state are kept on every transition.
class AlarmEngine : public AlarmStateView {
 public:
  // Rules with period 0 use `default_period` (the agent interval).
  explicit AlarmEngine(std::vector<AlarmRule> rules, Millis default_period = Millis(1000));
  ~AlarmEngine() override;

  // Feeds one datapoint of `series` ("disk_used_percent", "disk_used_percent{mount=\"/x\"}")
  // for `host` at time t, evaluates every rule on that series at t, returns the state changes.
  // A (rule, host) has no state until its first datapoint.
  std::vector<AlarmTransition> Observe(std::string_view host, std::string_view series, double value,
                                       WallTime t);

  // Starts watching `series` of `host` without a datapoint: every rule on that series gets a
  // state (INSUFFICIENT_DATA) from the period after `now`'s, so periods that then close empty
  // count as missing. The server expects a heartbeat from every host it knew before a restart:
  // one that never reports again raises Host-Unreachable. No-op where a state exists.
  void Expect(std::string_view host, std::string_view series, WallTime now);

  // Several servers on one store: a host that moved here from another server (agent failover)
  // takes its state along. Gives (rule, host) the state `state` since `since`, as if this engine
  // had judged it, without a transition; the first datapoint (at or after `now`) is judged
  // against it (ALARM stays ALARM without a new transition; an OK host does not "recover" from
  // INSUFFICIENT_DATA). No-op (false) where the pair has a state already or `rule` is unknown.
  bool Seed(std::string_view host, const std::string& rule, AlarmState state, WallTime since,
            std::string reason, WallTime now);

  // Drops every state of `host` (a host removed from the fleet): no alarm is judged for it until
  // it reports again.
  void Forget(const std::string& host);

  // Evaluates the (rule, host) pairs whose deadline is due at `now`: periods that closed without
  // a datapoint count as missing. Call periodically (the server does every 100 ms).
  std::vector<AlarmTransition> Tick(WallTime now);

  // The incident manager holds (rule, host) while a remediation is in flight: transitions are
  // still computed and reported, flagged `remediating`, so the caller opens no new incident.
  void SetRemediating(const std::string& rule, const std::string& host,
                      bool remediating) override;
  bool IsRemediating(const std::string& rule, const std::string& host) const;

  AlarmState StateOf(const std::string& rule, const std::string& host) const override;
  // Every state, in (host, rule) order: List({}).alarms.
  std::vector<AlarmStatus> All() const;
  // The states `query` selects, in (host, rule) order. Copies in bounded chunks: never holds a
  // shard's lock for more than a few hundred series.
  AlarmPage List(const AlarmQuery& query) const;
  AlarmCounts Counts() const;
  // The counts of one rule; all zero for a name that is not a rule.
  AlarmCounts CountsOf(std::string_view rule) const;
  AlarmEngineStats stats() const;
  // How long a host's heartbeat may be silent before its other rules are held out of ALARM.
  Millis silent_after() const { return silent_after_; }
  const std::vector<AlarmRule>& rules() const { return rules_; }
  const AlarmRule* FindRule(const std::string& name) const;

 private:
  struct Shard;
  struct HostAlarms;
  struct Series;

  // REQUIRES: shard.mu held. Evaluates one (rule, host) at `now`; keeps counts, the state index
  // and the deadline up to date.
  std::optional<AlarmTransition> Evaluate(Shard& shard, HostAlarms& host, uint32_t rule_index,
                                          WallTime now);
  // REQUIRES: shard.mu held. The host reported nothing for silent_after_ by `now`.
  bool Silent(const HostAlarms& host, WallTime now) const;
  // REQUIRES: shard.mu held. The host's heartbeat rule went to ALARM: its other ALARM states
  // become INSUFFICIENT_DATA; their transitions are appended to `out`.
  void HoldSilentHost(Shard& shard, HostAlarms& host, WallTime now,
                      std::vector<AlarmTransition>& out);
  // REQUIRES: shard.mu held. Queues the (rule, host)'s next deadline, if time can change it.
  void Arm(Shard& shard, HostAlarms& host, uint32_t rule_index);
  // REQUIRES: shard.mu held. The host's entry, made when `create`; nullptr when absent.
  HostAlarms* FindHost(Shard& shard, std::string_view host, bool create);
  // REQUIRES: shard.mu held. Gives the host a state for `rule_index` (INSUFFICIENT_DATA).
  Series& MakeSeries(Shard& shard, HostAlarms& host, uint32_t rule_index, WallTime t);
  void SetState(Shard& shard, HostAlarms& host, uint32_t rule_index, AlarmState from,
                AlarmState to);
  Shard& ShardOf(std::string_view host) const;
  // The rules watching `series` (the agent's series name); nullptr when none does.
  const std::vector<uint32_t>* RulesOf(std::string_view series) const;
  std::optional<uint32_t> RuleIndex(std::string_view name) const;
  void CollectShard(const Shard& shard, const AlarmQuery& q, std::optional<uint32_t> rule,
                    size_t want, std::vector<AlarmStatus>& out) const;

  std::vector<AlarmRule> rules_;   // immutable after construction
  Millis silent_after_;
  std::vector<uint32_t> rank_;     // rule index -> position in rule-name order
  std::vector<uint32_t> by_rank_;  // position in rule-name order -> rule index
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Canonical series name -> the rules watching it; and the metrics some rule watches with
  // labels (a labelled series of such a metric is parsed, in case its labels are out of order).
  std::unordered_map<std::string, std::vector<uint32_t>, StringHash, std::equal_to<>>
      rules_by_series_;
  std::unordered_set<std::string, StringHash, std::equal_to<>> labelled_metrics_;
  std::unique_ptr<Shard[]> shards_;
  // Counts by state: [rule * 3 + state], and the totals [state].
  std::unique_ptr<std::atomic<int64_t>[]> rule_counts_;
  std::atomic<int64_t> counts_[3] = {};
  std::atomic<uint64_t> evaluations_{0};
  std::atomic<uint64_t> tick_evaluations_{0};
};

}  // namespace medic::server
