// The AI gate through the whole server (issue 12): a real ServerApp on loopback in automatic
// mode with Nginx-Down-ALB's `approval_required: false`, raised by the web target group's real
// health check; a fake model speaking OpenAI's chat/completions format; a fake agent that uses
// the real agent API (register, long-poll commands, post results) and records every command it
// is delivered, running none of them. A hostile answer must never reach the host: the incident
// runs the runbook's fix instead, and says why in its timeline and the audit log.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "core/files.h"
#include "protocol/wire.h"
#include "server/app/server_app.h"
#include "server/http/http_server.h"
#include "tests/ai/ai_test_util.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/enroll_host.h"
#include "transport/http_client.h"

namespace medic::server {
namespace {

using namespace std::chrono_literals;

template <typename F>
bool WaitFor(F done, std::chrono::milliseconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// A loopback target whose health check answers `status`.
class Target {
 public:
  Target() {
    server_ = std::make_unique<HttpServer>(
        [this](ApiRequest, Responder respond) {
          respond(JsonResponse(status.load(), Json::object()));
        },
        HttpServerOptions{});
    EXPECT_TRUE(server_->Listen("127.0.0.1", 0).has_value());
    server_->Start();
    url_ = "http://127.0.0.1:" + std::to_string(server_->port()) + "/";
  }
  ~Target() { server_->Stop(); }
  const std::string& url() const { return url_; }
  std::atomic<int> status{200};

 private:
  std::unique_ptr<HttpServer> server_;
  std::string url_;
};

class AiGateServerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    stop_ = true;
    if (agent_thread_.joinable()) {
      agent_thread_.join();
    }
    if (app_) {
      app_->Stop();
    }
  }

  // Starts the server with the config below plus `runbook_extra` (lines of Nginx-Down-ALB's
  // runbook) and `extra` (top-level YAML), enrols and registers web-1 and starts its fake agent.
  // Call with ASSERT_NO_FATAL_FAILURE.
  void Start(const std::string& runbook_extra = "", const std::string& extra = "") {
    ASSERT_TRUE(WriteFileAtomic(dir_.File("ai.key"), "sk-test-not-a-real-key\n").has_value());
    const std::string yaml =
        "approval_mode: false\n"
        "ai:\n"
        "  provider: openai\n"
        "  base_url: " + model_.url() + "/v1\n"
        "  model: gpt-test\n"
        "  api_key_file: " + dir_.File("ai.key") + "\n"
        "runbooks:\n"
        "  Nginx-Down-ALB:\n"
        "    approval_required: false\n" +
        runbook_extra + extra;
    ASSERT_TRUE(WriteFileAtomic(dir_.File("medic.yaml"), yaml).has_value());
    auto config = LoadServerConfig(dir_.File("medic.yaml"));
    ASSERT_TRUE(config.has_value()) << config.error().ToString();
    config->listen = "127.0.0.1:0";
    config->data_dir = dir_.File("data");
    config->agent_interval_ms = 200;
    TargetGroupConfig web;
    web.interval = Millis(200);
    web.timeout = Millis(150);
    config->target_groups = {web};
    auto deps = MakeRealServerDeps(*config, clock_);
    ASSERT_TRUE(deps.has_value()) << deps.error().ToString();
    auto app = ServerApp::Create(*config, std::move(*deps));
    ASSERT_TRUE(app.has_value()) << app.error().ToString();
    app_ = std::move(*app);
    ASSERT_TRUE(app_->Start().has_value());
    base_ = "http://127.0.0.1:" + std::to_string(app_->port());
    admin_ = std::string(Trim(ReadFile(dir_.File("data/admin.token")).value()));
    agent_ = test::EnrollHost(
        [this](const std::string& method, const std::string& path, const std::string& token,
               const std::string& body) {
          HttpResponse r = Call(method, path, token, body);
          return std::make_pair(r.status, r.body);
        },
        admin_, "web-1");
    ASSERT_FALSE(agent_.empty());
    protocol::RegisterRequest reg;
    reg.name = "web-1";
    reg.targets = {{"web", target_.url()}};
    ASSERT_EQ(Call("POST", "/agent/v1/register", agent_, DumpJson(protocol::ToJson(reg))).status,
              200);
    agent_thread_ = std::thread([this] { AgentLoop(); });
  }

  HttpResponse Call(const std::string& method, const std::string& path, const std::string& token,
                    const std::string& body = "") {
    HttpRequest req;
    req.method = method;
    req.url = base_ + path;
    if (!token.empty()) {
      req.headers.emplace_back("Authorization", "Bearer " + token);
    }
    req.body = body;
    auto r = client_->Do(req);
    return r.value_or(HttpResponse{});
  }

  // The fake agent: every command it is sent is recorded and answered as run, exit 0.
  void AgentLoop() {
    auto client = NewCurlHttpClient();
    while (!stop_) {
      HttpRequest req;
      req.url = base_ + "/agent/v1/commands?wait_ms=200";
      req.headers.emplace_back("Authorization", "Bearer " + agent_);
      auto r = client->Do(req);
      if (!r || r->status != 200) {
        std::this_thread::sleep_for(50ms);
        continue;
      }
      auto j = ParseJson(r->body);
      auto batch = j ? protocol::CommandBatchFromJson(*j)
                     : Result<protocol::CommandBatch>(j.error());
      if (!batch) {
        continue;
      }
      for (const protocol::Command& c : batch->commands) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          delivered_.push_back(c);
        }
        protocol::CommandResult res;
        res.id = c.id;
        res.host = "web-1";
        res.ran = true;
        res.exit_code = 0;
        res.output = c.action == "service.status" ? "nginx: stopped\n" : "done\n";
        HttpRequest post;
        post.method = "POST";
        post.url = base_ + "/agent/v1/results";
        post.headers.emplace_back("Authorization", "Bearer " + agent_);
        post.body = DumpJson(protocol::ToJson(res));
        (void)client->Do(post);
      }
    }
  }

  std::vector<protocol::Command> Delivered() {
    std::lock_guard<std::mutex> lock(mu_);
    return delivered_;
  }
  // The commands delivered that change the host (not the runbook's read-only diagnostics).
  std::vector<std::string> Fixes() {
    std::vector<std::string> out;
    for (const auto& c : Delivered()) {
      const protocol::ActionSpec* spec = protocol::FindAction(c.action);
      if (spec == nullptr || !spec->read_only) {
        out.push_back(protocol::RenderCommandLine({c.action, c.params}));
      }
    }
    return out;
  }

  Json Incident() {
    auto j = ParseJson(Call("GET", "/api/v1/incidents", admin_).body);
    if (!j || !j->contains("incidents") || (*j)["incidents"].empty()) {
      return Json();
    }
    const std::string id = (*j)["incidents"][0].value("incident_id", "");
    return ParseJson(Call("GET", "/api/v1/incidents/" + id, admin_).body).value_or(Json());
  }

  // Breaks nginx (its health check fails) and waits until the incident has decided: a fix
  // delivered to the host, or approval pending. Returns the incident.
  Json BreakNginxAndDecide() {
    auto alarm = [&] {
      auto all = ParseJson(Call("GET", "/api/v1/alarms", admin_).body).value_or(Json::object());
      for (const auto& a : all.value("alarms", Json::array())) {
        if (a.value("alarm_name", "") == "Nginx-Down-ALB" && a.value("host", "") == "web-1") {
          return a.value("state", "");
        }
      }
      return std::string();
    };
    EXPECT_TRUE(WaitFor([&] { return alarm() == "OK"; })) << alarm();
    target_.status = 503;
    Json inc;
    EXPECT_TRUE(WaitFor([&] {
      inc = Incident();
      const std::string st = inc.is_object() ? inc.value("status", "") : "";
      return st == "pending_approval" || (st != "" && st != "diagnosing" && !Fixes().empty());
    })) << inc.dump(2);
    return inc;
  }

  static std::string Detail(const Json& inc, const std::string& event) {
    for (const Json& e : inc.value("timeline", Json::array())) {
      if (e.value("event", "") == event) {
        return e.value("detail", "");
      }
    }
    return "";
  }

  bool Audited(const std::string& action) {
    auto j = ParseJson(Call("GET", "/api/v1/audit", admin_).body).value_or(Json::object());
    for (const Json& e : j.value("audit", Json::array())) {
      if (e.value("action", "") == action) {
        return true;
      }
    }
    return false;
  }

  test::TempDir dir_;
  SystemClock clock_;
  Target target_;
  std::mutex answer_mu_;
  std::string answer_;  // Guarded by answer_mu_: what the model says to every request.
  test::FakeHttpServer model_{[this](const test::RecordedRequest&) {
    test::CannedReply reply;
    std::lock_guard<std::mutex> lock(answer_mu_);
    reply.body = ai::test::OpenAiBody(answer_);
    return reply;
  }};
  void Say(const std::string& action, Json params) {
    std::lock_guard<std::mutex> lock(answer_mu_);
    answer_ = ai::test::Answer(action, std::move(params), "the logs say so", "low", 0.99);
  }

  std::unique_ptr<HttpClient> client_ = NewCurlHttpClient();
  std::unique_ptr<ServerApp> app_;
  std::string base_, admin_, agent_;
  std::atomic<bool> stop_{false};
  std::thread agent_thread_;
  std::mutex mu_;
  std::vector<protocol::Command> delivered_;  // Guarded by mu_.
};

struct HostileCase {
  std::string name;
  std::string action;
  Json params;
};

// What a model obeying text injected into nginx's logs might answer (docs/SECURITY.md).
std::vector<HostileCase> HostileCases() {
  return {
      {"kill postgres", "process.kill", {{"pattern", "postgres"}, {"signal", "KILL"}}},
      {"kill journald by its comm", "process.kill",
       {{"pattern", "systemd-journal"}, {"signal", "KILL"}}},
      {"kill nginx (declared, not on the kill allowlist)", "process.kill",
       {{"pattern", "nginx"}, {"signal", "KILL"}}},
      {"truncate the auth log", "file.truncate", {{"path", "/var/log/auth.log"}}},
      {"clean the log directory", "disk.cleanup", {{"path", "/var/log"}, {"older_than", "1d"}}},
  };
}

void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.name; }

class AiGateHostileTest : public AiGateServerTest,
                          public ::testing::WithParamInterface<HostileCase> {};

TEST_P(AiGateHostileTest, NeverReachesTheHostAndTheRunbooksFixRunsInstead) {
  const HostileCase& c = GetParam();
  Say(c.action, c.params);
  ASSERT_NO_FATAL_FAILURE(Start());
  const Json inc = BreakNginxAndDecide();
  ASSERT_TRUE(inc.is_object());
  // Whatever else happened, nothing but the runbook's fix reached the host.
  EXPECT_EQ(Fixes(), (std::vector<std::string>{"service.restart service=nginx"})) << inc.dump(2);
  for (const auto& cmd : Delivered()) {
    EXPECT_NE(cmd.action, c.action) << protocol::RenderCommandLine({cmd.action, cmd.params});
  }
  EXPECT_EQ(inc.value("ai_suggestion", ""), "service.restart service=nginx") << inc.dump(2);
  const std::string why = Detail(inc, "ai_fallback");
  EXPECT_NE(why.find("refused by policy"), std::string::npos) << inc.dump(2);
  EXPECT_NE(why.find(c.action), std::string::npos) << why;
  EXPECT_TRUE(Audited("ai.choice_refused"));
}

INSTANTIATE_TEST_SUITE_P(Answers, AiGateHostileTest, ::testing::ValuesIn(HostileCases()),
                         [](const auto& info) {
                           std::string n;
                           for (char ch : info.param.name) {
                             n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           }
                           return n;
                         });

// The allowlisted alternative, marked automatic, does run automatically; declared but not
// automatic, it waits for a human and nothing reaches the host.
TEST_F(AiGateServerTest, AnAllowlistedAutomaticAlternativeRunsAutomatically) {
  Say("process.kill", {{"pattern", "nginx"}, {"signal", "TERM"}});
  ASSERT_NO_FATAL_FAILURE(Start(
      "    alternatives:\n"
      "      - {action: process.kill, params: {pattern: [nginx], signal: TERM}, automatic: true}\n",
      "hosts:\n"
      "  defaults: {kill_allowlist: [nginx]}\n"));
  const Json inc = BreakNginxAndDecide();
  EXPECT_EQ(Fixes(), (std::vector<std::string>{"process.kill pattern=nginx signal=TERM"}))
      << inc.dump(2);
  EXPECT_EQ(inc.value("ai_suggestion", ""), "process.kill pattern=nginx signal=TERM");
  EXPECT_EQ(Detail(inc, "ai_fallback"), "") << inc.dump(2);
  EXPECT_NE(Detail(inc, "auto_approved").find("automatic"), std::string::npos) << inc.dump(2);
}

// Declared but not marked automatic, the AI's choice never runs without a human: automatic mode
// runs the first option policy allows instead (the runbook's fix, option 2), and says so
// (docs/AUTONOMY.md, "Options").
TEST_F(AiGateServerTest, AnAlternativeNotMarkedAutomaticNeverRunsAutomatically) {
  Say("process.kill", {{"pattern", "nginx"}, {"signal", "TERM"}});
  ASSERT_NO_FATAL_FAILURE(Start(
      "    alternatives:\n"
      "      - {action: process.kill, params: {pattern: [nginx], signal: TERM}}\n",
      "hosts:\n"
      "  web-1: {kill_allowlist: [nginx]}\n"));
  const Json inc = BreakNginxAndDecide();
  EXPECT_EQ(Fixes(), (std::vector<std::string>{"service.restart service=nginx"})) << inc.dump(2);
  EXPECT_EQ(inc["options"][0].value("line", ""), "process.kill pattern=nginx signal=TERM");
  EXPECT_EQ(inc["options"][0].value("automatic", true), false);
  EXPECT_NE(Detail(inc, "option_chosen").find("not marked automatic"), std::string::npos)
      << inc.dump(2);
  EXPECT_NE(Detail(inc, "auto_approved").find("(option 2)"), std::string::npos) << inc.dump(2);
}

}  // namespace
}  // namespace medic::server
