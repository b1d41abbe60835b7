// Operator routes for incidents: list, show, report, approve, reject, undo.

#include "server/http/api_util.h"
#include "server/http/routes.h"
#include "server/incidents/incident_json.h"
#include "server/incidents/report.h"

namespace medic::server {

namespace {

struct DecisionRequest {
  std::optional<std::string> action_hash;  // what the operator saw (ActionHash)
  std::string comment;
  std::optional<int64_t> option;  // approve: which of the incident's options (1-based)
};

// {"action_hash": "<64 hex>", "comment": "...", "option": N}: all optional here; approve
// requires the hash.
Result<DecisionRequest> ParseDecision(const ApiRequest& req) {
  ASSIGN_OR_RETURN(Json body, ParseBody(req, true));
  DecisionRequest d;
  for (const auto& [k, v] : body.items()) {
    if (k != "comment" && k != "action_hash" && k != "option") {
      return InvalidArgument("unknown field '" + k +
                             "' (only 'action_hash', 'comment' and 'option' are accepted)");
    }
  }
  if (auto it = body.find("option"); it != body.end()) {
    const std::optional<int64_t> n = AsInt64(*it);
    if (!it->is_number_integer() || !n || *n < 1) {
      return InvalidArgument("option must be a whole number from 1 to the number of the "
                             "incident's options (1 is the first, what approval runs by "
                             "default), not " + it->dump());
    }
    d.option = *n;
  }
  ASSIGN_OR_RETURN(auto comment, OptionalString(body, "comment"));
  d.comment = comment.value_or("");
  if (d.comment.size() > 4096) {
    return InvalidArgument("comment is longer than 4096 bytes");
  }
  ASSIGN_OR_RETURN(d.action_hash, OptionalString(body, "action_hash"));
  if (d.action_hash &&
      (d.action_hash->size() != 64 ||
       d.action_hash->find_first_not_of("0123456789abcdef") != std::string::npos)) {
    return InvalidArgument(
        "action_hash must be 64 lowercase hexadecimal characters (the incident's action_hash)");
  }
  return d;
}

// {"step": "diagnose"|"verify", "comment": "..."}: the stage gate an operator approves.
Result<std::pair<std::string, std::string>> ParseStepApproval(const ApiRequest& req) {
  ASSIGN_OR_RETURN(Json body, ParseBody(req, false));
  for (const auto& [k, v] : body.items()) {
    if (k != "comment" && k != "step") {
      return InvalidArgument("unknown field '" + k +
                             "' (only 'step' and 'comment' are accepted)");
    }
  }
  ASSIGN_OR_RETURN(auto step, OptionalString(body, "step"));
  if (!step) {
    return InvalidArgument("step is required: diagnose or verify");
  }
  if (*step != "diagnose" && *step != "verify") {
    return InvalidArgument("step must be diagnose or verify, got '" + step->substr(0, 64) +
                           "' (a fix is approved with /approve)");
  }
  ASSIGN_OR_RETURN(auto comment, OptionalString(body, "comment"));
  if (comment && comment->size() > 4096) {
    return InvalidArgument("comment is longer than 4096 bytes");
  }
  return std::make_pair(*step, comment.value_or(""));
}

// The alarm's metric on the incident's host around the incident, for the report: nullopt when
// the alarm's rule is no longer configured; no points when the host or its history is gone.
ReportMetric MetricForReport(const Incident& inc, const HostRegistry& hosts,
                             const AlarmEngine& alarms, WallTime now) {
  const AlarmRule* rule = alarms.FindRule(inc.alarm_name);
  if (rule == nullptr) {
    return std::nullopt;
  }
  const MetricWindow window = ReportMetricWindow(inc, now);
  AlarmMetric m{SeriesName(rule->metric, rule->labels), rule->comparison, rule->threshold,
                window.from, window.to, {}};
  if (auto points = hosts.History(inc.instance_id, m.series, window.from)) {
    for (const auto& p : *points) {
      if (p.t <= window.to) {
        m.points.push_back({p.t, p.v});
      }
    }
  }
  return m;
}

}  // namespace

void AddIncidentRoutes(Router& router, IncidentRoutesDeps deps) {

  router.Add({"GET", "/api/v1/incidents", Role::kViewer,
              "list incidents, newest first "
              "(?status=S&alarm=A&host=H&before=ID&limit=N&view=full|summary)",
              [&store = deps.store](ApiRequest& req, Responder respond) {
                if (Status s = RequireQueryKeys(req, {"status", "alarm", "host", "before", "limit", "view"}); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                IncidentQuery q;
                if (auto it = req.query.find("status"); it != req.query.end() && !it->second.empty()) {
                  auto st = ParseStatus(it->second);
                  if (!st) {
                    return respond(ErrorResponse(st.error()));
                  }
                  q.status = *st;
                }
                if (auto it = req.query.find("alarm"); it != req.query.end() && !it->second.empty()) {
                  q.alarm_name = it->second;
                }
                if (auto it = req.query.find("host"); it != req.query.end() && !it->second.empty()) {
                  q.instance_id = it->second;
                }
                // The next page: incidents older than this one (the last of the previous page).
                if (auto it = req.query.find("before"); it != req.query.end() && !it->second.empty()) {
                  auto last = store.GetIncident(it->second);
                  if (!last) {
                    return respond(ErrorResponse(
                        last.error().code == ErrorCode::kNotFound
                            ? InvalidArgument("before: no incident '" + it->second + "'")
                            : last.error()));
                  }
                  q.before = IncidentQuery::Cursor{last->created_at, last->incident_id};
                }
                auto limit = ParseLimit(req, 100);
                if (!limit) {
                  return respond(ErrorResponse(limit.error()));
                }
                q.limit = *limit;
                // summary: without the long texts (diagnostics, reasoning, output, timeline),
                // for lists such as the dashboard's; GET /api/v1/incidents/ID has them all.
                bool summary = false;
                if (auto it = req.query.find("view"); it != req.query.end()) {
                  if (it->second != "full" && it->second != "summary") {
                    return respond(ErrorResponse(400, "view must be full or summary"));
                  }
                  summary = it->second == "summary";
                }
                auto list = store.ListIncidents(q);
                if (!list) {
                  return respond(ErrorResponse(list.error()));
                }
                Json out = Json::array();
                for (const auto& inc : *list) {
                  out.push_back(summary ? IncidentSummaryJson(inc) : IncidentJson(inc));
                }
                respond(JsonResponse(200, Json{{"incidents", out}}));
              }});
  router.Add({"GET", "/api/v1/incidents/{id}", Role::kViewer, "one incident with its timeline",
              [&store = deps.store](ApiRequest& req, Responder respond) {
                auto inc = store.GetIncident(req.path_params["id"]);
                if (!inc) {
                  return respond(ErrorResponse(inc.error()));
                }
                respond(JsonResponse(200, IncidentJson(*inc)));
              }});
  router.Add({"GET", "/api/v1/incidents/{id}/report", Role::kViewer,
              "an incident's postmortem report (?format=md|html, default md)",
              [deps](ApiRequest& req, Responder respond) {
                if (Status s = RequireQueryKeys(req, {"format"}); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                auto it = req.query.find("format");
                const std::string format = it == req.query.end() ? "md" : it->second;
                if (format != "md" && format != "html") {
                  return respond(ErrorResponse(400, "format must be md or html"));
                }
                auto inc = deps.store.GetIncident(req.path_params["id"]);
                if (!inc) {
                  return respond(ErrorResponse(inc.error()));
                }
                const ReportMetric metric =
                    MetricForReport(*inc, deps.hosts, deps.alarms, deps.clock.Now());
                ApiResponse r;
                if (format == "html") {
                  r.content_type = "text/html; charset=utf-8";
                  r.body = IncidentReportHtml(*inc, metric);
                } else {
                  r.content_type = "text/markdown; charset=utf-8";
                  r.body = IncidentReportMarkdown(*inc, metric);
                }
                r.headers = {{"Content-Security-Policy", kReportContentSecurityPolicy},
                             {"X-Content-Type-Options", "nosniff"}};
                respond(std::move(r));
              }});
  router.Add({"POST", "/api/v1/incidents/{id}/approve", Role::kOperator,
              "approve the proposed fix of a pending_approval incident "
              "({\"action_hash\":\"...\",\"comment\":\"...\"}; 409 if the proposal changed or "
              "the approval expired)",
              [&incidents = deps.incidents](ApiRequest& req, Responder respond) {
                auto d = ParseDecision(req);
                if (!d) {
                  return respond(ErrorResponse(d.error()));
                }
                if (!d->action_hash) {
                  // An approval names what it approves: the proposal the operator saw.
                  return respond(ErrorResponse(400, "action_hash is required"));
                }
                // Answered when the incident's driver has decided (another server, with
                // several on one store: docs/DEPLOY.md); no thread waits for it.
                incidents.ApproveAsync(
                    req.path_params["id"], req.principal, *d->action_hash, d->comment,
                    [respond](Result<Incident> inc) {
                      if (!inc) {
                        return respond(ErrorResponse(inc.error()));
                      }
                      respond(JsonResponse(200, IncidentJson(*inc)));
                    },
                    static_cast<size_t>(d->option.value_or(1)));
              }});
  router.Add({"POST", "/api/v1/incidents/{id}/undo", Role::kOperator,
              "run the recorded undo of a finished incident's fix (restore an archived log, "
              "start a stopped service); 409 when there is nothing to undo or it was undone",
              [&incidents = deps.incidents](ApiRequest& req, Responder respond) {
                if (!req.body.empty()) {
                  if (auto body = ParseBody(req, true); !body) {
                    return respond(ErrorResponse(body.error()));
                  } else if (!body->empty()) {
                    return respond(ErrorResponse(400, "undo takes no fields"));
                  }
                }
                auto inc = incidents.Undo(req.path_params["id"], req.principal);
                if (!inc) {
                  return respond(ErrorResponse(inc.error()));
                }
                respond(JsonResponse(200, IncidentJson(*inc)));
              }});
  router.Add({"POST", "/api/v1/incidents/{id}/approve-step", Role::kOperator,
              "approve the gated step an incident waits at "
              "({\"step\":\"diagnose|verify\",\"comment\":\"...\"}; 409 unless it waits at that "
              "step; docs/AUTONOMY.md \"Stage gates\")",
              [&incidents = deps.incidents](ApiRequest& req, Responder respond) {
                auto d = ParseStepApproval(req);
                if (!d) {
                  return respond(ErrorResponse(d.error()));
                }
                auto inc = incidents.ApproveStep(req.path_params["id"], req.principal, d->first,
                                                 d->second);
                if (!inc) {
                  return respond(ErrorResponse(inc.error()));
                }
                respond(JsonResponse(200, IncidentJson(*inc)));
              }});
  router.Add({"POST", "/api/v1/incidents/{id}/reject", Role::kOperator,
              "reject the suggested fix of a pending_approval incident ({\"comment\":\"...\"})",
              [&incidents = deps.incidents](ApiRequest& req, Responder respond) {
                auto d = ParseDecision(req);
                if (!d) {
                  return respond(ErrorResponse(d.error()));
                }
                if (d->option) {
                  return respond(ErrorResponse(400, "option applies to approve only"));
                }
                incidents.RejectAsync(req.path_params["id"], req.principal, d->comment,
                                      [respond](Result<Incident> inc) {
                                        if (!inc) {
                                          return respond(ErrorResponse(inc.error()));
                                        }
                                        respond(JsonResponse(200, IncidentJson(*inc)));
                                      });
              }});
}

}  // namespace medic::server
