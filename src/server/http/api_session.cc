// Dashboard sessions: sign in with a token or a single-use code, who am I, sign out, and the
// sign-in codes an admin hands out (medic demo prints one as a link). The session logic is
// SessionRegistry's (sessions.h); the router checks the cookie and the CSRF header.

#include <algorithm>
#include <cctype>
#include <chrono>

#include "server/http/api_util.h"
#include "server/http/routes.h"

namespace medic::server {

namespace {

bool MaySignIn(Role role) {
  return role == Role::kViewer || role == Role::kOperator || role == Role::kAdmin;
}

// The cookie's attributes after its value; Max-Age in seconds.
std::string CookieAttributes(int64_t max_age, bool secure) {
  return "; HttpOnly; SameSite=Strict; Path=/; Max-Age=" + std::to_string(max_age) +
         (secure ? "; Secure" : "");
}

// "application/json", optionally with parameters ("; charset=utf-8"), in any case. Cross-site
// HTML forms cannot send it without a CORS preflight, which this server never grants: a page
// elsewhere cannot sign a browser in to the page author's session.
bool IsJsonContentType(std::string_view type) {
  constexpr std::string_view kJson = "application/json";
  if (type.size() < kJson.size()) {
    return false;
  }
  for (size_t i = 0; i < kJson.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(type[i])) != kJson[i]) {
      return false;
    }
  }
  return type.size() == kJson.size() || type[kJson.size()] == ';' || type[kJson.size()] == ' ';
}

Status RejectUnknownFields(const Json& body, std::initializer_list<std::string_view> known,
                           std::string_view list) {
  for (const auto& [k, v] : body.items()) {
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      return InvalidArgument("unknown field '" + k + "' (" + std::string(list) + ")");
    }
  }
  return OkStatus();
}

}  // namespace

void AddSessionRoutes(Router& router, SessionRoutesDeps deps) {
  router.Add(
      {"POST", "/api/v1/session", Role::kPublic,
       "sign in ({\"token\":\"…\"} or {\"code\":\"…\"}): sets the session cookie, answers the "
       "CSRF token and the role",
       [deps](ApiRequest& req, Responder respond) {
         if (!IsJsonContentType(req.content_type)) {
           return respond(ErrorResponse(415, "Content-Type must be application/json"));
         }
         auto body = ParseBody(req, false);
         if (!body) {
           return respond(ErrorResponse(body.error()));
         }
         if (Status s = RejectUnknownFields(*body, {"token", "code"}, "token or code"); !s) {
           return respond(ErrorResponse(s.error()));
         }
         auto token = OptionalString(*body, "token");
         auto code = OptionalString(*body, "code");
         if (!token || !code) {
           return respond(ErrorResponse(!token ? token.error() : code.error()));
         }
         if (token->has_value() == code->has_value()) {
           return respond(ErrorResponse(400, "give exactly one of 'token' and 'code'"));
         }
         Result<Principal> principal =
             token->has_value() ? deps.tokens.Authenticate("Bearer " + **token)
                                : deps.sessions.Redeem(**code);
         if (!principal) {
           return respond(ErrorResponse(principal.error()));
         }
         if (!MaySignIn(principal->role)) {
           return respond(ErrorResponse(
               403, "only viewer, operator and admin tokens may sign in to the dashboard"));
         }
         const NewSession session = deps.sessions.Create(*principal);
         const int64_t max_age =
             std::chrono::duration_cast<std::chrono::seconds>(deps.sessions.options().lifetime)
                 .count();
         ApiResponse res = JsonResponse(200, Json{{"csrf", session.csrf},
                                                  {"role", RoleName(principal->role)},
                                                  {"name", principal->name},
                                                  {"expires_at", FormatRfc3339(session.expires_at)}});
         res.headers.emplace_back("Set-Cookie", std::string(kSessionCookie) + "=" + session.id +
                                                    CookieAttributes(max_age, deps.secure_cookie));
         respond(std::move(res));
       }});
  router.Add({"GET", "/api/v1/session", Role::kViewer,
              "who is calling: name, role, and for a session its CSRF token and expiry",
              [deps](ApiRequest& req, Responder respond) {
                Json out{{"name", req.principal}, {"role", RoleName(req.principal_role)}};
                if (!req.session_id.empty()) {
                  auto session = deps.sessions.Find(req.session_id);
                  if (!session) {
                    return respond(ErrorResponse(session.error()));
                  }
                  out["csrf"] = session->csrf;
                  out["expires_at"] = FormatRfc3339(session->expires_at);
                }
                respond(JsonResponse(200, out));
              }});
  router.Add({"DELETE", "/api/v1/session", Role::kViewer,
              "sign out: forgets the session and clears its cookie (needs X-CSRF-Token)",
              [deps](ApiRequest& req, Responder respond) {
                const bool forgot = !req.session_id.empty() && deps.sessions.Remove(req.session_id);
                ApiResponse res = JsonResponse(200, Json{{"signed_out", forgot}});
                res.headers.emplace_back("Set-Cookie", std::string(kSessionCookie) + "=" +
                                                           CookieAttributes(0, deps.secure_cookie));
                respond(std::move(res));
              }});
  router.Add(
      {"POST", "/api/v1/session/codes", Role::kAdmin,
       "a single-use sign-in code, valid 5 minutes, for the caller or a lower role "
       "({\"role\":\"viewer|operator|admin\"}, optional)",
       [deps](ApiRequest& req, Responder respond) {
         auto body = ParseBody(req, true);
         if (!body) {
           return respond(ErrorResponse(body.error()));
         }
         if (Status s = RejectUnknownFields(*body, {"role"}, "role"); !s) {
           return respond(ErrorResponse(s.error()));
         }
         auto role_name = OptionalString(*body, "role");
         if (!role_name) {
           return respond(ErrorResponse(role_name.error()));
         }
         Principal principal{req.principal, req.principal_role};
         if (role_name->has_value()) {
           auto role = ParseRole(**role_name);
           if (!role) {
             return respond(ErrorResponse(role.error()));
           }
           if (!Allows(req.principal_role, *role)) {
             return respond(ErrorResponse(403, "a sign-in code cannot carry a role above the "
                                               "caller's"));
           }
           principal.role = *role;
         }
         if (!MaySignIn(principal.role)) {
           return respond(ErrorResponse(403, "only viewer, operator and admin may sign in"));
         }
         const SignInCode code = deps.sessions.CreateCode(principal);
         respond(JsonResponse(201, Json{{"code", code.code},
                                        {"role", RoleName(principal.role)},
                                        {"expires_at", FormatRfc3339(code.expires_at)}}));
       }});
}

}  // namespace medic::server
