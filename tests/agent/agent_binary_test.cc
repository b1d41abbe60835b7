// The real medic-agent binary against a tiny in-test server speaking the agent protocol
// (integration): registration, reports, health checks, commands run once, local policy, and a
// clean SIGTERM that stops the supervised services.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <regex>
#include <thread>

#include "core/files.h"
#include "core/json.h"
#include "protocol/wire.h"
#include "tests/agent/tiny_http_server.h"

namespace medic::agent {
namespace {

using testing::TinyHttpServer;
using testing::TinyRequest;
using testing::TinyResponse;
using Steady = std::chrono::steady_clock;

// From MEDIC_BIN_DIR when the test runner sets it, else the binary this test was built with.
std::string AgentBinary() {
  const char* dir = std::getenv("MEDIC_BIN_DIR");
  return dir != nullptr ? std::string(dir) + "/medic-agent" : std::string(MEDIC_AGENT_BINARY);
}

// What the fake medic server saw, and the commands it will hand out.
class FakeMedicServer {
 public:
  TinyResponse Handle(const TinyRequest& req) {
    if (req.target == "/health") {
      return {200, "ok"};  // the health-checked app, not the agent API
    }
    if (req.Header("authorization") != "Bearer tok") {
      return {401, R"({"error":"bad token"})"};
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (req.method == "POST" && req.target == "/agent/v1/register") {
      registers_.push_back(*ParseJsonObject(req.body));
      cv_.notify_all();
      return {200, R"({"interval_ms":1000})"};
    }
    if (req.method == "POST" && req.target == "/agent/v1/report") {
      reports_.push_back(*protocol::ReportFromJson(*ParseJsonObject(req.body)));
      cv_.notify_all();
      return {200, "{}"};
    }
    if (req.method == "GET" && req.target.rfind("/agent/v1/commands?host=web-1&wait_ms=", 0) == 0) {
      cv_.wait_for(lock, Millis(300), [&] { return !queue_.empty(); });
      Json cmds = Json::array();
      while (!queue_.empty()) {
        cmds.push_back(queue_.front());
        queue_.pop_front();
      }
      return {200, DumpJson(Json{{"commands", cmds}})};
    }
    if (req.method == "POST" && req.target == "/agent/v1/results") {
      results_.push_back(*protocol::CommandResultFromJson(*ParseJsonObject(req.body)));
      cv_.notify_all();
      return {200, "{}"};
    }
    return {404, R"({"error":"no route"})"};
  }

  void Send(const std::string& id, const std::string& action, Json params = Json::object()) {
    std::lock_guard<std::mutex> lock(mu_);
    protocol::Command c;
    c.id = id;
    c.action = action;
    c.params = std::move(params);
    c.timeout_ms = 10'000;
    c.expires_at = std::chrono::system_clock::now() + std::chrono::seconds(60);
    queue_.push_back(protocol::ToJson(c));
    cv_.notify_all();
  }

  // Waits until `pred(*this)` holds (under the lock), at most 10 s.
  template <typename Pred>
  bool WaitFor(Pred pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, Millis(10'000), [&] { return pred(); });
  }

  std::vector<Json> registers_;
  std::vector<protocol::Report> reports_;
  std::vector<protocol::CommandResult> results_;
  std::mutex mu_;

 private:
  std::condition_variable cv_;
  std::deque<Json> queue_;
};

class AgentBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/medic-agent-bin-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/agent.token", "tok\n", 0600).has_value());
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (const char* f : {"/agent.token", "/agent.yaml", "/agent.log", "/sleeper.log"}) {
      ::unlink((dir_ + f).c_str());
    }
    ::rmdir(dir_.c_str());
  }

  void WriteConfig(const std::string& server_url, const std::string& extra = "") {
    const std::string yaml = "server: " + server_url + "\n" +
                             "name: web-1\n"
                             "token_file: " +
                             dir_ +
                             "/agent.token\n"
                             "interval: 200ms\n" +
                             extra;
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/agent.yaml", yaml).has_value());
  }

  // Starts medic-agent with stdout and stderr going to agent.log.
  void StartAgent(std::vector<std::string> args) {
    std::vector<std::string> argv = {AgentBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> ptrs;
    for (auto& a : argv) {
      ptrs.push_back(a.data());
    }
    ptrs.push_back(nullptr);
    const std::string log = dir_ + "/agent.log";
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execv(ptrs[0], ptrs.data());
      ::_exit(127);
    }
  }

  // Waits for the agent to exit; returns its exit status or -1 on timeout.
  int WaitExit(Millis limit) {
    const auto deadline = Steady::now() + limit;
    while (Steady::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(Millis(10));
    }
    return -1;
  }

  std::string Log() { return ReadFile(dir_ + "/agent.log").value_or(""); }

  std::string dir_;
  pid_t pid_ = 0;
};

TEST_F(AgentBinaryTest, CheckConfig) {
  WriteConfig("http://127.0.0.1:1");
  StartAgent({"--config", dir_ + "/agent.yaml", "--check-config"});
  EXPECT_EQ(WaitExit(Millis(5000)), 0);
  EXPECT_EQ(Log(), "config OK\n");

  WriteConfig("http://127.0.0.1:1", "servcies: {}\n");
  StartAgent({"--config", dir_ + "/agent.yaml", "--check-config"});
  EXPECT_EQ(WaitExit(Millis(5000)), 1);
  EXPECT_NE(Log().find("agent.yaml:5:1: unknown key 'servcies'"), std::string::npos) << Log();

  StartAgent({"--check-config"});  // neither file nor flags
  EXPECT_EQ(WaitExit(Millis(5000)), 1);
  EXPECT_NE(Log().find("'server' is required"), std::string::npos) << Log();
}

TEST_F(AgentBinaryTest, ServesTheProtocolAndStopsServicesOnSigterm) {
  FakeMedicServer medic;
  TinyHttpServer http([&](const TinyRequest& r) { return medic.Handle(r); });
  WriteConfig(http.url(),
              "services:\n"
              "  sleeper:\n"
              "    start: [sleep, \"60\"]\n"
              "    log: " +
                  dir_ +
                  "/sleeper.log\n"
                  "checks:\n"
                  "  - name: web\n"
                  "    url: " +
                  http.url() +
                  "/health\n"
                  "    interval: 200ms\n");
  StartAgent({"--config", dir_ + "/agent.yaml"});

  // Registration, then reports with metrics and the healthy check.
  ASSERT_TRUE(medic.WaitFor([&] {
    for (const auto& r : medic.reports_) {
      for (const auto& s : r.samples) {
        if (s.metrics.count("cpu_percent") && !r.checks.empty() && r.checks.back().healthy) {
          return true;
        }
      }
    }
    return false;
  })) << Log();
  {
    std::lock_guard<std::mutex> lock(medic.mu_);
    ASSERT_EQ(medic.registers_.size(), 1u);
    EXPECT_EQ(medic.registers_[0]["name"], "web-1");
    EXPECT_EQ(medic.registers_[0]["services"], Json::array({"sleeper"}));
    const auto& m = medic.reports_.back().samples.back().metrics;
    for (const char* key :
         {"disk_used_percent", "inode_used_percent", "mem_used_percent", "load1", "cpu_percent"}) {
      EXPECT_EQ(m.count(key), 1u) << key;
    }
    EXPECT_EQ(medic.reports_.back().checks.back().name, "web");
  }

  // A restart delivered twice runs once: both results are the same, pid included.
  medic.Send("r1", "service.restart", {{"service", "sleeper"}});
  ASSERT_TRUE(medic.WaitFor([&] { return medic.results_.size() == 1; }));
  medic.Send("r1", "service.restart", {{"service", "sleeper"}});
  medic.Send("s1", "service.status", {{"service", "sleeper"}});
  medic.Send("x1", "chaos.start", {{"mode", "nginx-crash"}});
  medic.Send("d1", "disk.usage");
  ASSERT_TRUE(medic.WaitFor([&] { return medic.results_.size() == 5; })) << Log();
  std::lock_guard<std::mutex> lock(medic.mu_);
  const auto& r = medic.results_;
  EXPECT_TRUE(r[0].Succeeded()) << r[0].error;
  EXPECT_EQ(r[1].id, "r1");
  EXPECT_EQ(r[1].output, r[0].output);
  std::smatch m;
  const std::string restart_out = r[0].output;
  ASSERT_TRUE(std::regex_search(restart_out, m, std::regex("started sleeper \\(pid (\\d+)\\)")))
      << restart_out;
  const pid_t sleeper = std::stoi(m[1]);
  EXPECT_EQ(r[2].id, "s1");
  EXPECT_NE(r[2].output.find("sleeper: running, pid " + std::to_string(sleeper)), std::string::npos)
      << r[2].output;
  EXPECT_EQ(r[3].id, "x1");
  EXPECT_FALSE(r[3].ran);
  EXPECT_EQ(r[3].error,
            "refused by local policy: action 'chaos.start' is not allowed on this host");
  EXPECT_EQ(r[4].id, "d1");
  EXPECT_TRUE(r[4].Succeeded());
  EXPECT_NE(r[4].output.find("Filesystem"), std::string::npos);
  for (const auto& res : r) {
    EXPECT_EQ(res.host, "web-1");
  }

  // SIGTERM: every supervised service is stopped, then exit 0.
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  EXPECT_EQ(WaitExit(Millis(8000)), 0) << Log();
  EXPECT_TRUE(::kill(sleeper, 0) != 0 && errno == ESRCH);
}

}  // namespace
}  // namespace medic::agent
