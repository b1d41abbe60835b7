#include "server/http/router.h"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "ai/brain.h"
#include "core/files.h"
#include "core/sha256.h"
#include "server/app/server_app.h"
#include "server/http/sessions.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/call_route.h"

namespace medic::server {
namespace {

TEST(MatchPatternTest, Table) {
  struct Case {
    std::string pattern, path;
    bool match;
    std::string id;
  };
  const std::vector<Case> cases = {
      {"/api/v1/incidents", "/api/v1/incidents", true, ""},
      {"/api/v1/incidents", "/api/v1/incidents/", false, ""},
      {"/api/v1/incidents/{id}", "/api/v1/incidents/inc-1", true, "inc-1"},
      {"/api/v1/incidents/{id}", "/api/v1/incidents/", false, ""},
      {"/api/v1/incidents/{id}", "/api/v1/incidents/a/b", false, ""},
      {"/api/v1/incidents/{id}/approve", "/api/v1/incidents/x/approve", true, "x"},
      {"/api/v1/incidents/{id}/approve", "/api/v1/incidents/x/reject", false, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.pattern + " vs " + c.path);
    std::map<std::string, std::string> params;
    EXPECT_EQ(MatchPattern(c.pattern, c.path, &params), c.match);
    if (c.match && !c.id.empty()) {
      EXPECT_EQ(params["id"], c.id);
    }
  }
}

TEST(AllowsTest, RoleOrder) {
  EXPECT_TRUE(Allows(Role::kAdmin, Role::kOperator));
  EXPECT_TRUE(Allows(Role::kOperator, Role::kViewer));
  EXPECT_FALSE(Allows(Role::kViewer, Role::kOperator));
  EXPECT_FALSE(Allows(Role::kOperator, Role::kAdmin));
  EXPECT_FALSE(Allows(Role::kAdmin, Role::kAgent));
  EXPECT_FALSE(Allows(Role::kAgent, Role::kViewer));
  EXPECT_TRUE(Allows(Role::kAgent, Role::kAgent));
  EXPECT_TRUE(Allows(Role::kViewer, Role::kPublic));
}

TEST(TokenRegistryTest, AuthenticateAndRevoke) {
  TokenRegistry tokens;
  tokens.Add("secret-token-1234567", Principal{"alice", Role::kOperator});
  auto p = tokens.Authenticate("Bearer secret-token-1234567");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->name, "alice");
  EXPECT_EQ(tokens.Authenticate("").error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(tokens.Authenticate("Basic abc").error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(tokens.Authenticate("Bearer secret-token-123456").error().code,
            ErrorCode::kUnauthenticated);
  EXPECT_EQ(tokens.RemoveByName("alice"), 1);
  EXPECT_FALSE(tokens.Authenticate("Bearer secret-token-1234567").has_value());
}

// The least role of every route of the real server, written out by hand from docs/API.md and
// reviewed against it, NOT read from the router's own table: a route moved to a weaker role in
// the code (or a new route nobody classified) fails ExpectedRolesAreTheRoutersAndEveryRouteHasOne
// and the matrix below, which enforces these roles rather than the router's.
struct ExpectedRole {
  const char* method;
  const char* pattern;
  Role least;
};
constexpr ExpectedRole kExpectedRoles[] = {
    // Public: the dashboard's files, liveness, signing in, and the routes that authenticate by
    // their own signature (SNS, Slack) or by the bootstrap token (enrolment).
    {"GET", "/", Role::kPublic},
    {"GET", "/assets/{name}", Role::kPublic},
    {"GET", "/healthz", Role::kPublic},
    {"POST", "/api/v1/session", Role::kPublic},
    {"POST", "/api/v1/ingest/sns", Role::kPublic},
    {"POST", "/api/v1/ingest/slack", Role::kPublic},
    {"POST", "/agent/v1/enroll", Role::kPublic},
    // Viewer: reads.
    {"GET", "/metrics", Role::kViewer},
    {"GET", "/api/v1", Role::kViewer},
    {"GET", "/api/v1/alarms", Role::kViewer},
    {"GET", "/api/v1/archive", Role::kViewer},
    {"GET", "/api/v1/events", Role::kViewer},
    {"GET", "/api/v1/hosts", Role::kViewer},
    {"GET", "/api/v1/hosts/{name}", Role::kViewer},
    {"GET", "/api/v1/hosts/{name}/metrics", Role::kViewer},
    {"GET", "/api/v1/incidents", Role::kViewer},
    {"GET", "/api/v1/incidents/{id}", Role::kViewer},
    {"GET", "/api/v1/incidents/{id}/report", Role::kViewer},
    {"GET", "/api/v1/ingest/unmatched", Role::kViewer},
    {"GET", "/api/v1/autonomy", Role::kViewer},
    {"GET", "/api/v1/stats", Role::kViewer},
    {"GET", "/api/v1/session", Role::kViewer},
    {"DELETE", "/api/v1/session", Role::kViewer},
    {"GET", "/api/v1/settings", Role::kViewer},
    {"GET", "/api/v1/target-groups", Role::kViewer},
    {"GET", "/api/v1/commands/{id}", Role::kViewer},
    // Operator: approves, rejects, runs chaos.
    {"POST", "/api/v1/incidents/{id}/approve", Role::kOperator},
    {"POST", "/api/v1/incidents/{id}/approve-step", Role::kOperator},
    {"POST", "/api/v1/incidents/{id}/reject", Role::kOperator},
    {"POST", "/api/v1/incidents/{id}/undo", Role::kOperator},
    {"POST", "/api/v1/chaos", Role::kOperator},
    // Admin: settings, hosts' identities, tokens, sign-in codes, the audit log.
    {"PUT", "/api/v1/settings", Role::kAdmin},
    {"DELETE", "/api/v1/hosts/{name}", Role::kAdmin},
    {"GET", "/api/v1/hosts/pending", Role::kAdmin},
    {"POST", "/api/v1/hosts/{name}/enroll", Role::kAdmin},
    {"POST", "/api/v1/hosts/{name}/approve", Role::kAdmin},
    {"POST", "/api/v1/hosts/{name}/revoke", Role::kAdmin},
    {"GET", "/api/v1/tokens", Role::kAdmin},
    {"POST", "/api/v1/tokens", Role::kAdmin},
    {"DELETE", "/api/v1/tokens/{name}", Role::kAdmin},
    {"POST", "/api/v1/session/codes", Role::kAdmin},
    {"GET", "/api/v1/audit", Role::kAdmin},
    {"GET", "/api/v1/audit/verify", Role::kAdmin},
    {"PUT", "/api/v1/autonomy/{alarm}/{action}", Role::kAdmin},
    {"DELETE", "/api/v1/autonomy/{alarm}/{action}", Role::kAdmin},
    // Ingest: alert sources, nothing else.
    {"POST", "/api/v1/ingest/alertmanager", Role::kIngest},
    // Agent: a host's own credential, as that host only.
    {"POST", "/agent/v1/register", Role::kAgent},
    {"POST", "/agent/v1/report", Role::kAgent},
    {"GET", "/agent/v1/commands", Role::kAgent},
    {"POST", "/agent/v1/results", Role::kAgent},
    {"POST", "/agent/v1/archive", Role::kAgent},
    {"PUT", "/agent/v1/archive/{id}", Role::kAgent},
    {"POST", "/agent/v1/archive/{id}/finish", Role::kAgent},
    {"GET", "/agent/v1/restore/{name}", Role::kAgent},
};

const ExpectedRole* FindExpectedRole(const std::string& method, const std::string& pattern) {
  for (const ExpectedRole& e : kExpectedRoles) {
    if (method == e.method && pattern == e.pattern) {
      return &e;
    }
  }
  return nullptr;
}

// The real server as ServerApp builds it with a default config (every route family is added
// whatever the config), its tokens: admin, bootstrap (agent.token), viewer vera, operator otto,
// and host web-1's credential.
std::unique_ptr<ServerApp> MatrixApp(test::TempDir& dir, SystemClock& clock) {
  ServerConfig config;
  config.data_dir = dir.File("data");
  const auto failed = [](const Status& s) {
    if (!s.has_value()) {
      ADD_FAILURE() << s.error().ToString();
    }
    return !s.has_value();
  };
  if (failed(MakeDirs(config.data_dir, 0700)) ||
      failed(WriteFileAtomic(dir.File("data/agent.token"), "tok-agent-0000000000\n", 0600)) ||
      failed(WriteFileAtomic(dir.File("data/admin.token"), "tok-admin-0000000000\n", 0600))) {
    return nullptr;
  }
  auto store = std::move(OpenSqliteStore(dir.File("medic.db")).value());
  const TokenRecord vera{"vera", "viewer", Sha256Hex("tok-viewer-000000000"), clock.Now(), ""};
  const TokenRecord otto{"otto", "operator", Sha256Hex("tok-operator-0000000"), clock.Now(), ""};
  if (failed(store->CreateToken(vera)) || failed(store->CreateToken(otto)) ||
      failed(store->PutHostCredential(
          {"web-1", Sha256Hex("tok-host-web-1-000000"), clock.Now(), "code:admin"}))) {
    return nullptr;
  }
  auto app = ServerApp::Create(
      config, ServerDeps{&clock, std::move(store), std::make_unique<ai::RunbookBrain>()});
  EXPECT_TRUE(app.has_value()) << app.error().ToString();
  return app.has_value() ? std::move(*app) : nullptr;
}

TEST(RouterTest, ExpectedRolesAreTheRoutersAndEveryRouteHasOne) {
  test::TempDir dir;
  SystemClock clock;
  std::unique_ptr<ServerApp> app = MatrixApp(dir, clock);
  ASSERT_NE(app, nullptr);
  std::set<std::pair<std::string, std::string>> routed;
  for (const Route& route : app->router().routes()) {
    routed.insert({route.method, route.pattern});
    const ExpectedRole* expected = FindExpectedRole(route.method, route.pattern);
    if (expected == nullptr) {
      ADD_FAILURE() << route.method << " " << route.pattern << " (" << RoleName(route.role)
                    << " in the router) has no entry in kExpectedRoles: add it with the least "
                       "role docs/API.md gives it";
      continue;
    }
    EXPECT_EQ(RoleName(route.role), RoleName(expected->least))
        << route.method << " " << route.pattern;
  }
  for (const ExpectedRole& e : kExpectedRoles) {
    EXPECT_TRUE(routed.count({e.method, e.pattern}))
        << e.method << " " << e.pattern << " is in kExpectedRoles but not routed";
  }
}

// Every route of the real server, called with every kind of caller: the hand-written table
// above decides who must get 401, 403 or through.
TEST(RouterTest, AuthorizationMatrixOverEveryRoute) {
  test::TempDir dir;
  SystemClock clock;
  std::unique_ptr<ServerApp> app_ptr = MatrixApp(dir, clock);
  ASSERT_NE(app_ptr, nullptr);
  ServerApp* app = app_ptr.get();
  const Router& router = app->router();
  ASSERT_GE(router.routes().size(), std::size(kExpectedRoles));

  // A caller signs in to a dashboard session with `session_token` (a fresh session for every
  // request, so that DELETE /api/v1/session cannot sign later ones out), and sends its
  // cookie and CSRF header instead of the Authorization header.
  struct Caller {
    std::string header;
    Role role;
    bool authenticated;
    std::string session_token = "";
  };
  const std::vector<Caller> callers = {
      {"", Role::kPublic, false},
      {"Bearer wrong-token-000000", Role::kPublic, false},
      // The bootstrap token (agent.token) authenticates nothing but enrolment.
      {"Bearer tok-agent-0000000000", Role::kPublic, false},
      // Host web-1's own credential.
      {"Bearer tok-host-web-1-000000", Role::kAgent, true},
      {"Bearer tok-viewer-000000000", Role::kViewer, true},
      {"Bearer tok-operator-0000000", Role::kOperator, true},
      {"Bearer tok-admin-0000000000", Role::kAdmin, true},
      {"", Role::kViewer, true, "tok-viewer-000000000"},
      {"", Role::kOperator, true, "tok-operator-0000000"},
      {"", Role::kAdmin, true, "tok-admin-0000000000"},
  };
  auto sign_in = [&router](const std::string& token, ApiRequest& req) {
    ApiRequest in;
    in.method = "POST";
    in.path = "/api/v1/session";
    in.content_type = "application/json";
    in.body = DumpJson(Json{{"token", token}});
    ApiResponse got;
    router.Handle(in, [&](ApiResponse r) { got = std::move(r); });
    ASSERT_EQ(got.status, 200) << got.body;
    ASSERT_EQ(got.headers.size(), 1u);
    const std::string cookie = got.headers[0].second;
    req.cookie = cookie.substr(0, cookie.find(';'));
    req.csrf_token = ParseJsonObject(got.body).value()["csrf"].get<std::string>();
  };
  for (const auto& route : router.routes()) {
    const ExpectedRole* expected = FindExpectedRole(route.method, route.pattern);
    ASSERT_NE(expected, nullptr) << route.method << " " << route.pattern;
    for (const auto& caller : callers) {
      SCOPED_TRACE(route.method + " " + route.pattern + " as '" + caller.header + "'" +
                   (caller.session_token.empty() ? "" : " session of " + caller.session_token));
      ApiRequest req;
      req.method = route.method;
      req.path = route.pattern;
      for (const char* param : {"{id}", "{name}"}) {
        const size_t pos = req.path.find(param);
        if (pos != std::string::npos) {
          req.path.replace(pos, std::string(param).size(), "nope");
        }
      }
      req.query["host"] = "web-1";
      req.query["wait_ms"] = "0";
      req.authorization = caller.header;
      if (!caller.session_token.empty()) {
        sign_in(caller.session_token, req);
      }
      // The decision on the headers alone (before the body is read) is the router's own.
      const Admission admission = router.Admit(req);
      int status = 0;
      router.Handle(req, [&](ApiResponse r) { status = r.status; });
      if (admission.refusal) {
        EXPECT_EQ(admission.refusal->status, status);
      } else {
        EXPECT_NE(status, 401);
        EXPECT_EQ(admission.max_body_bytes, MaxBodyBytes(route));
      }
      if (route.pattern == "/agent/v1/commands" && status == 0) {
        app->RunOnce();  // answers the parked long poll (wait_ms=0)
      }
      ASSERT_NE(status, 0) << "no answer";
      if (expected->least == Role::kPublic) {
        EXPECT_NE(status, 401);
        EXPECT_NE(status, 403);
      } else if (!caller.authenticated) {
        EXPECT_EQ(status, 401);
      } else if (!Allows(caller.role, expected->least)) {
        EXPECT_EQ(status, 403);
      } else {
        EXPECT_NE(status, 401);
        EXPECT_NE(status, 403);
      }
    }
  }
}

// A bearer credential that is no operator token is asked of the host authenticator: a host's
// credential authenticates as that host, with the agent role.
TEST(RouterTest, AHostCredentialAuthenticatesAsItsHostWithTheAgentRole) {
  TokenRegistry tokens;
  tokens.Add("tok-admin", Principal{"admin", Role::kAdmin});
  Router router(tokens);
  router.SetHostAuthenticator([](std::string_view credential) -> Result<std::string> {
    if (credential == "cred-web-1") {
      return std::string("web-1");
    }
    return Unauthenticated("invalid or revoked host credential");
  });
  std::string seen;
  for (const auto& [pattern, role] :
       {std::pair{"/agent", Role::kAgent}, std::pair{"/admin", Role::kAdmin}}) {
    router.Add({"GET", pattern, role, "", [&seen](ApiRequest& req, Responder r) {
                  seen = req.principal + "/" + std::string(RoleName(req.principal_role));
                  r(JsonResponse(200, Json::object()));
                }});
  }
  auto status = [&](const std::string& path, const std::string& authorization) {
    ApiRequest req;
    req.method = "GET";
    req.path = path;
    req.authorization = authorization;
    int got = 0;
    router.Handle(req, [&](ApiResponse r) { got = r.status; });
    return got;
  };
  EXPECT_EQ(status("/agent", "Bearer cred-web-1"), 200);
  EXPECT_EQ(seen, "web-1/agent");
  EXPECT_EQ(status("/admin", "Bearer cred-web-1"), 403);
  EXPECT_EQ(status("/agent", "Bearer cred-web-2"), 401);
  EXPECT_EQ(status("/agent", "cred-web-1"), 401);
  EXPECT_EQ(status("/agent", "Bearer tok-admin"), 403);
  EXPECT_EQ(status("/admin", "Bearer tok-admin"), 200);
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("Basic abc"), "");
  EXPECT_EQ(BearerToken("Bearer "), "");
}

TEST(RouterTest, UnknownPathIs404AndWrongMethodIs405) {
  TokenRegistry tokens;
  Router router(tokens);
  router.Add({"GET", "/x", Role::kPublic, "", [](ApiRequest&, Responder r) {
                r(JsonResponse(200, Json::object()));
              }});
  ApiResponse got;
  ApiRequest req;
  req.method = "GET";
  req.path = "/y";
  router.Handle(req, [&](ApiResponse r) { got = r; });
  EXPECT_EQ(got.status, 404);
  EXPECT_TRUE(ParseJsonObject(got.body)->contains("error"));
  req.method = "DELETE";
  req.path = "/x";
  router.Handle(req, [&](ApiResponse r) { got = r; });
  EXPECT_EQ(got.status, 405);
}

// A handler that throws (a JSON library exception, any std::exception, anything) gets a 500
// with a JSON error, exactly one answer, and the router goes on routing.
// Admit decides on the headers alone and never runs a handler: the refusal Handle would give,
// else the route's body limit (its own, or its role's default) and whether it is an upload.
TEST(RouterTest, AdmitDecidesOnTheHeadersAlone) {
  TokenRegistry tokens;
  tokens.Add("tok-viewer", Principal{"v", Role::kViewer});
  Router router(tokens);
  router.SetHostAuthenticator([](std::string_view credential) -> Result<std::string> {
    if (credential == "cred-web-1") {
      return std::string("web-1");
    }
    return Unauthenticated("invalid or revoked host credential");
  });
  int ran = 0;
  RouteHandler handler = [&ran](ApiRequest&, Responder r) {
    ++ran;
    r(JsonResponse(200, Json::object()));
  };
  router.Add({"POST", "/api/x", Role::kViewer, "", handler});
  router.Add({"POST", "/agent/report", Role::kAgent, "", handler});
  router.Add({"PUT", "/agent/chunk/{id}", Role::kAgent, "", handler, 2 << 20, true});
  router.Add({"POST", "/public", Role::kPublic, "", handler});
  struct Case {
    std::string method, path, authorization;
    int refused;  // 0: admitted
    size_t max_body_bytes;
    bool upload;
  };
  const std::vector<Case> cases = {
      {"POST", "/api/x", "Bearer tok-viewer", 0, kDefaultMaxBodyBytes, false},
      {"POST", "/api/x", "", 401, 0, false},
      {"POST", "/api/x", "Bearer nope", 401, 0, false},
      {"POST", "/api/x", "Bearer cred-web-1", 403, 0, false},
      {"GET", "/api/x", "Bearer tok-viewer", 405, 0, false},
      {"POST", "/nowhere", "Bearer tok-viewer", 404, 0, false},
      {"POST", "/agent/report", "Bearer cred-web-1", 0, kAgentMaxBodyBytes, false},
      {"POST", "/agent/report", "Bearer tok-viewer", 403, 0, false},
      {"PUT", "/agent/chunk/7", "Bearer cred-web-1", 0, 2 << 20, true},
      {"POST", "/public", "", 0, kDefaultMaxBodyBytes, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method + " " + c.path + " " + c.authorization);
    ApiRequest req;
    req.method = c.method;
    req.path = c.path;
    req.authorization = c.authorization;
    const Admission a = router.Admit(req);
    if (c.refused != 0) {
      ASSERT_TRUE(a.refusal.has_value());
      EXPECT_EQ(a.refusal->status, c.refused);
      EXPECT_NE(a.refusal->body.find("\"error\""), std::string::npos);
    } else {
      EXPECT_FALSE(a.refusal.has_value()) << a.refusal->body;
      EXPECT_EQ(a.max_body_bytes, c.max_body_bytes);
      EXPECT_EQ(a.upload, c.upload);
    }
  }
  EXPECT_EQ(ran, 0);
}

TEST(RouterTest, AThrowingHandlerIs500AndAnsweredOnce) {
  TokenRegistry tokens;
  Router router(tokens);
  router.Add({"GET", "/json", Role::kPublic, "", [](ApiRequest&, Responder) {
                const Json j = Json::array();
                (void)j.at("missing");  // nlohmann throws type_error
              }});
  router.Add({"GET", "/other", Role::kPublic, "", [](ApiRequest&, Responder) {
                throw 42;  // not even a std::exception
              }});
  router.Add({"GET", "/late", Role::kPublic, "", [](ApiRequest&, Responder r) {
                r(JsonResponse(200, Json::object()));
                throw std::runtime_error("after answering");
              }});
  router.Add({"GET", "/ok", Role::kPublic, "", [](ApiRequest&, Responder r) {
                r(JsonResponse(200, Json::object()));
              }});
  for (const std::string path : {"/json", "/other", "/late", "/ok"}) {
    SCOPED_TRACE(path);
    std::vector<ApiResponse> got;
    ApiRequest req;
    req.method = "GET";
    req.path = path;
    router.Handle(req, [&](ApiResponse r) { got.push_back(r); });
    ASSERT_EQ(got.size(), 1u);
    const int want = path == "/json" || path == "/other" ? 500 : 200;
    EXPECT_EQ(got[0].status, want);
    EXPECT_TRUE(ParseJsonObject(got[0].body).has_value());
  }
}

// Dashboard sessions through the real route table: sign-in, cookie authentication, the CSRF
// rule, roles, sign-out, revocation, expiry and sign-in codes. Time is a ManualClock.
class SessionRouterTest : public ::testing::Test {
 protected:
  struct Caller {
    std::string authorization;  // "Bearer ..." or ""
    std::string cookie;         // a Cookie header or ""
    std::string csrf;           // an X-CSRF-Token header or ""
  };
  struct SignedIn {
    std::string cookie;       // "medic_session=..."
    std::string set_cookie;   // the whole Set-Cookie value
    std::string csrf;
    Caller caller() const { return {"", cookie, csrf}; }
  };

  void SetUp() override {
    config_.data_dir = dir_.File("data");
    ASSERT_TRUE(MakeDirs(config_.data_dir, 0700).has_value());
    ASSERT_TRUE(WriteFileAtomic(dir_.File("data/agent.token"), std::string(kAgent) + "\n", 0600)
                    .has_value());
    ASSERT_TRUE(WriteFileAtomic(dir_.File("data/admin.token"), std::string(kAdmin) + "\n", 0600)
                    .has_value());
    auto store = std::move(OpenSqliteStore(dir_.File("medic.db")).value());
    ASSERT_TRUE(
        store->CreateToken({"vera", "viewer", Sha256Hex(kViewer), clock_.Now(), ""}).has_value());
    ASSERT_TRUE(
        store->CreateToken({"otto", "operator", Sha256Hex(kOperator), clock_.Now(), ""})
            .has_value());
    MakeApp(std::move(store));
  }
  // (Re)creates the app on config_ and the store (by default, the one in dir_).
  void MakeApp(std::unique_ptr<Store> store = nullptr) {
    app_.reset();
    if (store == nullptr) {
      store = std::move(OpenSqliteStore(dir_.File("medic.db")).value());
    }
    auto app = ServerApp::Create(
        config_, ServerDeps{&clock_, std::move(store), std::make_unique<ai::RunbookBrain>()});
    ASSERT_TRUE(app.has_value()) << app.error().ToString();
    app_ = std::move(*app);
  }

  ApiResponse Call(const std::string& method, const std::string& path, const Caller& caller,
                   const std::string& body = "", const std::string& content_type = "") {
    ApiRequest req;
    req.method = method;
    req.path = path;
    req.authorization = caller.authorization;
    req.cookie = caller.cookie;
    req.csrf_token = caller.csrf;
    req.body = body;
    req.content_type = content_type;
    return test::CallRoute(app_->router(), std::move(req));
  }
  ApiResponse SignInWith(const Json& body) {
    return Call("POST", "/api/v1/session", {}, DumpJson(body), "application/json");
  }
  static std::string SetCookieOf(const ApiResponse& r) {
    for (const auto& [k, v] : r.headers) {
      if (k == "Set-Cookie") {
        return v;
      }
    }
    return "";
  }
  SignedIn SignIn(const std::string& token) {
    const ApiResponse r = SignInWith(Json{{"token", token}});
    EXPECT_EQ(r.status, 200) << r.body;
    SignedIn out;
    out.set_cookie = SetCookieOf(r);
    out.cookie = out.set_cookie.substr(0, out.set_cookie.find(';'));
    auto body = ParseJsonObject(r.body);
    if (body && body->contains("csrf")) {
      out.csrf = (*body)["csrf"].get<std::string>();
    }
    return out;
  }
  static Caller Bearer(std::string_view token) { return {"Bearer " + std::string(token), "", ""}; }
  static std::string ErrorOf(const ApiResponse& r) {
    auto body = ParseJsonObject(r.body);
    return body && body->contains("error") ? (*body)["error"].get<std::string>() : "";
  }

  static constexpr std::string_view kAdmin = "tok-admin-0000000000";
  static constexpr std::string_view kAgent = "tok-agent-0000000000";
  static constexpr std::string_view kViewer = "tok-viewer-000000000";
  static constexpr std::string_view kOperator = "tok-operator-0000000";
  test::TempDir dir_;
  ManualClock clock_;
  ServerConfig config_;
  std::unique_ptr<ServerApp> app_;
};

TEST_F(SessionRouterTest, SignInSetsTheCookieAndAnswersCsrfAndRole) {
  const ApiResponse r = SignInWith(Json{{"token", kOperator}});
  ASSERT_EQ(r.status, 200) << r.body;
  const Json body = ParseJsonObject(r.body).value();
  EXPECT_EQ(body["role"], "operator");
  EXPECT_GE(body["csrf"].get<std::string>().size(), 32u);
  const std::string set_cookie = SetCookieOf(r);
  EXPECT_EQ(set_cookie.rfind("medic_session=", 0), 0u) << set_cookie;
  EXPECT_NE(set_cookie.find("; HttpOnly"), std::string::npos);
  EXPECT_NE(set_cookie.find("; SameSite=Strict"), std::string::npos);
  EXPECT_NE(set_cookie.find("; Path=/"), std::string::npos);
  EXPECT_NE(set_cookie.find("; Max-Age=43200"), std::string::npos);
  EXPECT_EQ(set_cookie.find("Secure"), std::string::npos);  // not told it is served over TLS
  const std::string id = set_cookie.substr(14, set_cookie.find(';') - 14);
  EXPECT_GE(id.size(), 32u);
  EXPECT_EQ(r.body.find(id), std::string::npos);  // the id is only in the HttpOnly cookie
}

TEST_F(SessionRouterTest, ConfiguredLifetimeAndSecure) {
  config_.cookie_secure = true;
  config_.sessions.lifetime = std::chrono::minutes(90);
  MakeApp();
  const SignedIn otto = SignIn(std::string(kOperator));
  EXPECT_NE(otto.set_cookie.find("; Max-Age=5400"), std::string::npos) << otto.set_cookie;
  EXPECT_NE(otto.set_cookie.find("; Secure"), std::string::npos) << otto.set_cookie;
  EXPECT_NE(SetCookieOf(Call("DELETE", "/api/v1/session", otto.caller())).find("; Secure"),
            std::string::npos);
  clock_.Advance(std::chrono::minutes(90));
  EXPECT_EQ(Call("GET", "/api/v1/incidents", otto.caller()).status, 401);
}

TEST_F(SessionRouterTest, SignInRefusals) {
  struct Case {
    std::string name, body, content_type;
    int status;
  };
  const std::vector<Case> cases = {
      {"unknown token", R"({"token":"nope-nope-nope-nope"})", "application/json", 401},
      {"empty token", R"({"token":""})", "application/json", 401},
      // The bootstrap token is no operator token: it only enrols hosts.
      {"agent token", R"({"token":"tok-agent-0000000000"})", "application/json", 401},
      {"unknown code", R"({"code":"0123456789abcdef"})", "application/json", 401},
      {"both", R"({"token":"tok-admin-0000000000","code":"x"})", "application/json", 400},
      {"neither", R"({})", "application/json", 400},
      {"extra field", R"({"token":"tok-admin-0000000000","role":"admin"})", "application/json",
       400},
      {"token not a string", R"({"token":42})", "application/json", 400},
      {"not json", "token=tok-admin-0000000000", "application/json", 400},
      {"json array", R"(["tok-admin-0000000000"])", "application/json", 400},
      {"form post", R"({"token":"tok-admin-0000000000"})", "text/plain", 415},
      {"no content type", R"({"token":"tok-admin-0000000000"})", "", 415},
      {"urlencoded", R"({"token":"tok-admin-0000000000"})", "application/x-www-form-urlencoded",
       415},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const ApiResponse r = Call("POST", "/api/v1/session", {}, c.body, c.content_type);
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_FALSE(ErrorOf(r).empty());
    EXPECT_EQ(SetCookieOf(r), "");
  }
  EXPECT_EQ(SignInWith(Json{{"token", kAdmin}}).status, 200);  // the same body, as JSON
  EXPECT_EQ(Call("POST", "/api/v1/session", {}, R"({"token":"tok-admin-0000000000"})",
                 "Application/JSON; charset=utf-8")
                .status,
            200);
}

TEST_F(SessionRouterTest, CookieAuthenticatesAndStateChangesNeedCsrf) {
  const SignedIn otto = SignIn(std::string(kOperator));
  const SignedIn admin = SignIn(std::string(kAdmin));
  struct Case {
    std::string name, method, path;
    Caller caller;
    int status;
  };
  const std::string settings = R"({"approval_mode":true})";
  const std::vector<Case> cases = {
      // Reads need no CSRF token.
      {"GET with cookie", "GET", "/api/v1/incidents", {"", otto.cookie, ""}, 200},
      {"GET with cookie among others", "GET", "/api/v1/hosts",
       {"", "theme=dark; " + otto.cookie + "; x=\"y\"", ""}, 200},
      {"GET with quoted cookie", "GET", "/api/v1/hosts",
       {"", "medic_session=\"" + otto.cookie.substr(14) + "\"", ""}, 200},
      // POST, PUT, DELETE need it.
      {"POST without csrf", "POST", "/api/v1/incidents/nope/approve", {"", otto.cookie, ""}, 403},
      {"POST wrong csrf", "POST", "/api/v1/incidents/nope/approve",
       {"", otto.cookie, admin.csrf}, 403},
      {"POST right csrf", "POST", "/api/v1/incidents/nope/approve",
       {"", otto.cookie, otto.csrf}, 404},
      {"PUT without csrf", "PUT", "/api/v1/settings", {"", admin.cookie, ""}, 403},
      {"PUT right csrf", "PUT", "/api/v1/settings", {"", admin.cookie, admin.csrf}, 200},
      {"DELETE without csrf", "DELETE", "/api/v1/tokens/nope", {"", admin.cookie, ""}, 403},
      {"DELETE csrf of another session", "DELETE", "/api/v1/tokens/nope",
       {"", admin.cookie, otto.csrf}, 403},
      {"DELETE right csrf", "DELETE", "/api/v1/tokens/nope", {"", admin.cookie, admin.csrf},
       404},
      {"sign-out without csrf", "DELETE", "/api/v1/session", {"", otto.cookie, ""}, 403},
      // Bearer tokens work as before, with or without a cookie beside them.
      {"bearer POST", "POST", "/api/v1/incidents/nope/approve", Bearer(kOperator), 404},
      {"bearer PUT", "PUT", "/api/v1/settings", Bearer(kAdmin), 200},
      {"bearer wins over a cookie", "POST", "/api/v1/incidents/nope/approve",
       {"Bearer " + std::string(kOperator), "medic_session=garbage", ""}, 404},
      {"wrong bearer beside a good cookie", "GET", "/api/v1/incidents",
       {"Bearer wrong-token-000000", otto.cookie, otto.csrf}, 401},
      // Bad cookies.
      {"unknown session", "GET", "/api/v1/incidents", {"", "medic_session=abc", ""}, 401},
      {"empty session", "GET", "/api/v1/incidents", {"", "medic_session=", ""}, 401},
      {"other cookies only", "GET", "/api/v1/incidents", {"", "a=b; c", ""}, 401},
      {"garbage", "GET", "/api/v1/incidents", {"", ";;==;\"\";\x01\xff", ""}, 401},
      {"huge", "GET", "/api/v1/incidents", {"", "medic_session=" + std::string(100000, 'a'), ""},
       401},
      {"csrf as cookie", "GET", "/api/v1/incidents", {"", "medic_session=" + otto.csrf, ""},
       401},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string approve = R"({"action_hash":")" + std::string(64, '0') + R"("})";
    const std::string body = c.method == "PUT"                                       ? settings
                             : c.path.size() > 8 && c.path.ends_with("/approve") ? approve
                                                                                  : std::string();
    const ApiResponse r = Call(c.method, c.path, c.caller, body);
    EXPECT_EQ(r.status, c.status) << r.body;
    if (c.status == 403) {
      EXPECT_EQ(ErrorOf(r), "missing or wrong X-CSRF-Token");
    }
  }
}

TEST_F(SessionRouterTest, RolesAreCheckedAsForTokens) {
  const SignedIn vera = SignIn(std::string(kViewer));
  EXPECT_EQ(Call("GET", "/api/v1/incidents", vera.caller()).status, 200);
  // A viewer forging an approval with its own valid CSRF token: the role check says no.
  const ApiResponse forged = Call("POST", "/api/v1/incidents/nope/approve", vera.caller());
  EXPECT_EQ(forged.status, 403);
  EXPECT_NE(ErrorOf(forged).find("viewer 'vera' may not"), std::string::npos) << forged.body;
  EXPECT_EQ(Call("POST", "/api/v1/chaos", vera.caller(), "{}").status, 403);
  EXPECT_EQ(Call("PUT", "/api/v1/settings", vera.caller(), "{}").status, 403);
  EXPECT_EQ(Call("POST", "/api/v1/session/codes", vera.caller()).status, 403);
  // Agents' routes are not reachable with a session.
  EXPECT_EQ(Call("POST", "/agent/v1/register", vera.caller(), "{}").status, 403);
  const Json who = ParseJsonObject(Call("GET", "/api/v1/session", vera.caller()).body).value();
  EXPECT_EQ(who["name"], "vera");
  EXPECT_EQ(who["role"], "viewer");
  EXPECT_EQ(who["csrf"], vera.csrf);
}

TEST_F(SessionRouterTest, SignOutClearsTheCookieAndForgetsTheSession) {
  const SignedIn otto = SignIn(std::string(kOperator));
  const SignedIn other = SignIn(std::string(kOperator));
  const ApiResponse r = Call("DELETE", "/api/v1/session", otto.caller());
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string cleared = SetCookieOf(r);
  EXPECT_EQ(cleared.rfind("medic_session=;", 0), 0u) << cleared;
  EXPECT_NE(cleared.find("; Max-Age=0"), std::string::npos);
  EXPECT_NE(cleared.find("; HttpOnly"), std::string::npos);
  EXPECT_EQ(Call("GET", "/api/v1/incidents", otto.caller()).status, 401);
  EXPECT_EQ(Call("DELETE", "/api/v1/session", otto.caller()).status, 401);
  EXPECT_EQ(Call("GET", "/api/v1/incidents", other.caller()).status, 200);
}

TEST_F(SessionRouterTest, RevokingTheTokenEndsItsSessionsAtOnce) {
  const SignedIn otto = SignIn(std::string(kOperator));
  const SignedIn vera = SignIn(std::string(kViewer));
  ASSERT_EQ(Call("GET", "/api/v1/incidents", otto.caller()).status, 200);
  ASSERT_EQ(Call("DELETE", "/api/v1/tokens/otto", Bearer(kAdmin)).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/incidents", otto.caller()).status, 401);
  EXPECT_EQ(SignInWith(Json{{"token", kOperator}}).status, 401);
  EXPECT_EQ(Call("GET", "/api/v1/incidents", vera.caller()).status, 200);
}

TEST_F(SessionRouterTest, SessionsExpire) {
  const SignedIn otto = SignIn(std::string(kOperator));
  clock_.Advance(std::chrono::hours(12) - std::chrono::seconds(1));
  EXPECT_EQ(Call("GET", "/api/v1/incidents", otto.caller()).status, 200);
  clock_.Advance(std::chrono::seconds(1));
  const ApiResponse r = Call("GET", "/api/v1/incidents", otto.caller());
  EXPECT_EQ(r.status, 401);
  EXPECT_FALSE(ErrorOf(r).empty());
}

TEST_F(SessionRouterTest, SignInCodes) {
  const ApiResponse made = Call("POST", "/api/v1/session/codes", Bearer(kAdmin));
  ASSERT_EQ(made.status, 201) << made.body;
  const Json code = ParseJsonObject(made.body).value();
  EXPECT_EQ(code["expires_at"], FormatRfc3339(clock_.Now() + std::chrono::minutes(5)));
  const ApiResponse in = SignInWith(Json{{"code", code["code"]}});
  ASSERT_EQ(in.status, 200) << in.body;
  EXPECT_EQ(ParseJsonObject(in.body).value()["role"], "admin");
  EXPECT_NE(SetCookieOf(in), "");
  // Single use.
  const ApiResponse again = SignInWith(Json{{"code", code["code"]}});
  EXPECT_EQ(again.status, 401);
  EXPECT_EQ(SetCookieOf(again), "");

  // A lower role on request; never an unknown one; never an agent.
  const ApiResponse viewer_code =
      Call("POST", "/api/v1/session/codes", Bearer(kAdmin), R"({"role":"viewer"})");
  ASSERT_EQ(viewer_code.status, 201);
  const ApiResponse as_viewer =
      SignInWith(Json{{"code", ParseJsonObject(viewer_code.body).value()["code"]}});
  EXPECT_EQ(ParseJsonObject(as_viewer.body).value()["role"], "viewer");
  EXPECT_EQ(Call("POST", "/api/v1/session/codes", Bearer(kAdmin), R"({"role":"root"})").status,
            400);
  EXPECT_EQ(Call("POST", "/api/v1/session/codes", Bearer(kAdmin), R"({"role":"agent"})").status,
            400);
  EXPECT_EQ(Call("POST", "/api/v1/session/codes", Bearer(kAdmin), R"({"x":1})").status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/session/codes", Bearer(kOperator)).status, 403);

  // Expired after five minutes.
  const ApiResponse late = Call("POST", "/api/v1/session/codes", Bearer(kAdmin));
  clock_.Advance(std::chrono::minutes(5));
  EXPECT_EQ(SignInWith(Json{{"code", ParseJsonObject(late.body).value()["code"]}}).status, 401);
}

}  // namespace
}  // namespace medic::server
