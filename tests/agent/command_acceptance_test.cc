// Issue 3 acceptance, with real processes (integration): the command path from a long poll to a
// real supervised service whose start command appends a line to a canary file. The canary shows
// how often something actually ran: a command delivered five times runs once, a stale command
// and one outside the local policy never run.

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <sstream>

#include "agent/action_executor.h"
#include "agent/command_poller.h"
#include "agent/command_processor.h"
#include "agent/command_verifier.h"
#include "tests/fakes/command_signing.h"
#include "agent/command_runner.h"
#include "agent/supervisor.h"
#include "core/files.h"
#include "tests/agent/fakes.h"

namespace medic::agent {
namespace {

using testing::FakeServer;
using testing::JsonResponse;

class CommandAcceptanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/medic-acceptance-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(reaper_.Start().has_value());
    supervisor_ = std::make_unique<SupervisorServiceManager>(
        std::vector<ServiceConfig>{Service("canary"), Service("forbidden")}, reaper_, procfs_,
        clock_);
    PolicyRules rules = PolicyRulesFromConfig(AgentConfig{}, ::getpid());
    rules.services = {"canary"};        // "forbidden" is configured but not allowed
    rules.paths = {dir_ + "/allowed"};  // the victim file below is outside it
    rules.actions.insert("file.truncate");
    policy_ = std::make_unique<Policy>(rules);
    ExecutorOptions o;
    o.self_pid = ::getpid();
    executor_ = std::make_unique<ActionExecutor>(o, *policy_, runner_, *supervisor_, procfs_);
    processor_ = std::make_unique<CommandProcessor>("web-1", *policy_, *executor_, clock_);
    ASSERT_TRUE(verifier_.SetKey(test::TestCommandKey()).has_value());
    poller_ = std::make_unique<CommandPoller>(
        PollerOptions{"web-1", Millis(25000), 3, Millis(1)}, api_, registration_, verifier_,
        *processor_, [](Millis) { return true; }, clock_);
    server_.SetHandler([this](const HttpRequest& req) -> Result<HttpResponse> {
      if (req.url.find("/commands") != std::string::npos) {
        std::lock_guard<std::mutex> lock(mu_);
        if (batches_.empty()) {
          return JsonResponse(200, R"({"commands":[]})");
        }
        std::string b = batches_.front();
        batches_.erase(batches_.begin());
        return JsonResponse(200, b);
      }
      return JsonResponse(200, "{}");
    });
    ASSERT_TRUE(registration_.Attempt(*http_, SteadyTime{}).has_value());
  }

  void TearDown() override {
    supervisor_->StopAll();
    reaper_.Stop();
    for (const char* f : {"/canary.runs", "/forbidden.runs", "/svc.log", "/victim"}) {
      ::unlink((dir_ + f).c_str());
    }
    ::rmdir(dir_.c_str());
  }

  ServiceConfig Service(const std::string& name) {
    ServiceConfig s;
    s.name = name;
    s.start = {"sh", "-c", "echo run >> " + dir_ + "/" + name + ".runs; exec sleep 1000"};
    s.log = dir_ + "/svc.log";
    s.stop_timeout = Millis(1000);
    return s;
  }

  protocol::Command Cmd(std::string id, std::string action, Json params) {
    protocol::Command c;
    c.id = std::move(id);
    c.action = std::move(action);
    c.params = std::move(params);
    c.timeout_ms = 10'000;
    c.expires_at = clock_.Now() + std::chrono::seconds(60);
    return c;
  }

  // Delivers `cmd`, signed as the server signs it, on the next poll and runs that poll.
  void Deliver(const protocol::Command& cmd) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      batches_.push_back(DumpJson(
          protocol::ToJson(protocol::CommandBatch{{test::SignedFor("web-1", cmd)}})));
    }
    poller_->RunOnce(*http_);
  }

  std::vector<protocol::CommandResult> Results() {
    std::vector<protocol::CommandResult> out;
    for (const auto& r : server_.RequestsTo("/agent/v1/results")) {
      out.push_back(*protocol::CommandResultFromJson(*ParseJsonObject(r.body)));
    }
    return out;
  }

  // Lines in a canary file; 0 when it does not exist.
  int Runs(const std::string& name) {
    auto text = ReadFile(dir_ + "/" + name + ".runs");
    if (!text) {
      return 0;
    }
    int n = 0;
    std::istringstream in(*text);
    std::string line;
    while (std::getline(in, line)) {
      ++n;
    }
    return n;
  }

  std::string dir_;
  SystemClock clock_;
  host::LinuxProcFs procfs_;
  ChildReaper reaper_;
  ForkExecCommandRunner runner_{reaper_};
  std::unique_ptr<SupervisorServiceManager> supervisor_;
  std::unique_ptr<Policy> policy_;
  std::unique_ptr<ActionExecutor> executor_;
  std::unique_ptr<CommandProcessor> processor_;
  FakeServer server_;
  std::unique_ptr<HttpClient> http_ = server_.NewClient();
  ServerApi api_{"http://server", "tok"};
  Registration registration_{api_, protocol::RegisterRequest{"web-1"}, Millis(1), Millis(1)};
  CommandVerifier verifier_;
  std::unique_ptr<CommandPoller> poller_;
  std::mutex mu_;
  std::vector<std::string> batches_;
};

TEST_F(CommandAcceptanceTest, CommandDeliveredFiveTimesRunsOnce) {
  const auto cmd = Cmd("cmd-5x", "service.restart", {{"service", "canary"}});
  for (int i = 0; i < 5; ++i) {
    Deliver(cmd);
  }
  EXPECT_EQ(Runs("canary"), 1);
  EXPECT_EQ(poller_->executed(), 1u);
  const auto results = Results();
  ASSERT_EQ(results.size(), 5u);  // every delivery is answered, with the stored result
  for (const auto& r : results) {
    EXPECT_EQ(r.id, "cmd-5x");
    EXPECT_TRUE(r.Succeeded()) << r.error;
    EXPECT_EQ(r.output, results[0].output);
  }
}

TEST_F(CommandAcceptanceTest, StaleCommandNeverRuns) {
  auto cmd = Cmd("cmd-stale", "service.restart", {{"service", "canary"}});
  cmd.expires_at = clock_.Now() - std::chrono::seconds(1);
  Deliver(cmd);
  EXPECT_EQ(Runs("canary"), 0);
  EXPECT_FALSE(PathExists(dir_ + "/canary.runs"));
  const auto results = Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ran);
  EXPECT_EQ(results[0].error.rfind("refused: expired at ", 0), 0u) << results[0].error;
}

TEST_F(CommandAcceptanceTest, ActionsOutsideTheLocalPolicyNeverRun) {
  // A configured service the policy does not list.
  Deliver(Cmd("cmd-forbidden", "service.restart", {{"service", "forbidden"}}));
  // The raw shell action: off by default.
  Deliver(Cmd("cmd-shell", "shell", {{"command", "echo run >> " + dir_ + "/canary.runs"}}));
  // Chaos without chaos.allowed.
  Deliver(Cmd("cmd-chaos", "chaos.start", {{"mode", "nginx-crash"}}));
  // A truncation outside the allowed paths (of a canary file the test owns), also via "..".
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/victim", "keep\n").has_value());
  Deliver(Cmd("cmd-truncate", "file.truncate", {{"path", dir_ + "/victim"}}));
  Deliver(Cmd("cmd-dotdot", "file.truncate", {{"path", dir_ + "/allowed/../victim"}}));

  EXPECT_EQ(Runs("forbidden"), 0);
  EXPECT_EQ(Runs("canary"), 0);
  EXPECT_FALSE(PathExists(dir_ + "/forbidden.runs"));
  const auto results = Results();
  ASSERT_EQ(results.size(), 5u);
  for (const auto& r : results) {
    SCOPED_TRACE(r.id);
    EXPECT_FALSE(r.ran);
    // ".." is already refused by the action catalog; everything else by the local policy.
    EXPECT_TRUE(r.error.find("refused by local policy") != std::string::npos ||
                (r.id == "cmd-dotdot" && r.error.find("invalid command") != std::string::npos))
        << r.error;
  }
  EXPECT_EQ(ReadFile(dir_ + "/victim").value_or(""), "keep\n");
}

}  // namespace
}  // namespace medic::agent
