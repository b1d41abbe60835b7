#include "server/http/router.h"

#include <gtest/gtest.h>

#include "ai/brain.h"
#include "core/files.h"
#include "core/sha256.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"

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

// Every route of the real server, called with every kind of caller: the route table alone
// decides who gets 401, 403 or through.
TEST(RouterTest, AuthorizationMatrixOverEveryRoute) {
  test::TempDir dir;
  SystemClock clock;
  ServerConfig config;
  config.data_dir = dir.File("data");
  ASSERT_TRUE(MakeDirs(config.data_dir, 0700).has_value());
  ASSERT_TRUE(
      WriteFileAtomic(dir.File("data/agent.token"), "tok-agent-0000000000\n", 0600).has_value());
  ASSERT_TRUE(
      WriteFileAtomic(dir.File("data/admin.token"), "tok-admin-0000000000\n", 0600).has_value());
  auto store = std::move(OpenSqliteStore(dir.File("medic.db")).value());
  const TokenRecord vera{"vera", "viewer", Sha256Hex("tok-viewer-000000000"), clock.Now(), ""};
  const TokenRecord otto{"otto", "operator", Sha256Hex("tok-operator-0000000"), clock.Now(), ""};
  ASSERT_TRUE(store->CreateToken(vera).has_value());
  ASSERT_TRUE(store->CreateToken(otto).has_value());
  auto app = ServerApp::Create(
      config, ServerDeps{&clock, std::move(store), std::make_unique<ai::RunbookBrain>()});
  ASSERT_TRUE(app.has_value()) << app.error().ToString();
  const Router& router = (*app)->router();
  ASSERT_GE(router.routes().size(), 15u);

  struct Caller {
    std::string header;
    Role role;
    bool authenticated;
  };
  const std::vector<Caller> callers = {
      {"", Role::kPublic, false},
      {"Bearer wrong-token-000000", Role::kPublic, false},
      {"Bearer tok-agent-0000000000", Role::kAgent, true},
      {"Bearer tok-viewer-000000000", Role::kViewer, true},
      {"Bearer tok-operator-0000000", Role::kOperator, true},
      {"Bearer tok-admin-0000000000", Role::kAdmin, true},
  };
  for (const auto& route : router.routes()) {
    for (const auto& caller : callers) {
      SCOPED_TRACE(route.method + " " + route.pattern + " as '" + caller.header + "'");
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
      int status = 0;
      router.Handle(req, [&](ApiResponse r) { status = r.status; });
      if (route.pattern == "/agent/v1/commands" && status == 0) {
        (*app)->RunOnce();  // answers the parked long poll (wait_ms=0)
      }
      ASSERT_NE(status, 0) << "no answer";
      if (route.role == Role::kPublic) {
        EXPECT_NE(status, 401);
        EXPECT_NE(status, 403);
      } else if (!caller.authenticated) {
        EXPECT_EQ(status, 401);
      } else if (!Allows(caller.role, route.role)) {
        EXPECT_EQ(status, 403);
      } else {
        EXPECT_NE(status, 401);
        EXPECT_NE(status, 403);
      }
    }
  }
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

}  // namespace
}  // namespace medic::server
