// medic demo's orchestration against a fake launcher, a fake HTTP "server" and fake signals:
// what it starts, in which order, what it prints, and that it stops everything it started.

#include "cli/demo.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/files.h"
#include "fake_http_client.h"
#include "fake_process_table.h"

namespace medic::cli {
namespace {

namespace fs = std::filesystem;

// Processes that exist only as records. Label: "server", or "agent web-N".
class FakeLauncher : public ProcessLauncher {
 public:
  struct Proc {
    std::vector<std::string> argv;
    std::string log;
    std::string label;
    bool exited = false;
    bool ignores_term = false;
  };

  Result<int> Start(const std::vector<std::string>& argv, const std::string& log) override {
    const int pid = next_pid_++;
    Proc p{argv, log, Label(argv)};
    procs_[pid] = p;
    events_.push_back("start " + p.label);
    if (on_start) {
      on_start(pid, procs_[pid]);
    }
    return pid;
  }
  void Signal(int pid, int sig, bool group) override {
    Proc& p = procs_.at(pid);
    events_.push_back(std::string(sig == SIGTERM   ? "TERM "
                                  : sig == SIGKILL ? "KILL "
                                                   : "SIG ") +
                      (group ? "group " : "") + p.label);
    if (sig == SIGKILL || (sig == SIGTERM && !p.ignores_term)) {
      p.exited = true;
    }
  }
  bool WaitExit(int pid, Millis) override { return procs_.at(pid).exited; }

  std::function<void(int pid, Proc& proc)> on_start;
  const std::vector<std::string>& events() const { return events_; }
  std::vector<Proc> procs() const {
    std::vector<Proc> out;
    for (const auto& [pid, p] : procs_) {
      out.push_back(p);
    }
    return out;
  }

 private:
  static std::string Label(const std::vector<std::string>& argv) {
    const std::string bin = fs::path(argv[0]).filename().string();
    if (bin == "medic-agent" && argv.size() >= 3) {
      return "agent " + fs::path(argv[2]).parent_path().filename().string();
    }
    return bin == "medic-server" ? "server" : bin;
  }
  int next_pid_ = 1000;
  std::map<int, Proc> procs_;
  std::vector<std::string> events_;
};

class FakeDemoEnv : public DemoEnv {
 public:
  HttpClient& Http() override { return http; }
  Result<int> FreeLoopbackPort() override { return next_port++; }
  Status CheckCanListen(const HostPort& addr) override {
    checked_listen.push_back(addr.ToString());
    return can_listen;
  }
  SteadyTime Now() override { return now; }
  bool WaitForStop(Millis d) override {
    now += d;
    ++waits;
    if (!stop && stop_when && stop_when()) {
      stop = true;
    }
    return stop;
  }

  FakeHttpClient http;
  int next_port = 40001;
  Status can_listen = OkStatus();
  std::vector<std::string> checked_listen;
  SteadyTime now{};
  int waits = 0;
  bool stop = false;
  std::function<bool()> stop_when;
};

class DemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/medic-demo-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    options_.listen = "127.0.0.1:18080";
    options_.data_dir = dir_ + "/data";
    options_.server_bin = "/opt/medic/bin/medic-server";
    options_.agent_bin = "/opt/medic/bin/medic-agent";
    options_.medic_bin = "/opt/medic/bin/medic";
    options_.nginx_bin = "/usr/sbin/nginx";
    options_.healthy_timeout = Millis(3'000);
    options_.server_start_timeout = Millis(3'000);

    // A server that writes its tokens at start; agents that become healthy when started.
    launcher_.on_start = [this](int pid, FakeLauncher::Proc& p) {
      if (p.label == "server") {
        server_pid_ = pid;
        const std::string data = p.argv.at(4);
        ASSERT_TRUE(WriteFileAtomic(data + "/admin.token", "admin-secret\n", 0600).has_value());
        ASSERT_TRUE(WriteFileAtomic(data + "/agent.token", "agent-secret\n", 0600).has_value());
      } else {
        registered_.push_back(fs::path(p.argv.at(2)).parent_path().filename().string());
      }
    };
    env_.http.SetHandler([this](const HttpRequest& r) -> Result<HttpResponse> {
      if (r.url == "http://127.0.0.1:18080/healthz") {
        return HttpResponse{200, "ok", "text/plain"};
      }
      if (r.url == "http://127.0.0.1:18080/api/v1/settings" && r.method == "PUT") {
        return HttpResponse{200, R"j({"approval_mode":false})j", "application/json"};
      }
      if (r.url == "http://127.0.0.1:18080/api/v1/hosts") {
        Json hosts = Json::array();
        for (const std::string& name : registered_) {
          hosts.push_back({{"name", name}, {"status", host_status_}, {"checks", host_checks_}});
        }
        return HttpResponse{200, DumpJson(Json{{"hosts", hosts}}), "application/json"};
      }
      return HttpResponse{404, R"j({"error":"no route"})j", "application/json"};
    });
    env_.stop_when = [this] { return out_.str().find("medic demo ready") != std::string::npos; };
  }
  void TearDown() override { fs::remove_all(dir_); }

  Demo MakeDemo() { return Demo(options_, launcher_, env_, procs_, out_, err_); }
  std::string Data() const { return fs::path(options_.data_dir).lexically_normal().string(); }

  std::string dir_;
  DemoOptions options_;
  FakeLauncher launcher_;
  FakeDemoEnv env_;
  FakeProcessTable procs_;
  std::ostringstream out_;
  std::ostringstream err_;
  int server_pid_ = 0;
  std::vector<std::string> registered_;
  std::string host_status_ = "healthy";
  Json host_checks_ = Json::array({{{"name", "web"}, {"healthy", true}}});
};

TEST_F(DemoTest, StartsServerThenHostsPrintsReadyAndStopsInReverse) {
  options_.hosts = 2;
  options_.auto_approve = true;
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();

  EXPECT_EQ(out_.str(), "medic demo ready: http://127.0.0.1:18080/ token-file " + Data() +
                            "/server/admin.token\n");
  EXPECT_EQ(launcher_.events(),
            (std::vector<std::string>{"start server", "start agent web-1", "start agent web-2",
                                      "TERM agent web-1", "TERM agent web-2", "TERM server"}));
  const auto procs = launcher_.procs();
  ASSERT_EQ(procs.size(), 3u);
  EXPECT_EQ(procs[0].argv,
            (std::vector<std::string>{"/opt/medic/bin/medic-server", "--listen", "127.0.0.1:18080",
                                      "--data-dir", Data() + "/server"}));
  EXPECT_EQ(procs[0].log, Data() + "/server/server.log");
  EXPECT_EQ(procs[1].argv, (std::vector<std::string>{"/opt/medic/bin/medic-agent", "--config",
                                                     Data() + "/hosts/web-1/agent.yaml"}));
  EXPECT_EQ(procs[1].log, Data() + "/hosts/web-1/log/agent.log");
  EXPECT_EQ(procs[2].argv[2], Data() + "/hosts/web-2/agent.yaml");

  // Each host has its own ports in its nginx.conf and agent.yaml.
  const std::string conf1 = ReadFile(Data() + "/hosts/web-1/nginx.conf").value();
  EXPECT_NE(conf1.find("listen 127.0.0.1:40001;"), std::string::npos);
  EXPECT_NE(conf1.find("proxy_pass http://127.0.0.1:40002;"), std::string::npos);
  const std::string conf2 = ReadFile(Data() + "/hosts/web-2/nginx.conf").value();
  EXPECT_NE(conf2.find("listen 127.0.0.1:40003;"), std::string::npos);
  const std::string yaml1 = ReadFile(Data() + "/hosts/web-1/agent.yaml").value();
  EXPECT_NE(yaml1.find(Data() + "/server/agent.token"), std::string::npos) << yaml1;
  EXPECT_NE(yaml1.find("http://127.0.0.1:40001/health"), std::string::npos) << yaml1;
  for (const std::string_view d : {"/hosts/web-1/log", "/hosts/web-1/run", "/hosts/web-1/tmp"}) {
    EXPECT_TRUE(fs::is_directory(Data() + std::string(d))) << d;
  }

  // --auto: approval mode off, with the admin token.
  bool put_settings = false;
  for (const HttpRequest& r : env_.http.requests()) {
    if (r.method == "PUT") {
      put_settings = true;
      EXPECT_EQ(r.url, "http://127.0.0.1:18080/api/v1/settings");
      EXPECT_EQ(ParseJson(r.body).value(), Json({{"approval_mode", false}}));
      EXPECT_EQ(FakeHttpClient::Header(r, "Authorization"), "Bearer admin-secret");
    }
    if (r.url.find("/api/v1/hosts") != std::string::npos) {
      EXPECT_EQ(FakeHttpClient::Header(r, "Authorization"), "Bearer admin-secret");
    }
  }
  EXPECT_TRUE(put_settings);
}

TEST_F(DemoTest, WithoutAutoLeavesSettingsAlone) {
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  for (const HttpRequest& r : env_.http.requests()) {
    EXPECT_NE(r.method, "PUT") << r.url;
  }
}

TEST_F(DemoTest, PortZeroPicksAFreePort) {
  options_.listen = "127.0.0.1:0";
  env_.next_port = 18080;  // the first free port goes to the server
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_EQ(launcher_.procs()[0].argv[2], "127.0.0.1:18080");
  EXPECT_TRUE(env_.checked_listen.empty());
}

TEST_F(DemoTest, BusyPortStartsNothing) {
  env_.can_listen = AlreadyExists("127.0.0.1:18080 is already in use");
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_TRUE(launcher_.events().empty());
  EXPECT_NE(err_.str().find("medic demo: 127.0.0.1:18080 is already in use (is another medic "
                            "demo running? choose --listen)"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(out_.str(), "");
}

TEST_F(DemoTest, ServerDyingAtStartIsReportedWithItsLog) {
  launcher_.on_start = [](int, FakeLauncher::Proc& p) {
    std::ofstream(p.log) << "starting\nlisten 127.0.0.1:18080: address already in use\n";
    p.exited = true;
  };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_EQ(launcher_.events(), (std::vector<std::string>{"start server"}));
  EXPECT_NE(err_.str().find("medic demo: medic-server exited during start-up"), std::string::npos)
      << err_.str();
  EXPECT_NE(err_.str().find("  listen 127.0.0.1:18080: address already in use\n"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(out_.str(), "");
}

TEST_F(DemoTest, ServerNeverAnsweringTimesOut) {
  env_.http.SetHandler(
      [](const HttpRequest&) -> Result<HttpResponse> { return Unavailable("connection refused"); });
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_NE(err_.str().find("did not answer http://127.0.0.1:18080/healthz within 3 s"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(launcher_.events(), (std::vector<std::string>{"start server", "TERM server"}));
}

TEST_F(DemoTest, HostNeverHealthyTimesOutNamingItAndStopsEverything) {
  options_.hosts = 2;
  host_status_ = "unhealthy";
  host_checks_ =
      Json::array({{{"name", "web"}, {"healthy", false}, {"detail", "connection refused"}}});
  const auto start_server = launcher_.on_start;
  launcher_.on_start = [&](int pid, FakeLauncher::Proc& p) {
    start_server(pid, p);
    if (p.label != "server") {
      std::ofstream(p.log) << "nginx: [emerg] bind() failed\n";
    }
  };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  const std::string err = err_.str();
  EXPECT_NE(err.find("not every host became healthy within 8 s: web-1 (unhealthy: check web "
                     "failing (connection refused)) web-2 (unhealthy"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("last lines of " + Data() +
                     "/hosts/web-1/log/agent.log:\n  nginx: [emerg] "
                     "bind() failed\n"),
            std::string::npos)
      << err;
  EXPECT_EQ(launcher_.events(),
            (std::vector<std::string>{"start server", "start agent web-1", "start agent web-2",
                                      "TERM agent web-1", "TERM agent web-2", "TERM server"}));
  EXPECT_EQ(out_.str(), "");
}

TEST_F(DemoTest, AgentDyingAtStartIsReported) {
  const auto start_server = launcher_.on_start;
  launcher_.on_start = [&](int pid, FakeLauncher::Proc& p) {
    start_server(pid, p);
    if (p.label != "server") {
      std::ofstream(p.log) << "agent.yaml: unknown key\n";
      p.exited = true;
    }
  };
  host_status_ = "unhealthy";
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_NE(err_.str().find("medic-agent of web-1 exited; last lines of"), std::string::npos)
      << err_.str();
  EXPECT_NE(err_.str().find("  agent.yaml: unknown key\n"), std::string::npos) << err_.str();
}

TEST_F(DemoTest, InterruptDuringStartStopsWhatWasStarted) {
  host_status_ = "unhealthy";
  env_.stop_when = [this] { return env_.waits >= 3; };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 130);
  EXPECT_EQ(launcher_.events(), (std::vector<std::string>{"start server", "start agent web-1",
                                                          "TERM agent web-1", "TERM server"}));
  EXPECT_EQ(out_.str(), "");
}

TEST_F(DemoTest, StragglersGetTheirProcessGroupKilled) {
  const auto start_server = launcher_.on_start;
  launcher_.on_start = [&](int pid, FakeLauncher::Proc& p) {
    start_server(pid, p);
    p.ignores_term = true;
  };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_EQ(launcher_.events(), (std::vector<std::string>{
                                    "start server", "start agent web-1", "TERM agent web-1",
                                    "KILL group agent web-1", "TERM server", "KILL group server"}));
}

TEST_F(DemoTest, ServerDyingWhileRunningEndsTheDemoWithAnError) {
  env_.stop_when = nullptr;
  Demo demo = MakeDemo();
  ASSERT_TRUE(demo.Start().has_value()) << err_.str();
  // The server crashes after the demo is ready.
  launcher_.Signal(server_pid_, SIGKILL, false);
  Status waited = demo.Wait();
  ASSERT_FALSE(waited.has_value());
  EXPECT_NE(waited.error().message.find("medic-server exited unexpectedly"), std::string::npos);
  demo.Stop();
  EXPECT_EQ(launcher_.events().back(), "TERM agent web-1");
}

TEST_F(DemoTest, LeftoverNginxIsKilledAndRunFilesRemoved) {
  const auto start_server = launcher_.on_start;
  launcher_.on_start = [&](int pid, FakeLauncher::Proc& p) {
    start_server(pid, p);
    if (p.label != "server") {
      // The "agent" started nginx, which wrote its pid file.
      const std::string pidfile = fs::path(p.argv[2]).parent_path().string() + "/run/nginx.pid";
      std::ofstream(pidfile) << "500\n";
      procs_.SetFile(pidfile, "500\n");
      procs_.AddProcess(500, "nginx", 'S', 1, 500);
      procs_.AddProcess(501, "nginx", 'S', 500, 500);
    }
  };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_EQ(procs_.signals(),
            (std::vector<std::pair<int, int>>{
                {500, SIGSTOP}, {501, SIGKILL}, {500, SIGKILL}, {-500, SIGKILL}}));
  EXPECT_FALSE(fs::exists(Data() + "/hosts/web-1/run/nginx.pid"));
  EXPECT_TRUE(fs::is_directory(Data() + "/hosts/web-1/run"));
  EXPECT_TRUE(fs::exists(Data() + "/hosts/web-1/agent.yaml"));
  EXPECT_TRUE(fs::exists(Data() + "/server/admin.token"));
}

TEST_F(DemoTest, StaleRunFilesAreClearedAtStart) {
  const std::string run = Data() + "/hosts/web-1/run";
  ASSERT_TRUE(MakeDirs(run).has_value());
  std::ofstream(run + "/nginx.pid") << "12345\n";
  procs_.AddProcess(12345, "nginx", 'S', 1, 12345);
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_TRUE(procs_.signals().empty());  // a stale pid file never leads to a kill
  EXPECT_FALSE(fs::exists(run + "/nginx.pid"));
}

TEST(HostsNotHealthyTest, NamesWhatIsMissingOrUnhealthy) {
  const Json body = ParseJson(R"j({"hosts":[
      {"name":"web-1","status":"healthy"},
      {"name":"web-2","status":"stale"},
      {"name":"web-3","status":"unhealthy","checks":[{"name":"web","healthy":false,"detail":"HTTP 502"}]}]})j")
                        .value();
  EXPECT_EQ(
      HostsNotHealthy(body, {"web-1", "web-2", "web-3", "web-4"}),
      (std::vector<std::string>{"web-2 (stale)", "web-3 (unhealthy: check web failing (HTTP 502))",
                                "web-4 (not registered)"}));
  EXPECT_TRUE(HostsNotHealthy(body, {"web-1"}).empty());
  EXPECT_EQ(HostsNotHealthy(Json::object(), {"web-1"}),
            (std::vector<std::string>{"web-1 (not registered)"}));
}

}  // namespace
}  // namespace medic::cli
