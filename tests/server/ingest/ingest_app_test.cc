// The ingest part through a whole ServerApp (no sockets; requests through its route table, the
// agent's side played through the agent routes): the role `ingest` and basic auth, an
// Alertmanager alert opening an incident on its host, whose fix is verified by the resolve from
// Alertmanager; repeats, grouped and out-of-order deliveries; the unmatched record, the alarms
// listing and /metrics.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ai/brain.h"
#include "core/files.h"
#include "protocol/wire.h"
#include "server/app/server_app.h"
#include "tests/server/call_route.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/enroll_host.h"

namespace medic::server {
namespace {

std::string Base64(const std::string& in) {
  static const char* kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) {
      out += kAlphabet[(n >> s) & 63];
    }
  }
  if (in.size() - i == 1) {
    const uint32_t n = uint8_t(in[i]) << 16;
    out += std::string{kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], '=', '='};
  } else if (in.size() - i == 2) {
    const uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += std::string{kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63],
                       kAlphabet[(n >> 6) & 63], '='};
  }
  return out;
}

constexpr char kConfig[] = R"(approval_mode: false
alarms:
  Disk-Critical-ASG: {threshold: 100}
  Memory-Exhaustion-ASG: {threshold: 100}
runbooks:
  Prom-Web-Down:
    diagnostics:
      - {action: service.status, params: {service: nginx}}
    fix: {action: service.restart, params: {service: nginx}}
    reasoning: Prometheus says the web check fails; restart nginx
    verification_window: 60s
ingest:
  alertmanager:
    rules:
      - match: {alertname: WebCheckFailing}
        alarm: Prom-Web-Down
)";

class IngestAppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteFileAtomic(dir_.File("server.yaml"), kConfig, 0600).has_value());
    auto config = LoadServerConfig(dir_.File("server.yaml"));
    ASSERT_TRUE(config.has_value()) << config.error().ToString();
    config->data_dir = dir_.File("data");
    auto app = ServerApp::Create(
        *config, ServerDeps{&clock_, memory_.Share(), std::make_unique<ai::RunbookBrain>()});
    ASSERT_TRUE(app.has_value()) << app.error().ToString();
    app_ = std::move(*app);
    admin_ = std::string(Trim(ReadFile(dir_.File("data/admin.token")).value()));
    web1_ = test::EnrollHost(
        [this](const std::string& method, const std::string& path, const std::string& token,
               const std::string& body) {
          const ApiResponse r = Call(method, path, token.empty() ? "" : "Bearer " + token, body);
          return std::make_pair(r.status, r.body);
        },
        admin_, "web-1");
    protocol::RegisterRequest reg;
    reg.name = "web-1";
    ASSERT_EQ(Call("POST", "/agent/v1/register", "Bearer " + web1_,
                   DumpJson(protocol::ToJson(reg)))
                  .status,
              200);
    ingest_ = CreateToken("alertmanager", "ingest");
    viewer_ = CreateToken("vera", "viewer");
    operator_ = CreateToken("otto", "operator");
  }
  void TearDown() override { app_.reset(); }

  ApiResponse Call(const std::string& method, const std::string& path,
                   const std::string& authorization, const std::string& body = "{}",
                   std::map<std::string, std::string> query = {}) {
    ApiRequest req;
    req.method = method;
    req.path = path;
    req.authorization = authorization;
    req.body = body;
    req.content_type = "application/json";
    req.query = std::move(query);
    if (path == "/agent/v1/commands") {
      req.query = {{"host", "web-1"}, {"wait_ms", "0"}};
    }
    return test::CallRoute(app_->router(), std::move(req));
  }
  std::string CreateToken(const std::string& name, const std::string& role) {
    const ApiResponse r = Call("POST", "/api/v1/tokens", "Bearer " + admin_,
                               DumpJson(Json{{"name", name}, {"role", role}}));
    EXPECT_EQ(r.status, 201) << r.body;
    return ParseJson(r.body).value().value("token", "");
  }
  ApiResponse Post(const Json& body, const std::string& authorization = "") {
    return Call("POST", "/api/v1/ingest/alertmanager",
                authorization.empty() ? "Basic " + Base64("alertmanager:" + ingest_)
                                      : authorization,
                DumpJson(body));
  }
  // The commands queued for web-1. The incident's status is written before its commands are
  // queued, so a poll right after may park and come back empty: poll until some come.
  std::vector<protocol::Command> Poll() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      const ApiResponse r = Call("GET", "/agent/v1/commands", "Bearer " + web1_);
      EXPECT_EQ(r.status, 200) << r.body;
      auto batch = protocol::CommandBatchFromJson(ParseJson(r.body).value_or(Json()));
      EXPECT_TRUE(batch.has_value()) << r.body;
      if (!batch || !batch->commands.empty() || std::chrono::steady_clock::now() > deadline) {
        return batch ? batch->commands : std::vector<protocol::Command>{};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  void PostResult(const protocol::Command& c) {
    protocol::CommandResult r;
    r.id = c.id;
    r.host = "web-1";
    r.ran = true;
    r.exit_code = 0;
    r.output = "done: " + c.action;
    ASSERT_EQ(Call("POST", "/agent/v1/results", "Bearer " + web1_, DumpJson(protocol::ToJson(r)))
                  .status,
              200);
  }
  std::vector<Incident> Incidents() { return view_->ListIncidents({}).value(); }
  // The only incident, once it has `status` (decisions run on the app's decision thread).
  Incident WaitFor(IncidentStatus status) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    Incident last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto list = Incidents();
      if (list.size() == 1) {
        last = list.front();
        if (last.status == status) {
          return last;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ADD_FAILURE() << "no single incident reached " << StatusName(status) << "; last "
                  << StatusName(last.status) << ", incidents: " << Incidents().size();
    return last;
  }
  Json Alarm(const std::string& name, const std::string& host) {
    const ApiResponse r = Call("GET", "/api/v1/alarms", "Bearer " + viewer_);
    EXPECT_EQ(r.status, 200) << r.body;
    const Json body = ParseJson(r.body).value();
    for (const Json& a : body["alarms"]) {
      if (a.value("alarm_name", "") == name && a.value("host", "") == host) {
        return a;
      }
    }
    ADD_FAILURE() << "no alarm " << name << " on " << host << " in " << r.body;
    return Json::object();
  }

  test::TempDir dir_;
  ManualClock clock_;
  test::MemoryStore memory_;
  std::unique_ptr<test::MemoryStore> view_ = memory_.Share();
  std::unique_ptr<ServerApp> app_;
  std::string admin_, web1_, ingest_, viewer_, operator_;
};

Json AlertJson(const std::string& status, const std::string& alertname, const Json& labels,
               const std::string& starts, const std::string& ends, const std::string& fp) {
  Json l = labels;
  l["alertname"] = alertname;
  return Json{{"status", status},        {"labels", l},
              {"annotations", {{"summary", "web check failing"}}},
              {"startsAt", starts},      {"endsAt", ends},
              {"generatorURL", "http://127.0.0.1:9090/graph"},
              {"fingerprint", fp}};
}

Json Webhook(const std::string& status, Json alerts) {
  return Json{{"version", "4"},
              {"groupKey", "{}:{alertname=\"WebCheckFailing\"}"},
              {"truncatedAlerts", 0},
              {"status", status},
              {"receiver", "medic"},
              {"groupLabels", {{"alertname", "WebCheckFailing"}}},
              {"commonLabels", {{"alertname", "WebCheckFailing"}}},
              {"commonAnnotations", Json::object()},
              {"externalURL", "http://127.0.0.1:9093"},
              {"alerts", std::move(alerts)}};
}

constexpr char kZero[] = "0001-01-01T00:00:00Z";

TEST_F(IngestAppTest, AnIngestTokenMayCallOnlyTheIngestRoutes) {
  struct Case {
    std::string method, path;
  };
  const std::vector<Case> refused = {
      {"GET", "/api/v1/incidents"},        {"POST", "/api/v1/incidents/inc-1/approve"},
      {"POST", "/api/v1/chaos"},           {"POST", "/api/v1/tokens"},
      {"GET", "/api/v1/alarms"},           {"GET", "/api/v1/ingest/unmatched"},
      {"PUT", "/api/v1/settings"},         {"GET", "/api/v1/hosts"},
      {"POST", "/agent/v1/report"},        {"GET", "/metrics"},
  };
  for (const auto& auth : {"Bearer " + ingest_, "Basic " + Base64("am:" + ingest_)}) {
    for (const auto& c : refused) {
      SCOPED_TRACE(auth.substr(0, 6) + c.method + " " + c.path);
      EXPECT_EQ(Call(c.method, c.path, auth).status, 403);
    }
  }
  // Every route of the table but the alertmanager one refuses it: none is left out above.
  for (const Route& r : app_->router().routes()) {
    if (r.role == Role::kPublic || r.pattern == "/api/v1/ingest/alertmanager") {
      continue;
    }
    SCOPED_TRACE(r.method + " " + r.pattern);
    EXPECT_FALSE(Allows(Role::kIngest, r.role));
  }
  // A dashboard session cannot be had with it.
  EXPECT_EQ(Call("POST", "/api/v1/session", "", DumpJson(Json{{"token", ingest_}})).status, 403);
}

TEST_F(IngestAppTest, OnlyIngestCredentialsMayPostAlerts) {
  const Json body = Webhook("firing", Json::array());
  struct Case {
    std::string name, authorization;
    int want;
  };
  const std::vector<Case> cases = {
      {"bearer ingest token", "Bearer " + ingest_, 200},
      {"basic auth, any user name", "Basic " + Base64("whoever:" + ingest_), 200},
      {"basic auth, empty user name", "Basic " + Base64(":" + ingest_), 200},
      {"basic auth, wrong password", "Basic " + Base64("alertmanager:not-the-token"), 401},
      {"basic auth, an admin token as password", "Basic " + Base64("a:" + admin_), 401},
      {"basic auth, not base64", "Basic !!!!", 401},
      {"no credentials", "", 401},
      {"viewer", "Bearer " + viewer_, 403},
      {"operator", "Bearer " + operator_, 403},
      {"admin", "Bearer " + admin_, 403},
      {"a host's credential", "Bearer " + web1_, 403},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const ApiResponse r = Call("POST", "/api/v1/ingest/alertmanager", c.authorization,
                               DumpJson(body));
    EXPECT_EQ(r.status, c.want) << r.body;
  }
}

TEST_F(IngestAppTest, MalformedBodiesAre400NamingTheProblem) {
  const ApiResponse r = Call("POST", "/api/v1/ingest/alertmanager", "Bearer " + ingest_,
                             R"({"version":"4","alerts":[{"status":"pending"}]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("alerts[0].status must be firing or resolved"), std::string::npos)
      << r.body;
  EXPECT_EQ(Call("POST", "/api/v1/ingest/alertmanager", "Bearer " + ingest_, "{{").status, 400);
  EXPECT_TRUE(Incidents().empty());
}

// The alert opens an incident on web-1 under the mapped name; its runbook's fix runs; the alarm
// stays in ALARM (Alertmanager has not resolved it) until the resolve arrives, which verifies
// the fix. Repeats and a late, older resolve open nothing and change nothing.
TEST_F(IngestAppTest, AnAlertOpensAnIncidentWhoseFixTheResolveVerifies) {
  const Json firing = AlertJson("firing", "WebCheckFailing", {{"instance", "web-1:9101"}},
                                "2026-12-07T01:00:00Z", kZero, "fp-web-1");
  // Grouped with an alert for a host medic does not know and one it cannot map.
  const Json unknown = AlertJson("firing", "WebCheckFailing", {{"instance", "db-9:9101"}},
                                 "2026-12-07T01:00:00Z", kZero, "fp-db-9");
  const Json unmapped = AlertJson("firing", "Orphan", Json::object(), "2026-12-07T01:00:00Z",
                                  kZero, "fp-orphan");
  ApiResponse r = Post(Webhook("firing", Json::array({firing, unknown, unmapped})));
  ASSERT_EQ(r.status, 200) << r.body;
  Json answer = ParseJson(r.body).value();
  EXPECT_EQ(answer["results"],
            (Json{{"applied", 1}, {"unchanged", 0}, {"stale", 0}, {"unknown_host", 1},
                  {"unmapped", 1}}));
  EXPECT_EQ(answer["alerts"][0]["alarm_name"], "Prom-Web-Down");
  EXPECT_EQ(answer["alerts"][0]["host"], "web-1");

  const Incident opened = WaitFor(IncidentStatus::kDiagnosing);
  EXPECT_EQ(opened.alarm_name, "Prom-Web-Down");
  EXPECT_EQ(opened.instance_id, "web-1");
  Json alarm = Alarm("Prom-Web-Down", "web-1");
  EXPECT_EQ(alarm.value("state", ""), "ALARM");
  EXPECT_EQ(alarm.value("source", ""), "alertmanager");

  // Alertmanager repeats the group: the same incident, no other.
  r = Post(Webhook("firing", Json::array({firing})));
  EXPECT_EQ(ParseJson(r.body).value()["results"]["unchanged"], 1) << r.body;

  // The runbook's diagnostics, then its fix (approval mode off).
  std::vector<protocol::Command> diag = Poll();
  ASSERT_EQ(diag.size(), 2u);  // the runbook's, then what changed (docs/AUTONOMY.md)
  EXPECT_EQ(diag[0].action, "service.status");
  EXPECT_EQ(diag[1].action, "host.changes");
  PostResult(diag[0]);
  PostResult(diag[1]);
  WaitFor(IncidentStatus::kExecuting);
  std::vector<protocol::Command> fix = Poll();
  ASSERT_EQ(fix.size(), 1u);
  EXPECT_EQ(fix[0].action, "service.restart");
  PostResult(fix[0]);
  // Still in ALARM by Alertmanager's word: the incident waits for the alarm.
  clock_.Advance(Millis(1000));
  app_->RunOnce();
  Incident waiting = WaitFor(IncidentStatus::kExecuting);
  EXPECT_EQ(waiting.timeline.back().event, "verifying");

  // A resolve older than the firing (out of order): stale, nothing changes.
  const Json old_resolve = AlertJson("resolved", "WebCheckFailing", {{"instance", "web-1:9101"}},
                                     "2026-12-07T00:50:00Z", "2026-12-07T00:55:00Z", "fp-web-1");
  r = Post(Webhook("resolved", Json::array({old_resolve})));
  EXPECT_EQ(ParseJson(r.body).value()["results"]["stale"], 1) << r.body;
  EXPECT_EQ(Alarm("Prom-Web-Down", "web-1").value("state", ""), "ALARM");
  EXPECT_EQ(WaitFor(IncidentStatus::kExecuting).incident_id, opened.incident_id);

  // The resolve: the alarm is OK by Alertmanager, and that verifies the fix.
  const Json resolved = AlertJson("resolved", "WebCheckFailing", {{"instance", "web-1:9101"}},
                                  "2026-12-07T01:00:00Z", "2026-12-07T01:02:00Z", "fp-web-1");
  r = Post(Webhook("resolved", Json::array({resolved})));
  EXPECT_EQ(ParseJson(r.body).value()["results"]["applied"], 1) << r.body;
  const Incident done = WaitFor(IncidentStatus::kCompleted);
  EXPECT_EQ(done.incident_id, opened.incident_id);
  bool verified = false;
  for (const auto& e : done.timeline) {
    verified = verified || (e.event == "verified" &&
                            e.detail.find("Alertmanager") != std::string::npos);
  }
  EXPECT_TRUE(verified) << "no verified entry naming Alertmanager";
  alarm = Alarm("Prom-Web-Down", "web-1");
  EXPECT_EQ(alarm.value("state", ""), "OK");
  EXPECT_EQ(alarm.value("source", ""), "alertmanager");
  // The listing filters external alarms by name as it does rules.
  const ApiResponse by_name =
      Call("GET", "/api/v1/alarms", "Bearer " + viewer_, "{}", {{"alarm", "Prom-Web-Down"}});
  EXPECT_EQ(by_name.status, 200) << by_name.body;
  EXPECT_EQ(ParseJson(by_name.body).value()["alarms"].size(), 1u) << by_name.body;
  // The old firing, delivered late after the resolve: stale, no new incident.
  r = Post(Webhook("firing", Json::array({firing})));
  EXPECT_EQ(ParseJson(r.body).value()["results"]["stale"], 1) << r.body;
  EXPECT_EQ(Incidents().size(), 1u);

  // What could not be matched is visible to a viewer, newest first.
  const ApiResponse record = Call("GET", "/api/v1/ingest/unmatched", "Bearer " + viewer_);
  ASSERT_EQ(record.status, 200);
  const Json unmatched = ParseJson(record.body).value()["unmatched"];
  ASSERT_EQ(unmatched.size(), 2u) << record.body;
  EXPECT_EQ(unmatched[0]["result"], "unmapped");
  EXPECT_EQ(unmatched[0]["summary"], "alertname=Orphan");
  EXPECT_EQ(unmatched[1]["result"], "unknown_host");
  EXPECT_EQ(unmatched[1]["host"], "db-9");
  EXPECT_EQ(unmatched[1]["alarm_name"], "Prom-Web-Down");

  const ApiResponse metrics = Call("GET", "/metrics", "Bearer " + viewer_);
  for (const char* line :
       {"medic_ingest_alerts_total{source=\"alertmanager\",result=\"applied\"} 2\n",
        "medic_ingest_alerts_total{source=\"alertmanager\",result=\"unchanged\"} 1\n",
        "medic_ingest_alerts_total{source=\"alertmanager\",result=\"stale\"} 2\n",
        "medic_ingest_alerts_total{source=\"alertmanager\",result=\"unknown_host\"} 1\n",
        "medic_ingest_alerts_total{source=\"alertmanager\",result=\"unmapped\"} 1\n"}) {
    EXPECT_NE(metrics.body.find(line), std::string::npos) << line << metrics.body;
  }
}

// The resolve arrives while the fix is still running (before its result): the verification
// step reads the alarm's state when the result comes, and the external OK counts as recovery.
TEST_F(IngestAppTest, AResolveBeforeTheFixsResultStillVerifiesIt) {
  const Json firing = AlertJson("firing", "WebCheckFailing", {{"host", "web-1"}},
                                "2026-12-07T01:00:00Z", kZero, "fp-1");
  ASSERT_EQ(Post(Webhook("firing", Json::array({firing}))).status, 200);
  const Incident opened = WaitFor(IncidentStatus::kDiagnosing);
  std::vector<protocol::Command> diag = Poll();
  ASSERT_EQ(diag.size(), 2u);  // the runbook's, then what changed
  PostResult(diag[0]);
  PostResult(diag[1]);
  WaitFor(IncidentStatus::kExecuting);
  std::vector<protocol::Command> fix = Poll();
  ASSERT_EQ(fix.size(), 1u);
  const Json resolved = AlertJson("resolved", "WebCheckFailing", {{"host", "web-1"}},
                                  "2026-12-07T01:00:00Z", "2026-12-07T01:00:30Z", "fp-1");
  ASSERT_EQ(Post(Webhook("resolved", Json::array({resolved}))).status, 200);
  EXPECT_EQ(WaitFor(IncidentStatus::kExecuting).incident_id, opened.incident_id);
  PostResult(fix[0]);
  const Incident done = WaitFor(IncidentStatus::kCompleted);
  EXPECT_EQ(done.incident_id, opened.incident_id);
}

// docs/integrations/ingest.md quotes exactly the configs the acceptance test runs
// (tests/fixtures/ingest/), and the server's parses.
TEST(IngestDocTest, ThePageQuotesTheTestedConfigsAndTheServerConfigLoads) {
  const char* src = std::getenv("MEDIC_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  const std::string root = src;
  auto doc = ReadFile(root + "/docs/integrations/ingest.md");
  ASSERT_TRUE(doc.has_value());
  for (const char* name :
       {"medic-server.yaml", "prometheus.yml", "medic-rules.yml", "alertmanager.yml"}) {
    SCOPED_TRACE(name);
    auto fixture = ReadFile(root + "/tests/fixtures/ingest/" + name);
    ASSERT_TRUE(fixture.has_value());
    EXPECT_NE(doc->find("```yaml\n" + *fixture + "```"), std::string::npos);
  }
  auto config = LoadServerConfig(root + "/tests/fixtures/ingest/medic-server.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().ToString();
  ASSERT_EQ(config->ingest.alertmanager.rules.size(), 1u);
  EXPECT_EQ(config->ingest.alertmanager.rules[0].alarm, "Prom-Web-Down");
  EXPECT_EQ(config->ingest.alertmanager.rules[0].host_label, "host");
  bool runbook = false;
  for (const auto& rb : config->runbooks) {
    runbook = runbook || rb.alarm == "Prom-Web-Down";
  }
  EXPECT_TRUE(runbook);
}

}  // namespace
}  // namespace medic::server
