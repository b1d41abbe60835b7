// Dashboard sessions and the security headers over real HTTP (ServerApp on 127.0.0.1:0).

#include <gtest/gtest.h>

#include <map>

#include "core/json.h"
#include "tests/server/server_fixture.h"

namespace medic::server {
namespace {

class SessionHttpTest : public test::ServerFixture {
 protected:
  void SetUp() override { StartServer(); }

  HttpResponse Send(const std::string& method, const std::string& path,
                    std::vector<std::pair<std::string, std::string>> headers,
                    const std::string& body = "") {
    HttpRequest req;
    req.method = method;
    req.url = base_ + path;
    req.headers = std::move(headers);
    req.body = body;
    auto r = client_->Do(req);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().ToString());
    return r.value_or(HttpResponse{});
  }
  // Header names compared case-insensitively; the first of each.
  static std::string Header(const HttpResponse& r, std::string name) {
    auto lower = [](std::string s) {
      for (char& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      return s;
    };
    for (const auto& [k, v] : r.headers) {
      if (lower(k) == lower(name)) {
        return v;
      }
    }
    return "";
  }
  static void ExpectSecurityHeaders(const HttpResponse& r) {
    EXPECT_EQ(Header(r, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(Header(r, "X-Frame-Options"), "DENY");
    EXPECT_EQ(Header(r, "Content-Security-Policy"),
              "default-src 'self'; frame-ancestors 'none'");
    EXPECT_EQ(Header(r, "Referrer-Policy"), "no-referrer");
    EXPECT_EQ(Header(r, "Cache-Control"), "no-store");
  }
};

TEST_F(SessionHttpTest, SignInUseAndSignOutOverHttp) {
  const HttpResponse in = Send("POST", "/api/v1/session", {{"Content-Type", "application/json"}},
                               DumpJson(Json{{"token", admin_}}));
  ASSERT_EQ(in.status, 200) << in.body;
  ExpectSecurityHeaders(in);
  const std::string set_cookie = Header(in, "Set-Cookie");
  EXPECT_EQ(set_cookie.rfind("medic_session=", 0), 0u) << set_cookie;
  for (const char* attribute : {"; HttpOnly", "; SameSite=Strict", "; Path=/", "; Max-Age=43200"}) {
    EXPECT_NE(set_cookie.find(attribute), std::string::npos) << attribute << " in " << set_cookie;
  }
  EXPECT_EQ(set_cookie.find("Secure"), std::string::npos);
  const std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  const Json body = ParseJsonObject(in.body).value();
  EXPECT_EQ(body["role"], "admin");
  const std::string csrf = body["csrf"].get<std::string>();

  EXPECT_EQ(Send("GET", "/api/v1/incidents", {{"Cookie", "a=b; " + cookie}}).status, 200);
  EXPECT_EQ(Send("PUT", "/api/v1/settings", {{"Cookie", cookie}}, R"({"approval_mode":true})")
                .status,
            403);
  EXPECT_EQ(Send("PUT", "/api/v1/settings", {{"Cookie", cookie}, {"X-CSRF-Token", csrf}},
                 R"({"approval_mode":true})")
                .status,
            200);
  const HttpResponse out =
      Send("DELETE", "/api/v1/session", {{"Cookie", cookie}, {"X-CSRF-Token", csrf}});
  EXPECT_EQ(out.status, 200) << out.body;
  EXPECT_NE(Header(out, "Set-Cookie").find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(Send("GET", "/api/v1/incidents", {{"Cookie", cookie}}).status, 401);
}

TEST_F(SessionHttpTest, UnknownTokenSetsNoCookie) {
  const HttpResponse r = Send("POST", "/api/v1/session", {{"Content-Type", "application/json"}},
                              R"({"token":"not-a-token-at-all"})");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Header(r, "Set-Cookie"), "");
  EXPECT_TRUE(ParseJsonObject(r.body).value().contains("error"));
}

TEST_F(SessionHttpTest, SecurityHeadersOnEveryResponse) {
  struct Case {
    std::string method, path;
    std::vector<std::pair<std::string, std::string>> headers;
    int status;
  };
  const std::vector<Case> cases = {
      {"GET", "/healthz", {}, 200},
      {"GET", "/", {}, 200},
      {"GET", "/api/v1/incidents", {{"Authorization", "Bearer " + admin_}}, 200},
      {"GET", "/api/v1/incidents", {}, 401},
      {"GET", "/api/v1/nothing-here", {}, 404},
      {"GET", "/api/v1/incidents", {{"Cookie", "medic_session=" + std::string(8000, 'x')}}, 401},
      {"GET", "/api/v1/incidents", {{"Cookie", std::string(20000, ';')}}, 431},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.method + " " + c.path);
    const HttpResponse r = Send(c.method, c.path, c.headers);
    EXPECT_EQ(r.status, c.status) << r.body;
    ExpectSecurityHeaders(r);
  }
}

}  // namespace
}  // namespace medic::server
