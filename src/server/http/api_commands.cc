// GET /api/v1/commands/{id}: what became of a command sent to a host (chaos, diagnostics, a
// fix): its state and the host's result as the agent reported it.

#include "protocol/actions.h"
#include "server/http/api_util.h"
#include "server/http/routes.h"

namespace medic::server {

namespace {

Json ResultToJson(const protocol::CommandResult& r) {
  Json j{{"ran", r.ran},           {"exit_code", r.exit_code}, {"signal", r.signal},
         {"timed_out", r.timed_out}, {"output", r.output},     {"truncated", r.truncated},
         {"error", r.error},       {"duration_ms", r.duration_ms}};
  return j;
}

}  // namespace

Json CommandRecordToJson(const CommandQueue::Record& r) {
  protocol::Action action{r.action, r.params};
  Json j{{"command_id", r.id},
         {"host", r.host},
         {"action", r.action},
         {"command", protocol::RenderCommandLine(action)},
         {"state", r.state},
         {"sent_at", FormatRfc3339(r.sent_at)},
         {"expires_at", FormatRfc3339(r.expires_at)},
         {"timeout_ms", r.timeout_ms}};
  if (r.result) {
    j["result"] = ResultToJson(*r.result);
  }
  return j;
}

void AddCommandRoutes(Router& router, const CommandQueue& commands) {
  router.Add({"GET", "/api/v1/commands/{id}", Role::kViewer,
              "a command sent to a host (chaos, diagnostics, a fix): its state (queued, "
              "delivered, succeeded, failed, refused, expired) and the host's result",
              [&commands](ApiRequest& req, Responder respond) {
                if (Status s = RequireQueryKeys(req, {}); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                const std::string& id = req.path_params["id"];
                std::optional<CommandQueue::Record> r = commands.Lookup(id);
                if (!r) {
                  return respond(ErrorResponse(
                      404, "command '" + id +
                               "' not found (a command is known to the server that sent it, "
                               "until 10 minutes after it expires)"));
                }
                respond(JsonResponse(200, CommandRecordToJson(*r)));
              }});
}

}  // namespace medic::server
