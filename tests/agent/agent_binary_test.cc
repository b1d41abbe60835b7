// The real medic-agent binary against a tiny in-test server speaking the agent protocol
// (integration): registration, reports, health checks, commands run once, local policy, and a
// clean SIGTERM that stops the supervised services.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <regex>
#include <thread>

#include "core/files.h"
#include "core/json.h"
#include "protocol/wire.h"
#include "tests/agent/agent_binary.h"
#include "tests/fakes/command_signing.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/subprocess.h"
#include "transport/http_client.h"

namespace medic::agent {
namespace {

using test::CannedReply;
using test::FakeHttpServer;
using test::RecordedRequest;
using Steady = std::chrono::steady_clock;

using testing::AgentBinary;
using testing::kCredential;

// What the fake medic server saw, and the commands it will hand out.
class FakeMedicServer {
 public:
  CannedReply Handle(const RecordedRequest& req) {
    if (req.target == "/health") {
      return {200, "ok"};  // the health-checked app, not the agent API
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (req.method == "POST" && req.target == "/agent/v1/enroll") {
      // The bootstrap token: pending at first, then approved (the same request key).
      if (req.Header("authorization") != "Bearer tok") {
        return {401, R"({"error":"bad token"})"};
      }
      enroll_bodies_.push_back(*ParseJsonObject(req.body));
      if (enroll_bodies_.size() == 1) {
        return {202, R"({"status":"pending","name":"web-1","fingerprint":"0123456789abcdef"})"};
      }
      return {201, DumpJson(Json{{"name", "web-1"},
                                 {"credential", kCredential},
                                 {"command_key", test::TestCommandKey()}})};
    }
    if (req.Header("authorization") != "Bearer " + std::string(kCredential)) {
      return {401, R"({"error":"bad token"})"};
    }
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

  static protocol::Command Make(const std::string& id, const std::string& action,
                                Json params = Json::object()) {
    protocol::Command c;
    c.id = id;
    c.action = action;
    c.params = std::move(params);
    c.timeout_ms = 10'000;
    c.expires_at = std::chrono::system_clock::now() + std::chrono::seconds(60);
    return c;
  }

  // Queues the command, signed for web-1 as medic-server signs it.
  void Send(const std::string& id, const std::string& action, Json params = Json::object()) {
    SendJson(protocol::ToJson(test::SignedFor("web-1", Make(id, action, std::move(params)))));
  }

  // Queues exactly this command JSON (a forged or tampered one, or a replay).
  void SendJson(Json command) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(command));
    cv_.notify_all();
  }

  // Waits until `pred(*this)` holds (under the lock), at most 10 s.
  template <typename Pred>
  bool WaitFor(Pred pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, Millis(10'000), [&] { return pred(); });
  }

  std::vector<Json> enroll_bodies_;
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
    for (const char* f : {"/agent.token", "/agent.yaml", "/agent.log", "/sleeper.log",
                          "/canary", "/canary.log", "/state/credential", "/state/command.key",
                          "/state/enroll.key", "/state/commands.log"}) {
      ::unlink((dir_ + f).c_str());
    }
    ::rmdir((dir_ + "/state").c_str());
    ::rmdir(dir_.c_str());
  }

  void WriteConfig(const std::string& server_url, const std::string& extra = "") {
    const std::string yaml = "server: " + server_url + "\n" +
                             "name: web-1\n"
                             "token_file: " +
                             dir_ +
                             "/agent.token\n"
                             "state_dir: " +
                             dir_ +
                             "/state\n"
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
  EXPECT_NE(Log().find("agent.yaml:6:1: unknown key 'servcies'"), std::string::npos) << Log();

  StartAgent({"--check-config"});  // neither file nor flags
  EXPECT_EQ(WaitExit(Millis(5000)), 1);
  EXPECT_NE(Log().find("'server' is required"), std::string::npos) << Log();
}

TEST_F(AgentBinaryTest, ServesTheProtocolAndStopsServicesOnSigterm) {
  FakeMedicServer medic;
  FakeHttpServer http([&](const RecordedRequest& r) { return medic.Handle(r); });
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
    // Enrolled with the bootstrap token: asked again after "pending", with the same key, and
    // kept the credential (mode 0600) in its state directory; the request key is gone.
    ASSERT_EQ(medic.enroll_bodies_.size(), 2u);
    EXPECT_EQ(medic.enroll_bodies_[0]["name"], "web-1");
    EXPECT_EQ(medic.enroll_bodies_[0]["key"].get<std::string>().size(), 64u);
    EXPECT_EQ(medic.enroll_bodies_[0]["key"], medic.enroll_bodies_[1]["key"]);
    EXPECT_EQ(ReadFile(dir_ + "/state/credential").value_or(""), std::string(kCredential) + "\n");
    struct stat st {};
    ASSERT_EQ(::stat((dir_ + "/state/credential").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_FALSE(PathExists(dir_ + "/state/enroll.key"));
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
            "refused by local policy: chaos is not allowed on this host (chaos.allowed is off in the agent's config)");
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

// Signed commands (docs/PROTOCOL.md): a command with a signature that is not the server's, a
// tampered envelope, one for another host, an expired one, an unsigned one and one delivered
// under another id never run (the canary service's start appends a line to a file); each is
// answered "refused: ..." and written to the agent's ledger. A good one runs once; replayed
// after a restart of the agent, it is answered from the ledger and not run again.
TEST_F(AgentBinaryTest, OnlyCommandsSignedForThisHostRunAndNoneTwice) {
  FakeMedicServer medic;
  FakeHttpServer http([&](const RecordedRequest& r) { return medic.Handle(r); });
  const std::string canary = dir_ + "/canary";
  WriteConfig(http.url(), "services:\n"
                          "  canary:\n"
                          "    start: [sh, -c, \"echo started >> " + canary +
                              "; exec sleep 60\"]\n"
                              "    autostart: false\n"
                              "    log: " + dir_ + "/canary.log\n");
  StartAgent({"--config", dir_ + "/agent.yaml"});
  ASSERT_TRUE(medic.WaitFor([&] { return !medic.reports_.empty(); })) << Log();
  EXPECT_EQ(ReadFile(dir_ + "/state/command.key").value_or(""), test::TestCommandKey() + "\n");

  const Json restart{{"service", "canary"}};
  auto signed_json = [&](const std::string& id, const std::string& host) {
    return protocol::ToJson(test::SignedFor(host, FakeMedicServer::Make(id, "service.restart",
                                                                        restart)));
  };
  Json bad_signature = signed_json("bad-signature", "web-1");
  std::string sig = bad_signature["signature"];
  sig[sig.size() / 2] = sig[sig.size() / 2] == 'A' ? 'B' : 'A';
  bad_signature["signature"] = sig;
  Json tampered = protocol::ToJson(test::SignedFor(
      "web-1", FakeMedicServer::Make("tampered", "service.status", restart)));
  std::string envelope = tampered["envelope"];
  const size_t at = envelope.find("service.status");
  ASSERT_NE(at, std::string::npos) << envelope;
  tampered["envelope"] = envelope.replace(at, 14, "service.restart");
  protocol::Command expired = FakeMedicServer::Make("expired", "service.restart", restart);
  expired.expires_at = std::chrono::system_clock::now() - std::chrono::seconds(1);
  Json unsigned_json = protocol::ToJson(FakeMedicServer::Make("unsigned", "service.restart",
                                                              restart));
  Json renamed = signed_json("renamed-from", "web-1");
  renamed["id"] = "renamed-to";

  medic.SendJson(bad_signature);
  medic.SendJson(tampered);
  medic.SendJson(signed_json("foreign", "web-2"));
  medic.SendJson(protocol::ToJson(test::SignedFor("web-1", expired)));
  medic.SendJson(unsigned_json);
  medic.SendJson(renamed);
  protocol::Command good_cmd = FakeMedicServer::Make("good", "service.restart", restart);
  good_cmd.incident = "inc-1";
  good_cmd.approved_by = "alice";
  const Json good = protocol::ToJson(test::SignedFor("web-1", good_cmd));
  medic.SendJson(good);
  ASSERT_TRUE(medic.WaitFor([&] { return medic.results_.size() == 7; })) << Log();
  {
    std::lock_guard<std::mutex> lock(medic.mu_);
    const std::vector<std::pair<std::string, std::string>> refused = {
        {"bad-signature", "refused: the command's signature is not the server's"},
        {"tampered", "refused: the command's signature is not the server's"},
        {"foreign", "refused: the command is for host 'web-2', not 'web-1'"},
        {"expired", "refused: expired at "},
        {"unsigned", "refused: the command is not signed"},
        {"renamed-to", "refused: the envelope is command renamed-from, delivered as renamed-to"}};
    for (size_t i = 0; i < refused.size(); ++i) {
      EXPECT_EQ(medic.results_[i].id, refused[i].first);
      EXPECT_FALSE(medic.results_[i].ran) << refused[i].first;
      EXPECT_EQ(medic.results_[i].error.rfind(refused[i].second, 0), 0u)
          << refused[i].first << ": " << medic.results_[i].error;
    }
    EXPECT_EQ(medic.results_[6].id, "good");
    EXPECT_TRUE(medic.results_[6].Succeeded()) << medic.results_[6].error;
  }
  EXPECT_EQ(ReadFile(canary).value_or(""), "started\n");

  // Restarted, the agent is sent the good command again: answered from the ledger, not run.
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  ASSERT_EQ(WaitExit(Millis(8000)), 0) << Log();
  StartAgent({"--config", dir_ + "/agent.yaml"});
  medic.SendJson(good);
  ASSERT_TRUE(medic.WaitFor([&] { return medic.results_.size() == 8; })) << Log();
  {
    std::lock_guard<std::mutex> lock(medic.mu_);
    EXPECT_EQ(medic.results_[7].id, "good");
    EXPECT_EQ(medic.results_[7].output, medic.results_[6].output);
  }
  EXPECT_EQ(ReadFile(canary).value_or(""), "started\n");

  // The agent's own record: every refusal with its reason, the start with who approved it.
  const std::string ledger = ReadFile(dir_ + "/state/commands.log").value_or("");
  for (const char* id : {"bad-signature", "tampered", "foreign", "expired", "unsigned",
                         "renamed-to"}) {
    EXPECT_NE(ledger.find("\"refused\":\"" + std::string(id) + "\""), std::string::npos)
        << id << "\n" << ledger;
  }
  size_t starts = 0;
  for (size_t p = ledger.find("\"start\":\"good\""); p != std::string::npos;
       p = ledger.find("\"start\":\"good\"", p + 1)) {
    ++starts;
  }
  EXPECT_EQ(starts, 1u) << ledger;
  EXPECT_NE(ledger.find("\"approved_by\":\"alice\""), std::string::npos) << ledger;
  EXPECT_NE(ledger.find("\"incident\":\"inc-1\""), std::string::npos) << ledger;
}

// An agent with a stored credential uses it and never enrols on its own, even when the server
// refuses it (a revoked host): it keeps asking with that credential, with backoff.
TEST_F(AgentBinaryTest, AStoredCredentialIsUsedAndNeverReEnrolled) {
  FakeMedicServer medic;
  FakeHttpServer http([&](const RecordedRequest& r) { return medic.Handle(r); });
  WriteConfig(http.url());
  ASSERT_TRUE(MakeDirs(dir_ + "/state", 0700).has_value());
  ASSERT_TRUE(
      WriteFileAtomic(dir_ + "/state/credential", std::string(kCredential) + "\n", 0600)
          .has_value());
  // A credential without the server's command key beside it: refused at start, naming the fix.
  StartAgent({"--config", dir_ + "/agent.yaml"});
  EXPECT_EQ(WaitExit(Millis(5000)), 1) << Log();
  EXPECT_NE(Log().find("has no command.key beside it"), std::string::npos) << Log();
  EXPECT_NE(Log().find("enrol the host again"), std::string::npos) << Log();
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/state/command.key", test::TestCommandKey() + "\n", 0600)
                  .has_value());
  StartAgent({"--config", dir_ + "/agent.yaml"});
  ASSERT_TRUE(medic.WaitFor([&] { return !medic.reports_.empty(); })) << Log();
  size_t registers = 0;
  {
    std::lock_guard<std::mutex> lock(medic.mu_);
    EXPECT_TRUE(medic.enroll_bodies_.empty());
    registers = medic.registers_.size();
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = 0;
  // A credential the server does not know: refused, and still no enrolment.
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/state/credential", std::string(64, 'd') + "\n", 0600)
                  .has_value());
  StartAgent({"--config", dir_ + "/agent.yaml"});
  std::this_thread::sleep_for(Millis(1500));
  std::lock_guard<std::mutex> lock(medic.mu_);
  EXPECT_TRUE(medic.enroll_bodies_.empty());
  EXPECT_EQ(medic.registers_.size(), registers);
}

// --metrics-listen: the real agent's /metrics output passes `promtool check metrics`, carries
// the latest sample and the check state, and nothing but GET /metrics is served.
TEST_F(AgentBinaryTest, MetricsEndpointIsValidPrometheusText) {
  const std::string promtool = "/usr/bin/promtool";
  if (::access(promtool.c_str(), X_OK) != 0) {
    FAIL() << "promtool not installed (Debian package prometheus; run scripts/setup.sh)";
  }
  FakeMedicServer medic;
  FakeHttpServer http([&](const RecordedRequest& r) { return medic.Handle(r); });
  WriteConfig(http.url(),
              "checks:\n"
              "  - name: web\n"
              "    url: " +
                  http.url() +
                  "/health\n"
                  "    interval: 200ms\n"
                  "  - name: api\n"
                  "    url: http://127.0.0.1:1/nothing\n"
                  "    interval: 200ms\n");
  StartAgent({"--config", dir_ + "/agent.yaml", "--metrics-listen", "127.0.0.1:0"});
  std::smatch m;
  std::string log;
  const auto deadline = Steady::now() + Millis(10'000);
  while (Steady::now() < deadline) {
    log = Log();
    if (std::regex_search(log, m, std::regex("serving /metrics on port (\\d+)"))) {
      break;
    }
    std::this_thread::sleep_for(Millis(20));
  }
  ASSERT_FALSE(m.empty()) << log;
  const std::string url = "http://127.0.0.1:" + m[1].str();
  // Wait for a sample with cpu_percent (the second one) and both check states.
  InitHttpClientLibrary();
  auto client = NewCurlHttpClient();
  std::string body;
  while (Steady::now() < deadline) {
    HttpRequest req;
    req.url = url + "/metrics";
    auto r = client->Do(req);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    ASSERT_EQ(r->status, 200);
    body = r->body;
    if (body.find("medic_cpu_percent ") != std::string::npos &&
        body.find("check=\"api\"") != std::string::npos &&
        body.find("check=\"web\"") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(Millis(50));
  }
  EXPECT_NE(body.find("medic_check_healthy{check=\"web\"} 1\n"), std::string::npos) << body;
  EXPECT_NE(body.find("medic_check_healthy{check=\"api\"} 0\n"), std::string::npos) << body;
  EXPECT_NE(body.find("\nmedic_disk_used_percent "), std::string::npos) << body;
  EXPECT_NE(body.find("\nmedic_mem_used_percent "), std::string::npos) << body;
  EXPECT_NE(body.find("# TYPE medic_load15 gauge\n"), std::string::npos) << body;

  ASSERT_TRUE(WriteFileAtomic(dir_ + "/metrics.txt", body).has_value());
  const std::string cmd =
      promtool + " check metrics < " + dir_ + "/metrics.txt > " + dir_ + "/promtool.out 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string promtool_out = ReadFile(dir_ + "/promtool.out").value_or("");
  ::unlink((dir_ + "/metrics.txt").c_str());
  ::unlink((dir_ + "/promtool.out").c_str());
  EXPECT_EQ(rc, 0) << promtool_out << "\n" << body;
  EXPECT_EQ(promtool_out, "") << body;  // not even lint warnings

  HttpRequest other;
  other.url = url + "/";
  auto r = client->Do(other);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 404);
  other.url = url + "/metrics";
  other.method = "POST";
  r = client->Do(other);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 405);

  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  EXPECT_EQ(WaitExit(Millis(8000)), 0) << Log();
}

TEST_F(AgentBinaryTest, BadMetricsListenIsRefusedAtStart) {
  WriteConfig("http://127.0.0.1:1");
  StartAgent({"--config", dir_ + "/agent.yaml", "--metrics-listen", "localhost-ish"});
  EXPECT_EQ(WaitExit(Millis(5000)), 1);
  EXPECT_NE(Log().find("HOST:PORT"), std::string::npos) << Log();
}

// TLS: an https server URL with a CA file and a client certificate. The server is
// `openssl s_server` on loopback, demanding a client certificate signed by the test CA; the
// certificates are made with `openssl` here. With the right CA the handshake completes both
// ways (s_server logs the agent's verified certificate); with another CA the agent refuses the
// server and says why.
TEST_F(AgentBinaryTest, HttpsServerWithCaFileAndClientCertificate) {
  auto sh = [&](const std::string& cmd) {
    return std::system(("cd " + dir_ + " && " + cmd + " >>openssl.log 2>&1").c_str());
  };
  ASSERT_EQ(sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
               "-subj /CN=medic-test-ca"),
            0);
  ASSERT_EQ(sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem "
               "-days 2 -subj /CN=medic-other-ca"),
            0);
  ASSERT_EQ(sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
               "-subj /CN=127.0.0.1"),
            0);
  ASSERT_EQ(sh("printf 'subjectAltName=IP:127.0.0.1\n' > san.ext && openssl x509 -req -in "
               "server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
               "-extfile san.ext"),
            0);
  ASSERT_EQ(sh("openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr "
               "-subj /CN=medic-agent-client"),
            0);
  ASSERT_EQ(sh("openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
               "-out client.pem -days 2"),
            0);

  // s_server on port 0 names the port it got: "ACCEPT 127.0.0.1:PORT".
  const pid_t server = ::fork();
  ASSERT_GE(server, 0);
  if (server == 0) {
    const std::string log = dir_ + "/s_server.log";
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(out, 2);
    if (::chdir(dir_.c_str()) != 0) {
      ::_exit(126);
    }
    ::execlp("openssl", "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", "server.pem",
             "-key", "server.key", "-CAfile", "ca.pem", "-Verify", "1", "-www",
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto cleanup = [&] {
    ::kill(server, SIGKILL);
    ::waitpid(server, nullptr, 0);
    [[maybe_unused]] const int rc =
        std::system(("cd " + dir_ + " && rm -f ca.* other-ca.* server.* client.* san.ext *.srl pin.txt " +
                     "openssl.log s_server.log")
                        .c_str());
  };
  const int accept_port = medic::test::WaitForReportedPort(server, dir_ + "/s_server.log",
                                                           "ACCEPT 127.0.0.1:", Millis(10'000));
  if (accept_port <= 0) {
    const std::string log = ReadFile(dir_ + "/s_server.log").value_or("");
    cleanup();
    FAIL() << "openssl s_server did not start: " << log;
  }
  const std::string port = std::to_string(accept_port);

  const std::string url = "https://127.0.0.1:" + port;
  WriteConfig(url, "tls:\n  ca_file: " + dir_ + "/ca.pem\n  cert_file: " + dir_ +
                       "/client.pem\n  key_file: " + dir_ + "/client.key\n");
  StartAgent({"--config", dir_ + "/agent.yaml"});
  bool verified = false;
  const auto deadline = Steady::now() + Millis(10'000);
  while (!verified && Steady::now() < deadline) {
    const std::string log = ReadFile(dir_ + "/s_server.log").value_or("");
    verified = log.find("CN = medic-agent-client") != std::string::npos &&
               log.find("verify return:1") != std::string::npos;
    std::this_thread::sleep_for(Millis(50));
  }
  const std::string server_log = ReadFile(dir_ + "/s_server.log").value_or("");
  EXPECT_TRUE(verified) << server_log << "\n" << Log();
  EXPECT_EQ(Log().find("certificate does not"), std::string::npos) << Log();
  ::kill(pid_, SIGTERM);
  EXPECT_EQ(WaitExit(Millis(8000)), 0);

  // The wrong CA: the agent does not trust the server, and says so.
  WriteConfig(url, "tls:\n  ca_file: " + dir_ + "/other-ca.pem\n");
  StartAgent({"--config", dir_ + "/agent.yaml"});
  bool refused = false;
  const auto deadline2 = Steady::now() + Millis(10'000);
  while (!refused && Steady::now() < deadline2) {
    refused = Log().find("registration failed") != std::string::npos &&
              Log().find("certificate does not chain to the CA file") != std::string::npos;
    std::this_thread::sleep_for(Millis(50));
  }
  EXPECT_TRUE(refused) << Log();
  ::kill(pid_, SIGTERM);
  EXPECT_EQ(WaitExit(Millis(8000)), 0);

  // tls.pin instead of a CA: the server's public key is the whole check. The right pin (as
  // medic-server prints it: the SHA-256 of the key, base64) completes the handshake; another
  // key's pin is refused, also next to the right CA.
  auto pin_of = [&](const std::string& cert) {
    const std::string out = dir_ + "/pin.txt";
    EXPECT_EQ(sh("(openssl x509 -in " + cert + " -pubkey -noout | openssl pkey -pubin -outform "
                 "der | openssl dgst -sha256 -binary | base64 > " + out + ")"),
              0);
    return "sha256//" + std::string(Trim(ReadFile(out).value_or("")));
  };
  const std::string client_cert = "  cert_file: " + dir_ + "/client.pem\n  key_file: " + dir_ +
                                  "/client.key\n";
  WriteConfig(url, "tls:\n  pin: " + pin_of("server.pem") + "\n" + client_cert);
  ASSERT_EQ(sh(": > s_server.log"), 0);
  StartAgent({"--config", dir_ + "/agent.yaml"});
  bool pinned = false;
  const auto deadline3 = Steady::now() + Millis(10'000);
  while (!pinned && Steady::now() < deadline3) {
    const std::string log = ReadFile(dir_ + "/s_server.log").value_or("");
    pinned = log.find("CN = medic-agent-client") != std::string::npos;
    std::this_thread::sleep_for(Millis(50));
  }
  EXPECT_TRUE(pinned) << ReadFile(dir_ + "/s_server.log").value_or("") << "\n" << Log();
  ::kill(pid_, SIGTERM);
  EXPECT_EQ(WaitExit(Millis(8000)), 0);

  for (const std::string& extra : std::vector<std::string>{"", "  ca_file: " + dir_ + "/ca.pem\n"}) {
    WriteConfig(url, "tls:\n  pin: " + pin_of("client.pem") + "\n" + extra + client_cert);
    StartAgent({"--config", dir_ + "/agent.yaml"});
    bool wrong_pin = false;
    const auto deadline4 = Steady::now() + Millis(10'000);
    while (!wrong_pin && Steady::now() < deadline4) {
      wrong_pin = Log().find("registration failed") != std::string::npos &&
                  Log().find("does not match the pin") != std::string::npos;
      std::this_thread::sleep_for(Millis(50));
    }
    EXPECT_TRUE(wrong_pin) << extra << Log();
    ::kill(pid_, SIGTERM);
    EXPECT_EQ(WaitExit(Millis(8000)), 0);
  }
  cleanup();
}

}  // namespace
}  // namespace medic::agent
