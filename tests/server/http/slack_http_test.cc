// Slack approvals through the real server on loopback (issue 14, "Slack approvals"): a fake
// Slack that signs interaction callbacks as Slack does (a form-encoded block_actions payload,
// X-Slack-Request-Timestamp, X-Slack-Signature) presses the Approve and Reject buttons of an
// incident waiting for approval. The config is the example of docs/integrations/slack.md
// (tests/fixtures/slack/server.yaml).

#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <string>
#include <thread>

#include "core/files.h"
#include "core/sha256.h"
#include "protocol/wire.h"
#include "server/app/server_app.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/server/server_fixture.h"
#include "transport/http_client.h"

namespace medic::server {
namespace {

std::string FixturePath(const std::string& name) {
  const char* src = std::getenv("MEDIC_SOURCE_DIR");
  return std::string(src != nullptr ? src : ".") + "/tests/fixtures/slack/" + name;
}

// Slack's side: the interaction callback of a button press, form-encoded and signed with the
// app's signing secret (HMAC-SHA256 of "v0:TIMESTAMP:BODY", hex, "v0=" in front).
class FakeSlack {
 public:
  FakeSlack(std::string secret, std::string url) : secret_(std::move(secret)), url_(std::move(url)) {}

  struct Callback {
    std::string body;
    std::string timestamp;
    std::string signature;
    std::string content_type = "application/x-www-form-urlencoded";
  };

  // A press of `action_id` on the message of `incident_id` by `user`, at `at` (Unix seconds).
  Callback Press(const std::string& user, const std::string& action_id,
                 const std::string& incident_id, int64_t at) const {
    const Json payload{
        {"type", "block_actions"},
        {"user", {{"id", user}, {"username", "someone"}, {"name", "someone"}, {"team_id", "T0001"}}},
        {"api_app_id", "A0001"},
        {"token", "deprecated-verification-token"},
        {"container", {{"type", "message"}, {"message_ts", "1800000000.000100"},
                       {"channel_id", "C0001"}, {"is_ephemeral", false}}},
        {"trigger_id", "1.2.3"},
        {"team", {{"id", "T0001"}, {"domain", "acme"}}},
        {"channel", {{"id", "C0001"}, {"name", "ops"}}},
        {"response_url", "https://hooks.slack.com/actions/T0001/1/xyz"},
        {"actions", {{{"action_id", action_id},
                      {"block_id", "medic_incident"},
                      {"text", {{"type", "plain_text"}, {"text", "Approve"}}},
                      {"value", incident_id},
                      {"type", "button"},
                      {"action_ts", std::to_string(at) + ".5"}}}}};
    Callback c;
    c.body = "payload=" + FormEscape(DumpJson(payload));
    c.timestamp = std::to_string(at);
    c.signature = "v0=" + HmacSha256Hex(secret_, "v0:" + c.timestamp + ":" + c.body);
    return c;
  }

  HttpResponse Send(const Callback& c) const {
    HttpRequest req;
    req.method = "POST";
    req.url = url_;
    req.headers = {{"Content-Type", c.content_type},
                   {"User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)"},
                   {"X-Slack-Request-Timestamp", c.timestamp},
                   {"X-Slack-Signature", c.signature}};
    req.body = c.body;
    auto r = client_->Do(req);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().ToString());
    return r.value_or(HttpResponse{});
  }

 private:
  // application/x-www-form-urlencoded as browsers and Slack write it: space as '+'.
  static std::string FormEscape(const std::string& s) {
    std::string out;
    for (const unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '*') {
        out.push_back(static_cast<char>(c));
      } else if (c == ' ') {
        out.push_back('+');
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        out += buf;
      }
    }
    return out;
  }

  std::string secret_;
  std::string url_;
  std::unique_ptr<HttpClient> client_ = NewCurlHttpClient();
};

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

class SlackHttpTest : public test::ServerFixture {
 protected:
  void Configure(ServerConfig& config) override {
    auto example = LoadServerConfig(FixturePath("server.yaml"));
    ASSERT_TRUE(example.has_value()) << example.error().ToString();
    config.slack = example->slack;
  }
  void SetUp() override {
    StartServer();
    slack_ = std::make_unique<FakeSlack>(
        std::string(Trim(ReadFile(FixturePath("slack-signing-secret")).value())),
        base_ + "/api/v1/ingest/slack");
    for (const auto& [name, role] : {std::pair{"alice", "operator"}, std::pair{"vera", "viewer"},
                                     std::pair{"oscar", "operator"}}) {
      ASSERT_EQ(Call("POST", "/api/v1/tokens", admin_, DumpJson(Json{{"name", name}, {"role", role}}))
                    .status,
                201);
    }
    ASSERT_EQ(Call("DELETE", "/api/v1/tokens/oscar", admin_).status, 200);
    id_ = PendingIncident();
  }
  Json JsonOf(const HttpResponse& r) {
    auto j = ParseJson(r.body);
    EXPECT_TRUE(j.has_value()) << r.body;
    return j.value_or(Json());
  }
  std::vector<protocol::Command> PollCommands(int wait_ms) {
    HttpResponse r = Call("GET", "/agent/v1/commands?host=web-1&wait_ms=" + std::to_string(wait_ms),
                          agent_);
    EXPECT_EQ(r.status, 200);
    auto b = protocol::CommandBatchFromJson(JsonOf(r));
    EXPECT_TRUE(b.has_value());
    return b ? b->commands : std::vector<protocol::Command>{};
  }
  void Report(bool web_healthy) {
    protocol::Report rep;
    rep.host = "web-1";
    rep.samples.push_back({clock_.Now(), {{"disk_used_percent", 40}, {"mem_used_percent", 30}}});
    rep.checks.push_back({"web", web_healthy, web_healthy ? "HTTP 200" : "refused", clock_.Now()});
    EXPECT_EQ(Call("POST", "/agent/v1/report", agent_, DumpJson(protocol::ToJson(rep))).status,
              200);
  }
  // nginx goes down on web-1; the test answers the diagnostics as the agent; the runbook's fix
  // waits for approval. Returns the incident's id.
  std::string PendingIncident() {
    protocol::RegisterRequest reg;
    reg.name = "web-1";
    reg.services = {"nginx"};
    EXPECT_EQ(Call("POST", "/agent/v1/register", agent_, DumpJson(protocol::ToJson(reg))).status,
              200);
    Report(true);
    Report(false);
    const auto diag = PollCommands(2000);
    EXPECT_EQ(diag.size(), 3u);  // the runbook's two, then what changed (docs/AUTONOMY.md)
    for (const auto& c : diag) {
      const protocol::CommandResult r = test::OkResult(c.id, "diag " + c.action);
      EXPECT_EQ(Call("POST", "/agent/v1/results", agent_, DumpJson(protocol::ToJson(r))).status,
                200);
    }
    for (int i = 0; i < 250; ++i) {  // the decision is taken off the request thread
      const Json list = JsonOf(Call("GET", "/api/v1/incidents?status=pending_approval", admin_));
      if (!list["incidents"].empty()) {
        return list["incidents"][0]["incident_id"];
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "no incident reached pending_approval";
    return "";
  }
  Json Incident() { return JsonOf(Call("GET", "/api/v1/incidents/" + id_, admin_)); }
  Json Audit() { return JsonOf(Call("GET", "/api/v1/audit?limit=1000", admin_))["audit"]; }
  int AuditCount(const std::string& action) {
    int n = 0;
    for (const Json& e : Audit()) {
      n += e["action"] == action ? 1 : 0;
    }
    return n;
  }
  // The incident still waits, nothing decided it, and no fix went to the host.
  void ExpectNothingRan() {
    const Json inc = Incident();
    EXPECT_EQ(inc["status"], "pending_approval");
    for (const Json& e : inc["timeline"]) {
      EXPECT_NE(e["event"], "approved");
      EXPECT_NE(e["event"], "rejected");
    }
    EXPECT_TRUE(PollCommands(300).empty());
    EXPECT_EQ(AuditCount("incident.approve"), 0);
    EXPECT_EQ(AuditCount("incident.reject"), 0);
  }
  static std::string TextOf(const Json& reply) { return reply.value("text", ""); }

  std::unique_ptr<FakeSlack> slack_;
  std::string id_;
};

TEST_F(SlackHttpTest, AMappedOperatorApprovesFromSlackAndTheFixRuns) {
  ASSERT_FALSE(id_.empty());
  const HttpResponse r = slack_->Send(slack_->Press("U0123ABC", "medic_approve", id_, Now()));
  ASSERT_EQ(r.status, 200) << r.body;
  const Json reply = JsonOf(r);
  EXPECT_EQ(reply["response_type"], "ephemeral");
  EXPECT_EQ(reply["replace_original"], false);
  EXPECT_NE(TextOf(reply).find("Approved by alice"), std::string::npos) << r.body;
  EXPECT_NE(TextOf(reply).find("service.restart service=nginx"), std::string::npos) << r.body;

  const Json inc = Incident();
  EXPECT_EQ(inc["status"], "executing");
  bool approved = false;
  for (const Json& e : inc["timeline"]) {
    if (e["event"] == "approved") {
      approved = true;
      EXPECT_EQ(e["actor"], "alice") << e.dump();
      EXPECT_NE(e.dump().find("via Slack (U0123ABC)"), std::string::npos) << e.dump();
    }
  }
  EXPECT_TRUE(approved) << inc.dump();
  // The approved fix went to the host.
  const auto fix = PollCommands(2000);
  ASSERT_EQ(fix.size(), 1u);
  EXPECT_EQ(fix[0].action, "service.restart");
  // The audit log has the decision, by the mapped identity, as the API's approval writes it.
  const Json audit = Audit();
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(audit[0]["action"], "incident.approve");
  EXPECT_EQ(audit[0]["actor"], "alice");
  const Json detail = ParseJson(audit[0]["detail"].get<std::string>()).value();
  EXPECT_EQ(detail["incident_id"], id_);
  EXPECT_EQ(detail["action_hash"], inc["action_hash"]);
  EXPECT_EQ(detail["comment"], "via Slack (U0123ABC)");
  EXPECT_EQ(JsonOf(Call("GET", "/api/v1/audit/verify", admin_))["ok"], true);
}

TEST_F(SlackHttpTest, AMappedOperatorRejectsFromSlack) {
  ASSERT_FALSE(id_.empty());
  const HttpResponse r = slack_->Send(slack_->Press("U0123ABC", "medic_reject", id_, Now()));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(TextOf(JsonOf(r)).find("Rejected by alice"), std::string::npos) << r.body;
  EXPECT_EQ(Incident()["status"], "rejected");
  EXPECT_TRUE(PollCommands(300).empty());
  EXPECT_EQ(Audit()[0]["action"], "incident.reject");
  EXPECT_EQ(Audit()[0]["actor"], "alice");
}

// Every refusal leaves the incident waiting with nothing sent to the host; then the same
// incident is approved by a good request, so the refusals were not for want of one.
TEST_F(SlackHttpTest, ForgedStaleReplayedAndUnentitledPressesAreRefusedAndNothingRuns) {
  ASSERT_FALSE(id_.empty());
  struct Case {
    std::string name;
    FakeSlack::Callback callback;
    int status;
    std::string says;  // in the error (non-200) or the ephemeral text (200)
  };
  const int64_t now = Now();
  FakeSlack forger("0123456789abcdef0123456789abcdef", base_ + "/api/v1/ingest/slack");
  auto tampered = slack_->Press("U0123ABC", "medic_approve", id_, now);
  tampered.body = slack_->Press("U0123ABC", "medic_approve", id_ + "x", now).body;
  auto unsigned_ = slack_->Press("U0123ABC", "medic_approve", id_, now);
  unsigned_.signature.clear();
  auto no_time = slack_->Press("U0123ABC", "medic_approve", id_, now);
  no_time.timestamp.clear();
  auto as_json = slack_->Press("U0123ABC", "medic_approve", id_, now + 1);
  as_json.content_type = "application/json";
  const std::vector<Case> cases = {
      {"wrong secret", forger.Press("U0123ABC", "medic_approve", id_, now), 401, "does not match"},
      {"tampered body", tampered, 401, "does not match"},
      {"no signature", unsigned_, 401, "X-Slack-Signature is missing"},
      {"no timestamp", no_time, 401, "X-Slack-Request-Timestamp is missing"},
      {"stale: 6 minutes old", slack_->Press("U0123ABC", "medic_approve", id_, now - 360), 401,
       "stale"},
      {"from the future", slack_->Press("U0123ABC", "medic_approve", id_, now + 360), 401,
       "stale"},
      {"not a form", as_json, 415, "x-www-form-urlencoded"},
      {"unmapped user", slack_->Press("U0NOBODY1", "medic_approve", id_, now), 200,
       "not mapped to a medic identity"},
      {"viewer", slack_->Press("U0VIEWER1", "medic_approve", id_, now), 200,
       "viewer 'vera' may not approve or reject (needs operator)"},
      {"revoked token", slack_->Press("U0REVOKED", "medic_approve", id_, now), 200,
       "'oscar' of Slack user U0REVOKED does not exist or was revoked"},
      {"viewer rejects", slack_->Press("U0VIEWER1", "medic_reject", id_, now), 200,
       "needs operator"},
      {"another button", slack_->Press("U0123ABC", "medic_escalate", id_, now), 200, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const HttpResponse r = slack_->Send(c.callback);
    EXPECT_EQ(r.status, c.status) << r.body;
    const Json j = JsonOf(r);
    ASSERT_TRUE(j.is_object()) << r.body;
    if (c.status == 200) {
      EXPECT_NE(TextOf(j).find(c.says), std::string::npos) << r.body;
      if (!c.says.empty()) {
        EXPECT_EQ(j["response_type"], "ephemeral");
      }
    } else {
      EXPECT_NE(j.value("error", "").find(c.says), std::string::npos) << r.body;
    }
    ExpectNothingRan();
  }
  // The refusals of Slack users are audited (the signed ones only), with who and why.
  EXPECT_EQ(AuditCount("slack.refused"), 4);

  // A replay of a request that was accepted once: refused before anything is looked at.
  const auto viewer = slack_->Press("U0VIEWER1", "medic_approve", id_, now + 2);
  ASSERT_EQ(slack_->Send(viewer).status, 200);
  EXPECT_EQ(AuditCount("slack.refused"), 5);
  const HttpResponse replay = slack_->Send(viewer);
  EXPECT_EQ(replay.status, 401) << replay.body;
  EXPECT_NE(JsonOf(replay).value("error", "").find("replay"), std::string::npos) << replay.body;
  EXPECT_EQ(AuditCount("slack.refused"), 5);
  ExpectNothingRan();

  // The same incident, a good press: approved, and its replay does nothing more.
  const auto good = slack_->Press("U0123ABC", "medic_approve", id_, Now());
  ASSERT_EQ(slack_->Send(good).status, 200);
  EXPECT_EQ(Incident()["status"], "executing");
  EXPECT_EQ(slack_->Send(good).status, 401);
  EXPECT_EQ(PollCommands(2000).size(), 1u);
  EXPECT_EQ(AuditCount("incident.approve"), 1);
}

TEST_F(SlackHttpTest, HostileBodiesGetAClear400AndAnOversizedOne413) {
  ASSERT_FALSE(id_.empty());
  const std::string secret(Trim(ReadFile(FixturePath("slack-signing-secret")).value()));
  auto signed_body = [&](std::string body) {
    FakeSlack::Callback c;
    c.body = std::move(body);
    c.timestamp = std::to_string(Now());
    c.signature = "v0=" + HmacSha256Hex(secret, "v0:" + c.timestamp + ":" + c.body);
    return c;
  };
  for (const auto& [body, want] :
       {std::pair{std::string("payload=%7B"), "not JSON"},
        std::pair{std::string("payload=%zz"), "percent-escape"},
        std::pair{std::string("nothing=1"), "no 'payload'"},
        std::pair{std::string("payload=%7B%22type%22%3A%22block_actions%22%7D"), "user.id"}}) {
    SCOPED_TRACE(body);
    const HttpResponse r = slack_->Send(signed_body(body));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(JsonOf(r).value("error", "").find(want), std::string::npos) << r.body;
  }
  const HttpResponse big = slack_->Send(signed_body("payload=" + std::string(70 * 1024, 'a')));
  EXPECT_EQ(big.status, 413) << big.body;
  ExpectNothingRan();
}

// Without a slack: section the route exists but serves nothing.
class SlackOffHttpTest : public test::ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
};

TEST_F(SlackOffHttpTest, WithoutASigningSecretTheRouteAnswers404) {
  FakeSlack slack("8f742231b10e8888abcd99yyyzzz85a5", base_ + "/api/v1/ingest/slack");
  const HttpResponse r = slack.Send(slack.Press("U0123ABC", "medic_approve", "inc-1", Now()));
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_NE(r.body.find("not configured"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace medic::server
