// What one host may make the server keep (issue 12), over real HTTP on loopback with web-1's
// own credential: target groups come only from the server's config, and a report or
// registration over a limit is a clear 4xx naming it, counted in /metrics, with nothing kept.
// The floods against the real binary, with its memory measured: tests/integration/
// host_limits_test.cc.

#include <gtest/gtest.h>

#include <string>

#include "core/files.h"
#include "protocol/wire.h"
#include "server/app/server_app.h"
#include "tests/server/server_fixture.h"

namespace medic::server {
namespace {

class HostLimitsHttpTest : public test::ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
  Json JsonOf(const HttpResponse& r) { return ParseJson(r.body).value_or(Json()); }
  std::string Metrics() { return Call("GET", "/metrics", admin_).body; }
};

TEST_F(HostLimitsHttpTest, AnAgentNamingAnUnknownTargetGroupCreatesNoGroup) {
  const std::string body =
      DumpJson(Json{{"name", "web-1"},
                    {"targets",
                     {{{"group", "evil-1"}, {"url", "http://127.0.0.1:9/"}},
                      {{"group", "web"}, {"url", "http://127.0.0.1:9/"}},
                      {{"group", "evil-2"}, {"url", "http://127.0.0.1:9/"}}}}});
  HttpResponse r = Call("POST", "/agent/v1/register", agent_, body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(JsonOf(r)["ignored_target_groups"], Json({"evil-1", "evil-2"}));

  const Json groups = JsonOf(Call("GET", "/api/v1/target-groups", admin_))["target_groups"];
  ASSERT_EQ(groups.size(), 1u) << groups.dump();
  EXPECT_EQ(groups[0]["name"], "web");
  ASSERT_EQ(groups[0]["members"].size(), 1u);
  EXPECT_EQ(groups[0]["members"][0]["host"], "web-1");
  EXPECT_NE(Metrics().find("medic_ignored_targets_total 2\n"), std::string::npos);
}

TEST_F(HostLimitsHttpTest, AReportOverALimitIsAClearErrorAndKeepsNothing) {
  ASSERT_EQ(Call("POST", "/agent/v1/register", agent_, R"({"name":"web-1"})").status, 200);
  protocol::Report bad;
  bad.host = "web-1";
  bad.samples.push_back({clock_.Now(), {{"disk_used_percent", 50}, {"evil name", 1}}});
  HttpResponse r = Call("POST", "/agent/v1/report", agent_, DumpJson(protocol::ToJson(bad)));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(JsonOf(r)["error"].get<std::string>().find("invalid metric name 'evil name'"),
            std::string::npos)
      << r.body;

  protocol::Report many = bad;
  many.samples[0].metrics.clear();
  for (int i = 0; i < 1'001; ++i) {
    many.samples[0].metrics["m" + std::to_string(i)] = i;
  }
  r = Call("POST", "/agent/v1/report", agent_, DumpJson(protocol::ToJson(many)));
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_NE(r.body.find("limits.metric_names_per_report"), std::string::npos) << r.body;

  const Json hosts = JsonOf(Call("GET", "/api/v1/hosts", admin_))["hosts"];
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_TRUE(hosts[0]["metrics"].empty()) << "nothing of a refused report is kept";
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("medic_rejected_reports_total{reason=\"metric_name\"} 1\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("medic_rejected_reports_total{reason=\"metric_names_per_report\"} 1\n"),
            std::string::npos)
      << metrics;
}

TEST(HostLimitsConfigTest, TheLimitsSectionIsRead) {
  test::TempDir dir;
  const std::string file = dir.File("s.yaml");
  ASSERT_TRUE(WriteFileAtomic(file,
                              "limits:\n  hosts: 50\n  metrics_per_host: 200\n"
                              "  services_per_host: 16\n",
                              0600)
                  .has_value());
  auto c = LoadServerConfig(file);
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->limits.hosts, 50u);
  EXPECT_EQ(c->limits.metrics_per_host, 200u);
  EXPECT_EQ(c->limits.services_per_host, 16u);
  EXPECT_EQ(c->limits.checks_per_host, FleetLimits{}.checks_per_host);

  ASSERT_TRUE(WriteFileAtomic(file, "limits:\n  hosts: 0\n", 0600).has_value());
  auto bad = LoadServerConfig(file);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("s.yaml:2:"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("limits.hosts"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace medic::server
