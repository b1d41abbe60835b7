// Issue 14, notifications out: the real medic-server, a fake agent with a full disk, and three
// loopback receivers speaking each format (a generic webhook that verifies the HMAC, a Slack
// incoming webhook, PagerDuty Events API v2). The incident runs opened -> approval_needed ->
// completed; the server is SIGKILLed twice while every receiver is down (so notifications are
// pending in the outbox) and restarted on the same data directory. At the end each receiver has
// exactly one delivery per event (by idempotency key and in total), every webhook signature
// verified, and PagerDuty saw trigger, trigger, resolve with dedup_key = the incident id.
// The configuration is the example of docs/integrations/notifications.md.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include "core/files.h"
#include "core/json.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/temp_dir.h"
#include "tests/integration/crash_harness.h"
#include "tests/server/enroll_host.h"
#include "transport/http_client.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using namespace crash_test;

constexpr char kHost[] = "notify-1";
constexpr char kSecret[] = "webhook-hmac-secret-for-the-test";
constexpr char kRoutingKey[] = "R0UTINGKEY0000000000000000000000";

std::string OpenSslHmacHex(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &n);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) {
    hex += kHex[out[i] >> 4];
    hex += kHex[out[i] & 15];
  }
  return hex;
}

// The YAML block of the doc's "Example configuration".
std::string DocExample() {
  const char* src = std::getenv("MEDIC_SOURCE_DIR");
  const std::string path =
      std::string(src != nullptr ? src : ".") + "/docs/integrations/notifications.md";
  const std::string doc = ReadFile(path).value_or("");
  const size_t marker = doc.find("<!-- notifications-example");
  const size_t start = doc.find("```yaml\n", marker);
  const size_t end = doc.find("```", start + 8);
  if (marker == std::string::npos || start == std::string::npos || end == std::string::npos) {
    return "";
  }
  return doc.substr(start + 8, end - start - 8);
}

// One receiver: while `down`, answers 503 and counts a refusal; else accepts (2xx) and keeps
// the request. Thread-safe.
class Receiver {
 public:
  using Check = std::function<std::string(const test::RecordedRequest&)>;  // "" when fine
  Receiver(int status, std::string body, Check check = nullptr)
      : check_(std::move(check)),
        server_([this, status, body](const test::RecordedRequest& r) {
          std::lock_guard<std::mutex> lock(mu_);
          if (down_) {
            refused_.push_back(r);
            return test::CannedReply{503, R"({"error":"down"})"};
          }
          if (check_) {
            if (std::string why = check_(r); !why.empty()) {
              problems_.push_back(why);
              return test::CannedReply{401, R"({"error":"bad signature"})"};
            }
          }
          accepted_.push_back(r);
          std::string reply = body;
          if (auto j = ParseJson(r.body); j && j->is_object() && j->contains("dedup_key")) {
            reply = DumpJson(Json{{"status", "success"},
                                  {"message", "Event processed"},
                                  {"dedup_key", (*j)["dedup_key"]}});
          }
          return test::CannedReply{status, reply};
        }) {}

  std::string url(const std::string& path) const { return server_.url(path); }
  void SetDown(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }
  std::vector<test::RecordedRequest> accepted() const {
    std::lock_guard<std::mutex> lock(mu_);
    return accepted_;
  }
  std::vector<std::string> problems() const {
    std::lock_guard<std::mutex> lock(mu_);
    return problems_;
  }
  // Refused requests for `event` (by the Idempotency-Key's event part).
  int RefusedFor(const std::string& event) const {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& r : refused_) {
      n += r.Header("Idempotency-Key").find(":" + event + ":") != std::string::npos;
    }
    return n;
  }
  int AcceptedFor(const std::string& event) const {
    int n = 0;
    for (const auto& r : accepted()) {
      n += r.Header("Idempotency-Key").find(":" + event + ":") != std::string::npos;
    }
    return n;
  }

 private:
  const Check check_;
  mutable std::mutex mu_;
  bool down_ = false;                             // Guarded by mu_.
  std::vector<test::RecordedRequest> accepted_;   // Guarded by mu_.
  std::vector<test::RecordedRequest> refused_;    // Guarded by mu_.
  std::vector<std::string> problems_;             // Guarded by mu_.
  test::FakeHttpServer server_;  // last: stopped first, while the rest still lives
};

class NotifyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    InitHttpClientLibrary();
    setenv("MEDIC_AI_PROVIDER", "none", 1);
  }

  // Starts a run of the server and points the agent at it.
  std::unique_ptr<ServerProcess> StartServer(int run) {
    auto server = std::make_unique<ServerProcess>(
        data_, config_, dir_.File("server" + std::to_string(run) + ".stderr"));
    url_ = server->Start();
    EXPECT_FALSE(url_.empty()) << "medic-server did not start: " << server->StderrTail();
    endpoint_.Set(url_, run);
    return server;
  }

  Json Incident(const std::string& id) {
    auto r = Call(*client_, "GET", url_ + "/api/v1/incidents/" + id, admin_);
    if (!Is2xx(r)) {
      return Json();
    }
    return ParseJson(r->body).value_or(Json());
  }

  test::TempDir dir_;
  std::string data_, config_, url_, admin_;
  Endpoint endpoint_;
  std::unique_ptr<HttpClient> client_ = NewCurlHttpClient();
};

// Webhook deliveries must carry a valid, fresh signature over the body as received.
std::string CheckWebhook(const test::RecordedRequest& r) {
  const std::string ts = r.Header("X-Medic-Timestamp");
  const std::string sig = r.Header("X-Medic-Signature");
  if (sig != "sha256=" + OpenSslHmacHex(kSecret, ts + "." + r.body)) {
    return "signature does not verify: " + sig;
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  if (ts.empty() || std::llabs(now - std::stoll(ts)) > 300) {
    return "stale timestamp " + ts;
  }
  auto j = ParseJson(r.body);
  if (!j || (*j)["idempotency_key"] != r.Header("Idempotency-Key") ||
      (*j)["event"] != r.Header("X-Medic-Event")) {
    return "body and headers disagree: " + r.body;
  }
  return "";
}

TEST_F(NotifyTest, EachReceiverGetsEveryEventExactlyOnceAcrossSigkills) {
  Receiver webhook(200, R"({"ok":true})", CheckWebhook);
  Receiver slack(200, "ok");
  Receiver pagerduty(202, "");

  // The doc's example, pointed at the receivers, with short retries.
  const std::string example = DocExample();
  ASSERT_FALSE(example.empty()) << "no example block in docs/integrations/notifications.md";
  YAML::Node root = YAML::Load(example);
  YAML::Node n = root["notifications"];
  ASSERT_TRUE(n && n["webhook"] && n["slack"] && n["pagerduty"]) << example;
  ASSERT_TRUE(WriteFileAtomic(dir_.File("webhook.secret"), std::string(kSecret) + "\n").has_value());
  ASSERT_TRUE(WriteFileAtomic(dir_.File("slack.url"), slack.url("/services/T0/B0/x") + "\n")
                  .has_value());
  ASSERT_TRUE(WriteFileAtomic(dir_.File("pd.key"), std::string(kRoutingKey)).has_value());
  n["webhook"]["url"] = webhook.url("/medic");
  n["webhook"]["secret_file"] = dir_.File("webhook.secret");
  n["slack"]["url_file"] = dir_.File("slack.url");
  n["pagerduty"]["routing_key_file"] = dir_.File("pd.key");
  n["pagerduty"]["url"] = pagerduty.url("/v2/enqueue");
  n["retry"]["initial"] = "200ms";
  n["retry"]["max_delay"] = "1s";
  root["approval_mode"] = true;
  YAML::Emitter out;
  out << root;
  data_ = dir_.File("data");
  config_ = dir_.File("server.yaml");
  ASSERT_TRUE(WriteFileAtomic(config_, std::string(out.c_str()) + "\n").has_value());
  const std::string dashboard = n["dashboard_url"].as<std::string>();

  // Every receiver is down while the incident opens and waits for approval.
  for (Receiver* r : {&webhook, &slack, &pagerduty}) {
    r->SetDown(true);
  }
  auto server = StartServer(1);
  ASSERT_FALSE(url_.empty());
  admin_ = std::string(Trim(ReadFile(data_ + "/admin.token").value_or("")));
  const test::CallFn call = [&](const std::string& method, const std::string& path,
                                const std::string& token, const std::string& body) {
    auto r = Call(*client_, method, url_ + path, token, body);
    return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
  };
  const std::string credential = test::EnrollHost(call, admin_, kHost);
  ASSERT_FALSE(credential.empty());
  std::vector<std::unique_ptr<FakeAgent>> agents;
  agents.push_back(std::make_unique<FakeAgent>(kHost, endpoint_, credential));
  StopAgents stop_agents{agents};
  agents[0]->Start();

  std::string id;
  ASSERT_TRUE(Eventually(30s, [&] {
    auto list = TryListIncidents(*client_, url_, admin_, "pending_approval");
    if (list && !list->empty()) {
      id = (*list)[0]["incident_id"];
    }
    return !id.empty();
  })) << "no incident reached pending_approval: " << server->StderrTail();
  ASSERT_TRUE(Eventually(20s, [&] {
    return webhook.RefusedFor("approval_needed") > 0 && slack.RefusedFor("approval_needed") > 0 &&
           pagerduty.RefusedFor("approval_needed") > 0;
  })) << "the server did not try to notify approval_needed";
  for (Receiver* r : {&webhook, &slack, &pagerduty}) {
    EXPECT_TRUE(r->accepted().empty());
  }

  // SIGKILL with both events pending, then the receivers come back and the server restarts.
  kill(server->pid(), SIGKILL);
  ASSERT_TRUE(server->WaitKilled());
  endpoint_.Set("", 0);
  for (Receiver* r : {&webhook, &slack, &pagerduty}) {
    r->SetDown(false);
  }
  server = StartServer(2);
  ASSERT_FALSE(url_.empty());
  ASSERT_TRUE(Eventually(20s, [&] {
    for (Receiver* r : {&webhook, &slack, &pagerduty}) {
      if (r->AcceptedFor("incident_opened") < 1 || r->AcceptedFor("approval_needed") < 1) {
        return false;
      }
    }
    return true;
  })) << "the pending notifications were not delivered after the restart: "
      << server->StderrTail();

  // Down again; the operator approves, the fix runs and verifies; SIGKILL with `completed`
  // pending.
  for (Receiver* r : {&webhook, &slack, &pagerduty}) {
    r->SetDown(true);
  }
  const Json pending = Incident(id);
  ASSERT_EQ(pending.value("status", ""), "pending_approval") << pending.dump();
  auto approved = Call(*client_, "POST", url_ + "/api/v1/incidents/" + id + "/approve", admin_,
                       DumpJson(Json{{"action_hash", pending.value("action_hash", "")},
                                     {"comment", "notify test"}}));
  ASSERT_TRUE(Is2xx(approved)) << (approved ? approved->body : approved.error().ToString());
  ASSERT_TRUE(Eventually(30s, [&] { return Incident(id).value("status", "") == "completed"; }))
      << Incident(id).dump() << server->StderrTail();
  ASSERT_TRUE(Eventually(20s, [&] {
    return webhook.RefusedFor("incident_completed") > 0 &&
           slack.RefusedFor("incident_completed") > 0 &&
           pagerduty.RefusedFor("incident_completed") > 0;
  })) << "the server did not try to notify incident_completed";
  kill(server->pid(), SIGKILL);
  ASSERT_TRUE(server->WaitKilled());
  endpoint_.Set("", 0);
  for (Receiver* r : {&webhook, &slack, &pagerduty}) {
    r->SetDown(false);
  }
  server = StartServer(3);
  ASSERT_FALSE(url_.empty());
  ASSERT_TRUE(Eventually(20s, [&] {
    for (Receiver* r : {&webhook, &slack, &pagerduty}) {
      if (r->AcceptedFor("incident_completed") < 1) {
        return false;
      }
    }
    return true;
  })) << "incident_completed was not delivered after the restart: " << server->StderrTail();
  // Longer than the largest retry delay (1 s): a repeat would have come by now.
  std::this_thread::sleep_for(2500ms);

  const std::vector<std::string> kEvents = {"incident_opened", "approval_needed",
                                            "incident_completed"};
  for (auto [name, r] : {std::pair<std::string, Receiver*>{"webhook", &webhook},
                         {"slack", &slack},
                         {"pagerduty", &pagerduty}}) {
    SCOPED_TRACE(name);
    const auto got = r->accepted();
    std::map<std::string, int> by_key;
    for (const auto& req : got) {
      by_key[req.Header("Idempotency-Key")]++;
    }
    EXPECT_EQ(got.size(), kEvents.size());
    EXPECT_EQ(by_key.size(), kEvents.size());
    for (const auto& [key, count] : by_key) {
      EXPECT_EQ(count, 1) << key;
      EXPECT_EQ(key.rfind(id + ":", 0), 0u) << key;
      EXPECT_NE(key.find(":" + name), std::string::npos) << key;
    }
    for (const std::string& e : kEvents) {
      EXPECT_EQ(r->AcceptedFor(e), 1) << e;
    }
    EXPECT_TRUE(r->problems().empty()) << r->problems().front();
  }

  // The webhook: every body names the incident and links to it.
  for (const auto& req : webhook.accepted()) {
    auto j = ParseJson(req.body);
    ASSERT_TRUE(j.has_value());
    EXPECT_EQ((*j)["incident"]["incident_id"], id);
    EXPECT_EQ((*j)["incident"]["instance_id"], kHost);
    EXPECT_EQ((*j)["dashboard_url"], dashboard + "/#/incident/" + id);
  }
  // Slack: the approval message has the buttons for part C's callbacks.
  bool buttons = false;
  for (const auto& req : slack.accepted()) {
    auto j = ParseJson(req.body);
    ASSERT_TRUE(j.has_value()) << req.body;
    EXPECT_EQ(req.target, "/services/T0/B0/x");
    const std::string text = (*j)["blocks"][0]["text"]["text"];
    EXPECT_NE(text.find(kHost), std::string::npos) << text;
    EXPECT_NE(text.find("Disk-Critical-ASG"), std::string::npos) << text;
    if ((*j)["blocks"].size() == 2) {
      const Json& actions = (*j)["blocks"][1];
      buttons = actions["block_id"] == "medic_incident" &&
                actions["elements"][0]["action_id"] == "medic_approve" &&
                actions["elements"][0]["value"] == id &&
                actions["elements"][1]["action_id"] == "medic_reject" &&
                actions["elements"][1]["value"] == id;
      EXPECT_NE(req.Header("Idempotency-Key").find(":approval_needed:"), std::string::npos);
    }
  }
  EXPECT_TRUE(buttons) << "no Approve/Reject buttons on the approval message";
  // PagerDuty: trigger (opened), trigger (approval), resolve (completed), one dedup key.
  std::vector<std::string> actions;
  for (const auto& req : pagerduty.accepted()) {
    auto j = ParseJson(req.body);
    ASSERT_TRUE(j.has_value());
    EXPECT_EQ((*j)["routing_key"], kRoutingKey);
    EXPECT_EQ((*j)["dedup_key"], id);
    actions.push_back((*j)["event_action"]);
  }
  EXPECT_EQ(actions, (std::vector<std::string>{"trigger", "trigger", "resolve"}));

  // /metrics counts what was sent.
  auto metrics = Call(*client_, "GET", url_ + "/metrics", admin_);
  ASSERT_TRUE(Is2xx(metrics));
  EXPECT_NE(metrics->body.find("medic_notifications_total{channel=\"pagerduty\",result=\"sent\"} 1"),
            std::string::npos)
      << metrics->body;
  StopAgents::StopAll(agents);
  server->Terminate();
}

}  // namespace
}  // namespace medic
