// Routes the agents call (docs/PROTOCOL.md): register, report, long-poll commands, results.
// The caller is the host its credential names (req.principal, Role::kAgent): a request that
// names another host is refused with 403, and a result only counts from the host its command
// was sent to.

#include <algorithm>

#include "server/http/api_util.h"
#include "server/http/routes.h"

namespace medic::server {

namespace {

ApiResponse NotYourHost(const ApiRequest& req, const std::string& named) {
  return ErrorResponse(403, "host '" + req.principal + "' may not act as host '" + named + "'");
}

}  // namespace

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
                if (r->name != req.principal) {
                  return respond(NotYourHost(req, r->name));
                }
                // The server probes what a host registers: only the host itself.
                for (const auto& t : r->targets) {
                  if (Status s = CheckTargetOnHost(t.url, PeerAddress(req.peer)); !s) {
                    return respond(ErrorResponse(s.error()));
                  }
                }
                auto registered = fleet.Register(*r);
                if (!registered) {
                  return respond(ErrorResponse(registered.error()));  // 400, 413: a limit
                }
                respond(JsonResponse(200, protocol::ToJson(*registered)));
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
                if (r->host != req.principal) {
                  return respond(NotYourHost(req, r->host));
                }
                if (Status s = fleet.Report(std::move(*r)); !s) {
                  return respond(ErrorResponse(s.error()));  // 404: register again; a limit
                }
                respond(JsonResponse(200, Json::object()));
              }});
  router.Add({"GET", "/agent/v1/commands", Role::kAgent,
              "long poll for the caller's commands (?host=NAME&wait_ms=N, N <= 60000; host: "
              "the caller's own, may be left out)",
              [&commands = deps.commands, &clock = deps.clock,
               &identities = deps.identities](ApiRequest& req, Responder respond) {
                const std::string host = req.principal;
                if (Status s = RequireQueryKeys(req, {"host", "wait_ms"}); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                if (auto it = req.query.find("host"); it != req.query.end()) {
                  if (!protocol::IsValidHostName(it->second)) {
                    return respond(
                        ErrorResponse(400, "query parameter 'host' must be a host name"));
                  }
                  if (it->second != host) {
                    return respond(NotYourHost(req, it->second));
                  }
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
                // A poll parked when its host is revoked is woken (CommandQueue::Wake) and
                // answered 401 here, like any later call of that host. A revocation between
                // the router's check and the parking is caught by the check after it.
                const std::string credential(BearerToken(req.authorization));
                const uint64_t ticket = commands.Poll(
                    host, clock.SteadyNow() + Millis(wait_ms),
                    [respond, &identities, credential](std::vector<protocol::Command> cmds) {
                      if (!identities.Authenticate(credential)) {
                        return respond(ErrorResponse(401, "invalid token"));
                      }
                      protocol::CommandBatch b{std::move(cmds)};
                      respond(JsonResponse(200, protocol::ToJson(b)));
                    });
                // An agent that went away (killed, rebooted) frees its parked poll and its
                // connection at once, not when the poll expires.
                if (req.client_gone) {
                  req.client_gone->OnGone(
                      [&commands, host, ticket] { commands.Cancel(host, ticket); });
                }
                if (!identities.Authenticate(credential)) {
                  commands.Wake(host);
                }
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
                if (r->host != req.principal) {
                  return respond(NotYourHost(req, r->host));
                }
                if (auto to = commands.RecipientOf(r->id); to && *to != req.principal) {
                  return respond(ErrorResponse(
                      403, "command " + r->id + " was not sent to host '" + req.principal + "'"));
                }
                commands.Complete(*r);
                incidents.OnCommandResult(*r);
                respond(JsonResponse(200, Json::object()));
              }});
}

}  // namespace medic::server
