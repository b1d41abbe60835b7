// Signed commands end to end (issue 11): the real medic-server and the real medic-agent, with a
// man in the middle on loopback that forwards every agent request and can tamper with the
// signatures of the commands the server sends. While it tampers, nothing runs on the host (the
// fix's service writes a canary file when it starts) and the agent's refusal reaches the
// incident: its timeline and its reason say the host refused the fix. Once it stops, the same
// setup does run the fix (approved; the canary appears): the test can tell a refusal from a fix
// that could not have run anyway.

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "core/files.h"
#include "core/json.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/subprocess.h"
#include "tests/fakes/temp_dir.h"
#include "transport/http_client.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

std::string Bin(const std::string& name) {
  const char* dir = std::getenv("MEDIC_BIN_DIR");
  return std::string(dir != nullptr ? dir : "build/bin") + "/" + name;
}

template <typename Fn>
bool Eventually(std::chrono::milliseconds limit, Fn fn) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) {
      return true;
    }
    std::this_thread::sleep_for(200ms);
  }
  return fn();
}

Result<HttpResponse> Call(const std::string& method, const std::string& url,
                          const std::string& token, const std::string& body = "") {
  auto client = NewCurlHttpClient();
  HttpRequest req;
  req.method = method;
  req.url = url;
  req.body = body;
  req.timeout = Millis(5'000);
  req.headers.emplace_back("Authorization", "Bearer " + token);
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
  }
  return client->Do(req);
}

// Forwards every request to the server; while `tamper` is set, changes one character of the
// signature of every command the server hands out.
class TamperingProxy {
 public:
  explicit TamperingProxy(std::string server) : server_(std::move(server)) {}

  test::CannedReply Forward(const test::RecordedRequest& in) {
    auto client = NewCurlHttpClient();
    HttpRequest out;
    out.method = in.method;
    out.url = server_ + in.target;
    out.body = in.body;
    out.timeout = Millis(60'000);  // the agent's long polls
    for (const char* name : {"Authorization", "Content-Type", "Accept"}) {
      if (const std::string v = in.Header(name); !v.empty()) {
        out.headers.emplace_back(name, v);
      }
    }
    auto r = client->Do(out);
    if (!r) {
      return {502, DumpJson(Json{{"error", r.error().message}})};
    }
    std::string body = r->body;
    if (tamper && in.target.rfind("/agent/v1/commands", 0) == 0 && r->status == 200) {
      Json batch = ParseJsonObject(body).value_or(Json::object());
      for (auto& c : batch["commands"]) {
        std::string sig = c.value("signature", "");
        if (!sig.empty()) {
          sig[sig.size() / 2] = sig[sig.size() / 2] == 'A' ? 'B' : 'A';
          c["signature"] = sig;
          ++tampered;
        }
      }
      body = DumpJson(batch);
    }
    return {r->status, body};
  }

  std::atomic<bool> tamper{true};
  std::atomic<int> tampered{0};

 private:
  const std::string server_;
};

class SignedCommandsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    InitHttpClientLibrary();
    setenv("MEDIC_AI_PROVIDER", "none", 1);  // the built-in runbooks decide
  }

  void TearDown() override {
    if (agent_) {
      agent_->SignalAndWait(SIGTERM, 10s);
    }
    if (server_) {
      server_->SignalAndWait(SIGTERM, 10s);
    }
  }

  // The incidents of web-1, newest first.
  Json Incidents() {
    auto r = Call("GET", url_ + "/api/v1/incidents?host=web-1", admin_);
    if (!r || r->status != 200) {
      return Json::array();
    }
    Json j = ParseJson(r->body).value_or(Json::object());
    return j.is_object() ? j.value("incidents", Json::array()) : j;
  }

  test::TempDir dir_;
  std::unique_ptr<test::Subprocess> server_;
  std::unique_ptr<test::Subprocess> agent_;
  std::string url_;
  std::string admin_;
};

TEST_F(SignedCommandsTest, ATamperedFixNeverRunsAndTheRefusalReachesTheIncident) {
  // Automatic mode: the fix is sent the moment the built-in runbook proposes it.
  const std::string config = dir_.File("server.yaml");
  ASSERT_TRUE(WriteFileAtomic(config,
                              "approval_mode: false\n"
                              "target_groups:\n"
                              "  web: {interval: 1s, timeout: 500ms, unhealthy_threshold: 1}\n")
                  .has_value());
  server_ = std::make_unique<test::Subprocess>(
      std::vector<std::string>{Bin("medic-server"), "--config", config, "--data-dir",
                               dir_.File("data"), "--listen", "127.0.0.1:0"},
      dir_.File("server.log"));
  const int port = test::WaitForReportedPort(server_->pid(), dir_.File("server.log"),
                                             test::kServerServingOn, 15s);
  ASSERT_GT(port, 0) << ReadFile(dir_.File("server.log")).value_or("");
  url_ = "http://127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(Eventually(15s, [&] {
    if (!test::ProcessAlive(server_->pid())) {
      return false;
    }
    admin_ = std::string(Trim(ReadFile(dir_.File("data/admin.token")).value_or("")));
    auto r = admin_.empty() ? Result<HttpResponse>(Unavailable("no token"))
                            : Call("GET", url_ + "/api/v1/settings", admin_);
    return r && r->status == 200;
  })) << ReadFile(dir_.File("server.log")).value_or("");

  TamperingProxy proxy(url_);
  test::FakeHttpServer front([&](const test::RecordedRequest& r) { return proxy.Forward(r); });
  auto code = Call("POST", url_ + "/api/v1/hosts/web-1/enroll", admin_);
  ASSERT_TRUE(code && code->status == 201) << (code ? code->body : code.error().message);
  const std::string enroll_code = ParseJsonObject(code->body).value()["code"];

  // web-1's nginx is a stand-in whose start writes the canary; nothing answers on its port, so
  // the web target group sees it down and Nginx-Down-ALB opens an incident.
  const std::string canary = dir_.File("canary");
  // Held, never listening, for the whole test: a connection to it is refused.
  const test::HeldPort dead_port;
  ASSERT_GT(dead_port.port(), 0);
  const std::string dead = "http://127.0.0.1:" + std::to_string(dead_port.port()) + "/health";
  ASSERT_TRUE(WriteFileAtomic(dir_.File("agent.yaml"),
                              "server: " + front.url() + "\n" +
                                  "name: web-1\n"
                                  "state_dir: " + dir_.File("state") + "\n" +
                                  "enroll_code: " + enroll_code + "\n" +
                                  "interval: 1s\n"
                                  "targets: [{group: web, url: \"" + dead + "\"}]\n" +
                                  "services:\n"
                                  "  nginx:\n"
                                  "    start: [sh, -c, \"echo run >> " + canary +
                                  "; exec sleep 1000\"]\n"
                                  "    autostart: false\n"
                                  "    log: " + dir_.File("nginx.log") + "\n" +
                                  "checks:\n"
                                  "  - {name: web, type: http, url: \"" + dead +
                                  "\", interval: 1s, timeout: 1s}\n")
                  .has_value());
  agent_ = std::make_unique<test::Subprocess>(
      std::vector<std::string>{Bin("medic-agent"), "--config", dir_.File("agent.yaml")},
      dir_.File("agent.log"));
  auto logs = [&] {
    return "server:\n" + ReadFileTail(dir_.File("server.log"), 3000).value_or("") +
           "\nagent:\n" + ReadFileTail(dir_.File("agent.log"), 3000).value_or("");
  };

  // The fix is refused by the host, and the incident says so.
  Json refused;
  ASSERT_TRUE(Eventually(90s, [&] {
    for (const auto& inc : Incidents()) {
      if (inc.value("reason", "").find("refused") != std::string::npos) {
        refused = inc;
        return true;
      }
    }
    return false;
  })) << Incidents().dump(1) << "\n" << logs();
  EXPECT_EQ(refused["alarm_name"], "Nginx-Down-ALB") << refused.dump(1);
  EXPECT_EQ(refused["reason"],
            "the host did not run the fix: refused: the command's signature is not the server's")
      << refused.dump(1);
  bool timeline_says_so = false;
  for (const auto& e : refused["timeline"]) {
    if (e.value("event", "") == "executed" &&
        e.value("detail", "").find("not run by web-1: refused: the command's signature") !=
            std::string::npos) {
      timeline_says_so = true;
    }
  }
  EXPECT_TRUE(timeline_says_so) << refused.dump(1);
  EXPECT_GT(proxy.tampered.load(), 0);
  EXPECT_FALSE(PathExists(canary)) << "a tampered fix ran";
  const std::string ledger = ReadFile(dir_.File("state/commands.log")).value_or("");
  EXPECT_NE(ledger.find("\"refused\""), std::string::npos) << ledger;
  EXPECT_EQ(ledger.find("\"start\""), std::string::npos) << "a tampered command started\n"
                                                         << ledger;

  // The alarm stays in ALARM, so the incident is judged again and again; after a few refused
  // fixes the restart-loop breaker sends the next one to an operator. Untampered, that fix,
  // approved, does run: the canary was a real witness.
  Json pending;
  ASSERT_TRUE(Eventually(60s, [&] {
    for (const auto& inc : Incidents()) {
      if (inc.value("status", "") == "pending_approval") {
        pending = inc;
        return true;
      }
    }
    return false;
  })) << Incidents().dump(1) << "\n" << logs();
  EXPECT_FALSE(PathExists(canary)) << "a tampered fix ran";
  proxy.tamper = false;
  auto approved = Call("POST",
                       url_ + "/api/v1/incidents/" + pending["incident_id"].get<std::string>() +
                           "/approve",
                       admin_,
                       DumpJson(Json{{"action_hash", pending["action_hash"]},
                                     {"comment", "untampered"}}));
  ASSERT_TRUE(approved && approved->status == 200)
      << (approved ? approved->body : approved.error().message);
  EXPECT_TRUE(Eventually(30s, [&] { return PathExists(canary); }))
      << Incidents().dump(1) << "\n" << logs();
  EXPECT_EQ(ReadFile(canary).value_or(""), "run\n");
}

}  // namespace
}  // namespace medic
