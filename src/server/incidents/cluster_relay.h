#pragma once

// What part of incident driving rides on the ClusterBus between servers on one store
// (docs/DEPLOY.md): commands to hosts, their results, alarm transitions, operator decisions
// and lease takeovers. The incident manager posts results, transitions, decisions and leases
// itself (IncidentManager::EnableCluster); this file carries commands, and subscribes the
// manager and the command queue to what the other servers post.

#include "server/cluster/bus.h"
#include "server/commands/command_queue.h"
#include "server/incidents/incident_manager.h"

namespace medic::server {

// Queues every command here and posts it ("command", target: the host, the signed command as
// JSON) so that every other server queues it too: the host's agent may poll any of them.
// Delivery is at-least-once; the agent runs a command id at most once (its ledger) and checks
// the signature, so a copy from another server changes nothing. Thread-safe.
class BusCommandSink : public CommandSink {
 public:
  BusCommandSink(CommandSink& local, ClusterBus& bus) : local_(local), bus_(bus) {}
  void Send(const std::string& host, protocol::Command command) override;

 private:
  CommandSink& local_;
  ClusterBus& bus_;
};

// Subscribes to the kinds incident driving owns: "command" (into `queue`), "command_result"
// (the queue stops offering it; the manager applies it if the command is its), and
// "alarm_transition", "decision", "decision_reply", "lease" (the manager). REQUIRES: before the
// first post reaches this server; `queue` and `incidents` outlive the bus's delivery.
void SubscribeIncidentRouting(ClusterBus& bus, CommandQueue& queue, IncidentManager& incidents);

// The wire forms, exposed for tests.
Json AlarmTransitionToJson(const AlarmTransition& t);
Result<AlarmTransition> AlarmTransitionFromJson(const Json& j);

}  // namespace medic::server
