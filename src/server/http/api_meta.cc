// Health, metrics, settings, the route listing and the index page.

#include "server/http/context.h"

namespace medic::server {

void AddEventRoutes(Router& router, ServerContext& ctx) {
  router.Add({"GET", "/api/v1/events", Role::kViewer,
              "server-sent events: incident (every change), alarm (state changes), host "
              "(registrations)",
              [&ctx](ApiRequest&, Responder respond) {
                if (ctx.events == nullptr) {
                  return respond(ErrorResponse(503, "events are not available"));
                }
                ApiResponse r;
                r.content_type = "text/event-stream";
                r.body = ": connected to medic\n\n";
                EventHub* hub = ctx.events;
                r.on_stream = [hub](StreamWriter writer) { hub->Subscribe(std::move(writer)); };
                respond(std::move(r));
              }});
}

void AddMetaRoutes(Router& router, ServerContext& ctx) {
  router.Add({"GET", "/healthz", Role::kPublic, "200 while the server is serving",
              [](ApiRequest&, Responder respond) {
                respond(JsonResponse(200, Json{{"status", "ok"}}));
              }});
  router.Add({"GET", "/metrics", Role::kPublic, "Prometheus text format",
              [&ctx](ApiRequest&, Responder respond) {
                std::map<std::string, int> by_status;
                for (const auto& h : ctx.hosts.List(ctx.clock.Now())) {
                  by_status[h.status]++;
                }
                int alarming = 0;
                for (const auto& a : ctx.alarms.All()) {
                  alarming += a.state == AlarmState::kAlarm ? 1 : 0;
                }
                std::string text;
                text += "# HELP medic_hosts Known hosts by status.\n# TYPE medic_hosts gauge\n";
                for (const char* s : {"healthy", "unhealthy", "stale"}) {
                  text += "medic_hosts{status=\"" + std::string(s) + "\"} " +
                          std::to_string(by_status[s]) + "\n";
                }
                text += "# HELP medic_alarms_in_alarm Alarms currently in ALARM.\n"
                        "# TYPE medic_alarms_in_alarm gauge\nmedic_alarms_in_alarm " +
                        std::to_string(alarming) + "\n";
                text += "# HELP medic_incidents_active Incidents being driven.\n"
                        "# TYPE medic_incidents_active gauge\nmedic_incidents_active " +
                        std::to_string(ctx.incidents.active_count()) + "\n";
                text += "# HELP medic_agent_polls_parked Agent long polls waiting.\n"
                        "# TYPE medic_agent_polls_parked gauge\nmedic_agent_polls_parked " +
                        std::to_string(ctx.commands.parked_polls()) + "\n";
                ApiResponse r;
                r.content_type = "text/plain; version=0.0.4";
                r.body = std::move(text);
                respond(std::move(r));
              }});
  router.Add({"GET", "/api/v1/settings", Role::kViewer, "global settings",
              [&ctx](ApiRequest&, Responder respond) {
                respond(JsonResponse(200, SettingsToJson(ctx.settings.Get())));
              }});
  router.Add({"PUT", "/api/v1/settings", Role::kAdmin,
              "change settings ({\"approval_mode\":bool,\"automation_paused\":bool})",
              [&ctx](ApiRequest& req, Responder respond) {
                auto body = ParseBody(req, false);
                if (!body) {
                  return respond(ErrorResponse(body.error()));
                }
                auto s = ctx.settings.Update(*body);
                if (!s) {
                  return respond(ErrorResponse(s.error()));
                }
                Audit(ctx, req.principal, "settings.update", DumpJson(*body));
                respond(JsonResponse(200, SettingsToJson(*s)));
              }});
  router.Add({"GET", "/", Role::kPublic, "the dashboard",
              [](ApiRequest&, Responder respond) {
                ApiResponse r;
                r.content_type = "text/html; charset=utf-8";
                r.body =
                    "<!doctype html><html><head><meta charset=utf-8><title>medic</title></head>"
                    "<body><h1>medic</h1><p>The dashboard is not built yet. Use the <code>medic"
                    "</code> CLI or the API under <code>/api/v1</code> (GET /api/v1 lists every "
                    "route).</p></body></html>";
                respond(std::move(r));
              }});
}

}  // namespace medic::server
