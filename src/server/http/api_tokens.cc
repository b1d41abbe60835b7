// Admin routes: operator tokens (create, list, revoke) and the audit log.

#include "core/files.h"
#include "core/sha256.h"
#include "protocol/wire.h"
#include "server/http/api_util.h"
#include "server/http/routes.h"

namespace medic::server {

namespace {

// The names of the tokens the server writes itself; they cannot be created or revoked here.
bool IsReservedTokenName(const std::string& name) { return name == "admin" || name == "agent"; }

Json AuditEntryJson(const AuditEntry& e) {
  return Json{{"id", e.id},
              {"timestamp", FormatRfc3339(e.timestamp)},
              {"actor", e.actor},
              {"action", e.action},
              {"detail", e.detail},
              {"prev_hash", e.prev_hash},
              {"hash", e.hash}};
}

}  // namespace

void AddTokenRoutes(Router& router, Store& store, TokenRegistry& tokens, SessionRegistry& sessions,
                    const Clock& clock) {
  router.Add({"GET", "/api/v1/tokens", Role::kAdmin, "operator tokens (names and roles only)",
              [&store](ApiRequest&, Responder respond) {
                auto list = store.ListTokens();
                if (!list) {
                  return respond(ErrorResponse(list.error()));
                }
                Json out = Json::array();
                for (const auto& t : *list) {
                  out.push_back(Json{{"name", t.name},
                                     {"role", t.role},
                                     {"created_at", FormatRfc3339(t.created_at)},
                                     {"created_by", t.created_by}});
                }
                respond(JsonResponse(200, Json{{"tokens", out}}));
              }});
  router.Add(
      {"POST", "/api/v1/tokens", Role::kAdmin,
       "create a token ({\"name\":\"…\",\"role\":\"viewer|operator|admin\"}); the secret is shown "
       "once",
       [&store, &tokens, &clock](ApiRequest& req, Responder respond) {
         auto body = ParseBody(req, false);
         if (!body) {
           return respond(ErrorResponse(body.error()));
         }
         for (const auto& [k, v] : body->items()) {
           if (k != "name" && k != "role") {
             return respond(ErrorResponse(400, "unknown field '" + k + "' (name, role)"));
           }
         }
         auto name = RequireString(*body, "name");
         if (!name) {
           return respond(ErrorResponse(name.error()));
         }
         auto role_name = RequireString(*body, "role");
         if (!role_name) {
           return respond(ErrorResponse(role_name.error()));
         }
         auto role = ParseRole(*role_name);
         if (!role) {
           return respond(ErrorResponse(role.error()));
         }
         if (!protocol::IsValidHostName(*name)) {
           return respond(ErrorResponse(400, "token name must be 1-64 of [A-Za-z0-9._-]"));
         }
         if (IsReservedTokenName(*name)) {
           return respond(ErrorResponse(409, "the name '" + *name + "' is reserved"));
         }
         const std::string token = RandomHex(24);
         TokenRecord rec{*name, *role_name, Sha256Hex(token), clock.Now(), req.principal};
         if (Status s = store.CreateToken(rec); !s) {
           return respond(ErrorResponse(s.error()));
         }
         tokens.AddHashed(rec.token_hash, Principal{*name, *role});
         Audit(store, clock, req.principal, "token.create", *name + " (" + *role_name + ")");
         respond(JsonResponse(201, Json{{"name", *name}, {"role", *role_name}, {"token", token}}));
       }});
  router.Add({"DELETE", "/api/v1/tokens/{name}", Role::kAdmin, "revoke a token at once",
              [&store, &tokens, &sessions, &clock](ApiRequest& req, Responder respond) {
                const std::string name = req.path_params["name"];
                if (IsReservedTokenName(name)) {
                  return respond(ErrorResponse(
                      409, "the '" + name + "' token is the server's own; replace its file "
                                            "and restart to rotate it"));
                }
                if (Status s = store.DeleteToken(name); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                tokens.RemoveByName(name);
                sessions.RemoveByName(name);
                Audit(store, clock, req.principal, "token.revoke", name);
                respond(JsonResponse(200, Json{{"revoked", name}}));
              }});
  router.Add({"GET", "/api/v1/audit", Role::kAdmin,
              "operator actions, newest first (?limit=N, 1-1000)",
              [&store](ApiRequest& req, Responder respond) {
                if (Status s = RequireQueryKeys(req, {"limit"}); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                auto limit = ParseLimit(req, 100);
                if (!limit) {
                  return respond(ErrorResponse(limit.error()));
                }
                auto list = store.ListAudit(*limit);
                if (!list) {
                  return respond(ErrorResponse(list.error()));
                }
                Json out = Json::array();
                for (const auto& e : *list) {
                  out.push_back(AuditEntryJson(e));
                }
                respond(JsonResponse(200, Json{{"audit", out}}));
              }});
  router.Add({"GET", "/api/v1/audit/verify", Role::kAdmin,
              "check the audit log's hash chain: ok, entries, the first broken entry and why",
              [&store](ApiRequest&, Responder respond) {
                auto v = store.VerifyAudit();
                if (!v) {
                  return respond(ErrorResponse(v.error()));
                }
                Json out{{"ok", v->ok},
                         {"entries", v->entries},
                         {"first_broken",
                          v->first_broken ? AuditEntryJson(*v->first_broken) : Json()},
                         {"reason", v->reason}};
                if (v->ok) {
                  out["head"] = v->head;
                }
                respond(JsonResponse(200, out));
              }});
}

}  // namespace medic::server
