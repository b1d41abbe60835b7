#include "server/ingest/external_alarms.h"

#include "core/display.h"
#include "core/log.h"

namespace medic::server {

ExternalAlarms::ExternalAlarms(AlarmStateView& engine, const Clock& clock,
                               std::function<bool(const std::string& host)> host_known,
                               size_t unmatched_keep)
    : engine_(engine),
      clock_(clock),
      host_known_(std::move(host_known)),
      unmatched_keep_(unmatched_keep) {}

IngestResult ExternalAlarms::Submit(const ExternalAlert& alert) {
  std::lock_guard<std::mutex> order(submit_mu_);
  std::vector<AlarmTransition> transitions;
  IngestResult r = IngestResult::kUnknownHost;
  if (!host_known_(alert.host)) {
    UnmatchedAlert u;
    u.received = clock_.Now();
    u.source = alert.source;
    u.result = IngestResult::kUnknownHost;
    u.summary = alert.alarm + " on " + alert.host;
    u.why = "host '" + alert.host + "' is not known to medic";
    u.alarm = alert.alarm;
    u.host = alert.host;
    u.firing = alert.firing;
    std::lock_guard<std::mutex> lock(mu_);
    Count(alert.source, r);
    Remember(std::move(u));
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    r = Apply(alert, transitions);
    Count(alert.source, r);
  }
  if (!transitions.empty() && publish_) {
    publish_(transitions);  // without mu_: the incident manager reads StateOf
  }
  return r;
}

IngestResult ExternalAlarms::Apply(const ExternalAlert& alert,
                                   std::vector<AlarmTransition>& out) {
  const Pair pair{alert.host, alert.alarm};
  auto it = alarms_.find(pair);
  if (it == alarms_.end()) {
    if (alarms_.size() >= kMaxAlarms) {
      UnmatchedAlert u{clock_.Now(), alert.source, IngestResult::kUnmapped,
                       alert.alarm + " on " + alert.host,
                       "too many external alarms (" + std::to_string(kMaxAlarms) + ")",
                       alert.alarm, alert.host, alert.firing};
      Remember(std::move(u));
      return IngestResult::kUnmapped;
    }
    it = alarms_.emplace(pair, Entry{}).first;
  }
  Entry& e = it->second;
  auto known = e.alerts.find(alert.key);
  if (known != e.alerts.end()) {
    const AlertState& k = known->second;
    // Older than what is known, or the same moment told firing after it was told resolved.
    if (alert.at < k.at || (alert.at == k.at && alert.firing && !k.firing)) {
      return IngestResult::kStale;
    }
    if (k.firing == alert.firing) {
      return IngestResult::kUnchanged;
    }
  } else if (e.alerts.size() >= kMaxAlertsPerAlarm) {
    // Room for the new alert: the oldest resolved one goes, else the oldest.
    auto victim = e.alerts.end();
    for (auto a = e.alerts.begin(); a != e.alerts.end(); ++a) {
      if (victim == e.alerts.end() || (!a->second.firing && victim->second.firing) ||
          (a->second.firing == victim->second.firing && a->second.at < victim->second.at)) {
        victim = a;
      }
    }
    e.alerts.erase(victim);
  }
  e.alerts[alert.key] = AlertState{alert.firing, alert.at};
  bool any_firing = false;
  for (const auto& [key, a] : e.alerts) {
    any_firing = any_firing || a.firing;
  }
  const AlarmState next = any_firing ? AlarmState::kAlarm : AlarmState::kOk;
  e.source = alert.source;
  e.reason = alert.reason;
  if (!alert.description.empty()) {
    e.description = alert.description;
  }
  if (next == e.state) {
    return IngestResult::kUnchanged;
  }
  AlarmTransition t;
  t.rule = alert.alarm;
  t.host = alert.host;
  t.from = e.state;
  t.to = next;
  t.at = alert.at;
  t.reason = alert.reason;
  t.remediating = remediating_.contains(pair);
  t.source = alert.source;
  e.state = next;
  e.since = alert.at;
  out.push_back(std::move(t));
  return IngestResult::kApplied;
}

void ExternalAlarms::RecordUnmapped(const std::string& source, const std::string& summary,
                                    const std::string& why) {
  UnmatchedAlert u;
  u.received = clock_.Now();
  u.source = source;
  u.result = IngestResult::kUnmapped;
  u.summary = summary;
  u.why = why;
  std::lock_guard<std::mutex> lock(mu_);
  Count(source, IngestResult::kUnmapped);
  Remember(std::move(u));
}

void ExternalAlarms::Count(const std::string& source, IngestResult r) {
  ++counts_[{source, IngestResultName(r)}];
}

void ExternalAlarms::Remember(UnmatchedAlert u) {
  const SteadyTime now = clock_.SteadyNow();
  if (now >= next_warn_) {
    next_warn_ = now + Millis(10'000);
    LogWarn(SanitizeForLogLine("ingest: " + u.source + " alert " + u.summary + " recorded as " +
                               IngestResultName(u.result) + ": " + u.why) +
            " (further such lines within 10 s are left out; GET /api/v1/ingest/unmatched, "
            "medic_ingest_alerts_total in /metrics)");
  }
  unmatched_.push_front(std::move(u));
  while (unmatched_.size() > unmatched_keep_) {
    unmatched_.pop_back();
  }
}

AlarmState ExternalAlarms::StateOf(const std::string& rule, const std::string& host) const {
  const AlarmState engine = engine_.StateOf(rule, host);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = alarms_.find({host, rule});
  if (it == alarms_.end() || it->second.state == AlarmState::kInsufficientData) {
    return engine;
  }
  if (engine == AlarmState::kAlarm) {
    return AlarmState::kAlarm;
  }
  return it->second.state;
}

void ExternalAlarms::SetRemediating(const std::string& rule, const std::string& host,
                                    bool remediating) {
  engine_.SetRemediating(rule, host, remediating);
  std::lock_guard<std::mutex> lock(mu_);
  if (remediating) {
    remediating_.insert({host, rule});
  } else {
    remediating_.erase({host, rule});
  }
}

std::vector<ExternalAlarmStatus> ExternalAlarms::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ExternalAlarmStatus> out;
  out.reserve(alarms_.size());
  for (const auto& [pair, e] : alarms_) {
    if (e.state == AlarmState::kInsufficientData) {
      continue;
    }
    out.push_back(ExternalAlarmStatus{pair.second, pair.first, e.source, e.state, e.since,
                                      e.reason, e.description, remediating_.contains(pair)});
  }
  return out;
}

std::vector<UnmatchedAlert> ExternalAlarms::Unmatched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {unmatched_.begin(), unmatched_.end()};
}

std::map<std::pair<std::string, std::string>, uint64_t> ExternalAlarms::Counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

}  // namespace medic::server
