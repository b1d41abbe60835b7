// What one host may make the server keep (issue 12), against the real medic-server binary over
// loopback HTTP with real enrolled host credentials: a metric-name flood, a facts flood and a
// hosts flood each leave the server's resident memory (VmRSS of the process this test started)
// under 100 MiB, every refusal is a clear 4xx naming its limit, and the server keeps serving.
// Each flood stops at the first sample over the bound, so a server without limits fails fast
// instead of growing on (it took 677 MiB for the metric flood before the limits).

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "core/files.h"
#include "core/json.h"
#include "tests/fakes/subprocess.h"
#include "tests/fakes/temp_dir.h"
#include "tests/integration/demo_fixture.h"
#include "tests/server/enroll_host.h"
#include "transport/http_client.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

constexpr long kRssBoundKib = 100 * 1024;

// VmRSS of `pid` in KiB; -1 if unreadable.
long RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtol(line.c_str() + 6, nullptr, 10);
    }
  }
  return -1;
}

// The real medic-server on loopback (port 0, the port read back) in its own data directory, killed
// (its process group) when the object dies.
class HostLimitsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) {
      server_->SignalAndWait(SIGTERM, 10s);
    }
  }

  // Starts the server with `config` as its config file on port 0 (the port read back from its
  // serving line); fails the test unless it serves.
  void StartServer(const std::string& config) {
    const std::string config_file = dir_.File("server.yaml");
    ASSERT_TRUE(WriteFileAtomic(config_file, config, 0600).has_value());
    url_ = test::StartServerOnPortZero(server_,
                                       {"--config", config_file, "--data-dir", dir_.File("data")},
                                       dir_.File("data"), dir_.File("server.log"), 15s);
    ASSERT_FALSE(url_.empty()) << "medic-server did not start: "
                               << ReadFileTail(dir_.File("server.log"), 2000).value_or("");
    admin_ = std::string(Trim(ReadFile(dir_.File("data/admin.token")).value_or("")));
  }

  std::pair<int, std::string> Call(const std::string& method, const std::string& path,
                                   const std::string& token, const std::string& body = "") {
    HttpRequest req;
    req.method = method;
    req.url = url_ + path;
    if (!token.empty()) {
      req.headers.emplace_back("Authorization", "Bearer " + token);
    }
    if (!body.empty()) {
      req.headers.emplace_back("Content-Type", "application/json");
    }
    req.body = body;
    req.timeout = Millis(20'000);
    auto r = client_->Do(req);
    EXPECT_TRUE(r.has_value()) << method << " " << path << ": " << (r ? "" : r.error().ToString());
    return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
  }
  test::CallFn Caller() {
    return [this](const std::string& method, const std::string& path, const std::string& token,
                  const std::string& body) { return Call(method, path, token, body); };
  }
  std::string Enroll(const std::string& host) { return test::EnrollHost(Caller(), admin_, host); }
  static std::string Registration(const std::string& host) {
    return DumpJson(
        Json{{"name", host}, {"hostname", host}, {"version", "test"}, {"services", {"nginx"}}});
  }
  // The server's VmRSS now, in KiB; the largest seen is recorded in the test's XML output
  // (`max_server_vmrss_kib`), for the record of what a flood costs.
  long Rss() {
    const long rss = RssKib(server_->pid());
    if (rss > max_rss_) {
      max_rss_ = rss;
      RecordProperty("max_server_vmrss_kib", std::to_string(rss));
    }
    return rss;
  }
  std::string Metrics() { return Call("GET", "/metrics", admin_).second; }
  std::string Log() const { return ReadFileTail(dir_.File("server.log"), 2000).value_or(""); }

  test::TempDir dir_;
  std::unique_ptr<HttpClient> client_ = NewCurlHttpClient();
  std::unique_ptr<test::Subprocess> server_;
  std::string url_, admin_;
  long max_rss_ = 0;
};

// One report of one sample carrying `count` new metric names (21 bytes each on the wire).
std::string FloodReport(const std::string& host, int round, int count) {
  std::string metrics;
  metrics.reserve(static_cast<size_t>(count) * 26);
  const long long now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  char name[32];
  for (int i = 0; i < count; ++i) {
    std::snprintf(name, sizeof(name), "flood%03d_%07d", round, i);  // 16 characters
    metrics += (i == 0 ? "\"" : ",\"") + std::string(name) + "\":1";
  }
  return "{\"host\":\"" + host + "\",\"samples\":[{\"t\":" + std::to_string(now_ms) +
         ",\"metrics\":{" + metrics + "}}],\"checks\":[]}";
}

TEST_F(HostLimitsTest, AMetricNameFloodKeepsTheServerUnder100MiB) {
  ASSERT_NO_FATAL_FAILURE(StartServer(""));
  const std::string host = "flood-1";
  const std::string credential = Enroll(host);
  ASSERT_EQ(Call("POST", "/agent/v1/register", credential, Registration(host)).first, 200);

  // Twenty reports of 0.8 MiB, each with 40,000 new metric names: refused whole.
  int refused = 0;
  std::string last_answer;
  for (int round = 0; round < 20; ++round) {
    const std::string body = FloodReport(host, round, 40'000);
    ASSERT_LT(body.size(), 900'000u);
    auto [status, answer] = Call("POST", "/agent/v1/report", credential, body);
    refused += status == 413 && answer.find("limits.metric_names_per_report") != std::string::npos;
    last_answer = answer;
    ASSERT_LT(Rss(), kRssBoundKib)
        << "after report " << round + 1 << " of 40,000 new names (" << refused
        << " refused so far; the last answer: " << last_answer << ")";
  }
  EXPECT_EQ(refused, 20) << last_answer;
  // Forty reports of 1,000 new names each (under the per-report limit): the host keeps its
  // first 1,000 names (limits.metrics_per_host) and the rest are dropped, the reports count.
  for (int round = 100; round < 140; ++round) {
    auto [status, answer] =
        Call("POST", "/agent/v1/report", credential, FloodReport(host, round, 1'000));
    ASSERT_EQ(status, 200) << answer;
    ASSERT_LT(Rss(), kRssBoundKib) << "after report " << round - 99 << " of 1,000 new names";
  }
  auto [status, hosts] = Call("GET", "/api/v1/hosts", admin_);
  ASSERT_EQ(status, 200) << hosts;
  const Json listed = ParseJsonObject(hosts).value()["hosts"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["metrics"].size(), 1'000u);
  EXPECT_TRUE(listed[0]["metrics"].contains("flood100_0000999"));
  EXPECT_FALSE(listed[0]["metrics"].contains("flood101_0000000"));

  // The server serves on, a known name still counts, and /metrics tells what happened.
  EXPECT_EQ(Call("POST", "/agent/v1/report", credential, FloodReport(host, 100, 3)).first, 200);
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("medic_rejected_reports_total{reason=\"metric_names_per_report\"} 20"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("medic_dropped_names_total{reason=\"metrics_per_host\"} 39000"),
            std::string::npos)
      << metrics;
  EXPECT_LT(Rss(), kRssBoundKib) << Log();
}

TEST_F(HostLimitsTest, AFactsFloodKeepsTheServerUnder100MiB) {
  ASSERT_NO_FATAL_FAILURE(StartServer(""));
  const std::string host = "facts-1";
  const std::string credential = Enroll(host);
  ASSERT_EQ(Call("POST", "/agent/v1/register", credential, Registration(host)).first, 200);

  // A ~0.9 MB `services` list, sixty times (each took ~2 MiB before the limits).
  Json services = Json::array();
  for (int i = 0; i < 15'000; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "service-%06d-abcdefghijklmnopqrstuvwxyz-0123456789-ab", i);
    services.push_back(name);
  }
  const std::string body = DumpJson(Json{{"name", host}, {"services", services}});
  ASSERT_GT(body.size(), 850'000u);
  ASSERT_LT(body.size(), 1'000'000u);
  int refused = 0;
  std::string last_answer;
  for (int i = 0; i < 60; ++i) {
    auto [status, answer] = Call("POST", "/agent/v1/register", credential, body);
    refused += status == 413 && answer.find("limits.services_per_host") != std::string::npos;
    last_answer = answer;
    ASSERT_LT(Rss(), kRssBoundKib) << "after registration " << i + 1 << " (" << refused
                                   << " refused so far; the last answer: " << last_answer << ")";
  }
  EXPECT_EQ(refused, 60) << last_answer;
  // A ~0.9 MB hostname: refused too.
  auto [status, answer] =
      Call("POST", "/agent/v1/register", credential,
           DumpJson(Json{{"name", host}, {"hostname", std::string(900'000, 'h')}}));
  EXPECT_EQ(status, 400) << answer;
  EXPECT_NE(answer.find("hostname"), std::string::npos) << answer;

  // What was registered before stands; the host registers again as it should.
  auto [listed_status, hosts] = Call("GET", "/api/v1/hosts", admin_);
  ASSERT_EQ(listed_status, 200);
  EXPECT_EQ(ParseJsonObject(hosts).value()["hosts"][0]["services"], Json({"nginx"}));
  EXPECT_EQ(Call("POST", "/agent/v1/register", credential, Registration(host)).first, 200);
  EXPECT_NE(Metrics().find("medic_rejected_registrations_total{reason=\"services_per_host\"} 60"),
            std::string::npos);
  EXPECT_LT(Rss(), kRssBoundKib) << Log();
}

TEST_F(HostLimitsTest, AHostsFloodStopsAtTheConfiguredLimit) {
  ASSERT_NO_FATAL_FAILURE(StartServer("limits: {hosts: 50}\n"));
  std::vector<std::string> credentials;
  for (int i = 0; i < 50; ++i) {
    const std::string host = "fleet-" + std::to_string(i);
    credentials.push_back(Enroll(host));
    ASSERT_FALSE(credentials.back().empty());
    ASSERT_EQ(Call("POST", "/agent/v1/register", credentials.back(), Registration(host)).first,
              200);
  }
  // The 51st host cannot enrol: a clear 413 naming the limit.
  const std::string code = test::MakeEnrollCode(Caller(), admin_, "fleet-50");
  auto [status, answer] =
      Call("POST", "/agent/v1/enroll", "", DumpJson(Json{{"name", "fleet-50"}, {"code", code}}));
  EXPECT_EQ(status, 413) << answer;
  EXPECT_NE(answer.find("limits.hosts"), std::string::npos) << answer;
  EXPECT_LT(Rss(), kRssBoundKib);

  // A revoked host leaves its place among the credentials, but not in the fleet until an admin
  // removes it: a new host may then enrol, and registers only once the fleet has room.
  ASSERT_EQ(Call("POST", "/api/v1/hosts/fleet-0/revoke", admin_).first, 200);
  const std::string late = Enroll("fleet-50");
  ASSERT_FALSE(late.empty());
  auto [refused, why] = Call("POST", "/agent/v1/register", late, Registration("fleet-50"));
  EXPECT_EQ(refused, 413) << why;
  EXPECT_NE(why.find("limits.hosts"), std::string::npos) << why;
  ASSERT_EQ(Call("DELETE", "/api/v1/hosts/fleet-0", admin_).first, 200);
  EXPECT_EQ(Call("POST", "/agent/v1/register", late, Registration("fleet-50")).first, 200);

  auto [listed_status, hosts] = Call("GET", "/api/v1/hosts", admin_);
  ASSERT_EQ(listed_status, 200);
  EXPECT_EQ(ParseJsonObject(hosts).value()["hosts"].size(), 50u);
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("medic_rejected_enrolments_total{reason=\"hosts\"} 1"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("medic_rejected_registrations_total{reason=\"hosts\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_LT(Rss(), kRssBoundKib) << Log();
}

TEST_F(HostLimitsTest, AnAgentCannotCreateATargetGroup) {
  ASSERT_NO_FATAL_FAILURE(StartServer(""));
  const std::string credential = Enroll("web-1");
  const std::string body = DumpJson(Json{{"name", "web-1"},
                                         {"targets",
                                          {{{"group", "made-up"}, {"url", "http://127.0.0.1:9/"}},
                                           {{"group", "web"}, {"url", "http://127.0.0.1:9/"}}}}});
  auto [status, answer] = Call("POST", "/agent/v1/register", credential, body);
  ASSERT_EQ(status, 200) << answer;
  auto [listed_status, listed] = Call("GET", "/api/v1/target-groups", admin_);
  ASSERT_EQ(listed_status, 200);
  const Json groups = ParseJsonObject(listed).value()["target_groups"];
  std::vector<std::string> names;
  for (const auto& g : groups) {
    names.push_back(g["name"].get<std::string>());
  }
  EXPECT_EQ(names, std::vector<std::string>{"web"}) << listed;
}

}  // namespace
}  // namespace medic
