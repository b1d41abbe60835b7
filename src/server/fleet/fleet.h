#pragma once

// The fleet: the hosts medic watches, as their agents register, report and are removed, and as
// the store remembers them across restarts. It feeds the alarm engine (reports, target-group
// probes, the passing of time) and hands every alarm transition on, whatever its source: to the
// server log, as an `alarm` server-sent event, then to the incident part. The agent and host
// HTTP handlers parse a request, make one call here and reply.
//
// Thread-safe: it keeps no state of its own, and every part it uses is thread-safe.

#include <functional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "protocol/wire.h"
#include "server/alarms/alarms.h"
#include "server/events/event_hub.h"
#include "server/fleet/hosts.h"
#include "server/fleet/target_groups.h"
#include "server/store/store.h"

namespace medic::server {

// What the fleet works with; every reference must outlive the Fleet.
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
};

class Fleet {
 public:
  explicit Fleet(FleetDeps deps);

  // At start, before incidents resume (their commands go to these hosts): the hosts of the
  // store come back with their facts, last-seen time and target memberships, and each is
  // expected to report (one that never does raises Host-Unreachable). A record that does not
  // parse is logged and left out. Errors are the store's.
  Status Restore();

  // An agent announces its host (first time or again): the facts are kept in memory and in the
  // store, its targets join their groups, a `host` event goes out. Returns the agent's answer.
  protocol::RegisterResponse Register(const protocol::RegisterRequest& request);

  // An agent's report: the host's latest metrics and checks, and datapoints for the alarm
  // engine (a heartbeat, too). The last-seen time reaches the store at most once a minute.
  // NotFound for a host that has not registered (its agent then registers again).
  Status Report(const protocol::Report& report);

  // Forgets a retired host: memory, store, alarm states, target memberships; a `host_removed`
  // event goes out. NotFound if neither memory nor the store knew it. Another store error is
  // returned as it is, and the host is then gone from memory only.
  Status Remove(const std::string& name);

  // Datapoints from the target-group probes (TargetGroupChecker's feed).
  void OnTargetFeeds(const std::vector<TargetFeed>& feeds);

  // Closes the alarm periods that ended at `now` without a datapoint (missing data,
  // Host-Unreachable). Call periodically.
  void Tick(WallTime now);

 private:
  // The one way out for alarm transitions: log line, `alarm` event, on_alarm.
  void Publish(const std::vector<AlarmTransition>& transitions);
  // Report datapoints into the alarm engine, on the server's clock.
  void Evaluate(const protocol::Report& report);
  // Keeps the host's facts and last-seen time in the store; a failed write is logged.
  void WriteHost(const std::string& name);

  FleetDeps d_;
};

}  // namespace medic::server
