// A chaos command the host refuses (issue 19), end to end: the real medic-server allows chaos
// on web-1 (its `hosts:` config), the real medic-agent of web-1 does not (no `chaos:` section:
// chaos is off), and the real `medic chaos nginx-crash --host web-1` waits for the agent's
// answer and exits non-zero with the agent's reason. Bad parameters never reach the agent: the
// server answers 400 and the CLI says why.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "core/files.h"
#include "core/json.h"
#include "tests/integration/demo_fixture.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

using test::Bin;
using test::Eventually;

Result<HttpResponse> Call(const std::string& method, const std::string& url,
                          const std::string& token) {
  auto client = NewCurlHttpClient();
  HttpRequest req;
  req.method = method;
  req.url = url;
  req.timeout = Millis(5'000);
  req.headers.emplace_back("Authorization", "Bearer " + token);
  return client->Do(req);
}

// One run of the real `medic` CLI: its exit status, standard output and standard error.
struct CliRun {
  int status = -1;  // the exit code; -1 when it did not exit in time or died of a signal
  std::string out;
  std::string err;
};

class ChaosRefusedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { InitHttpClientLibrary(); }

  void TearDown() override {
    if (agent_) {
      agent_->SignalAndWait(SIGTERM, 10s);
    }
    if (server_) {
      server_->SignalAndWait(SIGTERM, 10s);
    }
  }

  CliRun Medic(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {Bin("medic"), "--server", url_, "--token-file",
                                     dir_.File("data/admin.token")};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string err_file = dir_.File("cli-" + std::to_string(++runs_) + ".err");
    test::Subprocess cli(argv, err_file);
    CliRun run;
    while (auto line = cli.ReadLine(90s)) {  // until it closes its output (exits)
      run.out += *line + "\n";
    }
    if (auto st = cli.Wait(10s); st && WIFEXITED(*st)) {
      run.status = WEXITSTATUS(*st);
    }
    run.err = ReadFile(err_file).value_or("");
    return run;
  }

  std::string Logs() {
    return "server:\n" + ReadFileTail(dir_.File("server.log"), 3000).value_or("") +
           "\nagent:\n" + ReadFileTail(dir_.File("agent.log"), 3000).value_or("");
  }

  test::TempDir dir_;
  std::unique_ptr<test::Subprocess> server_;
  std::unique_ptr<test::Subprocess> agent_;
  std::string url_;
  std::string admin_;
  int runs_ = 0;
};

TEST_F(ChaosRefusedTest, TheCliExitsNonZeroWithTheAgentsReason) {
  // The server allows chaos on web-1; web-1's agent does not.
  const std::string config = dir_.File("server.yaml");
  ASSERT_TRUE(WriteFileAtomic(config, "hosts:\n  web-1: {chaos_allowed: true}\n").has_value());
  url_ = test::StartServerOnPortZero(server_, {"--config", config, "--data-dir", dir_.File("data")},
                                     dir_.File("data"), dir_.File("server.log"), 15s);
  ASSERT_FALSE(url_.empty()) << Logs();
  admin_ = std::string(Trim(ReadFile(dir_.File("data/admin.token")).value_or("")));
  auto code = Call("POST", url_ + "/api/v1/hosts/web-1/enroll", admin_);
  ASSERT_TRUE(code && code->status == 201) << (code ? code->body : code.error().message);
  const std::string enroll_code = ParseJsonObject(code->body).value()["code"];
  ASSERT_TRUE(WriteFileAtomic(dir_.File("agent.yaml"),
                              "server: " + url_ + "\n" +
                                  "name: web-1\n"
                                  "state_dir: " + dir_.File("state") + "\n" +
                                  "enroll_code: " + enroll_code + "\n" +
                                  "interval: 1s\n")
                  .has_value());
  agent_ = std::make_unique<test::Subprocess>(
      std::vector<std::string>{Bin("medic-agent"), "--config", dir_.File("agent.yaml")},
      dir_.File("agent.log"));
  ASSERT_TRUE(Eventually(30s, [&] {
    auto r = Call("GET", url_ + "/api/v1/hosts/web-1", admin_);
    return r && r->status == 200;
  })) << Logs();

  // Bad parameters: the server's 400, before anything is sent.
  const CliRun bad = Medic({"chaos", "disk-fill", "--host", "web-1", "percent=150"});
  EXPECT_EQ(bad.status, 1) << bad.out << bad.err;
  EXPECT_EQ(bad.err,
            "medic: chaos disk-fill on web-1: 400 chaos mode disk-fill: parameter "
            "'percent' must be between 1 and 99\n");
  EXPECT_EQ(bad.out, "");

  // The agent refuses: the CLI waits for that answer and says why.
  const CliRun refused = Medic({"chaos", "nginx-crash", "--host", "web-1", "--timeout", "60s"});
  EXPECT_EQ(refused.status, 1) << refused.out << refused.err << Logs();
  EXPECT_EQ(refused.err,
            "medic: chaos nginx-crash on web-1: web-1 refused it: refused by local policy: chaos "
            "is not allowed on this host (chaos.allowed is off in the agent's config)\n")
      << Logs();
  const std::string prefix = "chaos nginx-crash sent to web-1: command ";
  ASSERT_EQ(refused.out.rfind(prefix, 0), 0u) << refused.out;
  const std::string id =
      refused.out.substr(prefix.size(), refused.out.find(',') - prefix.size());
  // The API says the same.
  auto command = Call("GET", url_ + "/api/v1/commands/" + id, admin_);
  ASSERT_TRUE(command && command->status == 200)
      << (command ? command->body : command.error().message);
  const Json c = ParseJsonObject(command->body).value();
  EXPECT_EQ(c["state"], "refused") << c.dump();
  EXPECT_EQ(c["result"]["error"],
            "refused by local policy: chaos is not allowed on this host (chaos.allowed is off in "
            "the agent's config)");

  // With --no-wait the same command returns at once, exit 0: only the wait sees the refusal.
  const CliRun sent = Medic({"chaos", "nginx-crash", "--host", "web-1", "--no-wait"});
  EXPECT_EQ(sent.status, 0) << sent.out << sent.err;
  EXPECT_EQ(sent.out.rfind(prefix, 0), 0u) << sent.out;
  EXPECT_EQ(sent.out.find("waiting"), std::string::npos) << sent.out;
}

}  // namespace
}  // namespace medic
