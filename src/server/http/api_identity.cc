// Enrolment routes (docs/PROTOCOL.md, "Enrolment"; docs/API.md, "Hosts"): an agent enrols with
// a code or the bootstrap token; admins make codes, see and approve waiting requests, revoke.

#include "core/files.h"
#include "server/http/api_util.h"
#include "server/http/routes.h"

namespace medic::server {

namespace {

struct EnrollRequest {
  std::string name;
  std::optional<std::string> code;
  std::optional<std::string> key;
  std::string hostname;
};

Result<std::optional<std::string>> OptionalString(const Json& body, const std::string& field) {
  auto it = body.find(field);
  if (it == body.end()) {
    return std::optional<std::string>();
  }
  if (!it->is_string()) {
    return InvalidArgument("field '" + field + "' must be a string");
  }
  return std::optional<std::string>(it->get<std::string>());
}

Result<EnrollRequest> ParseEnroll(const ApiRequest& req) {
  ASSIGN_OR_RETURN(Json body, ParseBody(req, false));
  for (const auto& [k, v] : body.items()) {
    if (k != "name" && k != "code" && k != "key" && k != "hostname") {
      return InvalidArgument("unknown field '" + k + "' (name, code, key, hostname)");
    }
  }
  EnrollRequest r;
  ASSIGN_OR_RETURN(r.name, RequireString(body, "name"));
  if (!protocol::IsValidHostName(r.name)) {
    return InvalidArgument("invalid host name '" + r.name +
                           "' (1-64 of [A-Za-z0-9._-], not starting with '.' or '-')");
  }
  ASSIGN_OR_RETURN(r.code, OptionalString(body, "code"));
  ASSIGN_OR_RETURN(r.key, OptionalString(body, "key"));
  ASSIGN_OR_RETURN(auto hostname, OptionalString(body, "hostname"));
  r.hostname = hostname.value_or("");
  if (r.code && r.key) {
    return InvalidArgument("send either 'code' (an enrolment code) or 'key' (with the bootstrap "
                           "token), not both");
  }
  return r;
}

Json IssuedToJson(const IssuedCredential& c, const std::string& command_key) {
  return Json{{"name", c.name}, {"credential", c.credential}, {"command_key", command_key}};
}

Result<std::optional<Millis>> ParseTtl(const ApiRequest& req) {
  ASSIGN_OR_RETURN(Json body, ParseBody(req, true));
  for (const auto& [k, v] : body.items()) {
    if (k != "ttl") {
      return InvalidArgument("unknown field '" + k + "' (ttl)");
    }
  }
  ASSIGN_OR_RETURN(auto ttl, OptionalString(body, "ttl"));
  if (!ttl) {
    return std::optional<Millis>();
  }
  auto d = ParseDuration(*ttl);
  if (!d) {
    return InvalidArgument("field 'ttl' must be a duration such as 1h or 30m");
  }
  return std::optional<Millis>(*d);
}

// The {name} of an admin route, checked.
Result<std::string> HostParam(ApiRequest& req) {
  std::string name = req.path_params["name"];
  if (!protocol::IsValidHostName(name)) {
    return InvalidArgument("invalid host name '" + name +
                           "' (1-64 of [A-Za-z0-9._-], not starting with '.' or '-')");
  }
  return name;
}

}  // namespace

void AddIdentityRoutes(Router& router, IdentityRoutesDeps deps) {
  router.Add(
      {"POST", "/agent/v1/enroll", Role::kPublic,
       "an agent enrols its host: {name, code} (a code from POST /api/v1/hosts/{name}/enroll) "
       "-> 201 {name, credential, command_key}; or the bootstrap token and {name, key, hostname} -> 202 "
       "{status: pending} until an admin approves, then 201",
       [&identities = deps.identities, command_key = deps.command_key](ApiRequest& req, Responder respond) {
         auto r = ParseEnroll(req);
         if (!r) {
           return respond(ErrorResponse(r.error()));
         }
         if (r->code) {
           auto issued = identities.EnrollWithCode(r->name, *r->code);
           if (!issued) {
             return respond(ErrorResponse(issued.error()));
           }
           return respond(JsonResponse(201, IssuedToJson(*issued, command_key)));
         }
         const std::string_view token = BearerToken(req.authorization);
         if (token.empty()) {
           return respond(ErrorResponse(
               401, "enrol with a code (field 'code') or with the bootstrap token "
                    "(Authorization: Bearer, and field 'key')"));
         }
         if (!r->key) {
           return respond(ErrorResponse(
               400, "field 'key' (32-128 random lowercase hex digits, kept by the agent until "
                    "it is enrolled) is required with the bootstrap token"));
         }
         auto issued = identities.EnrollWithBootstrap(token, r->name, *r->key, r->hostname);
         if (!issued) {
           return respond(ErrorResponse(issued.error()));
         }
         if (!*issued) {
           return respond(JsonResponse(202, Json{{"status", "pending"},
                                                 {"name", r->name},
                                                 {"fingerprint", RequestFingerprint(*r->key)}}));
         }
         respond(JsonResponse(201, IssuedToJson(**issued, command_key)));
       }});
  router.Add({"POST", "/api/v1/hosts/{name}/enroll", Role::kAdmin,
              "a single-use enrolment code for the host ({\"ttl\":\"1h\"}, 1m-168h, default 1h); "
              "the code is shown once -> 201 {name, code, expires_at}",
              [&identities = deps.identities, &store = deps.store, &clock = deps.clock](
                  ApiRequest& req, Responder respond) {
                auto name = HostParam(req);
                if (!name) {
                  return respond(ErrorResponse(name.error()));
                }
                auto ttl = ParseTtl(req);
                if (!ttl) {
                  return respond(ErrorResponse(ttl.error()));
                }
                auto code = identities.CreateCode(*name, *ttl, req.principal);
                if (!code) {
                  return respond(ErrorResponse(code.error()));
                }
                Audit(store, clock, req.principal, "host.enroll",
                      *name + " (code until " + FormatRfc3339(code->expires_at) + ")");
                respond(JsonResponse(201, Json{{"name", code->name},
                                               {"code", code->code},
                                               {"expires_at", FormatRfc3339(code->expires_at)}}));
              }});
  router.Add({"GET", "/api/v1/hosts/pending", Role::kAdmin,
              "enrolment requests made with the bootstrap token, waiting for approval",
              [&identities = deps.identities](ApiRequest&, Responder respond) {
                auto pending = identities.Pending();
                if (!pending) {
                  return respond(ErrorResponse(pending.error()));
                }
                Json out = Json::array();
                for (const PendingHost& p : *pending) {
                  out.push_back(Json{{"name", p.name},
                                     {"requested_at", FormatRfc3339(p.requested_at)},
                                     {"fingerprint", p.fingerprint},
                                     {"hostname", p.hostname},
                                     {"approved", p.approved},
                                     {"enrolled", p.enrolled}});
                }
                respond(JsonResponse(200, Json{{"pending", std::move(out)}}));
              }});
  router.Add({"POST", "/api/v1/hosts/{name}/approve", Role::kAdmin,
              "approve the host's waiting enrolment request: its agent gets its credential "
              "at its next call",
              [&identities = deps.identities, &store = deps.store, &clock = deps.clock](
                  ApiRequest& req, Responder respond) {
                auto name = HostParam(req);
                if (!name) {
                  return respond(ErrorResponse(name.error()));
                }
                auto pending = identities.Pending();
                if (!pending) {
                  return respond(ErrorResponse(pending.error()));
                }
                std::string fingerprint;
                for (const PendingHost& p : *pending) {
                  if (p.name == *name) {
                    fingerprint = p.fingerprint;
                  }
                }
                if (Status s = identities.Approve(*name, req.principal); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                Audit(store, clock, req.principal, "host.approve",
                      *name + " (request " + fingerprint + ")");
                respond(JsonResponse(200, Json{{"name", *name}, {"approved", true}}));
              }});
  router.Add({"POST", "/api/v1/hosts/{name}/revoke", Role::kAdmin,
              "cut the host off at once: its credential, enrolment request and codes; its "
              "next agent call (a parked long poll too) gets 401",
              [&identities = deps.identities, &commands = deps.commands, &store = deps.store,
               &clock = deps.clock](ApiRequest& req, Responder respond) {
                auto name = HostParam(req);
                if (!name) {
                  return respond(ErrorResponse(name.error()));
                }
                Status s = identities.Revoke(*name);
                if (!s && s.error().code == ErrorCode::kNotFound) {
                  return respond(ErrorResponse(s.error()));
                }
                commands.Wake(*name);
                Audit(store, clock, req.principal, "host.revoke", *name);
                if (!s) {
                  return respond(ErrorResponse(s.error()));
                }
                respond(JsonResponse(200, Json{{"revoked", *name}}));
              }});
}

}  // namespace medic::server
