#include "server/http/router.h"

#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>

#include "core/display.h"
#include "core/log.h"
#include "core/sha256.h"
#include "server/http/sessions.h"

namespace medic::server {

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kPublic: return "public";
    case Role::kAgent: return "agent";
    case Role::kViewer: return "viewer";
    case Role::kOperator: return "operator";
    case Role::kAdmin: return "admin";
    case Role::kIngest: return "ingest";
  }
  return "unknown";
}

Result<Role> ParseRole(std::string_view name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "operator") return Role::kOperator;
  if (name == "admin") return Role::kAdmin;
  if (name == "ingest") return Role::kIngest;
  return InvalidArgument("unknown role '" + std::string(name) +
                         "' (viewer, operator, admin, ingest)");
}

bool Allows(Role have, Role need) {
  if (need == Role::kPublic) {
    return true;
  }
  if (need == Role::kAgent || have == Role::kAgent || need == Role::kIngest ||
      have == Role::kIngest) {
    return have == need;
  }
  return static_cast<int>(have) >= static_cast<int>(need);
}

void TokenRegistry::Add(const std::string& token, Principal principal) {
  AddHashed(Sha256Hex(token), std::move(principal));
}

void TokenRegistry::AddHashed(const std::string& token_hash, Principal principal) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.emplace_back(token_hash, std::move(principal));
}

int TokenRegistry::RemoveByName(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t before = tokens_.size();
  std::erase_if(tokens_, [&](const auto& t) { return t.second.name == name; });
  return static_cast<int>(before - tokens_.size());
}

Result<Principal> TokenRegistry::Authenticate(std::string_view authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.empty()) {
    return Unauthenticated("missing Authorization: Bearer token");
  }
  if (auto basic = BasicAuthPassword(authorization)) {
    // HTTP basic auth, as Alertmanager's http_config.basic_auth sends it: the password is an
    // ingest token, the user name is not checked. Only ingest tokens authenticate this way.
    auto principal = FindToken(*basic);
    if (!principal || principal->role != Role::kIngest) {
      return Unauthenticated("invalid credentials (basic auth takes an ingest token as password)");
    }
    return principal;
  }
  if (authorization.size() <= kBearer.size() ||
      authorization.substr(0, kBearer.size()) != kBearer) {
    return Unauthenticated("Authorization header must be 'Bearer TOKEN'");
  }
  return FindToken(authorization.substr(kBearer.size()));
}

Result<Principal> TokenRegistry::FindToken(std::string_view token) const {
  const std::string hash = Sha256Hex(token);
  std::lock_guard<std::mutex> lock(mu_);
  const Principal* found = nullptr;
  for (const auto& [t, p] : tokens_) {
    if (ConstantTimeEquals(t, hash)) {
      found = &p;
    }
  }
  if (found == nullptr) {
    return Unauthenticated("invalid token");
  }
  return *found;
}

std::optional<Principal> TokenRegistry::FindByName(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [hash, p] : tokens_) {
    if (p.name == name) {
      return p;
    }
  }
  return std::nullopt;
}

bool MatchPattern(std::string_view pattern, std::string_view path,
                  std::map<std::string, std::string>* params) {
  std::map<std::string, std::string> out;
  size_t pi = 0;
  size_t si = 0;
  while (pi < pattern.size() && si < path.size()) {
    if (pattern[pi] == '{') {
      const size_t close = pattern.find('}', pi);
      const std::string name(pattern.substr(pi + 1, close - pi - 1));
      size_t end = path.find('/', si);
      if (end == std::string_view::npos) {
        end = path.size();
      }
      if (end == si) {
        return false;
      }
      out[name] = std::string(path.substr(si, end - si));
      pi = close + 1;
      si = end;
    } else if (pattern[pi] == path[si]) {
      ++pi;
      ++si;
    } else {
      return false;
    }
  }
  if (pi != pattern.size() || si != path.size()) {
    return false;
  }
  if (params != nullptr) {
    *params = std::move(out);
  }
  return true;
}

void Router::Add(Route route) { routes_.push_back(std::move(route)); }

void Router::Handle(ApiRequest request, Responder respond) const {
  // Handlers return errors as values; an exception here (from a handler, or from matching and
  // authenticating) is a bug, answered 500 unless already answered, logged, and the server goes
  // on serving.
  auto answered = std::make_shared<std::atomic<bool>>(false);
  Responder once = [answered, respond = std::move(respond)](ApiResponse r) {
    if (!answered->exchange(true)) {
      respond(std::move(r));
    }
  };
  const std::string where =
      SanitizeForLogLine(request.method + " " + request.path.substr(0, 200));
  std::string what;
  try {
    Dispatch(std::move(request), once);
    return;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception that is not a std::exception";
  }
  LogError("handling " + where + " threw: " + SanitizeForLogLine(what));
  once(ErrorResponse(500, "internal error"));
}

size_t MaxBodyBytes(const Route& route) {
  if (route.max_body_bytes > 0) {
    return route.max_body_bytes;
  }
  return route.role == Role::kAgent ? kAgentMaxBodyBytes : kDefaultMaxBodyBytes;
}

const Route* Router::Match(ApiRequest& request, ApiResponse* refusal) const {
  std::string allowed;
  for (const auto& r : routes_) {
    std::map<std::string, std::string> params;
    if (!MatchPattern(r.pattern, request.path, &params)) {
      continue;
    }
    if (r.method != request.method) {
      allowed += (allowed.empty() ? "" : ", ") + r.method;
      continue;
    }
    request.path_params = std::move(params);
    return &r;
  }
  if (!allowed.empty()) {
    *refusal = ErrorResponse(405, "method " + request.method + " not allowed on " + request.path);
    refusal->headers.emplace_back("Allow", allowed);
  } else {
    *refusal = ErrorResponse(404, "no such endpoint: " + request.path);
  }
  return nullptr;
}

std::optional<ApiResponse> Router::Authorize(const Route& route, ApiRequest& request) const {
  if (route.role == Role::kPublic) {
    return std::nullopt;
  }
  auto principal = Authenticate(request);
  if (!principal) {
    return ErrorResponse(principal.error());
  }
  if (!Allows(principal->role, route.role)) {
    return ErrorResponse(403, std::string(RoleName(principal->role)) + " '" + principal->name +
                                  "' may not " + route.method + " " + route.pattern + " (needs " +
                                  std::string(RoleName(route.role)) + ")");
  }
  request.principal = principal->name;
  request.principal_role = principal->role;
  request.still_authorized = [this, authorization = request.authorization,
                              cookie = request.cookie, name = principal->name,
                              need = route.role] {
    ApiRequest probe;
    probe.method = "GET";
    probe.authorization = authorization;
    probe.cookie = cookie;
    auto now = Authenticate(probe);
    return now.has_value() && now->name == name && Allows(now->role, need);
  };
  return std::nullopt;
}

Admission Router::Admit(ApiRequest request) const {
  Admission out;
  ApiResponse refusal;
  const Route* route = Match(request, &refusal);
  if (route == nullptr) {
    out.refusal = std::move(refusal);
    return out;
  }
  out.refusal = Authorize(*route, request);
  out.authenticated = !out.refusal && route->role != Role::kPublic;
  out.max_body_bytes = MaxBodyBytes(*route);
  out.upload = route->upload;
  if (!out.refusal && route->body_limit_for) {
    auto limit = route->body_limit_for(request);
    if (!limit) {
      out.refusal = ErrorResponse(limit.error());
    } else {
      out.max_body_bytes = std::min(out.max_body_bytes, *limit);
    }
  }
  return out;
}

void Router::Dispatch(ApiRequest request, const Responder& respond) const {
  ApiResponse refusal;
  const Route* match = Match(request, &refusal);
  if (match == nullptr) {
    return respond(std::move(refusal));
  }
  if (auto denied = Authorize(*match, request)) {
    return respond(std::move(*denied));
  }
  match->handler(request, respond);
}

namespace {

bool IsStateChanging(std::string_view method) {
  return method != "GET" && method != "HEAD" && method != "OPTIONS";
}

}  // namespace

std::string_view BearerToken(std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() ||
      authorization.substr(0, kBearer.size()) != kBearer) {
    return {};
  }
  return authorization.substr(kBearer.size());
}

std::optional<std::string> BasicAuthPassword(std::string_view authorization) {
  constexpr std::string_view kBasic = "Basic ";
  if (authorization.size() <= kBasic.size() || authorization.substr(0, kBasic.size()) != kBasic) {
    return std::nullopt;
  }
  std::string_view b64 = authorization.substr(kBasic.size());
  while (!b64.empty() && b64.back() == ' ') {
    b64.remove_suffix(1);
  }
  if (b64.empty() || b64.size() % 4 != 0 || b64.size() > 4096) {
    return std::nullopt;
  }
  std::string out(b64.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) {
    return std::nullopt;
  }
  // EVP_DecodeBlock counts the padding's zero bytes.
  size_t len = static_cast<size_t>(n);
  for (size_t i = b64.size(); i > 0 && b64[i - 1] == '='; --i) {
    --len;
  }
  out.resize(len);
  const size_t colon = out.find(':');
  if (colon == std::string::npos) {
    return std::nullopt;
  }
  return out.substr(colon + 1);
}

Result<Principal> Router::Authenticate(ApiRequest& request) const {
  if (!request.authorization.empty() || sessions_ == nullptr) {
    auto principal = tokens_.Authenticate(request.authorization);
    const std::string_view credential = BearerToken(request.authorization);
    if (principal || !hosts_ || credential.empty() ||
        principal.error().code != ErrorCode::kUnauthenticated) {
      return principal;
    }
    auto host = hosts_(credential);
    if (!host) {
      return Unauthenticated("invalid token");
    }
    return Principal{std::move(*host), Role::kAgent};
  }
  const std::string id = FindCookie(request.cookie, kSessionCookie);
  if (id.empty()) {
    return tokens_.Authenticate(request.authorization);  // "missing Authorization: Bearer"
  }
  ASSIGN_OR_RETURN(SessionInfo session, sessions_->Find(id));
  if (IsStateChanging(request.method) && !CsrfMatches(session, request.csrf_token)) {
    return PermissionDenied("missing or wrong X-CSRF-Token");
  }
  request.session_id = id;
  return session.principal;
}

Json Router::Listing() const {
  Json out = Json::array();
  for (const auto& r : routes_) {
    out.push_back(Json{{"method", r.method},
                       {"path", r.pattern},
                       {"role", RoleName(r.role)},
                       {"help", r.help}});
  }
  return out;
}

}  // namespace medic::server
