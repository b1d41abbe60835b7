// medic demo's orchestration against a fake launcher, a fake HTTP "server" and fake signals:
// what it starts, in which order, what it prints, and that it stops everything it started.

#include "cli/demo.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/files.h"
#include "fake_http_client.h"
#include "host/proc_parsers.h"
#include "tests/fakes/proc_fs.h"

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

  // Records an event of something else (the fake isolation) on the same timeline.
  void Note(const std::string& event) { events_.push_back(event); }

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

// Mounts and cgroups that exist only as events on the launcher's timeline, named by host:
// "mount web-1", "cgroup web-1", "enter cgroup web-1", "remove cgroup web-1", "unmount web-1".
class FakeIsolation : public HostIsolation {
 public:
  explicit FakeIsolation(FakeLauncher& launcher) : launcher_(launcher) {}

  Status MountTmpfs(const std::string& dir, uint64_t size_bytes) override {
    if (!mount_result.has_value()) {
      return mount_result;
    }
    launcher_.Note("mount " + Host(dir) + " " + std::to_string(size_bytes >> 20) + "M");
    mounted.insert(dir);
    return OkStatus();
  }
  Status Unmount(const std::string& dir) override {
    launcher_.Note("unmount " + Host(dir));
    mounted.erase(dir);
    return OkStatus();
  }
  Result<std::string> CreateMemoryCgroup(const std::string& name, uint64_t limit) override {
    if (!cgroup_result.has_value()) {
      return cgroup_result.error();
    }
    const std::string dir = "/sys/fs/cgroup/memory/medic/" + name;
    launcher_.Note("cgroup " + Host(dir) + " " + std::to_string(limit >> 20) + "M");
    cgroups.insert(dir);
    return dir;
  }
  Result<int> StartInCgroup(const std::string& dir,
                            const std::function<Result<int>()>& start) override {
    launcher_.Note("enter cgroup " + Host(dir));
    Result<int> r = start();
    launcher_.Note("leave cgroup " + Host(dir));
    return r;
  }
  Status RemoveCgroup(const std::string& dir) override {
    launcher_.Note("remove cgroup " + Host(dir));
    cgroups.erase(dir);
    return OkStatus();
  }

  Status mount_result = OkStatus();
  Status cgroup_result = OkStatus();
  std::set<std::string> mounted;
  std::set<std::string> cgroups;

 private:
  // ".../hosts/web-1/log" -> "web-1"; ".../medic-demo-123-web-1" -> "web-1"
  static std::string Host(const std::string& path) {
    const size_t web = path.rfind("web-");
    const std::string rest = path.substr(web);
    return rest.substr(0, rest.find('/'));
  }
  FakeLauncher& launcher_;
};

// Namespaces and relays as events on the launcher's timeline: "hub NS", "host NS LINK ADDR",
// "enter NS", "leave NS", "forward NS HOST:PORT -> NS HOST:PORT", "stop forwarding",
// "delete NS". Unavailable by default (as without root): the hosts then stay on loopback.
class FakeNetwork : public DemoNetwork {
 public:
  explicit FakeNetwork(FakeLauncher& launcher) : launcher_(launcher) {}

  Status CreateHub(const std::string& hub) override {
    if (!available) {
      return PermissionDenied("network namespaces need root");
    }
    launcher_.Note("hub " + hub);
    namespaces.insert(hub);
    return OkStatus();
  }
  Status CreateHost(const std::string& /*hub*/, const std::string& ns, const std::string& link,
                    const std::string& address) override {
    launcher_.Note("host " + ns + " " + link + " " + address);
    namespaces.insert(ns);
    return OkStatus();
  }
  Status DeleteNamespace(const std::string& ns) override {
    if (namespaces.count(ns) == 0) {
      return OkStatus();  // as `ip netns del` of a namespace that is not there is not asked
    }
    launcher_.Note("delete " + ns);
    namespaces.erase(ns);
    return OkStatus();
  }
  Result<int> StartIn(const std::string& ns, const std::function<Result<int>()>& start) override {
    launcher_.Note("enter " + ns);
    Result<int> r = start();
    launcher_.Note("leave " + ns);
    return r;
  }
  Result<int> Forward(const std::string& listen_ns, const HostPort& listen,
                      const std::string& to_ns, const HostPort& to) override {
    const int port = next_port++;
    launcher_.Note("forward " + (listen_ns.empty() ? "root" : listen_ns) + " " +
                   HostPort{listen.host, port}.ToString() + " -> " +
                   (to_ns.empty() ? "root" : to_ns) + " " + to.ToString());
    return port;
  }
  void StopForwarding() override {
    if (available) {
      launcher_.Note("stop forwarding");
    }
  }

  bool available = false;
  int next_port = 50001;
  std::set<std::string> namespaces;

 private:
  FakeLauncher& launcher_;
};

class FakeDemoEnv : public DemoEnv {
 public:
  explicit FakeDemoEnv(FakeLauncher& launcher) : isolation(launcher), network(launcher) {}

  HttpClient& Http() override { return http; }
  Result<int> FreeLoopbackPort() override { return next_port++; }
  Status CheckCanListen(const HostPort& addr) override {
    checked_listen.push_back(addr.ToString());
    return can_listen;
  }
  SteadyTime Now() override { return now; }
  // Moves with `now`, from 2026-12-07T12:00:00Z.
  WallTime WallNow() override {
    return WallTime(std::chrono::seconds(1'796'644'800)) +
           std::chrono::duration_cast<WallTime::duration>(now - SteadyTime{});
  }
  HostIsolation& Isolation() override { return isolation; }
  DemoNetwork& Network() override { return network; }

  std::unique_ptr<LoadProbe> StartProbe(const std::string& url) override {
    probes.push_back(url);
    return std::make_unique<CountedProbe>(probe_counts);
  }

  // A probe that counted `counts`.
  class CountedProbe : public LoadProbe {
   public:
    explicit CountedProbe(ProbeCounts counts) : counts_(counts) {}
    ProbeCounts Finish() override { return counts_; }

   private:
    ProbeCounts counts_;
  };
  std::vector<std::string> probes;
  ProbeCounts probe_counts{40, 0, ""};
  bool WaitForStop(Millis d) override {
    now += d;
    ++waits;
    if (!stop && stop_when && stop_when()) {
      stop = true;
    }
    return stop;
  }

  FakeHttpClient http;
  FakeIsolation isolation;
  FakeNetwork network;
  int next_port = 40001;
  Status can_listen = OkStatus();
  std::vector<std::string> checked_listen;
  SteadyTime now{};
  int waits = 0;
  bool stop = false;
  std::function<bool()> stop_when;
};

// `events` without those that start with one of `prefixes`.
std::vector<std::string> Without(const std::vector<std::string>& events,
                                 std::initializer_list<std::string_view> prefixes) {
  std::vector<std::string> out;
  for (const std::string& e : events) {
    bool drop = false;
    for (const std::string_view p : prefixes) {
      drop = drop || e.rfind(p, 0) == 0;
    }
    if (!drop) {
      out.push_back(e);
    }
  }
  return out;
}
template <typename... P>
std::vector<std::string> Without(const std::vector<std::string>& events, P... prefixes) {
  return Without(events, {std::string_view(prefixes)...});
}

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
    options_.hosts = 1;  // the default is 2 (DefaultsToTwoHosts); most tests need one
    options_.healthy_timeout = Millis(3'000);
    options_.server_start_timeout = Millis(3'000);
    options_.lb_start_timeout = Millis(3'000);

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
    base_handler_ = [this](const HttpRequest& r) -> Result<HttpResponse> {
      if (r.url == "http://127.0.0.1:18080/healthz") {
        return HttpResponse{200, "ok", "text/plain"};
      }
      if (r.url == "http://127.0.0.1:18080/api/v1/settings" && r.method == "PUT") {
        return HttpResponse{200, R"j({"approval_mode":false})j", "application/json"};
      }
      if (r.url == "http://127.0.0.1:18080/api/v1/session/codes" && r.method == "POST") {
        sign_in_requests_.push_back(r);
        if (!codes_available_) {
          return HttpResponse{404, R"j({"error":"no route"})j", "application/json"};
        }
        return HttpResponse{201, R"j({"code":"c0de","expires_at":"2026-12-06T12:00:00.000Z"})j",
                            "application/json"};
      }
      if (r.method == "POST" && r.url.rfind("http://127.0.0.1:18080/api/v1/hosts/", 0) == 0 &&
          r.url.size() > 7 && r.url.substr(r.url.size() - 7) == "/enroll") {
        const std::string name = r.url.substr(36, r.url.size() - 7 - 36);
        return HttpResponse{201, DumpJson(Json{{"name", name}, {"code", "c0de-" + name}}),
                            "application/json"};
      }
      // The load balancer (any other loopback port): what lb_answer_ says.
      if (r.url.rfind("http://127.0.0.1:18080/", 0) != 0 &&
          r.url.rfind("http://127.0.0.1:", 0) == 0 && r.url.size() > 7 &&
          r.url.substr(r.url.size() - 7) == "/health") {
        lb_requests_.push_back(r.url);
        return lb_answer_;
      }
      if (r.url == "http://127.0.0.1:18080/api/v1/hosts") {
        Json hosts = Json::array();
        for (const std::string& name : registered_) {
          hosts.push_back({{"name", name}, {"status", host_status_}, {"checks", host_checks_}});
        }
        return HttpResponse{200, DumpJson(Json{{"hosts", hosts}}), "application/json"};
      }
      return HttpResponse{404, R"j({"error":"no route"})j", "application/json"};
    };
    env_.http.SetHandler(base_handler_);
    env_.stop_when = [this] { return out_.str().find("medic demo ready") != std::string::npos; };
  }
  void TearDown() override { fs::remove_all(dir_); }

  Demo MakeDemo() {
    return Demo(
        options_, launcher_, env_, procfs_,
        [this](int pid, int sig) {
          signals_.emplace_back(pid, sig);
          return OkStatus();
        },
        out_, err_);
  }
  std::string Data() const { return fs::path(options_.data_dir).lexically_normal().string(); }

  std::string dir_;
  DemoOptions options_;
  FakeLauncher launcher_;
  FakeDemoEnv env_{launcher_};
  host::testing::FakeProcFs procfs_;
  std::vector<std::pair<int, int>> signals_;  // what CrashNginx sent: {pid, signal}
  std::ostringstream out_;
  std::ostringstream err_;
  int server_pid_ = 0;
  std::vector<HttpRequest> sign_in_requests_;
  bool codes_available_ = true;
  std::vector<std::string> registered_;
  std::string host_status_ = "healthy";
  Json host_checks_ = Json::array({{{"name", "web"}, {"healthy", true}}});
  Result<HttpResponse> lb_answer_ = HttpResponse{200, R"j({"status":"ok"})j", "application/json"};
  std::function<Result<HttpResponse>(const HttpRequest&)> base_handler_;
  std::vector<std::string> lb_requests_;
};

TEST(DemoOptionsTest, DefaultsToTwoHosts) { EXPECT_EQ(DemoOptions{}.hosts, 2); }

TEST_F(DemoTest, WithoutASignInCodeTheReadyLineStandsAlone) {
  codes_available_ = false;
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_EQ(out_.str(), "medic demo ready: http://127.0.0.1:18080/ token-file " + Data() +
                            "/server/admin.token load-balancer http://127.0.0.1:40003/\n");
  EXPECT_NE(err_.str().find("no sign-in link"), std::string::npos) << err_.str();
}

TEST_F(DemoTest, StartsServerThenHostsPrintsReadyAndStopsInReverse) {
  options_.hosts = 2;
  options_.auto_approve = true;
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();

  EXPECT_EQ(out_.str(), "medic demo ready: http://127.0.0.1:18080/ token-file " + Data() +
                            "/server/admin.token load-balancer http://127.0.0.1:40005/\n"
                            "sign in: http://127.0.0.1:18080/#code=c0de\n");
  // The code was asked for with the admin token; the token is in no URL.
  ASSERT_EQ(sign_in_requests_.size(), 1u);
  EXPECT_NE(std::find(sign_in_requests_[0].headers.begin(), sign_in_requests_[0].headers.end(),
                      std::pair<std::string, std::string>{"Authorization", "Bearer admin-secret"}),
            sign_in_requests_[0].headers.end());
  EXPECT_EQ(out_.str().find("admin-secret"), std::string::npos);
  // Each agent starts inside its host's memory cgroup, with the host's log volume mounted; the
  // load balancer (nginx) after the hosts, outside their cgroups; it stops first, the cgroups go
  // once the agents have stopped, the volumes last.
  EXPECT_EQ(launcher_.events(),
            (std::vector<std::string>{
                "start server", "mount web-1 32M", "cgroup web-1 256M", "enter cgroup web-1",
                "start agent web-1", "leave cgroup web-1", "mount web-2 32M", "cgroup web-2 256M",
                "enter cgroup web-2", "start agent web-2", "leave cgroup web-2", "start nginx",
                "TERM nginx", "TERM agent web-1", "TERM agent web-2", "remove cgroup web-1",
                "remove cgroup web-2", "TERM server", "unmount web-1", "unmount web-2"}));
  EXPECT_TRUE(env_.isolation.mounted.empty());
  EXPECT_TRUE(env_.isolation.cgroups.empty());
  const auto procs = launcher_.procs();
  ASSERT_EQ(procs.size(), 4u);
  EXPECT_EQ(procs[0].argv,
            (std::vector<std::string>{"/opt/medic/bin/medic-server", "--listen", "127.0.0.1:18080",
                                      "--data-dir", Data() + "/server", "--config",
                                      Data() + "/server/server.yaml"}));
  // The server's config gives both hosts their log directory and chaos.
  const std::string server_yaml = ReadFile(Data() + "/server/server.yaml").value();
  for (const std::string host : {"web-1", "web-2"}) {
    EXPECT_NE(server_yaml.find(host + ": {log_dir: \"" + Data() + "/hosts/" + host +
                               "/log\", chaos_allowed: true}"),
              std::string::npos)
        << server_yaml;
  }
  EXPECT_EQ(procs[0].log, Data() + "/server/server.log");
  EXPECT_EQ(procs[1].argv, (std::vector<std::string>{"/opt/medic/bin/medic-agent", "--config",
                                                     Data() + "/hosts/web-1/agent.yaml"}));
  EXPECT_EQ(procs[1].log, Data() + "/hosts/web-1/agent.log");
  EXPECT_EQ(procs[2].argv[2], Data() + "/hosts/web-2/agent.yaml");

  // Each host has its own ports in its nginx.conf and agent.yaml.
  const std::string conf1 = ReadFile(Data() + "/hosts/web-1/nginx.conf").value();
  EXPECT_NE(conf1.find("listen 127.0.0.1:40001;"), std::string::npos);
  EXPECT_NE(conf1.find("proxy_pass http://127.0.0.1:40002;"), std::string::npos);
  const std::string conf2 = ReadFile(Data() + "/hosts/web-2/nginx.conf").value();
  EXPECT_NE(conf2.find("listen 127.0.0.1:40003;"), std::string::npos);
  const std::string yaml1 = ReadFile(Data() + "/hosts/web-1/agent.yaml").value();
  // Each host enrols with its own code, made with the admin token.
  EXPECT_NE(yaml1.find("enroll_code: \"c0de-web-1\""), std::string::npos) << yaml1;
  EXPECT_NE(ReadFile(Data() + "/hosts/web-2/agent.yaml").value().find("c0de-web-2"),
            std::string::npos);
  EXPECT_EQ(yaml1.find("agent.token"), std::string::npos) << yaml1;
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

// The front load balancer: nginx with its own files under DATA_DIR/lb, balancing over every
// host's nginx, started once the hosts are healthy and ready once it answers /health itself.
TEST_F(DemoTest, LoadBalancerFrontsEveryHostAndAnswersBeforeTheReadyLine) {
  options_.hosts = 2;
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  const auto procs = launcher_.procs();
  ASSERT_EQ(procs.size(), 4u);
  const FakeLauncher::Proc& lb = procs[3];
  EXPECT_EQ(lb.label, "nginx");
  EXPECT_EQ(lb.argv, (std::vector<std::string>{"/usr/sbin/nginx", "-p", Data() + "/lb/", "-e",
                                               Data() + "/lb/log/error.log", "-c",
                                               Data() + "/lb/nginx.conf", "-g", "daemon off;"}));
  EXPECT_EQ(lb.log, Data() + "/lb/nginx.out.log");
  const std::string conf = ReadFile(Data() + "/lb/nginx.conf").value();
  EXPECT_NE(conf.find("    listen 127.0.0.1:40005;\n"), std::string::npos) << conf;
  EXPECT_NE(conf.find("    server 127.0.0.1:40001 max_fails=1 fail_timeout=2s;\n"
                      "    server 127.0.0.1:40003 max_fails=1 fail_timeout=2s;\n"),
            std::string::npos)
      << conf;
  for (const std::string_view d : {"/lb/log", "/lb/run", "/lb/tmp"}) {
    EXPECT_TRUE(fs::is_directory(Data() + std::string(d))) << d;
  }
  EXPECT_EQ(lb_requests_, (std::vector<std::string>{"http://127.0.0.1:40005/health"}));
  EXPECT_EQ(demo.lb_url(), "http://127.0.0.1:40005");
  EXPECT_NE(err_.str().find("medic demo: starting the load balancer (nginx 127.0.0.1:40005 -> "
                            "127.0.0.1:40001, 127.0.0.1:40003, log " +
                            Data() + "/lb/log)"),
            std::string::npos)
      << err_.str();
  EXPECT_NE(err_.str().find("curl http://127.0.0.1:40005/health    # the load balancer in front "
                            "of web-1 web-2\n"),
            std::string::npos)
      << err_.str();
}

TEST_F(DemoTest, LoadBalancerNeverAnsweringFailsTheStartAndStopsIt) {
  lb_answer_ = HttpResponse{502, "bad gateway", "text/html"};
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_NE(err_.str().find("medic demo: the load balancer did not answer GET "
                            "http://127.0.0.1:40003/health with 200 within 3 s (last answer 502)"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(Without(launcher_.events(), "mount", "cgroup", "enter", "leave", "remove", "unmount"),
            (std::vector<std::string>{"start server", "start agent web-1", "start nginx",
                                      "TERM nginx", "TERM agent web-1", "TERM server"}));
  EXPECT_EQ(out_.str(), "");
}

TEST_F(DemoTest, LoadBalancerExitingAtStartIsReportedWithItsLog) {
  const auto start_server = launcher_.on_start;
  launcher_.on_start = [&](int pid, FakeLauncher::Proc& p) {
    start_server(pid, p);
    if (p.label == "nginx") {
      std::ofstream(p.log) << "nginx: [emerg] bind() to 127.0.0.1:40003 failed\n";
      p.exited = true;
    }
  };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_NE(err_.str().find("medic demo: the load balancer (nginx) exited at start; last lines of " +
                            Data() + "/lb/nginx.out.log:\n  nginx: [emerg] bind() to "
                            "127.0.0.1:40003 failed\n"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(out_.str(), "");
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
                     "/hosts/web-1/agent.log:\n  nginx: [emerg] "
                     "bind() failed\n"),
            std::string::npos)
      << err;
  EXPECT_EQ(Without(launcher_.events(), "enter cgroup", "leave cgroup"),
            (std::vector<std::string>{"start server", "mount web-1 32M", "cgroup web-1 256M",
                                      "start agent web-1", "mount web-2 32M", "cgroup web-2 256M",
                                      "start agent web-2", "TERM agent web-1", "TERM agent web-2",
                                      "remove cgroup web-1", "remove cgroup web-2", "TERM server",
                                      "unmount web-1", "unmount web-2"}));
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
  EXPECT_EQ(Without(launcher_.events(), "enter cgroup", "leave cgroup"),
            (std::vector<std::string>{"start server", "mount web-1 32M", "cgroup web-1 256M",
                                      "start agent web-1", "TERM agent web-1",
                                      "remove cgroup web-1", "TERM server", "unmount web-1"}));
  EXPECT_TRUE(env_.isolation.mounted.empty());
  EXPECT_TRUE(env_.isolation.cgroups.empty());
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
  EXPECT_EQ(
      Without(launcher_.events(), "mount", "cgroup", "enter", "leave", "remove", "unmount"),
      (std::vector<std::string>{"start server", "start agent web-1", "start nginx", "TERM nginx",
                                "KILL group nginx", "TERM agent web-1", "KILL group agent web-1",
                                "TERM server", "KILL group server"}));
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
  const std::vector<std::string> events = launcher_.events();
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(std::vector<std::string>(events.end() - 3, events.end()),
            (std::vector<std::string>{"TERM agent web-1", "remove cgroup web-1", "unmount web-1"}));
}

TEST_F(DemoTest, LoadBalancerDyingWhileRunningIsReportedOnce) {
  int lb_pid = 0;
  const auto start_server = launcher_.on_start;
  launcher_.on_start = [&](int pid, FakeLauncher::Proc& p) {
    start_server(pid, p);
    if (p.label == "nginx") {
      lb_pid = pid;
    }
  };
  // The load balancer dies once the demo is ready; the demo goes on until the stop signal.
  int polls_after_ready = 0;
  env_.stop_when = [&] {
    if (out_.str().find("medic demo ready") == std::string::npos) {
      return false;
    }
    if (++polls_after_ready == 1) {
      launcher_.Signal(lb_pid, SIGKILL, false);
    }
    return polls_after_ready >= 5;
  };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  const std::string err = err_.str();
  const std::string line = "medic demo: the load balancer (nginx) exited; see " + Data() +
                           "/lb/nginx.out.log and " + Data() + "/lb/log/error.log\n";
  ASSERT_NE(err.find(line), std::string::npos) << err;
  EXPECT_EQ(err.find(line, err.find(line) + 1), std::string::npos) << "once: " << err;
}

TEST_F(DemoTest, LeftoverNginxIsKilledAndRunFilesRemoved) {
  const auto start_server = launcher_.on_start;
  launcher_.on_start = [&](int pid, FakeLauncher::Proc& p) {
    start_server(pid, p);
    if (p.label.rfind("agent ", 0) == 0) {
      // The "agent" started nginx, which wrote its pid file.
      const std::string pidfile = fs::path(p.argv[2]).parent_path().string() + "/run/nginx.pid";
      std::ofstream(pidfile) << "500\n";
      procfs_.SetFile(pidfile, "500\n");
      procfs_.AddProcess({.pid = 500, .comm = "nginx", .state = 'S', .ppid = 1, .pgrp = 500});
      procfs_.AddProcess({.pid = 501, .comm = "nginx", .state = 'S', .ppid = 500, .pgrp = 500});
    }
  };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_EQ(signals_, (std::vector<std::pair<int, int>>{
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
  procfs_.AddProcess({.pid = 12345, .comm = "nginx", .state = 'S', .ppid = 1, .pgrp = 12345});
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_TRUE(signals_.empty());  // a stale pid file never leads to a kill
  EXPECT_FALSE(fs::exists(run + "/nginx.pid"));
}

TEST_F(DemoTest, IsolatedHostsAllowEveryChaosModeBoundedByTheirLogVolume) {
  env_.network.available = true;
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  ASSERT_EQ(demo.hosts().size(), 1u);
  const DemoHost& h = demo.hosts()[0];
  EXPECT_TRUE(h.isolated);
  EXPECT_EQ(h.cgroup,
            "/sys/fs/cgroup/memory/medic/medic-demo-" + std::to_string(::getpid()) + "-web-1");
  const std::string yaml = ReadFile(Data() + "/hosts/web-1/agent.yaml").value();
  EXPECT_NE(yaml.find("chaos_max_fill_bytes: 33554432"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("chaos_max_oom_bytes: 268435456"), std::string::npos) << yaml;
  EXPECT_NE(err_.str().find("log volume " + Data() +
                            "/hosts/web-1/log (tmpfs 32 MiB), memory "
                            "cgroup " +
                            h.cgroup + " (256 MiB)"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(err_.str().find("warning"), std::string::npos) << err_.str();
}

TEST_F(DemoTest, WithoutMountsHostsFallBackToPlainDirsWithOneWarningAndOnlyNginxCrash) {
  options_.hosts = 2;
  env_.isolation.mount_result = PermissionDenied("mounting a tmpfs needs root");
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_EQ(launcher_.events(),
            (std::vector<std::string>{"start server", "start agent web-1", "start agent web-2",
                                      "start nginx", "TERM nginx", "TERM agent web-1",
                                      "TERM agent web-2", "TERM server"}));
  const std::string err = err_.str();
  const std::string warning =
      "medic demo: warning: cannot give the demo hosts a tmpfs log volume and a memory cgroup "
      "(mounting a tmpfs needs root); they use plain directories and no memory limit, so only "
      "nginx-crash chaos is allowed on them\n";
  EXPECT_NE(err.find(warning), std::string::npos) << err;
  EXPECT_EQ(err.find("a tmpfs log volume", err.find(warning) + warning.size()), std::string::npos)
      << err;
  for (const std::string host : {"web-1", "web-2"}) {
    const std::string yaml = ReadFile(Data() + "/hosts/" + host + "/agent.yaml").value();
    EXPECT_NE(yaml.find("chaos_max_fill_bytes: 1\n"), std::string::npos) << yaml;
    EXPECT_NE(yaml.find("chaos_max_oom_bytes: 1\n"), std::string::npos) << yaml;
  }
  EXPECT_FALSE(demo.hosts()[0].isolated);
}

TEST_F(DemoTest, CgroupFailureUndoesTheMountAndFallsBack) {
  env_.isolation.cgroup_result = NotFound("no cgroup v1 memory controller in /proc/self/cgroup");
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_EQ(launcher_.events(),
            (std::vector<std::string>{"start server", "mount web-1 32M", "unmount web-1",
                                      "start agent web-1", "start nginx", "TERM nginx",
                                      "TERM agent web-1", "TERM server"}));
  EXPECT_NE(err_.str().find("(no cgroup v1 memory controller in /proc/self/cgroup); they use "
                            "plain directories"),
            std::string::npos)
      << err_.str();
  const std::string yaml = ReadFile(Data() + "/hosts/web-1/agent.yaml").value();
  EXPECT_NE(yaml.find("chaos_max_fill_bytes: 1\n"), std::string::npos) << yaml;
}

TEST_F(DemoTest, AgentFailingToStartStillLeavesNoMountOrCgroup) {
  const auto start_server = launcher_.on_start;
  launcher_.on_start = [&](int pid, FakeLauncher::Proc& p) {
    start_server(pid, p);
    if (p.label != "server") {
      p.exited = true;
    }
  };
  host_status_ = "unhealthy";
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_TRUE(env_.isolation.mounted.empty());
  EXPECT_TRUE(env_.isolation.cgroups.empty());
  EXPECT_EQ(launcher_.events().back(), "unmount web-1");
}

// As root: a hub namespace with the relay to the server, each host in a namespace of its own
// (its agent started inside it and inside its cgroup), everything removed in reverse.
TEST_F(DemoTest, EachHostRunsInANetworkNamespaceOfItsOwnBehindTheHub) {
  options_.hosts = 2;
  env_.network.available = true;
  const std::string p = std::to_string(::getpid());
  const std::string hub = "medic-demo-" + p;
  Json demo_json;
  std::string state_while_running;
  env_.stop_when = [&] {
    if (out_.str().find("medic demo ready") == std::string::npos) {
      return false;
    }
    demo_json = ParseJson(ReadFile(Data() + "/demo.json").value_or("")).value_or(Json());
    state_while_running = ReadFile(Data() + "/demo-state.json").value_or("");
    return true;
  };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_EQ(launcher_.events(),
            (std::vector<std::string>{
                "start server", "hub " + hub,
                "forward " + hub + " 10.77.0.1:50001 -> root 127.0.0.1:18080",
                "host " + hub + "-web-1 web-1 10.77.0.11",
                "forward root 127.0.0.1:50002 -> " + hub + "-web-1 127.0.0.1:80",
                "mount web-1 32M", "cgroup web-1 256M",
                "enter " + hub + "-web-1", "enter cgroup web-1", "start agent web-1",
                "leave cgroup web-1", "leave " + hub + "-web-1",
                "host " + hub + "-web-2 web-2 10.77.0.12",
                "forward root 127.0.0.1:50003 -> " + hub + "-web-2 127.0.0.1:80",
                "mount web-2 32M", "cgroup web-2 256M",
                "enter " + hub + "-web-2", "enter cgroup web-2", "start agent web-2",
                "leave cgroup web-2", "leave " + hub + "-web-2",
                // The load balancer in the hub, reached from loopback through the relay.
                "enter " + hub, "start nginx", "leave " + hub,
                "forward root 127.0.0.1:50004 -> " + hub + " 10.77.0.1:80", "TERM nginx",
                "TERM agent web-1", "TERM agent web-2", "remove cgroup web-1",
                "remove cgroup web-2", "TERM server", "stop forwarding", "delete " + hub + "-web-2", "delete " + hub + "-web-1",
                "delete " + hub, "unmount web-1", "unmount web-2"}));
  EXPECT_TRUE(env_.network.namespaces.empty());
  // The agents reach the server through the relay at the hub's address.
  const std::string yaml = ReadFile(Data() + "/hosts/web-2/agent.yaml").value();
  EXPECT_NE(yaml.find("server: \"http://10.77.0.1:50001\""), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("url: \"http://127.0.0.1:80/health\""), std::string::npos) << yaml;
  // Its `web` target, which the server probes from the root namespace: the relay to its nginx.
  EXPECT_NE(yaml.find("{group: web, url: \"http://127.0.0.1:50003/health\"}"), std::string::npos)
      << yaml;
  const std::string conf = ReadFile(Data() + "/hosts/web-2/nginx.conf").value();
  EXPECT_NE(conf.find("listen 10.77.0.12:80;"), std::string::npos) << conf;
  // demo.json told tools where each host is while the demo ran; both files go at the stop.
  ASSERT_TRUE(demo_json.is_object()) << err_.str();
  EXPECT_EQ(demo_json["hub_namespace"], hub);
  ASSERT_EQ(demo_json["hosts"].size(), 2u);
  EXPECT_EQ(demo_json["hosts"][1]["namespace"], hub + "-web-2");
  EXPECT_EQ(demo_json["hosts"][1]["address"], "10.77.0.12");
  EXPECT_EQ(demo_json["hosts"][1]["nginx_url"], "http://10.77.0.12:80/");
  Result<DemoState> state = ParseDemoState(state_while_running);
  ASSERT_TRUE(state.has_value()) << state_while_running;
  EXPECT_EQ(state->pid, ::getpid());
  EXPECT_EQ(state->namespaces,
            (std::vector<std::string>{hub, hub + "-web-1", hub + "-web-2"}));
  EXPECT_EQ(state->mounts, (std::vector<std::string>{Data() + "/hosts/web-1/log",
                                                     Data() + "/hosts/web-2/log"}));
  EXPECT_EQ(state->cgroups.size(), 2u);
  ASSERT_EQ(state->processes.size(), 4u);
  EXPECT_EQ(state->processes[0].what, "medic-server");
  EXPECT_EQ(state->processes[2].what, "medic-agent web-2");
  EXPECT_EQ(state->processes[3].what, "load balancer");
  EXPECT_NE(out_.str().find(" load-balancer http://127.0.0.1:50004/\n"), std::string::npos)
      << out_.str();
  EXPECT_EQ(demo_json["load_balancer"], "http://127.0.0.1:50004");
  const std::string lb_conf = ReadFile(Data() + "/lb/nginx.conf").value_or("");
  EXPECT_NE(lb_conf.find("listen 10.77.0.1:80;"), std::string::npos) << lb_conf;
  EXPECT_NE(lb_conf.find("server 10.77.0.11:80 "), std::string::npos) << lb_conf;
  EXPECT_NE(lb_conf.find("server 10.77.0.12:80 "), std::string::npos) << lb_conf;
  EXPECT_FALSE(PathExists(Data() + "/demo.json"));
  EXPECT_FALSE(PathExists(Data() + "/demo-state.json"));
}

TEST_F(DemoTest, WithoutNamespacesHostsStayOnLoopbackWithOneWarning) {
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  const std::string err = err_.str();
  const std::string warning =
      "medic demo: warning: cannot give the demo hosts network namespaces of their own (network "
      "namespaces need root); they run on this machine's loopback\n";
  EXPECT_NE(err.find(warning), std::string::npos) << err;
  EXPECT_EQ(err.find("network namespaces", err.find(warning) + warning.size()),
            std::string::npos)
      << err;
  EXPECT_TRUE(demo.hosts()[0].netns.empty());
  const std::string yaml = ReadFile(Data() + "/hosts/web-1/agent.yaml").value();
  EXPECT_NE(yaml.find("server: \"http://127.0.0.1:18080\""), std::string::npos) << yaml;
}

class DemoLeftoverTest : public DemoTest {
 protected:
  // /proc/PID/stat of a running process started at `start_time`.
  void AddProcess(int pid, uint64_t start_time, char state = 'S') {
    procfs_.SetFile(std::to_string(pid) + "/stat",
                    std::to_string(pid) + " (medic-agent) " + state +
                        " 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 " + std::to_string(start_time) +
                        " 1000 100");
  }
  void WriteLeftover(const DemoState& s) {
    ASSERT_TRUE(MakeDirs(Data()).has_value());
    ASSERT_TRUE(
        WriteFileAtomic(Data() + "/demo-state.json", DumpJson(DemoStateToJson(s))).has_value());
  }
  // By default pid 999999: no such process in the fake /proc, that demo is gone.
  DemoState Killed(int pid = 999'999) {
    const std::string p = std::to_string(pid);
    DemoState s;
    s.pid = pid;
    s.start_time = 5;
    s.processes = {{4242, 77, "medic-agent web-1"}, {4243, 78, "medic-server"}};
    s.cgroups = {"/sys/fs/cgroup/memory/medic/medic-demo-" + p + "-web-1"};
    s.namespaces = {"medic-demo-" + p, "medic-demo-" + p + "-web-1"};
    s.mounts = {Data() + "/hosts/web-1/log"};
    return s;
  }
  // A demo whose SIGKILLs make the fake process a zombie (as the kernel does, until reaped).
  Demo MakeKillingDemo() {
    return Demo(
        options_, launcher_, env_, procfs_,
        [this](int pid, int sig) {
          signals_.emplace_back(pid, sig);
          AddProcess(pid, 77, 'Z');
          return OkStatus();
        },
        out_, err_);
  }
};

TEST_F(DemoLeftoverTest, AKilledDemosLeftoversAreRemovedBeforeTheNewOneStarts) {
  const DemoState old = Killed();
  WriteLeftover(old);
  AddProcess(4242, 77);  // still the agent it started
  AddProcess(4243, 12);  // the server's pid, now another process: never touched
  procfs_.SetFile("self/mounts", "medic-demo " + Data() + "/hosts/web-1/log tmpfs rw 0 0\n");
  env_.network.namespaces = {"medic-demo-999999", "medic-demo-999999-web-1"};
  Demo demo = MakeKillingDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_EQ(signals_, (std::vector<std::pair<int, int>>{{4242, SIGKILL}}));
  const std::vector<std::string>& ev = launcher_.events();
  ASSERT_GE(ev.size(), 5u);
  EXPECT_EQ(std::vector<std::string>(ev.begin(), ev.begin() + 5),
            (std::vector<std::string>{"remove cgroup web-1", "delete medic-demo-999999-web-1",
                                      "delete medic-demo-999999", "unmount web-1",
                                      "start server"}));
  EXPECT_NE(err_.str().find("medic demo: cleaned up after a medic demo (pid 999999) that did "
                            "not stop: 1 process(es) killed, 1 cgroup(s), 2 network "
                            "namespace(s) and 1 mount(s) removed\n"),
            std::string::npos)
      << err_.str();
  EXPECT_NE(out_.str().find("medic demo ready"), std::string::npos);
  EXPECT_FALSE(PathExists(Data() + "/demo-state.json"));  // the new demo's, gone at its stop
}

TEST_F(DemoLeftoverTest, ADemoWhosePidWasReusedCountsAsKilled) {
  DemoState old = Killed(4300);
  WriteLeftover(old);
  AddProcess(4300, 6);  // that pid runs, but started later: another process
  Demo demo = MakeKillingDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  EXPECT_TRUE(signals_.empty());  // neither 4300 nor the recorded processes (gone) are signalled
  EXPECT_NE(err_.str().find("cleaned up after a medic demo (pid 4300)"), std::string::npos)
      << err_.str();
}

TEST_F(DemoLeftoverTest, ARunningDemoOnTheSameDataDirIsRefusedAndLeftAlone) {
  DemoState old = Killed(4300);
  WriteLeftover(old);
  AddProcess(4300, 5);
  AddProcess(4242, 77);
  Demo demo = MakeKillingDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_NE(err_.str().find("medic demo: another medic demo (pid 4300) is running on " + Data()),
            std::string::npos)
      << err_.str();
  EXPECT_TRUE(launcher_.events().empty());
  EXPECT_TRUE(signals_.empty());
  Result<std::string> state = ReadFile(Data() + "/demo-state.json");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(ParseDemoState(*state).value(), old);
}

TEST_F(DemoLeftoverTest, AStateFileNamingWhatNoDemoCreatesIsRefusedAndNothingIsTouched) {
  DemoState old = Killed();
  old.cgroups.push_back("/sys/fs/cgroup/memory");  // everything: never
  WriteLeftover(old);
  AddProcess(4242, 77);
  env_.network.namespaces = {"medic-demo-999999", "medic-demo-999999-web-1"};
  Demo demo = MakeKillingDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_NE(err_.str().find("medic demo: " + Data() +
                            "/demo-state.json: demo state: cgroup /sys/fs/cgroup/memory is not "
                            "one a demo creates; nothing was touched"),
            std::string::npos)
      << err_.str();
  EXPECT_TRUE(launcher_.events().empty());
  EXPECT_TRUE(signals_.empty());
  EXPECT_EQ(env_.network.namespaces.size(), 2u);
}

TEST_F(DemoLeftoverTest, AStateFileThatIsNotOneIsNamedAndNothingStarts) {
  ASSERT_TRUE(MakeDirs(Data()).has_value());
  ASSERT_TRUE(WriteFileAtomic(Data() + "/demo-state.json", "{\"pid\": \"x\"}").has_value());
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_NE(err_.str().find(Data() + "/demo-state.json is not a medic demo state file (demo "
                                     "state: bad pid); remove it if no medic demo runs on " +
                            Data()),
            std::string::npos)
      << err_.str();
  EXPECT_TRUE(launcher_.events().empty());
}

TEST_F(DemoTest, TooManyHostsIsRefused) {
  options_.hosts = 201;
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_NE(err_.str().find("--hosts must be between 1 and 200 (got 201)"), std::string::npos)
      << err_.str();
  EXPECT_TRUE(launcher_.events().empty());
}

// `--scenario`: the demo's server answers like a fleet whose incident of the chaos goes from
// executing to `final_status_` after a few looks; the chaos answers `chaos_status_`.
class DemoScenarioTest : public DemoTest {
 protected:
  void SetUp() override {
    DemoTest::SetUp();
    options_.hosts = 2;
    options_.auto_approve = true;
    env_.stop_when = nullptr;
    env_.http.SetHandler([this](const HttpRequest& r) -> Result<HttpResponse> {
      const std::string base = "http://127.0.0.1:18080";
      auto ok = [](const Json& j) { return HttpResponse{200, DumpJson(j), "application/json"}; };
      if (r.url.rfind(base + "/api/v1/alarms?host=", 0) == 0) {
        const std::string host = r.url.substr(base.size() + 20);
        Json alarms = Json::array();
        for (const char* name : {"Nginx-Down-ALB", "Disk-Critical-ASG", "Memory-Exhaustion-ASG"}) {
          alarms.push_back({{"alarm_name", name}, {"host", host}, {"state", "OK"}});
        }
        return ok(Json{{"alarms", alarms}});
      }
      if (r.method == "POST" && r.url == base + "/api/v1/chaos") {
        chaos_.push_back(ParseJson(r.body).value());
        chaos_wall_ = env_.WallNow();
        if (chaos_status_ != 202) {
          return HttpResponse{chaos_status_, R"j({"error":"chaos is not allowed"})j",
                              "application/json"};
        }
        return HttpResponse{202, R"j({"command_id":"c1"})j", "application/json"};
      }
      if (r.url.rfind(base + "/api/v1/incidents?", 0) == 0) {
        Json list = Json::array();
        if (!chaos_.empty() && chaos_status_ == 202) {
          list.push_back({{"incident_id", "inc-1"},
                          {"alarm_name", "Nginx-Down-ALB"},
                          {"instance_id", "web-1"},
                          {"status", "executing"}});
        }
        return ok(Json{{"incidents", list}});
      }
      if (r.url == base + "/api/v1/incidents/inc-1") {
        auto at = [this](int ms) { return FormatRfc3339(chaos_wall_ + Millis(ms)); };
        const bool done = ++incident_looks_ >= 3;
        Json timeline = Json::array({{{"event", "created"}, {"timestamp", at(500)}},
                                     {{"event", "auto_approved"}, {"timestamp", at(600)}}});
        if (done) {
          timeline.push_back({{"event", "executed"}, {"timestamp", at(900)}});
          timeline.push_back({{"event", "verified"}, {"timestamp", at(1200)}});
        }
        return ok(Json{{"incident_id", "inc-1"},
                       {"status", done ? final_status_ : "executing"},
                       {"timeline", timeline}});
      }
      return base_handler_(r);
    });
  }

  std::vector<Json> chaos_;
  WallTime chaos_wall_{};
  int chaos_status_ = 202;
  int incident_looks_ = 0;
  std::string final_status_ = "completed";
};

TEST_F(DemoScenarioTest, RunsTheScenarioAfterTheReadyLinePrintsTheTableAndStops) {
  options_.scenario = "nginx-crash";
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  const std::string out = out_.str();
  const size_t table = out.find("SCENARIO ");
  ASSERT_NE(table, std::string::npos) << out;
  EXPECT_LT(out.find("medic demo ready: "), table);
  EXPECT_EQ(out.substr(table),
            "SCENARIO     HOST   DETECTED  DECIDED  FIXED  VERIFIED  STATUS     LB\n"
            "nginx-crash  web-1  0.50      0.60     0.90   1.20      completed  200 x 40\n");
  ASSERT_EQ(chaos_.size(), 1u);
  EXPECT_EQ(chaos_[0],
            Json({{"host", "web-1"}, {"mode", "nginx-crash"}, {"params", Json::object()}}));
  EXPECT_EQ(env_.probes, (std::vector<std::string>{"http://127.0.0.1:40005/health"}));
  // No hint to run chaos by hand; everything stopped after the run.
  EXPECT_EQ(err_.str().find("Try it"), std::string::npos) << err_.str();
  const std::vector<std::string> events = launcher_.events();
  EXPECT_EQ(std::vector<std::string>(events.end() - 4, events.end()),
            (std::vector<std::string>{"remove cgroup web-2", "TERM server", "unmount web-1",
                                      "unmount web-2"}));
  EXPECT_TRUE(env_.isolation.mounted.empty());
  EXPECT_TRUE(env_.isolation.cgroups.empty());
}

TEST_F(DemoScenarioTest, WithJsonStandardOutputIsOneJsonDocument) {
  options_.scenario = "nginx-crash";
  options_.json = true;
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 0) << err_.str();
  Result<Json> j = ParseJson(out_.str());
  ASSERT_TRUE(j.has_value()) << out_.str();
  ASSERT_TRUE(j->is_array());
  ASSERT_EQ(j->size(), 1u);
  EXPECT_EQ((*j)[0]["status"], "completed");
  EXPECT_EQ((*j)[0]["lb_ok"], true);
  EXPECT_EQ((*j)[0]["verified_s"], 1.2);
  // The ready and sign-in lines went to standard error.
  EXPECT_NE(err_.str().find("medic demo ready: http://127.0.0.1:18080/ token-file "),
            std::string::npos)
      << err_.str();
  EXPECT_NE(err_.str().find("sign in: "), std::string::npos) << err_.str();
}

TEST_F(DemoScenarioTest, AScenarioThatDidNotCompleteExitsOne) {
  options_.scenario = "nginx-crash";
  final_status_ = "failed";
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_NE(out_.str().find("nginx-crash  web-1  0.50      0.60     0.90   1.20      failed"),
            std::string::npos)
      << out_.str();
  // What did not complete is undone.
  ASSERT_EQ(chaos_.size(), 2u);
  EXPECT_EQ(chaos_[1]["mode"], "stop");
}

TEST_F(DemoScenarioTest, RefusedChaosIsARowNotRunAndExitsOne) {
  options_.scenario = "all";
  chaos_status_ = 403;
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  const std::string out = out_.str();
  for (const std::string row :
       {"nginx-crash  web-1  -         -        -      -         not run: chaos nginx-crash: "
        "403 chaos is not allowed",
        "disk-fill    web-2  -         -        -      -         not run: chaos disk-fill: 403",
        "oom          web-1  -         -        -      -         not run: chaos oom: 403"}) {
    EXPECT_NE(out.find(row), std::string::npos) << row << "\nin:\n" << out;
  }
}

TEST_F(DemoScenarioTest, AStopSignalDuringTheRunStopsEverythingAndExits130) {
  options_.scenario = "all";
  final_status_ = "executing";  // never ends
  env_.stop_when = [this] { return !chaos_.empty() && incident_looks_ >= 5; };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 130);
  EXPECT_NE(out_.str().find("nginx-crash  web-1"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("interrupted"), std::string::npos) << out_.str();
  EXPECT_EQ(out_.str().find("disk-fill"), std::string::npos) << "not started after the signal";
  EXPECT_TRUE(env_.isolation.mounted.empty());
  EXPECT_TRUE(env_.isolation.cgroups.empty());
  EXPECT_EQ(launcher_.events().back(), "unmount web-2");
}

TEST_F(DemoScenarioTest, TheServerDyingEndsTheRunWithAnErrorNotAHang) {
  options_.scenario = "all";
  final_status_ = "executing";  // never ends
  env_.stop_when = [this] {
    if (incident_looks_ == 2) {
      launcher_.Signal(server_pid_, SIGKILL, false);
    }
    return false;
  };
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_NE(out_.str().find("      interrupted: medic-server exited  200 x 40\n"),
            std::string::npos)
      << out_.str();
  EXPECT_EQ(out_.str().find("disk-fill"), std::string::npos) << out_.str();
  EXPECT_NE(err_.str().find("medic demo: medic-server exited during the scenarios; last lines of " +
                            Data() + "/server/server.log"),
            std::string::npos)
      << err_.str();
  EXPECT_TRUE(env_.isolation.mounted.empty());
  EXPECT_TRUE(env_.isolation.cgroups.empty());
}

TEST_F(DemoScenarioTest, AnUnknownScenarioStartsNothing) {
  options_.scenario = "bogus";
  Demo demo = MakeDemo();
  EXPECT_EQ(demo.Run(), 1);
  EXPECT_TRUE(launcher_.events().empty());
  EXPECT_NE(err_.str().find("medic demo: unknown scenario 'bogus' (valid: all, nginx-crash, "
                            "disk-fill, oom)"),
            std::string::npos)
      << err_.str();
}

constexpr char kMemoryHierarchy[] = "/sys/fs/cgroup/memory";

// The real thing, as root (tests run as root on the build machine): a tmpfs and a memory
// cgroup, created and removed; without root, the refusal the demo falls back on.
class PosixHostIsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/medic-isolation-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = fs::path(tmpl).lexically_normal().string();  // as /proc/self/mounts spells it
  }
  void TearDown() override {
    for (int i = 0; i < 4 && IsMounted(dir_ + "/log"); ++i) {
      ::umount2((dir_ + "/log").c_str(), MNT_DETACH);
    }
    if (!cgroup_.empty()) {
      (void)iso_->RemoveCgroup(cgroup_);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static bool IsMounted(const std::string& dir) {
    const std::string mounts = ReadFile("/proc/self/mounts").value_or("");
    return mounts.find(" " + dir + " ") != std::string::npos;
  }

  std::string dir_;
  std::string cgroup_;
  std::unique_ptr<HostIsolation> iso_ = NewPosixHostIsolation();
};

TEST_F(PosixHostIsolationTest, MountsATmpfsOfTheGivenSizeAndUnmountsItEvenWhenBusy) {
  const std::string log = dir_ + "/log";
  ASSERT_TRUE(MakeDirs(log).has_value());
  Status mounted = iso_->MountTmpfs(log, 32ull << 20);
  if (::geteuid() != 0) {
    ASSERT_FALSE(mounted.has_value());
    EXPECT_EQ(mounted.error().message, "mounting a tmpfs needs root");
    GTEST_SKIP() << "needs root: only the refusal was checked, not the mount";
  }
  ASSERT_TRUE(mounted.has_value()) << mounted.error().message;
  ASSERT_TRUE(IsMounted(log));
  struct statvfs st {};
  ASSERT_EQ(::statvfs(log.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.f_blocks) * st.f_frsize, 32ull << 20);
  struct stat root {};
  ASSERT_EQ(::stat(log.c_str(), &root), 0);
  EXPECT_EQ(root.st_mode & 07777, 0755u);

  // A second mount on the same dir (a killed demo's leftover) replaces rather than stacks.
  ASSERT_TRUE(iso_->MountTmpfs(log, 16ull << 20).has_value());
  const std::string mounts = ReadFile("/proc/self/mounts").value();
  size_t count = 0;
  for (size_t at = mounts.find(" " + log + " "); at != std::string::npos;
       at = mounts.find(" " + log + " ", at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 1u) << mounts;

  // Busy: a file held open inside it.
  const int fd = ::open((log + "/held.log").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(iso_->Unmount(log).has_value());
  EXPECT_FALSE(IsMounted(log));
  ::close(fd);
  EXPECT_FALSE(fs::exists(log + "/held.log"));  // it was on the tmpfs
}

TEST_F(PosixHostIsolationTest, CgroupLimitsWhatStartsInItAndIsRemovedWithItsProcesses) {
  const std::string name = std::string(kDemoCgroupPrefix) + std::to_string(::getpid()) + "-test";
  Result<std::string> cg = iso_->CreateMemoryCgroup(name, 256ull << 20);
  if (::geteuid() != 0) {
    EXPECT_FALSE(cg.has_value());
    GTEST_SKIP() << "needs root: only the refusal was checked, not the cgroup";
  }
  ASSERT_TRUE(cg.has_value()) << cg.error().message;
  cgroup_ = *cg;
  const std::string own =
      host::CgroupDir(ReadFile("/proc/self/cgroup").value(), "memory", kMemoryHierarchy).value();
  EXPECT_EQ(*cg, own + "/" + name);
  EXPECT_EQ(Trim(ReadFile(*cg + "/memory.limit_in_bytes").value()), "268435456");

  std::unique_ptr<ProcessLauncher> launcher = NewPosixProcessLauncher();
  Result<int> pid = iso_->StartInCgroup(*cg, [&] {
    return launcher->Start({"/bin/sleep", "60"}, dir_ + "/sleep.log");
  });
  ASSERT_TRUE(pid.has_value()) << pid.error().message;
  const std::string child = ReadFile("/proc/" + std::to_string(*pid) + "/cgroup").value();
  EXPECT_EQ(host::CgroupDir(child, "memory", kMemoryHierarchy), *cg) << child;
  // The test itself is back where it was.
  EXPECT_EQ(
      host::CgroupDir(ReadFile("/proc/thread-self/cgroup").value(), "memory", kMemoryHierarchy),
      own);
  // A child cgroup inside (as the agent may create) goes too.
  ASSERT_EQ(::mkdir((*cg + "/inner").c_str(), 0755), 0);

  EXPECT_TRUE(iso_->RemoveCgroup(*cg).has_value());
  EXPECT_TRUE(launcher->WaitExit(*pid, Millis(5'000)));  // SIGKILLed by RemoveCgroup
  EXPECT_FALSE(fs::exists(*cg));
  cgroup_.clear();
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
