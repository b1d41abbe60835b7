// Alerts from outside: Alertmanager's webhook, and the record of what could not be matched
// (docs/integrations/ingest.md). The handlers parse, map (server/ingest/alertmanager.h) and hand
// each alert to the AlertSink; what an alert does to alarms and incidents is decided there.

#include "server/http/api_util.h"
#include "server/http/routes.h"
#include "server/ingest/alertmanager.h"

namespace medic::server {

namespace {

// Alertmanager bodies grow with the group: a thousand alerts with their labels fit.
constexpr size_t kIngestMaxBodyBytes = 1024 * 1024;

}  // namespace

void AddIngestRoutes(Router& router, IngestRoutesDeps deps) {
  Route am{"POST", "/api/v1/ingest/alertmanager", Role::kIngest,
           "Alertmanager's webhook (version 4): each alert becomes an alarm state on its host",
           [deps](ApiRequest& req, Responder respond) {
             auto hook = ParseAlertmanagerWebhook(req.body, deps.alertmanager.max_alerts);
             if (!hook) {
               return respond(ErrorResponse(400, "alertmanager webhook: " +
                                                     hook.error().message));
             }
             Json counts = Json::object();
             for (IngestResult r : {IngestResult::kApplied, IngestResult::kUnchanged,
                                    IngestResult::kStale, IngestResult::kUnknownHost,
                                    IngestResult::kUnmapped}) {
               counts[IngestResultName(r)] = 0;
             }
             Json alerts = Json::array();
             for (const AlertmanagerAlert& a : hook->alerts) {
               MappedAlert m = MapAlertmanagerAlert(a, deps.alertmanager);
               Json one{{"summary", m.summary}};
               IngestResult r = IngestResult::kUnmapped;
               if (m.alert) {
                 r = deps.sink.Submit(*m.alert);
                 one["alarm_name"] = m.alert->alarm;
                 one["host"] = m.alert->host;
                 one["status"] = a.status;
               } else {
                 deps.sink.RecordUnmapped("alertmanager", m.summary, m.why);
                 one["why"] = m.why;
               }
               one["result"] = IngestResultName(r);
               counts[IngestResultName(r)] = counts[IngestResultName(r)].get<int64_t>() + 1;
               alerts.push_back(std::move(one));
             }
             respond(JsonResponse(200, Json{{"received", hook->alerts.size()},
                                            {"results", counts},
                                            {"alerts", alerts}}));
           }};
  am.max_body_bytes = kIngestMaxBodyBytes;
  router.Add(std::move(am));
  router.Add({"GET", "/api/v1/ingest/unmatched", Role::kViewer,
              "external alerts for unknown hosts or that no rule maps, newest first (in memory)",
              [&record = deps.record](ApiRequest&, Responder respond) {
                Json out = Json::array();
                for (const UnmatchedAlert& u : record.Unmatched()) {
                  Json j{{"received", FormatRfc3339(u.received)},
                         {"source", u.source},
                         {"result", IngestResultName(u.result)},
                         {"summary", u.summary},
                         {"why", u.why}};
                  if (u.result == IngestResult::kUnknownHost) {
                    j["alarm_name"] = u.alarm;
                    j["host"] = u.host;
                    j["firing"] = u.firing;
                  }
                  out.push_back(std::move(j));
                }
                respond(JsonResponse(200, Json{{"unmatched", out}}));
              }});
}

std::string IngestMetricsText(const ExternalAlarms& record) {
  std::string text =
      "# HELP medic_ingest_alerts_total External alerts received, by source and what became of "
      "each (applied, unchanged, stale, unknown_host, unmapped).\n"
      "# TYPE medic_ingest_alerts_total counter\n";
  for (const auto& [key, n] : record.Counts()) {
    text += "medic_ingest_alerts_total{source=\"" + key.first + "\",result=\"" + key.second +
            "\"} " + std::to_string(n) + "\n";
  }
  return text;
}

}  // namespace medic::server
