// Earned autonomy and graded outcomes (incidents/autonomy.h, docs/AUTONOMY.md): the pairs'
// records and pins, and the stats over a period.

#include "server/http/api_util.h"
#include "server/http/routes.h"

namespace medic::server {

namespace {

constexpr Millis kMaxStatsPeriod{366LL * 24 * 3'600'000};

}  // namespace

void AddAutonomyRoutes(Router& router, Autonomy& autonomy) {
  router.Add({"GET", "/api/v1/autonomy", Role::kViewer,
              "the record and mode of every alarm x action pair (earned autonomy)",
              [&autonomy](ApiRequest& req, Responder respond) {
                if (Status s = RequireQueryKeys(req, {}); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                auto list = autonomy.List();
                if (!list) {
                  return respond(ErrorResponse(list.error()));
                }
                Json pairs = Json::array();
                for (const auto& r : *list) {
                  pairs.push_back(PairRecordToJson(r));
                }
                const AutonomyConfig& c = autonomy.config();
                respond(JsonResponse(200, Json{{"enabled", c.enabled},
                                               {"promote_after", c.promote_after},
                                               {"pairs", pairs}}));
              }});
  router.Add({"PUT", "/api/v1/autonomy/{alarm}/{action}", Role::kAdmin,
              "pin a pair's mode ({\"mode\":\"automatic|approval\"}), whatever its record says",
              [&autonomy](ApiRequest& req, Responder respond) {
                auto body = ParseBody(req, false);
                if (!body) {
                  return respond(ErrorResponse(body.error()));
                }
                for (const auto& [k, v] : body->items()) {
                  if (k != "mode") {
                    return respond(ErrorResponse(400, "unknown field '" + k + "' (mode)"));
                  }
                }
                auto mode_name = RequireString(*body, "mode");
                if (!mode_name) {
                  return respond(ErrorResponse(mode_name.error()));
                }
                if (*mode_name != "automatic" && *mode_name != "approval") {
                  return respond(ErrorResponse(400, "mode must be automatic or approval"));
                }
                const PairMode mode =
                    *mode_name == "automatic" ? PairMode::kAutomatic : PairMode::kApproval;
                const std::string alarm = req.path_params["alarm"];
                const std::string action = req.path_params["action"];
                if (Status s = autonomy.Pin(alarm, action, mode, req.principal); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                respond(JsonResponse(
                    200, Json{{"alarm", alarm}, {"action", action}, {"pinned", *mode_name}}));
              }});
  router.Add(
      {"DELETE", "/api/v1/autonomy/{alarm}/{action}", Role::kAdmin,
       "unpin a pair: its record decides again", [&autonomy](ApiRequest& req, Responder respond) {
         const std::string alarm = req.path_params["alarm"];
         const std::string action = req.path_params["action"];
         if (Status s = autonomy.Pin(alarm, action, std::nullopt, req.principal); !s) {
           return respond(ErrorResponse(s.error()));
         }
         respond(JsonResponse(200, Json{{"alarm", alarm}, {"action", action}, {"pinned", Json()}}));
       }});
  router.Add(
      {"GET", "/api/v1/stats", Role::kViewer,
       "graded outcomes over a period (?since=DURATION like 24h; default 168h, at most 8784h): "
       "precision, MTTR by alarm, share resolved without a human",
       [&autonomy](ApiRequest& req, Responder respond) {
         if (Status s = RequireQueryKeys(req, {"since"}); !s) {
           return respond(ErrorResponse(s.error()));
         }
         Millis since{7LL * 24 * 3'600'000};
         if (auto it = req.query.find("since"); it != req.query.end()) {
           auto d = ParseDuration(it->second);
           if (!d || d->count() <= 0 || *d > kMaxStatsPeriod) {
             return respond(
                 ErrorResponse(400, "since must be a duration from 1s to 8784h (like 30m, 24h)"));
           }
           since = *d;
         }
         auto stats = autonomy.Stats(since);
         if (!stats) {
           return respond(ErrorResponse(stats.error()));
         }
         respond(JsonResponse(200, *stats));
       }});
}

}  // namespace medic::server
