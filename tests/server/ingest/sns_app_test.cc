// Amazon SNS through a whole ServerApp (requests through its route table, the agent's side played
// through the agent routes) against a loopback SNS that signs as SNS does (tests/fakes/fake_sns.h):
// the subscription is confirmed, a CloudWatch ALARM for an instance id opens an incident on the
// host that instance maps to, its fix runs, and the CloudWatch OK closes the alarm and verifies the
// fix; a tampered delivery and one whose certificate is on another host are 403 and change
// nothing.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "ai/brain.h"
#include "core/files.h"
#include "protocol/wire.h"
#include "server/app/server_app.h"
#include "tests/server/call_route.h"
#include "tests/fakes/fake_sns.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/enroll_host.h"

namespace medic::server {
namespace {

constexpr char kTopic[] = "arn:aws:sns:eu-west-1:123456789012:medic-alarms";
constexpr char kInstance[] = "i-0abc1234def567890";

std::string Config(const std::string& ca_file) {
  return R"(approval_mode: false
alarms:
  Disk-Critical-ASG: {threshold: 100}
  Memory-Exhaustion-ASG: {threshold: 100}
runbooks:
  CW-Web-Errors:
    diagnostics:
      - {action: service.status, params: {service: nginx}}
    fix: {action: service.restart, params: {service: nginx}}
    reasoning: CloudWatch says the web tier answers errors; restart nginx
    verification_window: 60s
ingest:
  sns:
    topics: [")" + std::string(kTopic) + R"("]
    alarms: {web-1-5xx: CW-Web-Errors}
    instances: {)" + kInstance + R"(: web-1}
    cert_host_pattern: '^localhost$'
    ca_file: )" + ca_file + "\n";
}

class SnsAppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(sns_.ok()) << "the loopback SNS did not start";
    ASSERT_TRUE(WriteFileAtomic(dir_.File("server.yaml"), Config(sns_.ca_file()), 0600));
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
  }
  void TearDown() override { app_.reset(); }

  ApiResponse Call(const std::string& method, const std::string& path,
                   const std::string& authorization, const std::string& body = "{}") {
    ApiRequest req;
    req.method = method;
    req.target = req.path = path;
    req.authorization = authorization;
    req.body = body;
    req.content_type = "application/json";
    if (path == "/agent/v1/commands") {
      req.query = {{"host", "web-1"}, {"wait_ms", "0"}};
    }
    return test::CallRoute(app_->router(), std::move(req));
  }
  // What SNS posts: no credentials, the signed message as text/plain.
  ApiResponse Deliver(const Json& message) {
    ApiRequest req;
    req.method = "POST";
    req.target = req.path = "/api/v1/ingest/sns";
    req.content_type = "text/plain; charset=UTF-8";
    req.body = message.dump();
    return test::CallRoute(app_->router(), std::move(req));
  }
  Json Signed(Json message) {
    sns_.Sign(message, 2);
    return message;
  }
  Json Alarm(const std::string& state, const std::string& at) {
    Json m = test::CloudWatchAlarmMessage("web-1-5xx", state, kInstance);
    m["StateChangeTime"] = at;
    return Signed(sns_.Notification(kTopic, m.dump(), "ALARM: \"web-1-5xx\" in EU (Ireland)"));
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
  std::string AlarmState() {
    const ApiResponse r = Call("GET", "/api/v1/alarms", "Bearer " + admin_);
    EXPECT_EQ(r.status, 200) << r.body;
    const Json body = ParseJson(r.body).value();
    for (const Json& a : body["alarms"]) {
      if (a.value("alarm_name", "") == "CW-Web-Errors" && a.value("host", "") == "web-1") {
        EXPECT_EQ(a.value("source", ""), "sns");
        // The summary counts it too.
        EXPECT_EQ(body["counts"].value(a.value("state", ""), 0), 1) << r.body;
        return a.value("state", "");
      }
    }
    ADD_FAILURE() << "no CW-Web-Errors on web-1 in " << r.body;
    return "none";
  }
  static std::string Result(const ApiResponse& r) {
    auto j = ParseJson(r.body);
    return j ? j->value("result", j->value("error", "")) : r.body;
  }

  test::TempDir dir_;
  test::FakeSns sns_{dir_.path()};
  // The certificates are valid now: the app's clock starts at the real time.
  ManualClock clock_{SystemClock().Now()};
  test::MemoryStore memory_;
  std::unique_ptr<test::MemoryStore> view_ = memory_.Share();
  std::unique_ptr<ServerApp> app_;
  std::string admin_, web1_;
};

TEST_F(SnsAppTest, CloudWatchAlarmOpensAnIncidentOnTheMappedHostAndOkVerifiesTheFix) {
  // The subscription of the configured topic is confirmed (the SubscribeURL visited).
  ApiResponse r = Deliver(Signed(sns_.SubscriptionConfirmation(kTopic)));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Result(r), "confirmed");
  EXPECT_EQ(sns_.confirmations(), 1);

  // ALARM for the instance: an incident on web-1 under the mapped name.
  r = Deliver(Alarm("ALARM", "2026-12-07T01:00:02.612+0000"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Result(r), "applied");
  const Incident opened = WaitFor(IncidentStatus::kDiagnosing);
  EXPECT_EQ(opened.alarm_name, "CW-Web-Errors");
  EXPECT_EQ(opened.instance_id, "web-1");
  EXPECT_EQ(AlarmState(), "ALARM");
  // SNS delivers at least once: the same message again changes nothing.
  r = Deliver(Alarm("ALARM", "2026-12-07T01:00:02.612+0000"));
  EXPECT_EQ(Result(r), "unchanged") << r.body;

  // A tampered delivery (the state changed after signing) and one signed by a certificate on
  // another host: 403, the alarm stays as it is.
  Json tampered = Alarm("OK", "2026-12-07T01:03:00.000+0000");
  Json body = ParseJson(tampered["Message"].get<std::string>()).value();
  body["NewStateValue"] = "ALARM";
  tampered["Message"] = body.dump();
  EXPECT_EQ(Deliver(tampered).status, 403);
  Json foreign = test::CloudWatchAlarmMessage("web-1-5xx", "OK", kInstance);
  foreign["StateChangeTime"] = "2026-12-07T01:03:00.000+0000";
  Json elsewhere = sns_.Notification(kTopic, foreign.dump());
  sns_.Sign(elsewhere, 2,
            "https://127.0.0.1:" + std::to_string(sns_.port()) +
                "/SimpleNotificationService-test.pem");
  EXPECT_EQ(Deliver(elsewhere).status, 403);
  EXPECT_EQ(AlarmState(), "ALARM");

  // The runbook's diagnostics and fix (approval mode off).
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
  clock_.Advance(Millis(1000));
  app_->RunOnce();
  EXPECT_EQ(WaitFor(IncidentStatus::kExecuting).timeline.back().event, "verifying");

  // CloudWatch's OK closes the alarm and verifies the fix.
  r = Deliver(Alarm("OK", "2026-12-07T01:05:02.100+0000"));
  EXPECT_EQ(Result(r), "applied") << r.body;
  const Incident done = WaitFor(IncidentStatus::kCompleted);
  EXPECT_EQ(done.incident_id, opened.incident_id);
  EXPECT_EQ(AlarmState(), "OK");
  EXPECT_EQ(Incidents().size(), 1u);
}

}  // namespace
}  // namespace medic::server
