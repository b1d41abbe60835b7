// GET /api/v1/hosts with filters, pages and counts (issue 13), over real HTTP on loopback, and
// /metrics' host counts.

#include <gtest/gtest.h>

#include <string>

#include <map>
#include <vector>

#include "core/files.h"
#include "protocol/wire.h"
#include "tests/server/server_fixture.h"

namespace medic::server {
namespace {

class HostsPageHttpTest : public test::ServerFixture {
 protected:
  void SetUp() override {
    StartServer();
    for (const char* name : {"web-1", "web-2", "web-3", "db-1"}) {
      const std::string token = std::string(name) == "web-1" ? agent_ : Enroll(name);
      ASSERT_EQ(Call("POST", "/agent/v1/register", token,
                     DumpJson(Json{{"name", name}}))
                    .status,
                200);
      tokens_[name] = token;
    }
    // web-2's check fails.
    protocol::Report report;
    report.host = "web-2";
    report.checks.push_back({"web", false, "connection refused", clock_.Now()});
    ASSERT_EQ(Call("POST", "/agent/v1/report", tokens_["web-2"], DumpJson(protocol::ToJson(report))).status, 200);
  }
  Json Get(const std::string& path) {
    const HttpResponse r = Call("GET", path, admin_);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    return ParseJson(r.body).value_or(Json());
  }
  static std::vector<std::string> HostNames(const Json& body) {
    std::vector<std::string> out;
    for (const auto& h : body["hosts"]) {
      out.push_back(h["name"].get<std::string>());
    }
    return out;
  }
  std::map<std::string, std::string> tokens_;
};

using Names = std::vector<std::string>;

TEST_F(HostsPageHttpTest, PagesFilterAndCount) {
  const Json all = Get("/api/v1/hosts");
  EXPECT_EQ(HostNames(all), (Names{"db-1", "web-1", "web-2", "web-3"}));
  EXPECT_FALSE(all.contains("next")) << "without limit: every host, no cursor";
  EXPECT_EQ(all["counts"], (Json{{"healthy", 3}, {"unhealthy", 1}, {"stale", 0}, {"total", 4}}));

  Json page = Get("/api/v1/hosts?prefix=web-&limit=2");
  EXPECT_EQ(HostNames(page), (Names{"web-1", "web-2"}));
  ASSERT_EQ(page["next"], "web-2");
  page = Get("/api/v1/hosts?prefix=web-&limit=2&after=web-2");
  EXPECT_EQ(HostNames(page), (Names{"web-3"}));
  EXPECT_FALSE(page.contains("next"));
  EXPECT_EQ(page["counts"]["total"], 4) << "counts are the fleet's, not the page's";

  EXPECT_EQ(HostNames(Get("/api/v1/hosts?status=unhealthy")), (Names{"web-2"}));
  EXPECT_EQ(HostNames(Get("/api/v1/hosts?status=healthy&limit=10")),
            (Names{"db-1", "web-1", "web-3"}));
  EXPECT_TRUE(Get("/api/v1/hosts?status=stale")["hosts"].empty());

  const std::string metrics = Call("GET", "/metrics", admin_).body;
  EXPECT_NE(metrics.find("medic_hosts{status=\"healthy\"} 3\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("medic_hosts{status=\"unhealthy\"} 1\n"), std::string::npos);
}

TEST_F(HostsPageHttpTest, BadQueriesAre400NamingTheParameter) {
  struct Case {
    std::string query;
    std::string error;
  };
  const Case cases[] = {
      {"?limit=0", "limit must be an integer from 1 to 10000"},
      {"?limit=10001", "limit must be an integer from 1 to 10000"},
      {"?limit=ten", "limit must be an integer from 1 to 10000"},
      {"?status=sick", "status must be healthy, unhealthy or stale"},
      {"?page=2", "unknown query parameter 'page' (valid: status, prefix, limit, after)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.query);
    const HttpResponse r = Call("GET", "/api/v1/hosts" + c.query, admin_);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(ParseJson(r.body).value_or(Json())["error"], c.error);
  }
}

}  // namespace
}  // namespace medic::server
