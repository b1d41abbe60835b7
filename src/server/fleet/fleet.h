#pragma once

// The fleet: the hosts medic watches, as their agents register, report and are removed, and as
// the store remembers them across restarts. It feeds the alarm engine (reports, target-group
// probes, the passing of time) and hands every alarm transition on, whatever its source: to the
// server log, as an `alarm` server-sent event, then to the incident part. The agent and host
// HTTP handlers parse a request, make one call here and reply.
//
// What one host may make the server keep is bounded (FleetLimits, limits.h): a report or
// registration over a limit is refused whole, before anything is kept, and counted.
//
// Thread-safe: its own state is the limit counters (atomic), and every part it uses is
// thread-safe.

#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "protocol/wire.h"
#include "server/alarms/alarms.h"
#include "server/events/event_hub.h"
#include "server/fleet/hosts.h"
#include "server/fleet/limits.h"
#include "server/fleet/target_groups.h"
#include "server/store/store.h"

namespace medic::server {

// What the fleet works with; every reference must outlive the Fleet.
// The thresholds an agent watches between samples (RegisterResponse::watch): each threshold and
// clear threshold of the rules on host metrics (the agent's own series; not the server-made
// "heartbeat" and "unhealthy:<group>"), once each, at most protocol::kMaxWatchedThresholds.
std::vector<protocol::WatchedThreshold> WatchedThresholds(const std::vector<AlarmRule>& rules);

struct FleetDeps {
  const Clock& clock;
  Store& store;  // each host's registration facts and last-seen time
  HostRegistry& hosts;
  TargetGroups& target_groups;
  AlarmEngine& alarms;
  EventHub& events;  // `host`, `host_removed` and `alarm` events
  // Receives every alarm transition, after the log line and the event: the incident manager
  // (IncidentManager::OnAlarmTransition). Required.
  std::function<void(const AlarmTransition&)> on_alarm;
  Millis agent_interval{1000};  // how often agents report; told to each at registration
  // The per-report and per-registration limits (the per-host ones are the HostRegistry's).
  FleetLimits limits = {};
  // Optional, several servers on one store: called with the host's name first thing in
  // Register (an agent that fails over registers with its new server), so that the host's
  // stored alarm states are taken over (app/cluster_share.h).
  std::function<void(const std::string& host)> before_register = nullptr;
};

class Fleet {
 public:
  explicit Fleet(FleetDeps deps);

  // At start, before incidents resume (their commands go to these hosts): the hosts of the
  // store come back with their facts, last-seen time and target memberships, and each is
  // expected to report (one that never does raises Host-Unreachable). A record that does not
  // parse is logged and left out; one whose facts are over the limits (stored by a server
  // without them) comes back without its services, hostname and version. Errors are the
  // store's.
  Status Restore();

  // An agent announces its host (first time or again): the facts are kept in memory and in the
  // store, its targets join their groups (a target of a group the server does not have is
  // ignored, counted and named in the answer), a `host` event goes out. Returns the agent's
  // answer. A registration over a limit (CheckRegistration; a new host past limits.hosts) is
  // refused with the error naming it, and nothing is kept.
  Result<protocol::RegisterResponse> Register(const protocol::RegisterRequest& request);

  // An agent's report: the host's latest metrics and checks, and datapoints for the alarm
  // engine (a heartbeat, too). The last-seen time reaches the store at most once a minute a
  // host, and the hosts due are written together, one transaction a second at most
  // (WriteLastSeen).
  // NotFound for a host that has not registered (its agent then registers again). A report over
  // a limit (CheckReport) is refused with the error naming it, and nothing is kept; new names
  // past the host's own limits are dropped and counted, and the rest counts.
  // Takes the report by value: the caller moves it in, and it is not copied.
  Status Report(protocol::Report report);

  // Writes the last-seen times due (see Report) to the store now, in one transaction; a failed
  // write is logged (the times are written again a minute later). Tick calls it when the last
  // write is a second old; call it also at shutdown.
  void WriteLastSeen();

  // What the limits refused, dropped or ignored so far.
  const LimitCounters& limit_counters() const { return counters_; }

  // Forgets a retired host: memory, store, alarm states, target memberships; a `host_removed`
  // event goes out. NotFound if neither memory nor the store knew it. Another store error is
  // returned as it is, and the host is then gone from memory only.
  Status Remove(const std::string& name);

  // What another server sharing the store removed (docs/DEPLOY.md): the host leaves memory,
  // its alarm states and target memberships, without a store write or an event (the remover's
  // `host_removed` event reaches this server's dashboards through the cluster). Returns whether
  // this server knew the host.
  bool Forget(const std::string& name);

  // Several servers on one store: a host whose reports stopped on another server (it died)
  // is watched here as Restore does at start, so that its missing-data alarm (Host-Unreachable)
  // is raised here if it never reports again. False (nothing done) when this server knows the
  // host already or the record does not parse.
  bool Adopt(const HostRecord& rec);

  // Datapoints from the target-group probes (TargetGroupChecker's feed).
  void OnTargetFeeds(const std::vector<TargetFeed>& feeds);

  // Closes the alarm periods that ended at `now` without a datapoint (missing data,
  // Host-Unreachable), and writes the last-seen times due (WriteLastSeen) once a second at
  // most. Call periodically.
  void Tick(WallTime now);

  // Transitions of external alarms (server/ingest/ExternalAlarms) leave the same way as the
  // engine's: the log line, the `alarm` event (with `source`), on_alarm.
  void PublishExternal(const std::vector<AlarmTransition>& transitions) { Publish(transitions); }

 private:
  // The one way out for alarm transitions: log line, `alarm` event, on_alarm.
  void Publish(const std::vector<AlarmTransition>& transitions);
  // Report datapoints into the alarm engine, on the server's clock.
  void Evaluate(const protocol::Report& report);
  // Restore and Adopt: one stored host back in memory, expected to report.
  bool RestoreOne(const HostRecord& rec);
  // Keeps the host's facts and last-seen time in the store; a failed write is logged.
  void WriteHost(const std::string& name);

  // Logs a refusal or a drop, at most one line per 10 s (a flood must not flood the log).
  void WarnSometimes(const std::string& message);

  FleetDeps d_;
  LimitCounters counters_;
  std::mutex seen_mu_;
  std::vector<std::pair<std::string, WallTime>> seen_due_;  // Guarded by seen_mu_.
  SteadyTime next_seen_write_{};                             // Guarded by seen_mu_.
  std::mutex warn_mu_;
  SteadyTime next_warn_{};  // Guarded by warn_mu_.
};

}  // namespace medic::server
