// Operator routes for hosts, alarm states, target groups and chaos.

#include <set>

#include "core/files.h"
#include "protocol/actions.h"
#include "protocol/wire.h"
#include "server/http/api_util.h"
#include "server/http/routes.h"

namespace medic::server {

void AddHostRoutes(Router& router, HostRoutesDeps deps) {
  router.Add({"GET", "/api/v1/hosts", Role::kViewer,
              "known hosts with status, last_seen, latest metrics and checks, and the counts by "
              "status (?status=healthy|unhealthy|stale&prefix=P&limit=N&after=NAME)",
              [deps](ApiRequest& req, Responder respond) {
                HostQuery q;
                if (Status s = RequireQueryKeys(req, {"status", "prefix", "limit", "after"}); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                if (auto it = req.query.find("status"); it != req.query.end()) {
                  if (it->second != "healthy" && it->second != "unhealthy" &&
                      it->second != "stale") {
                    return respond(
                        ErrorResponse(400, "status must be healthy, unhealthy or stale"));
                  }
                  q.status = it->second;
                }
                if (auto it = req.query.find("prefix"); it != req.query.end()) {
                  q.prefix = it->second;
                }
                if (auto it = req.query.find("after"); it != req.query.end()) {
                  q.after = it->second;
                }
                if (req.query.count("limit") > 0) {
                  auto limit = ParseIntParam(req, "limit", 1, 10'000, 0);
                  if (!limit) {
                    return respond(ErrorResponse(limit.error()));
                  }
                  q.limit = static_cast<size_t>(*limit);
                }
                const WallTime now = deps.clock.Now();
                HostStatusCounts counts;
                HostPage page;
                if (deps.cluster != nullptr) {
                  // Every host of the shared store, not only those reporting here.
                  Result<HostStatusCounts> all = deps.cluster->Counts(now);
                  Result<HostPage> listed =
                      all.has_value() ? deps.cluster->Page(q, now) : Result<HostPage>(all.error());
                  if (!listed) {
                    return respond(ErrorResponse(listed.error()));
                  }
                  counts = *all;
                  page = std::move(*listed);
                } else {
                  counts = deps.hosts.Counts(now);
                  page = deps.hosts.Page(q, now);
                }
                Json out = Json::array();
                for (const auto& h : page.hosts) {
                  out.push_back(HostToJson(h));
                }
                Json body{{"hosts", std::move(out)},
                          {"counts", Json{{"healthy", counts.healthy},
                                          {"unhealthy", counts.unhealthy},
                                          {"stale", counts.stale},
                                          {"total", counts.total()}}}};
                if (!page.next.empty()) {
                  body["next"] = page.next;
                }
                respond(JsonResponse(200, body));
              }});
  router.Add({"DELETE", "/api/v1/hosts/{name}", Role::kAdmin,
              "remove a retired host: its stored facts, alarm states and target memberships; "
              "409 while it has open incidents unless ?close_incidents=true",
              [deps](ApiRequest& req, Responder respond) {
                const std::string name = req.path_params["name"];
                if (Status s = RequireQueryKeys(req, {"close_incidents"}); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                bool close = false;
                if (auto it = req.query.find("close_incidents"); it != req.query.end()) {
                  if (it->second != "true" && it->second != "false") {
                    return respond(ErrorResponse(400, "close_incidents must be true or false"));
                  }
                  close = it->second == "true";
                }
                std::vector<std::string> open;
                if (deps.incidents != nullptr) {
                  Result<std::vector<std::string>> ids = deps.incidents->OpenIncidentsOf(name);
                  if (!ids) {
                    return respond(ErrorResponse(ids.error()));
                  }
                  open = std::move(*ids);
                }
                if (!open.empty() && !close) {
                  std::string list;
                  for (const std::string& id : open) {
                    list += (list.empty() ? "" : ", ") + id;
                  }
                  return respond(JsonResponse(
                      409, Json{{"error", "host '" + name + "' has open incidents (" + list +
                                              "): close them with close_incidents=true (medic "
                                              "hosts remove " + name +
                                              " --close-incidents), or decide them first"},
                                {"open_incidents", open}}));
                }
                if (Status s = deps.fleet.Remove(name); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                if (deps.cluster != nullptr) {
                  deps.cluster->Invalidate();
                }
                Audit(deps.store, deps.clock, req.principal, "host.remove", name);
                Json closed = Json::array();
                if (close && deps.incidents != nullptr) {
                  Result<std::vector<std::string>> ids =
                      deps.incidents->CloseForRemovedHost(name, req.principal);
                  if (!ids) {
                    return respond(ErrorResponse(ids.error()));
                  }
                  closed = *ids;
                }
                respond(JsonResponse(200, Json{{"removed", name}, {"closed_incidents", closed}}));
              }});
  router.Add({"GET", "/api/v1/hosts/{name}/metrics", Role::kViewer,
              "history of one metric (?metric=M&since=RFC3339&max_points=N&keep=highest|lowest)",
              [deps](ApiRequest& req, Responder respond) {
                if (Status s = RequireQueryKeys(req, {"metric", "since", "max_points", "keep"}); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                auto m = req.query.find("metric");
                if (m == req.query.end() || m->second.empty()) {
                  return respond(ErrorResponse(400, "query parameter 'metric' is required"));
                }
                WallTime since = deps.clock.Now() - std::chrono::hours(1);
                if (auto s = req.query.find("since"); s != req.query.end()) {
                  auto t = ParseRfc3339(s->second);
                  if (!t) {
                    return respond(ErrorResponse(t.error()));
                  }
                  since = *t;
                }
                auto max_points = ParseIntParam(req, "max_points", 1, 3600, 3600);
                if (!max_points) {
                  return respond(ErrorResponse(max_points.error()));
                }
                bool lowest = false;
                if (auto k = req.query.find("keep"); k != req.query.end()) {
                  if (k->second != "highest" && k->second != "lowest") {
                    return respond(ErrorResponse(400, "keep must be highest or lowest"));
                  }
                  lowest = k->second == "lowest";
                }
                const std::string& name = req.path_params["name"];
                auto points = deps.hosts.History(name, m->second, since);
                if (!points && points.error().code == ErrorCode::kNotFound &&
                    deps.cluster != nullptr) {
                  // The history is kept in memory by the server the host reports to, not in
                  // the shared store: say which server has it.
                  Result<std::optional<HostView>> there = deps.cluster->Get(name, deps.clock.Now());
                  if (!there) {
                    return respond(ErrorResponse(there.error()));
                  }
                  if (there->has_value()) {
                    const std::string server = (*there)->server.value_or("");
                    return respond(ErrorResponse(
                        409, "host '" + name + "' reports to " +
                                 (server.empty() ? std::string("another server")
                                                 : "server '" + server + "'") +
                                 ": its metric history is kept there (in memory, not in the "
                                 "shared store); ask that server"));
                  }
                }
                if (!points) {
                  return respond(ErrorResponse(points.error()));
                }
                Json out = Json::array();
                for (const auto& p : KeepExtremes(std::move(*points), *max_points, lowest)) {
                  out.push_back(Json{{"t", FormatRfc3339(p.t)}, {"v", p.v}});
                }
                respond(JsonResponse(200, Json{{"points", out}}));
              }});
}

void AddHostViewRoute(Router& router, HostRoutesDeps deps) {
  router.Add({"GET", "/api/v1/hosts/{name}", Role::kViewer,
              "one host as GET /api/v1/hosts lists it (404 when no server knows it)",
              [deps](ApiRequest& req, Responder respond) {
                const std::string& name = req.path_params["name"];
                const WallTime now = deps.clock.Now();
                std::optional<HostView> view;
                if (deps.cluster != nullptr) {
                  Result<std::optional<HostView>> got = deps.cluster->Get(name, now);
                  if (!got) {
                    return respond(ErrorResponse(got.error()));
                  }
                  view = std::move(*got);
                } else {
                  view = deps.hosts.Get(name, now);
                }
                if (!view) {
                  return respond(ErrorResponse(404, "host '" + name + "' not found"));
                }
                respond(JsonResponse(200, HostToJson(*view)));
              }});
}

namespace {

// GET /api/v1/alarms's query, checked: every parameter known, every value valid.
Result<AlarmQuery> ParseAlarmQuery(const ApiRequest& req, const AlarmEngine& alarms,
                                   const ExternalAlarms* external) {
  RETURN_IF_ERROR(
      RequireQueryKeys(req, {"state", "host", "host_prefix", "alarm", "limit", "after"}));
  AlarmQuery q;
  if (auto it = req.query.find("state"); it != req.query.end()) {
    for (AlarmState s : {AlarmState::kOk, AlarmState::kAlarm, AlarmState::kInsufficientData}) {
      if (it->second == AlarmStateName(s)) {
        q.state = s;
      }
    }
    if (!q.state) {
      return InvalidArgument("state must be OK, ALARM or INSUFFICIENT_DATA, not '" + it->second +
                             "'");
    }
  }
  if (auto it = req.query.find("host"); it != req.query.end()) {
    if (!protocol::IsValidHostName(it->second)) {
      return InvalidArgument("host must be a host name, not '" + it->second + "'");
    }
    q.host = it->second;
  }
  if (auto it = req.query.find("host_prefix"); it != req.query.end()) {
    if (!q.host.empty()) {
      return InvalidArgument("give host or host_prefix, not both");
    }
    // The start of a valid name: the same characters, and no leading '.' or '-'.
    if (!protocol::IsValidHostName(it->second)) {
      return InvalidArgument("host_prefix must be the start of a host name, not '" + it->second +
                             "'");
    }
    q.host_prefix = it->second;
  }
  if (auto it = req.query.find("alarm"); it != req.query.end()) {
    const auto external_names = [&] {
      if (external == nullptr) {
        return false;
      }
      for (const auto& x : external->List()) {
        if (x.alarm == it->second) {
          return true;
        }
      }
      return false;
    };
    if (alarms.FindRule(it->second) == nullptr && !external_names()) {
      return InvalidArgument("alarm '" + it->second + "' is not a configured alarm");
    }
    q.alarm = it->second;
  }
  if (req.query.contains("limit")) {
    ASSIGN_OR_RETURN(int limit, ParseIntParam(req, "limit", 1, 10000, 10000));
    q.limit = static_cast<size_t>(limit);
  }
  if (auto it = req.query.find("after"); it != req.query.end()) {
    // The cursor is a previous answer's `next`: "<host>/<alarm name>" (host names have no '/').
    const size_t slash = it->second.find('/');
    if (slash == std::string::npos || !protocol::IsValidHostName(it->second.substr(0, slash))) {
      return InvalidArgument("after must be a previous answer's 'next' (<host>/<alarm>), not '" +
                             it->second + "'");
    }
    q.after_host = it->second.substr(0, slash);
    q.after_rule = it->second.substr(slash + 1);
  }
  return q;
}

}  // namespace

void AddAlarmRoutes(Router& router, const AlarmEngine& alarms, const TargetGroups& target_groups,
                    const ExternalAlarms* external) {
  router.Add({"GET", "/api/v1/alarms", Role::kViewer,
              "alarm states (?state=&host=|host_prefix=&alarm=&limit=&after=), counts, the rules",
              [&alarms, external](ApiRequest& req, Responder respond) {
                auto query = ParseAlarmQuery(req, alarms, external);
                if (!query) {
                  return respond(ErrorResponse(query.error()));
                }
                const AlarmPage page = alarms.List(*query);
                Json out = Json::array();
                for (const auto& a : page.alarms) {
                  const AlarmRule* rule = alarms.FindRule(a.rule);
                  out.push_back(Json{{"alarm_name", a.rule},
                                     {"host", a.host},
                                     {"state", AlarmStateName(a.state)},
                                     {"since", FormatRfc3339(a.since)},
                                     {"last_value", a.last_value},
                                     {"reason", a.reason},
                                     {"remediating", a.remediating},
                                     {"description", rule ? rule->description : ""}});
                }
                if (external != nullptr && !page.more) {
                  // The external alarms' states (server/ingest/) after the engine's, on the
                  // last page, filtered alike; each says where it came from.
                  const AlarmQuery& q = *query;
                  for (const auto& x : external->List()) {
                    if (out.size() >= q.limit) {
                      break;
                    }
                    if ((q.state && *q.state != x.state) || (!q.host.empty() && q.host != x.host) ||
                        (!q.host_prefix.empty() && x.host.rfind(q.host_prefix, 0) != 0) ||
                        (!q.alarm.empty() && q.alarm != x.alarm)) {
                      continue;
                    }
                    out.push_back(Json{{"alarm_name", x.alarm},
                                       {"host", x.host},
                                       {"state", AlarmStateName(x.state)},
                                       {"since", FormatRfc3339(x.since)},
                                       {"reason", x.reason},
                                       {"remediating", x.remediating},
                                       {"description", x.description},
                                       {"source", x.source}});
                  }
                }
                Json rules = Json::array();
                for (const auto& r : alarms.rules()) {
                  Json rule{{"alarm_name", r.name},
                            {"metric", r.metric},
                            {"series", SeriesName(r.metric, r.labels)},
                            {"comparison", ComparisonSymbol(r.comparison)},
                            {"threshold", r.threshold},
                            {"period_ms", r.period.count()},
                            {"evaluation_periods", r.evaluation_periods},
                            {"datapoints_to_alarm", r.datapoints_to_alarm},
                            {"treat_missing_data", MissingDataName(r.treat_missing_data)},
                            {"description", r.description}};
                  if (!r.labels.empty()) {
                    rule["labels"] = r.labels;
                  }
                  if (r.clear_threshold) {
                    rule["clear_threshold"] = *r.clear_threshold;
                  }
                  rules.push_back(std::move(rule));
                }
                AlarmCounts c = alarms.Counts();
                if (external != nullptr) {
                  // The external alarms count alike (the dashboard's summary reads these).
                  for (const auto& x : external->List()) {
                    switch (x.state) {
                      case AlarmState::kOk: ++c.ok; break;
                      case AlarmState::kAlarm: ++c.alarm; break;
                      case AlarmState::kInsufficientData: ++c.insufficient_data; break;
                    }
                  }
                }
                Json body{{"alarms", out},
                          {"rules", rules},
                          {"counts",
                           {{"OK", c.ok},
                            {"ALARM", c.alarm},
                            {"INSUFFICIENT_DATA", c.insufficient_data}}}};
                if (page.more && !page.alarms.empty()) {
                  body["next"] = page.alarms.back().host + "/" + page.alarms.back().rule;
                }
                respond(JsonResponse(200, body));
              }});
  router.Add({"GET", "/api/v1/target-groups", Role::kViewer,
              "every target group: settings, unhealthy count, per-host target health",
              [&target_groups](ApiRequest&, Responder respond) {
                Json out = Json::array();
                for (const auto& g : target_groups.Snapshot()) {
                  Json members = Json::array();
                  for (const auto& m : g.members) {
                    Json j{{"host", m.host},
                           {"url", m.url},
                           {"health", TargetHealthName(m.health)},
                           {"active", TargetHealthName(m.active)},
                           {"agent", m.agent_healthy ? (*m.agent_healthy ? "healthy" : "unhealthy")
                                                     : "unknown"},
                           {"detail", m.detail},
                           {"since", FormatRfc3339(m.since)}};
                    if (m.last_probe) {
                      j["last_probe"] = FormatRfc3339(*m.last_probe);
                    }
                    members.push_back(std::move(j));
                  }
                  out.push_back(Json{{"name", g.config.name},
                                     {"interval_ms", g.config.interval.count()},
                                     {"timeout_ms", g.config.timeout.count()},
                                     {"healthy_threshold", g.config.healthy_threshold},
                                     {"unhealthy_threshold", g.config.unhealthy_threshold},
                                     {"matcher", g.config.matcher},
                                     {"path", g.config.path},
                                     {"healthy_count", g.healthy_count},
                                     {"unhealthy_count", g.unhealthy_count},
                                     {"members", members}});
                }
                respond(JsonResponse(200, Json{{"target_groups", out}}));
              }});
}

void AddChaosRoutes(Router& router, ChaosRoutesDeps deps) {
  router.Add(
      {"POST", "/api/v1/chaos", Role::kOperator,
       "start a chaos experiment on a host that allows it ({\"host\",\"mode\",\"params\"})",
       [deps](ApiRequest& req, Responder respond) {
         auto body = ParseBody(req, false);
         if (!body) {
           return respond(ErrorResponse(body.error()));
         }
         auto host = RequireString(*body, "host");
         auto mode = RequireString(*body, "mode");
         if (!host || !mode) {
           return respond(ErrorResponse(!host ? host.error() : mode.error()));
         }
         for (const auto& [key, value] : body->items()) {
           if (key != "host" && key != "mode" && key != "params") {
             return respond(ErrorResponse(
                 400, "unknown field '" + key + "' (only 'host', 'mode' and 'params')"));
           }
         }
         // params: the mode's known keys with scalar values (protocol::ChaosModeParams).
         const Json& given = FieldOrNull(*body, "params");
         const Json params = given.is_null() ? Json::object() : given;
         if (*mode != "stop" && protocol::ChaosModeParams(*mode) == nullptr) {
           return respond(ErrorResponse(400, "unknown chaos mode '" + *mode +
                                                 "' (valid: disk-fill, oom, nginx-crash, stop)"));
         }
         const bool stop = *mode == "stop";
         if (stop && !params.empty()) {
           return respond(ErrorResponse(400, "chaos mode stop takes no params"));
         }
         auto action = stop ? protocol::ValidateAction("chaos.stop", Json::object())
                            : protocol::ValidateAction(
                                  "chaos.start", Json{{"mode", *mode}, {"params", params}});
         if (!action) {
           return respond(ErrorResponse(action.error()));
         }
         // The server's own config decides (hosts: in the server config); what the agent
         // reported is not asked. The agent checks its own permission again. A host that
         // reports to another server of the cluster is not in this server's registry; enrolled,
         // it is known, its config is the same file's, and the command goes to its server
         // over the bus (BusCommandSink).
         std::optional<HostConfig> config;
         bool here = false;  // reports to this server: its queue follows the command
         if (auto view = deps.hosts.Get(*host, deps.clock.Now())) {
           config = view->config;
           here = true;
         } else if (deps.cluster_hosts != nullptr && deps.cluster_hosts->IsEnrolled(*host)) {
           config = deps.hosts.ConfigFor(*host);
         }
         if (!config) {
           return respond(ErrorResponse(404, "host '" + *host + "' not found"));
         }
         if (!config->chaos_allowed) {
           return respond(ErrorResponse(
               403, "chaos is not allowed on host '" + *host +
                        "' (chaos_allowed under hosts: in the server's config)"));
         }
         protocol::Command c;
         c.id = "cmd-" + RandomHex(8);
         c.action = action->name;
         c.params = action->params;
         c.timeout_ms = 30'000;
         c.expires_at = deps.clock.Now() + std::chrono::seconds(30);
         c.approved_by = req.principal;  // chaos is its own approval (admin only)
         Audit(deps.store, deps.clock, req.principal, "chaos",
               *mode + " on " + *host + " (" + c.id + ")");
         const std::string id = c.id;
         deps.commands.Send(*host, std::move(c));
         respond(JsonResponse(202, Json{{"command_id", id},
                                        {"host", *host},
                                        {"action", protocol::RenderCommandLine(*action)},
                                        {"tracked", here}}));
       }});
}

}  // namespace medic::server
