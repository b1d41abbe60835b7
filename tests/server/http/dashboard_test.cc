// The dashboard as the server serves it: the page and its assets are embedded, complete,
// typed, and written so that the Content-Security-Policy holds and nothing a host or a model
// sends can be parsed as HTML by them. (The pages themselves are driven in a real browser by
// tests/browser/.)

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <set>

#include "protocol/wire.h"
#include "server/http/web_assets.h"
#include "tests/server/server_fixture.h"

namespace medic::server {
namespace {

std::string HeaderOf(const HttpResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(a) == std::tolower(b);
        })) {
      return v;
    }
  }
  return "";
}

bool IsThirdParty(std::string_view name) { return name.starts_with("uPlot."); }

class DashboardTest : public test::ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
};

TEST_F(DashboardTest, IndexIsTheEmbeddedPageWithTheStrictPolicy) {
  HttpResponse r = Call("GET", "/", "");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(r.body, std::string(FindWebAsset("index.html")->body));
  EXPECT_NE(r.body.find("<script type=\"module\" src=\"/assets/app.js\">"), std::string::npos);
  std::string csp = HeaderOf(r, "Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
  EXPECT_EQ(HeaderOf(r, "X-Frame-Options"), "DENY");
}

TEST_F(DashboardTest, EveryAssetThePageNamesIsServedWithItsType) {
  const std::string index(FindWebAsset("index.html")->body);
  std::set<std::string> named;
  std::regex ref(R"((?:src|href)="/assets/([^"]+)\")");
  for (auto it = std::sregex_iterator(index.begin(), index.end(), ref);
       it != std::sregex_iterator(); ++it) {
    named.insert((*it)[1]);
  }
  // Every module a script imports, too.
  std::regex import(R"(from '\./([A-Za-z0-9_.-]+)')");
  for (const EmbeddedFile& f : EmbeddedWebFiles()) {
    if (!f.name.ends_with(".js") || IsThirdParty(f.name)) {
      continue;
    }
    std::string body(f.body);
    for (auto it = std::sregex_iterator(body.begin(), body.end(), import);
         it != std::sregex_iterator(); ++it) {
      named.insert((*it)[1]);
    }
  }
  EXPECT_TRUE(named.contains("app.js") && named.contains("pages.js") &&
              named.contains("uPlot.iife.min.js") && named.contains("uPlot.min.css"));
  for (const std::string& name : named) {
    HttpResponse r = Call("GET", "/assets/" + name, "");
    EXPECT_EQ(r.status, 200) << name;
    EXPECT_EQ(r.content_type, ContentTypeFor(name)) << name;
    EXPECT_FALSE(r.body.empty()) << name;
    EXPECT_NE(HeaderOf(r, "X-Content-Type-Options"), "") << name;
  }
  EXPECT_EQ(ContentTypeFor("app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("app.css"), "text/css; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("x.bin"), "application/octet-stream");
  EXPECT_EQ(ContentTypeFor(".js"), "application/octet-stream");
}

TEST_F(DashboardTest, UnknownAssetsAre404AndNothingOutsideTheTableIsReachable) {
  for (const char* path : {"/assets/nope.js", "/assets/..%2fadmin.token", "/assets/%2e%2e",
                           "/assets/", "/assets/index.html/x", "/admin.token", "/medic.db"}) {
    HttpResponse r = Call("GET", path, "");
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body.find(admin_), std::string::npos) << path;
  }
}

// src/server/CMakeLists.txt lists web/'s files one by one: a file added to web/ and not to the
// list would be missing from the binary.
TEST(DashboardSourceTest, EveryFileOfWebIsEmbedded) {
  const char* source = std::getenv("MEDIC_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "MEDIC_SOURCE_DIR is set by CTest";
  std::set<std::string> embedded;
  for (const EmbeddedFile& f : EmbeddedWebFiles()) {
    embedded.insert(std::string(f.name));
  }
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(source) + "/web")) {
    ++files;
    EXPECT_TRUE(embedded.contains(entry.path().filename().string()))
        << entry.path() << " is not in MEDIC_WEB_SOURCES (src/server/CMakeLists.txt)";
  }
  EXPECT_GE(files, 7);
  EXPECT_TRUE(embedded.contains("uPlot.iife.min.js"));
}

// What the Content-Security-Policy and the text-only rule need of our own code: no inline
// script or style in the page, no HTML parsing of strings in the scripts, no eval.
TEST(DashboardSourceTest, NoInlineScriptNoHtmlParsingNoEval) {
  const std::string index(FindWebAsset("index.html")->body);
  EXPECT_FALSE(std::regex_search(index, std::regex(R"(<script(?![^>]*\ssrc=)[^>]*>)")))
      << "inline script in index.html";
  EXPECT_EQ(index.find("<style"), std::string::npos);
  EXPECT_EQ(index.find("style="), std::string::npos);
  EXPECT_FALSE(std::regex_search(index, std::regex(R"(\son[a-z]+=)"))) << "inline handler";
  std::regex forbidden(
      R"(innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\('on|localStorage|sessionStorage)");
  int scripts = 0;
  for (const EmbeddedFile& f : EmbeddedWebFiles()) {
    if (IsThirdParty(f.name) || !f.name.ends_with(".js")) {
      continue;
    }
    ++scripts;
    std::string body(f.body);
    std::smatch m;
    EXPECT_FALSE(std::regex_search(body, m, forbidden)) << f.name << ": " << m.str();
  }
  EXPECT_GE(scripts, 4);
}

TEST_F(DashboardTest, MetricHistoryKeepsTheHighestOfEachRunForCharts) {
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  ASSERT_EQ(Call("POST", "/agent/v1/register", agent_, DumpJson(protocol::ToJson(reg))).status,
            200);
  for (int i = 0; i < 9; ++i) {
    protocol::Report rep;
    rep.host = "web-1";
    double v = i == 4 ? 99 : i;  // one spike
    rep.samples.push_back(
        {clock_.Now() - std::chrono::seconds(30 - i), {{"disk_used_percent", v}}});
    ASSERT_EQ(Call("POST", "/agent/v1/report", agent_, DumpJson(protocol::ToJson(rep))).status,
              200);
  }
  auto points = [&](const std::string& q) {
    HttpResponse r =
        Call("GET", "/api/v1/hosts/web-1/metrics?metric=disk_used_percent" + q, admin_);
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<double> v;
    const Json j = ParseJson(r.body).value_or(Json());
    for (const auto& p : j["points"]) {
      v.push_back(p["v"].get<double>());
    }
    return v;
  };
  EXPECT_EQ(points("").size(), 9u);
  EXPECT_EQ(points("&max_points=3"), (std::vector<double>{2, 99, 8}));
  EXPECT_EQ(points("&max_points=3&keep=highest"), (std::vector<double>{2, 99, 8}));
  EXPECT_EQ(points("&max_points=3&keep=lowest"), (std::vector<double>{0, 3, 6}));
  EXPECT_EQ(points("&max_points=2&keep=lowest"), (std::vector<double>{0, 5}));
  EXPECT_EQ(points("&max_points=9").size(), 9u);
  EXPECT_EQ(points("&max_points=3600").size(), 9u);
  for (const char* bad :
       {"&max_points=0", "&max_points=3601", "&max_points=abc", "&max_points=", "&max_points=-1"}) {
    HttpResponse r = Call(
        "GET", std::string("/api/v1/hosts/web-1/metrics?metric=disk_used_percent") + bad, admin_);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.body.find("max_points must be an integer from 1 to 3600"), std::string::npos)
        << r.body;
  }
  HttpResponse bad_keep = Call(
      "GET", "/api/v1/hosts/web-1/metrics?metric=disk_used_percent&keep=average", admin_);
  EXPECT_EQ(bad_keep.status, 400);
  EXPECT_NE(bad_keep.body.find("keep must be highest or lowest"), std::string::npos);
}

}  // namespace
}  // namespace medic::server
