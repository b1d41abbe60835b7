#pragma once

// What must look the same on every medic-server that shares one store (docs/DEPLOY.md), kept so
// over the cluster bus:
//
// - settings (approval mode, the kill switch), operator tokens, host credentials and removed
//   hosts: a server that changes one posts `changed` after its store write
//   (cluster/change_posting_store.h); the others reload it from the store on their next tick.
//   Every `resync_every` each server reloads settings, tokens and credentials anyway, so a
//   `changed` that could not be posted is caught up with.
// - server-sent events: every event this server publishes is posted (`event`, {"event", "data"})
//   as it is published (ClusterBus::PostSoon: queued, written in batches in the order
//   published, kept while the store is down); the other servers send it to their own subscribers
//   (EventHub::PublishLocal: a republished event is not posted again).
//
// - hosts whose server died: a server of a cluster does not expect every stored host at start
//   (the hosts talk to several servers); instead, every `sweep_every`, it adopts each stored
//   host whose last_seen is older than `silent_after` and that it does not know (Fleet::Adopt),
//   so that Host-Unreachable is raised for it here if it never reports again (the
//   one-open-incident rule of the store keeps it to one incident when several servers adopt
//   it). An adopted host that reports to another server again is let go (Fleet::Forget).
//
// - alarm states: every transition of this server's alarm engine is written to the store
//   (alarm_states, on the tick); when a host registers here (an agent that failed over), the
//   states stored for it seed this engine (AlarmEngine::Seed), so an ALARM stays ALARM without a
//   new transition or incident and an OK host does not "recover" from INSUFFICIENT_DATA.
//   The new server writes those states again under its own id (the newest write of a host's
//   states names the server it reports to: fleet/cluster_hosts.h, every server's host list),
//   then posts `alarm_state` (target: the host); the others forget the host (Fleet::Forget), so
//   the one it left raises no Host-Unreachable for it.
//
// A single server has no bus and no ClusterShare. Thread-safe: the bus's handlers only queue;
// RunOnce (the app's tick) does the work.

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"
#include "server/alarms/alarms.h"
#include "server/cluster/bus.h"
#include "server/events/event_hub.h"
#include "server/fleet/cluster_hosts.h"
#include "server/fleet/fleet.h"
#include "server/fleet/hosts.h"
#include "server/http/router.h"
#include "server/http/sessions.h"
#include "server/identity/host_identities.h"
#include "server/incidents/settings.h"
#include "server/store/store.h"

namespace medic::server {

struct ClusterShareOptions {
  Millis resync_every{30'000};        // settings, tokens and credentials reloaded even without news
  size_t max_queued_events = 10'000;  // alarm states not yet stored (the store is down); older drop
  Millis sweep_every{10'000};         // how often the stored hosts are looked at for silent ones
  // A stored host silent this long is adopted. Reporting servers write last_seen at most once a
  // minute a host (Fleet::Report): keep this well above that.
  Millis silent_after{90'000};
};

// Every reference must outlive the ClusterShare.
struct ClusterShareDeps {
  const Clock& clock;
  ClusterBus& bus;
  Store& store;
  SettingsService& settings;
  TokenRegistry& tokens;      // the stored tokens in it are kept equal to the store's
  SessionRegistry& sessions;  // a revoked token's dashboard sessions end with it
  HostIdentities& identities;
  Fleet& fleet;
  HostRegistry& hosts;  // which hosts report here
  AlarmEngine& alarms;
  EventHub& events;
  // Optional: the cluster's host list, read again when a host was removed or moved elsewhere.
  ClusterHosts* listing = nullptr;
};

class ClusterShare {
 public:
  explicit ClusterShare(ClusterShareDeps deps, ClusterShareOptions options = {});
  ClusterShare(const ClusterShare&) = delete;
  ClusterShare& operator=(const ClusterShare&) = delete;

  // Subscribes to `changed` and `event`, forwards this server's events, and notes the stored
  // tokens (the app has just loaded them). REQUIRES: while the app is built, before it serves.
  Status Start();

  // On the app's tick: the reloads other servers asked for (or that are due), the alarm states
  // to store, and every `sweep_every` the look for silent hosts.
  void RunOnce();

  // Fleet's on_alarm, after the incident manager: queues the new state for the store.
  void OnAlarmTransition(const AlarmTransition& t);
  // Fleet's before_register: seeds the alarm engine from the host's stored states.
  void TakeOverAlarms(const std::string& host);

 private:
  void OnChanged(const ClusterMessage& m);
  void OnEvent(const ClusterMessage& m);
  void Forward(const std::string& event, const Json& data);
  Status SyncTokens();
  void Sweep();

  ClusterShareDeps d_;
  const ClusterShareOptions options_;

  mutable std::mutex mu_;
  std::set<std::string> reload_;          // "settings", "tokens", ... Guarded by mu_.
  std::set<std::string> removed_hosts_;   // Guarded by mu_.
  std::set<std::string> moved_hosts_;     // registered elsewhere since. Guarded by mu_.
  std::vector<AlarmStateRecord> states_;  // to write. Guarded by mu_.

  std::mutex run_mu_;                                // one RunOnce at a time
  std::map<std::string, std::string> known_tokens_;  // name -> hash. Guarded by run_mu_.
  SteadyTime next_resync_{};                         // Guarded by run_mu_.
  SteadyTime next_sweep_{};                          // Guarded by run_mu_.
  // Adopted hosts -> their last_seen when adopted (a later one: they report here). Guarded by
  // run_mu_.
  std::map<std::string, WallTime> adopted_;
};

}  // namespace medic::server
