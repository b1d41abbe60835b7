#include "server/fleet/fleet.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "core/log.h"

namespace medic::server {

namespace {

// How often a reporting host's last-seen time is written to the store.
constexpr Millis kLastSeenWriteEvery{60'000};
// How often those writes go to the store, all hosts due in one transaction.
constexpr Millis kLastSeenBatchEvery{1'000};

}  // namespace

std::vector<protocol::WatchedThreshold> WatchedThresholds(const std::vector<AlarmRule>& rules) {
  std::vector<protocol::WatchedThreshold> out;
  auto add = [&](protocol::WatchedThreshold t) {
    if (out.size() < protocol::kMaxWatchedThresholds &&
        std::find(out.begin(), out.end(), t) == out.end()) {
      out.push_back(std::move(t));
    }
  };
  for (const AlarmRule& rule : rules) {
    if (rule.metric == "heartbeat" || rule.metric.rfind("unhealthy:", 0) == 0) {
      continue;
    }
    const std::string series = SeriesName(rule.metric, rule.labels);
    if (!protocol::IsValidMetricName(series)) {
      continue;
    }
    const std::string comparison(ComparisonSymbol(rule.comparison));
    add({series, comparison, rule.threshold});
    if (rule.clear_threshold) {
      add({series, comparison, *rule.clear_threshold});
    }
  }
  return out;
}

Fleet::Fleet(FleetDeps deps) : d_(std::move(deps)) {}

Status Fleet::Restore() {
  ASSIGN_OR_RETURN(auto known_hosts, d_.store.ListHosts());
  for (const HostRecord& rec : known_hosts) {
    RestoreOne(rec);
  }
  if (!known_hosts.empty()) {
    LogInfo("known hosts: " + std::to_string(known_hosts.size()) + " (expected to report)");
  }
  return OkStatus();
}

bool Fleet::Adopt(const HostRecord& rec) {
  if (d_.hosts.Get(rec.name, d_.clock.Now()).has_value()) {
    return false;
  }
  return RestoreOne(rec);
}

bool Fleet::RestoreOne(const HostRecord& rec) {
  auto facts = protocol::RegisterRequestFromJson(rec.facts);
  if (!facts || facts->name != rec.name) {
    LogError("stored host " + rec.name + " is unreadable and is left out: " +
             (facts ? "name mismatch" : facts.error().ToString()));
    return false;
  }
  if (auto over = CheckRegistration(*facts, d_.limits)) {
    // Kept by a server without the limits: the host stays, its oversized facts do not.
    LogWarn("stored host " + rec.name + " has facts over the limits (" + over->error.message +
            "); its services, hostname and version are left out until it registers again");
    facts->services.clear();
    facts->hostname.clear();
    facts->version.clear();
  }
  d_.hosts.Restore(*facts, rec.registered_at, rec.last_seen);
  d_.target_groups.Register(rec.name, facts->targets, d_.clock.Now());
  d_.alarms.Expect(rec.name, kHeartbeatSeries, d_.clock.Now());
  return true;
}

Result<protocol::RegisterResponse> Fleet::Register(const protocol::RegisterRequest& request) {
  if (auto refused = CheckRegistration(request, d_.limits)) {
    counters_.Add(refused->reason);
    WarnSometimes("registration of host " + request.name + " refused: " +
                  refused->error.message);
    return refused->error;
  }
  if (d_.before_register) {
    d_.before_register(request.name);
  }
  if (Status s = d_.hosts.Register(request, d_.clock.Now()); !s) {
    counters_.Add(LimitReason::kHosts);
    WarnSometimes("registration of host " + request.name + " refused: " + s.error().message);
    return s.error();
  }
  WriteHost(request.name);
  protocol::RegisterResponse out;
  out.ignored_target_groups =
      d_.target_groups.Register(request.name, request.targets, d_.clock.Now());
  if (!out.ignored_target_groups.empty()) {
    counters_.Add(LimitReason::kUnknownTargetGroup, out.ignored_target_groups.size());
    WarnSometimes("host " + request.name + " registered targets of target groups the config "
                  "does not have (ignored): " + out.ignored_target_groups.front() +
                  (out.ignored_target_groups.size() > 1 ? ", ..." : ""));
  }
  if (auto view = d_.hosts.Get(request.name, d_.clock.Now())) {
    d_.events.Publish("host", HostToJson(*view));
  }
  LogInfo("host " + request.name + " registered (agent " + request.version + ")");
  out.interval_ms = d_.agent_interval.count();
  out.watch = WatchedThresholds(d_.alarms.rules());
  return out;
}

Status Fleet::Report(protocol::Report report) {
  if (auto refused = CheckReport(report, d_.limits)) {
    counters_.Add(refused->reason);
    WarnSometimes("report of host " + report.host + " refused: " + refused->error.message);
    return refused->error;
  }
  ASSIGN_OR_RETURN(HostRegistry::Dropped dropped, d_.hosts.ApplyReport(report, d_.clock.Now()));
  if (dropped.metric_names > 0 || dropped.check_names > 0) {
    counters_.Add(LimitReason::kMetricsPerHost, dropped.metric_names);
    counters_.Add(LimitReason::kChecksPerHost, dropped.check_names);
    WarnSometimes("host " + report.host + " reported new names past its limits, dropped: " +
                  std::to_string(dropped.metric_names) + " metric names (limits.metrics_per_host " +
                  std::to_string(d_.limits.metrics_per_host) + "), " +
                  std::to_string(dropped.check_names) + " check names (limits.checks_per_host " +
                  std::to_string(d_.limits.checks_per_host) + ")");
  }
  Evaluate(report);
  if (d_.hosts.TakeWriteTurn(report.host, d_.clock.Now(), kLastSeenWriteEvery)) {
    // Written by Tick, off the report's path: no report waits for the store's fsync.
    std::lock_guard<std::mutex> lock(seen_mu_);
    seen_due_.emplace_back(report.host, d_.clock.Now());
  }
  return OkStatus();
}

void Fleet::WriteLastSeen() {
  std::vector<std::pair<std::string, WallTime>> batch;
  {
    std::lock_guard<std::mutex> lock(seen_mu_);
    batch.swap(seen_due_);
    next_seen_write_ = d_.clock.SteadyNow() + kLastSeenBatchEvery;
  }
  if (batch.empty()) {
    return;
  }
  if (Status s = d_.store.UpdateHostsLastSeen(batch); !s) {
    LogError("cannot store the last-seen time of " + std::to_string(batch.size()) +
             " hosts: " + s.error().ToString());
  }
}

Status Fleet::Remove(const std::string& name) {
  const bool known = d_.hosts.Remove(name);
  Status stored = d_.store.DeleteHost(name);
  if (!stored && stored.error().code != ErrorCode::kNotFound) {
    return stored;
  }
  if (!known && !stored) {
    return NotFound("host '" + name + "' not found");
  }
  d_.alarms.Forget(name);
  d_.target_groups.Register(name, {}, d_.clock.Now());
  d_.events.Publish("host_removed", Json{{"name", name}});
  return OkStatus();
}

bool Fleet::Forget(const std::string& name) {
  const bool known = d_.hosts.Remove(name);
  d_.alarms.Forget(name);
  d_.target_groups.Register(name, {}, d_.clock.Now());
  return known;
}

void Fleet::OnTargetFeeds(const std::vector<TargetFeed>& feeds) {
  for (const auto& f : feeds) {
    d_.hosts.RecordPoint(f.host, f.series, f.value, f.t);
    Publish(d_.alarms.Observe(f.host, f.series, f.value, f.t));
  }
}

void Fleet::Tick(WallTime now) {
  Publish(d_.alarms.Tick(now));
  bool write = false;
  {
    std::lock_guard<std::mutex> lock(seen_mu_);
    write = !seen_due_.empty() && d_.clock.SteadyNow() >= next_seen_write_;
  }
  if (write) {
    WriteLastSeen();
  }
}

// Datapoints are placed on the server's clock: the report's newest sample counts as received
// now and older samples keep their spacing (agent clock skew cannot shift them out of the alarm
// window). Check results count at once; a check named like a target group the host belongs to
// feeds the group's combined health (docs/ALARMS.md). Every report is a heartbeat.
void Fleet::Evaluate(const protocol::Report& report) {
  const WallTime now = d_.clock.Now();
  std::vector<AlarmTransition> transitions;
  auto add = [&](std::vector<AlarmTransition> t) {
    transitions.insert(transitions.end(), t.begin(), t.end());
  };
  // The heartbeat first: the host is alive for the rules judged on this report's data (a silent
  // host's other rules are held out of ALARM, docs/ALARMS.md "One dead host, one alarm").
  add(d_.alarms.Observe(report.host, kHeartbeatSeries, 1, now));
  std::optional<WallTime> newest;
  for (const auto& s : report.samples) {
    if (!newest || s.t > *newest) {
      newest = s.t;
    }
  }
  for (const auto& s : report.samples) {
    const WallTime t = now - (*newest - s.t);
    for (const auto& [metric, value] : s.metrics) {
      add(d_.alarms.Observe(report.host, metric, value, t));
    }
  }
  for (const auto& c : report.checks) {
    TargetFeed f = d_.target_groups.OnAgentCheck(report.host, c.name, c.healthy, now);
    d_.hosts.RecordPoint(f.host, f.series, f.value, f.t);
    add(d_.alarms.Observe(f.host, f.series, f.value, f.t));
  }
  Publish(transitions);
}

void Fleet::Publish(const std::vector<AlarmTransition>& transitions) {
  for (const auto& t : transitions) {
    LogInfo("alarm " + t.rule + " on " + t.host + ": " + std::string(AlarmStateName(t.from)) +
            " -> " + std::string(AlarmStateName(t.to)) + " (" + t.reason + ")" +
            (t.remediating ? " [remediating]" : "") +
            (t.source.empty() ? "" : " [" + t.source + "]"));
    Json event{{"alarm_name", t.rule},
               {"host", t.host},
               {"from", AlarmStateName(t.from)},
               {"state", AlarmStateName(t.to)},
               {"since", FormatRfc3339(t.at)},
               {"reason", t.reason},
               {"remediating", t.remediating}};
    if (!t.source.empty()) {
      event["source"] = t.source;
    }
    d_.events.Publish("alarm", std::move(event));
    d_.on_alarm(t);
  }
}

void Fleet::WarnSometimes(const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(warn_mu_);
    const SteadyTime now = d_.clock.SteadyNow();
    if (now < next_warn_) {
      return;
    }
    next_warn_ = now + Millis(10'000);
  }
  LogWarn(message + " (further such lines within 10 s are left out; see "
          "medic_rejected_*_total in /metrics)");
}

void Fleet::WriteHost(const std::string& name) {
  auto view = d_.hosts.Get(name, d_.clock.Now());
  if (!view) {
    return;
  }
  HostRecord rec{view->name, protocol::ToJson(view->facts), view->registered_at, view->last_seen};
  if (Status s = d_.store.PutHost(rec); !s) {
    LogError("cannot store host " + name + ": " + s.error().ToString());
  }
}

}  // namespace medic::server
