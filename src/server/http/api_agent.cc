// Routes the agents call (docs/PROTOCOL.md): register, report, long-poll commands, results.

#include <algorithm>

#include "server/http/api_util.h"
#include "server/http/routes.h"

namespace medic::server {

void AddAgentRoutes(Router& router, AgentRoutesDeps deps) {
  router.Add({"POST", "/agent/v1/register", Role::kAgent, "an agent announces its host",
              [&fleet = deps.fleet](ApiRequest& req, Responder respond) {
                auto body = ParseBody(req, false);
                if (!body) {
                  return respond(ErrorResponse(body.error()));
                }
                auto r = protocol::RegisterRequestFromJson(*body);
                if (!r) {
                  return respond(ErrorResponse(r.error()));
                }
                respond(JsonResponse(200, protocol::ToJson(fleet.Register(*r))));
              }});
  router.Add({"POST", "/agent/v1/report", Role::kAgent, "metric samples and check results",
              [&fleet = deps.fleet](ApiRequest& req, Responder respond) {
                auto body = ParseBody(req, false);
                if (!body) {
                  return respond(ErrorResponse(body.error()));
                }
                auto r = protocol::ReportFromJson(*body);
                if (!r) {
                  return respond(ErrorResponse(r.error()));
                }
                if (Status s = fleet.Report(*r); !s) {
                  return respond(ErrorResponse(s.error()));  // 404: register again
                }
                respond(JsonResponse(200, Json::object()));
              }});
  router.Add({"GET", "/agent/v1/commands", Role::kAgent,
              "long poll for commands (?host=NAME&wait_ms=N, N <= 60000)",
              [&commands = deps.commands, &clock = deps.clock](ApiRequest& req, Responder respond) {
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
                commands.Poll(host, clock.SteadyNow() + Millis(wait_ms),
                              [respond](std::vector<protocol::Command> cmds) {
                                protocol::CommandBatch b{std::move(cmds)};
                                respond(JsonResponse(200, protocol::ToJson(b)));
                              });
              }});
  router.Add({"POST", "/agent/v1/results", Role::kAgent, "the outcome of a command",
              [&commands = deps.commands, &incidents = deps.incidents](ApiRequest& req,
                                                                       Responder respond) {
                auto body = ParseBody(req, false);
                if (!body) {
                  return respond(ErrorResponse(body.error()));
                }
                auto r = protocol::CommandResultFromJson(*body);
                if (!r) {
                  return respond(ErrorResponse(r.error()));
                }
                commands.Complete(r->host, r->id);
                incidents.OnCommandResult(*r);
                respond(JsonResponse(200, Json::object()));
              }});
}

}  // namespace medic::server
