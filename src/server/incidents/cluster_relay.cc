#include "server/incidents/cluster_relay.h"

#include "core/log.h"

namespace medic::server {

void BusCommandSink::Send(const std::string& host, protocol::Command command) {
  const std::string payload = DumpJson(protocol::ToJson(command));
  local_.Send(host, std::move(command));
  if (Status s = bus_.Post("command", host, payload); !s) {
    // The host still gets it when it polls this server, and the sender's deadline applies.
    LogWarn("cannot post a command for " + host + " to the other servers: " +
            s.error().ToString());
  }
}

Json AlarmTransitionToJson(const AlarmTransition& t) {
  return Json{{"rule", t.rule},
              {"host", t.host},
              {"from", std::string(AlarmStateName(t.from))},
              {"to", std::string(AlarmStateName(t.to))},
              {"at", ToUnixMillis(t.at)},
              {"reason", t.reason},
              {"remediating", t.remediating},
              {"source", t.source}};
}

namespace {

Result<AlarmState> ParseAlarmState(const std::string& name) {
  for (AlarmState s : {AlarmState::kInsufficientData, AlarmState::kOk, AlarmState::kAlarm}) {
    if (AlarmStateName(s) == name) {
      return s;
    }
  }
  return InvalidArgument("unknown alarm state '" + name + "'");
}

}  // namespace

Result<AlarmTransition> AlarmTransitionFromJson(const Json& j) {
  if (!j.is_object()) {
    return InvalidArgument("an alarm transition must be an object");
  }
  AlarmTransition t;
  t.rule = StringOr(j, "rule");
  t.host = StringOr(j, "host");
  if (t.rule.empty() || t.host.empty()) {
    return InvalidArgument("an alarm transition needs rule and host");
  }
  ASSIGN_OR_RETURN(t.from, ParseAlarmState(StringOr(j, "from")));
  ASSIGN_OR_RETURN(t.to, ParseAlarmState(StringOr(j, "to")));
  const auto at = j.find("at");
  if (at == j.end() || !at->is_number_integer()) {
    return InvalidArgument("an alarm transition needs at (unix ms)");
  }
  t.at = FromUnixMillis(at->get<int64_t>());
  t.reason = StringOr(j, "reason");
  t.remediating = j.value("remediating", false);
  t.source = StringOr(j, "source");
  return t;
}

void SubscribeIncidentRouting(ClusterBus& bus, CommandQueue& queue, IncidentManager& incidents) {
  bus.Subscribe("command", [&queue](const ClusterMessage& m) {
    auto j = ParseJson(m.payload);
    Result<protocol::Command> c = j ? protocol::CommandFromJson(*j)
                                    : Result<protocol::Command>(j.error());
    if (!c) {
      LogWarn("ignored a malformed command from " + m.from + ": " + c.error().message);
      return;
    }
    // The envelope (signed) says which host it is for; the plain fields are not trusted.
    if (auto env = protocol::CommandFromEnvelope(c->envelope); env && env->host == m.target) {
      env->envelope = c->envelope;
      env->signature = c->signature;
      queue.Send(m.target, std::move(*env));
      return;
    }
    LogWarn("ignored a command from " + m.from + " whose envelope is not for " + m.target);
  });
  bus.Subscribe("command_result", [&queue, &incidents](const ClusterMessage& m) {
    auto j = ParseJson(m.payload);
    Result<protocol::CommandResult> r = j ? protocol::CommandResultFromJson(*j)
                                          : Result<protocol::CommandResult>(j.error());
    if (!r || r->host != m.target) {
      LogWarn("ignored a malformed command result from " + m.from);
      return;
    }
    queue.Complete(*r);
    incidents.OnRemoteCommandResult(*r);
  });
  bus.Subscribe("alarm_transition", [&incidents](const ClusterMessage& m) {
    auto j = ParseJson(m.payload);
    Result<AlarmTransition> t =
        j ? AlarmTransitionFromJson(*j) : Result<AlarmTransition>(j.error());
    if (!t) {
      LogWarn("ignored a malformed alarm transition from " + m.from + ": " + t.error().message);
      return;
    }
    incidents.OnRemoteAlarmTransition(*t);
  });
  bus.Subscribe("decision",
                [&incidents](const ClusterMessage& m) { incidents.OnRemoteDecision(m); });
  bus.Subscribe("decision_reply",
                [&incidents](const ClusterMessage& m) { incidents.OnDecisionReply(m); });
  bus.Subscribe("lease", [&incidents](const ClusterMessage& m) { incidents.OnLeaseTaken(m); });
}

}  // namespace medic::server
