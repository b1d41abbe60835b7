#pragma once

// The route table: {method, pattern, required role, handler, one-line help}. It authenticates,
// authorizes, extracts {path} parameters and answers 404/405/401/403 itself, so every rule about
// who may call what lives in one table that tests can walk (tests/server/router_test.cc).

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "server/http/http_types.h"

namespace medic::server {

// enum class Role is in http_types.h (ApiRequest carries the caller's).
std::string_view RoleName(Role r);
Result<Role> ParseRole(std::string_view name);  // viewer, operator, admin, ingest

struct Principal {
  std::string name;
  Role role = Role::kPublic;
};

// Bearer tokens -> principals. Thread-safe. Only SHA-256 hashes of tokens are kept, and they
// are compared in constant time.
class TokenRegistry {
 public:
  void Add(const std::string& token, Principal principal);
  void AddHashed(const std::string& token_hash, Principal principal);
  // Removes every token of that principal name; returns how many.
  int RemoveByName(const std::string& name);
  // From an "Authorization: Bearer X" header value, or "Basic base64(user:password)" whose
  // password is an ingest token (Alertmanager's basic_auth; other roles: Unauthenticated).
  Result<Principal> Authenticate(std::string_view authorization) const;
  // The principal of the token named `name` now (none once it is revoked): who an identity
  // mapped from elsewhere (a Slack user, ingest/slack_config.h) acts as.
  std::optional<Principal> FindByName(const std::string& name) const;

 private:
  Result<Principal> FindToken(std::string_view token) const;

  mutable std::mutex mu_;
  std::vector<std::pair<std::string, Principal>> tokens_;  // Guarded by mu_.
};

// May `have` call a route that requires `need`? Operator roles are ordered viewer < operator <
// admin; the agent and ingest roles are separate (agents call only agent routes, ingest tokens
// only ingest routes, operators neither, not even admin).
bool Allows(Role have, Role need);

// The token of an "Authorization: Bearer X" header value; empty when it is not one.
std::string_view BearerToken(std::string_view authorization);
// The password of an "Authorization: Basic base64(user:password)" header value; nullopt when it
// is not one (or does not decode).
std::optional<std::string> BasicAuthPassword(std::string_view authorization);

// Who a bearer credential that is no operator token belongs to: the host whose own credential it
// is (identity/HostIdentities::Authenticate), or an error (Unauthenticated). Thread-safe.
using HostAuthenticator = std::function<Result<std::string>(std::string_view credential)>;

using RouteHandler = std::function<void(ApiRequest&, Responder)>;

// Body limits: what a route takes unless it says otherwise (Route::max_body_bytes = 0). Agent
// routes carry a host's reports and command results; everything else is a small JSON request.
inline constexpr size_t kDefaultMaxBodyBytes = 64 * 1024;
inline constexpr size_t kAgentMaxBodyBytes = 1024 * 1024;

struct Route {
  std::string method;
  std::string pattern;  // "/api/v1/incidents/{id}/approve"
  Role role;
  std::string help;
  RouteHandler handler;
  // The largest body the route takes (larger: 413, unread); 0: kAgentMaxBodyBytes for agent
  // routes, kDefaultMaxBodyBytes for the others.
  size_t max_body_bytes = 0;
  // A bulk upload (archive chunks): its body gets HttpServerOptions::upload_timeout_seconds.
  bool upload = false;
  // For a route whose limit depends on the caller's state (an archive chunk: what its upload
  // may still take): decided on the headers, after authentication and before any of the body
  // is read. The request's limit is the smaller of this and max_body_bytes; an error refuses
  // the request, its body unread. Null: max_body_bytes for every request.
  std::function<Result<size_t>(const ApiRequest&)> body_limit_for;
};

// The body limit of `route` (its own, or its role's default).
size_t MaxBodyBytes(const Route& route);

class SessionRegistry;

// The cookie that carries a dashboard session's id (api_session.cc sets it).
inline constexpr std::string_view kSessionCookie = "medic_session";

// Authentication: an Authorization header is a bearer token, as the API and the CLI send it:
// an operator token (TokenRegistry), else a host's own credential (the host authenticator, when
// set), which authenticates as Principal{host name, Role::kAgent}. Without one, the session cookie (when `sessions` is given) authenticates as the session's
// principal, and then every state-changing method (POST, PUT, DELETE, PATCH) must carry the
// session's CSRF token in X-CSRF-Token, else 403. Role checks are the same either way.
class Router {
 public:
  // `tokens` and `sessions` (may be null: bearer tokens only) must outlive the router.
  explicit Router(const TokenRegistry& tokens, const SessionRegistry* sessions = nullptr)
      : tokens_(tokens), sessions_(sessions) {}

  // REQUIRES: called before the server starts (not thread-safe against Handle).
  void Add(Route route);
  // REQUIRES: called before the server starts. Without it, no host credential authenticates.
  void SetHostAuthenticator(HostAuthenticator hosts) { hosts_ = std::move(hosts); }
  // Thread-safe. Answers exactly once through respond; a handler that throws gets a 500.
  void Handle(ApiRequest request, Responder respond) const;
  // The decision on a request's headers alone (its body is not there yet): the 404/405 of an
  // unknown route, the 401/403 of Handle's authentication and role check, else the route's body
  // limit. Thread-safe and cheap (tokens, sessions and host credentials are in memory): the HTTP
  // server calls it on its network thread. Handle checks everything again.
  Admission Admit(ApiRequest request) const;

  const std::vector<Route>& routes() const { return routes_; }
  // [{"method","path","role","help"}], for GET /api/v1 and docs.
  Json Listing() const;

 private:
  // Handle without the exception backstop.
  void Dispatch(ApiRequest request, const Responder& respond) const;
  // The route for request.method and request.path (request.path_params filled), or null and
  // the 404/405 to answer in *refusal.
  const Route* Match(ApiRequest& request, ApiResponse* refusal) const;
  // Authenticates the caller of a non-public `route` and checks its role: fills the request's
  // principal, principal_role, session_id and still_authorized, or returns the 401/403.
  std::optional<ApiResponse> Authorize(const Route& route, ApiRequest& request) const;
  // The caller of a non-public route, or the 401/403 to answer. Fills request.session_id.
  Result<Principal> Authenticate(ApiRequest& request) const;

  const TokenRegistry& tokens_;
  const SessionRegistry* sessions_;
  HostAuthenticator hosts_;
  std::vector<Route> routes_;
};

// Matches "/a/{x}/b" against "/a/42/b"; fills params. Segments never match empty strings.
bool MatchPattern(std::string_view pattern, std::string_view path,
                  std::map<std::string, std::string>* params);

}  // namespace medic::server
