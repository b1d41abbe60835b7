// Routes the agents call (docs/PROTOCOL.md): register, report, long-poll commands, results.

#include <algorithm>
#include <optional>

#include "core/log.h"
#include "server/http/context.h"

namespace medic::server {

namespace {

// Feeds a report's datapoints to the alarm engine and its transitions to the incidents.
// Datapoints are placed on the server's clock: the report's newest sample counts as received
// now and older samples keep their spacing (agent clock skew cannot shift them out of the
// alarm window). Check results count at once; a check named like a target group the host
// belongs to feeds the group's combined health (docs/ALARMS.md). Every report is a heartbeat.
void Evaluate(ServerContext& ctx, const protocol::Report& report) {
  const WallTime now = ctx.clock.Now();
  std::vector<AlarmTransition> transitions;
  auto add = [&](std::vector<AlarmTransition> t) {
    transitions.insert(transitions.end(), t.begin(), t.end());
  };
  std::optional<WallTime> newest;
  for (const auto& s : report.samples) {
    if (!newest || s.t > *newest) {
      newest = s.t;
    }
  }
  for (const auto& s : report.samples) {
    const WallTime t = now - (*newest - s.t);
    for (const auto& [metric, value] : s.metrics) {
      add(ctx.alarms.Observe(report.host, metric, value, t));
    }
  }
  for (const auto& c : report.checks) {
    if (ctx.target_groups != nullptr) {
      TargetFeed f = ctx.target_groups->OnAgentCheck(report.host, c.name, c.healthy, now);
      add(ctx.alarms.Observe(f.host, f.series, f.value, f.t));
    } else {
      add(ctx.alarms.Observe(report.host, "unhealthy:" + c.name, c.healthy ? 0 : 1, now));
    }
  }
  add(ctx.alarms.Observe(report.host, "heartbeat", 1, now));
  PublishAlarmTransitions(ctx, transitions);
}

// How often a reporting host's last-seen time is written to the store.
constexpr Millis kLastSeenWriteEvery{60'000};

// Keeps the host's facts in the store. A failed write is logged: the host works from memory,
// and a server restart would only forget it until it registers again.
void WriteHost(ServerContext& ctx, const std::string& name) {
  auto view = ctx.hosts.Get(name, ctx.clock.Now());
  if (!view) {
    return;
  }
  HostRecord rec{view->name, protocol::ToJson(view->facts), view->registered_at, view->last_seen};
  if (Status s = ctx.store.PutHost(rec); !s) {
    LogError("cannot store host " + name + ": " + s.error().ToString());
  }
}

}  // namespace

void PublishAlarmTransitions(ServerContext& ctx, const std::vector<AlarmTransition>& transitions) {
  for (const auto& t : transitions) {
    LogInfo("alarm " + t.rule + " on " + t.host + ": " + std::string(AlarmStateName(t.from)) +
            " -> " + std::string(AlarmStateName(t.to)) + " (" + t.reason + ")" +
            (t.remediating ? " [remediating]" : ""));
    if (ctx.events != nullptr) {
      ctx.events->Publish("alarm", Json{{"alarm_name", t.rule},
                                        {"host", t.host},
                                        {"from", AlarmStateName(t.from)},
                                        {"state", AlarmStateName(t.to)},
                                        {"since", FormatRfc3339(t.at)},
                                        {"reason", t.reason},
                                        {"remediating", t.remediating}});
    }
    ctx.incidents.OnAlarmTransition(t);
  }
}

void AddAgentRoutes(Router& router, ServerContext& ctx) {
  router.Add({"POST", "/agent/v1/register", Role::kAgent, "an agent announces its host",
              [&ctx](ApiRequest& req, Responder respond) {
                auto body = ParseBody(req, false);
                if (!body) {
                  return respond(ErrorResponse(body.error()));
                }
                auto r = protocol::RegisterRequestFromJson(*body);
                if (!r) {
                  return respond(ErrorResponse(r.error()));
                }
                ctx.hosts.Register(*r, ctx.clock.Now());
                WriteHost(ctx, r->name);
                if (ctx.target_groups != nullptr) {
                  ctx.target_groups->Register(r->name, r->targets, ctx.clock.Now());
                }
                if (ctx.events != nullptr) {
                  if (auto view = ctx.hosts.Get(r->name, ctx.clock.Now())) {
                    ctx.events->Publish("host", HostToJson(*view));
                  }
                }
                LogInfo("host " + r->name + " registered (agent " + r->version + ")");
                protocol::RegisterResponse out;
                out.interval_ms = ctx.agent_interval_ms;
                respond(JsonResponse(200, protocol::ToJson(out)));
              }});
  router.Add({"POST", "/agent/v1/report", Role::kAgent, "metric samples and check results",
              [&ctx](ApiRequest& req, Responder respond) {
                auto body = ParseBody(req, false);
                if (!body) {
                  return respond(ErrorResponse(body.error()));
                }
                auto r = protocol::ReportFromJson(*body);
                if (!r) {
                  return respond(ErrorResponse(r.error()));
                }
                if (Status s = ctx.hosts.ApplyReport(*r, ctx.clock.Now()); !s) {
                  return respond(ErrorResponse(s.error()));  // 404: register again
                }
                Evaluate(ctx, *r);
                if (ctx.hosts.TakeWriteTurn(r->host, ctx.clock.Now(), kLastSeenWriteEvery)) {
                  WriteHost(ctx, r->host);
                }
                respond(JsonResponse(200, Json::object()));
              }});
  router.Add({"GET", "/agent/v1/commands", Role::kAgent,
              "long poll for commands (?host=NAME&wait_ms=N, N <= 60000)",
              [&ctx](ApiRequest& req, Responder respond) {
                const std::string host = req.query["host"];
                if (!protocol::IsValidHostName(host)) {
                  return respond(ErrorResponse(400, "query parameter 'host' must be a host name"));
                }
                int64_t wait_ms = 25'000;
                if (auto it = req.query.find("wait_ms"); it != req.query.end()) {
                  const std::string& s = it->second;
                  if (s.empty() || s.size() > 6 ||
                      s.find_first_not_of("0123456789") != std::string::npos) {
                    return respond(ErrorResponse(400, "wait_ms must be an integer"));
                  }
                  wait_ms = std::min<int64_t>(std::stoll(s), 60'000);
                }
                ctx.commands.Poll(host, ctx.clock.SteadyNow() + Millis(wait_ms),
                                  [respond](std::vector<protocol::Command> cmds) {
                                    protocol::CommandBatch b{std::move(cmds)};
                                    respond(JsonResponse(200, protocol::ToJson(b)));
                                  });
              }});
  router.Add({"POST", "/agent/v1/results", Role::kAgent, "the outcome of a command",
              [&ctx](ApiRequest& req, Responder respond) {
                auto body = ParseBody(req, false);
                if (!body) {
                  return respond(ErrorResponse(body.error()));
                }
                auto r = protocol::CommandResultFromJson(*body);
                if (!r) {
                  return respond(ErrorResponse(r.error()));
                }
                ctx.commands.Complete(r->host, r->id);
                ctx.incidents.OnCommandResult(*r);
                respond(JsonResponse(200, Json::object()));
              }});
}

}  // namespace medic::server
