#pragma once

// ExternalAlarms: the AlertSink (alert_sink.h) behind the ingest routes. An external alert is an
// alarm state on (alarm, host): firing -> ALARM, resolved -> OK. Its transitions leave through
// the same way as the alarm engine's (Fleet::PublishExternal: the log line, the `alarm` event,
// IncidentManager::OnAlarmTransition), so a runbook keyed by the alarm's name applies, and the
// incident manager reads the state back through this class (it is the manager's AlarmStateView,
// over the engine's): an external OK is the recovery the verification step waits for.
//
// Names: an external alarm's name is whatever the mapping made of it. It may be a configured
// rule's name (Disk-Critical-ASG): the engine's state (the agent's datapoints) and the external
// one are then kept apart, both open and close incidents of that (alarm, host), and StateOf
// answers ALARM while either says ALARM. It may be a name of its own: with a runbook of that
// name the runbook applies; without one the brain handles the incident as for any alarm
// without a runbook.
//
// Each alert is known by its source's key (an Alertmanager fingerprint): its newest state and
// time. A delivery of the state it already has is kUnchanged; one older than what is known
// (a resolve older than the firing, a firing older than the resolve) is kStale. The alarm of
// (alarm, host) is in ALARM while any of its alerts fires, OK once all are resolved.
//
// Alerts for hosts medic does not know, and alerts the routes could not map, are recorded in
// memory (the newest `unmatched_keep`; lost on restart), counted, and logged at most once per
// 10 s. Thread-safe.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "server/alarms/alarms.h"
#include "server/ingest/alert_sink.h"

namespace medic::server {

struct ExternalAlarmStatus {
  std::string alarm;
  std::string host;
  std::string source;  // of the newest alert
  AlarmState state = AlarmState::kInsufficientData;
  WallTime since{};    // the last transition
  std::string reason;  // the newest alert's
  std::string description;
  bool remediating = false;
};

struct UnmatchedAlert {
  WallTime received{};
  std::string source;
  IngestResult result = IngestResult::kUnmapped;  // kUnmapped or kUnknownHost
  std::string summary;
  std::string why;
  std::string alarm;  // kUnknownHost: what it mapped to
  std::string host;
  bool firing = false;
};

class ExternalAlarms : public AlertSink, public AlarmStateView {
 public:
  // The most (alarm, host) pairs and alerts per pair kept; past them an alert is recorded as
  // unmapped ("too many ...") and changes nothing.
  static constexpr size_t kMaxAlarms = 10'000;
  static constexpr size_t kMaxAlertsPerAlarm = 256;

  // `engine` is the alarm engine's view (StateOf combines with it; SetRemediating is passed on);
  // `host_known` says whether medic knows a host. Both must outlive this.
  ExternalAlarms(AlarmStateView& engine, const Clock& clock,
                 std::function<bool(const std::string& host)> host_known,
                 size_t unmatched_keep = 200);

  // Where transitions go (Fleet::PublishExternal). REQUIRES: before the first Submit; it must
  // not call Submit.
  void SetPublisher(std::function<void(const std::vector<AlarmTransition>&)> publish) {
    publish_ = std::move(publish);
  }

  IngestResult Submit(const ExternalAlert& alert) override;
  void RecordUnmapped(const std::string& source, const std::string& summary,
                      const std::string& why) override;

  // AlarmStateView: ALARM when the engine or the external state says ALARM, else the external
  // state where there is one, else the engine's.
  AlarmState StateOf(const std::string& rule, const std::string& host) const override;
  void SetRemediating(const std::string& rule, const std::string& host,
                      bool remediating) override;

  // Every external alarm state, in (host, alarm) order.
  std::vector<ExternalAlarmStatus> List() const;
  // The unmatched record, newest first.
  std::vector<UnmatchedAlert> Unmatched() const;
  // Alerts by (source, result name), since start.
  std::map<std::pair<std::string, std::string>, uint64_t> Counts() const;

 private:
  struct AlertState {
    bool firing = false;
    WallTime at{};
  };
  struct Entry {
    AlarmState state = AlarmState::kInsufficientData;
    WallTime since{};
    std::string source;
    std::string reason;
    std::string description;
    std::map<std::string, AlertState> alerts;  // by key
  };
  using Pair = std::pair<std::string, std::string>;  // (host, alarm)

  void Count(const std::string& source, IngestResult r);
  void Remember(UnmatchedAlert u);
  // Submit's work under mu_; fills `out` with the transition to publish.
  IngestResult Apply(const ExternalAlert& alert, std::vector<AlarmTransition>& out);

  AlarmStateView& engine_;
  const Clock& clock_;
  std::function<bool(const std::string&)> host_known_;
  const size_t unmatched_keep_;
  std::function<void(const std::vector<AlarmTransition>&)> publish_;

  // Serialises Submit (state change and its publication, in order). Never held by StateOf, so
  // the incident manager may read states while a transition is being published.
  std::mutex submit_mu_;
  mutable std::mutex mu_;
  std::map<Pair, Entry> alarms_;                     // Guarded by mu_.
  std::set<Pair> remediating_;                       // Guarded by mu_. (host, alarm)
  std::deque<UnmatchedAlert> unmatched_;             // Guarded by mu_. newest first
  std::map<std::pair<std::string, std::string>, uint64_t> counts_;  // Guarded by mu_.
  SteadyTime next_warn_{};                           // Guarded by mu_.
};

}  // namespace medic::server
