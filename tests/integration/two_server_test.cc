// Issue 15, acceptance line 2, with real processes on loopback: two medic-servers on one
// PostgreSQL (the test starts it, tests/fakes/postgres_server.h), in approval mode, set up as
// docs/DEPLOY.md says (the same config but for cluster.server_id, A's data-dir secrets copied
// into B's), and one demo host whose medic-agent knows both URLs, supervising Debian's real
// nginx in front of `medic healthapp` (the files `medic demo` writes: cli/demo_config.h). A
// dashboard's event stream (GET /api/v1/events) is open on each server for the whole test.
//
// Case 1, the agent on A: nginx is crashed by an operator through B, the incident (driven by
// A, where the reports arrive) is approved through B, and it completes: nginx answers again,
// restarted once. Both streams carry the incident from diagnosing to completed.
// Case 2, A killed with SIGKILL: the agent fails over to B; nginx is crashed through B again,
// the incident is driven and approved by B and completes, nginx restarted once more; B's
// stream carries it. A restarted on its data dir then shows both incidents as B does.
//
// "Restarted once" is counted three ways: nginx's own start lines in its error log (one per
// master), the agent's ledger (one service.restart started per incident) and the timeline
// (one `executing`).

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli/demo_config.h"
#include "tests/fakes/postgres_server.h"
#include "tests/integration/demo_fixture.h"

namespace medic::test {
namespace {

using namespace std::chrono_literals;

constexpr char kAlarm[] = "Nginx-Down-ALB";
constexpr char kHost[] = "web-1";
constexpr char kNginx[] = "/usr/sbin/nginx";
// Bounds of the polls on a loaded 2-core machine: generous, never a performance claim.
constexpr auto kStartTimeout = 30s;
constexpr auto kHealthyTimeout = 45s;
constexpr auto kIncidentTimeout = 45s;
constexpr auto kEventTimeout = 10s;

// A dashboard's event stream: one raw connection to GET /api/v1/events, read on its own thread
// until the test ends or the server closes it. Keeps the status of every `incident` event, per
// incident id, in the order the frames came.
class EventStream {
 public:
  EventStream(int port, const std::string& token) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return;
    }
    const std::string req = "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Authorization: Bearer " + token +
                            "\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      return;
    }
    reader_ = std::thread([this] { Loop(); });
  }
  ~EventStream() {
    stop_ = true;
    if (reader_.joinable()) {
      reader_.join();
    }
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  // The server answered 200 and its ": connected" comment.
  bool connected() const {
    std::lock_guard<std::mutex> lock(mu_);
    return raw_.rfind("HTTP/1.1 200", 0) == 0 && raw_.find(": connected") != std::string::npos;
  }
  // The statuses incident `id` had in the stream's `incident` events, in order.
  std::vector<std::string> StatusesOf(const std::string& id) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [incident, status] : incident_events_) {
      if (incident == id) {
        out.push_back(status);
      }
    }
    return out;
  }
  std::string Head() const {
    std::lock_guard<std::mutex> lock(mu_);
    return raw_.substr(0, 300);
  }

 private:
  void Loop() {
    std::string pending;  // an incomplete line
    std::string event;    // the current frame's `event:`
    char buf[8192];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) {
        continue;
      }
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        return;  // the server closed the stream (or died)
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (raw_.size() < 4096) {
        raw_.append(buf, static_cast<size_t>(std::min<ssize_t>(n, 4096)));
      }
      pending.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') {
          line.pop_back();
        }
        if (line.empty()) {
          event.clear();
        } else if (line.rfind("event: ", 0) == 0) {
          event = line.substr(7);
        } else if (line.rfind("data: ", 0) == 0 && event == "incident") {
          const Json data = ParseJson(line.substr(6)).value_or(Json());
          if (data.is_object()) {
            incident_events_.emplace_back(data.value("incident_id", ""), data.value("status", ""));
          }
        }
      }
    }
  }

  int fd_ = -1;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::string raw_;  // the first bytes, for connected() and failure messages
  std::vector<std::pair<std::string, std::string>> incident_events_;  // (id, status)
};

// One medic-server process of the pair.
struct ServerProc {
  std::string name;  // "a", also its cluster.server_id
  std::string config;
  std::string data_dir;
  std::string log;
  int port = 0;  // 0 until the first start said which port it got
  std::unique_ptr<Subprocess> proc;
  std::unique_ptr<HeldPort> held;  // its port while it is down, until it serves again

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  std::string token_file() const { return data_dir + "/admin.token"; }
  std::string admin() const { return std::string(Trim(ReadFile(token_file()).value_or(""))); }
  bool alive() const { return proc != nullptr && ProcessAlive(proc->pid()); }
};

class TwoServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    InitHttpClientLibrary();
    setenv("MEDIC_AI_PROVIDER", "none", 1);
    unsetenv("MEDIC_STORE_DSN");
  }

  void SetUp() override {
    ASSERT_EQ(access(kNginx, X_OK), 0) << kNginx << " is missing: run scripts/setup.sh";
    ASSERT_TRUE(pg_.ok()) << pg_.error();
    dsn_ = pg_.CreateDatabase();
    ASSERT_FALSE(dsn_.empty()) << pg_.error();

    // The demo host's layout and nginx.conf, as `medic demo` writes them.
    host_ = cli::MakeDemoHost(dir_.path(), 1);
    // nginx and the health app are started by the agent from nginx.conf and the agent's
    // config, which name their ports in advance: ports the test holds (HeldPort).
    ASSERT_GT(nginx_held_.port(), 0);
    ASSERT_GT(app_held_.port(), 0);
    host_.nginx_port = nginx_held_.port();
    host_.app_port = app_held_.port();
    for (const std::string& d : {host_.dir, host_.LogDir(), host_.RunDir(), host_.TmpDir()}) {
      ASSERT_TRUE(MakeDirs(d, 0755).has_value()) << d;
    }
    ASSERT_TRUE(WriteFileAtomic(host_.NginxConfPath(), cli::NginxConfig(host_)).has_value());

    // One config for both servers but cluster.server_id (docs/DEPLOY.md). The disk and memory
    // alarms are out of reach: this host's "disk" is the machine's, shared with other tests.
    for (ServerProc* s : {&a_, &b_}) {
      s->name = s == &a_ ? "a" : "b";
      s->config = dir_.File("server-" + s->name + ".yaml");
      s->data_dir = dir_.File("data-" + s->name);
      s->log = dir_.File("server-" + s->name + ".log");
      ASSERT_TRUE(MakeDirs(s->data_dir, 0700).has_value());
      ASSERT_TRUE(WriteFileAtomic(s->config,
                                  cli::ServerYaml({host_}) +
                                      "approval_mode: true\n"
                                      "store:\n"
                                      "  driver: postgres\n"
                                      "  dsn: \"" + dsn_ + "\"\n" +
                                      "cluster: {server_id: " + s->name + "}\n" +
                                      "alarms:\n"
                                      "  Disk-Critical-ASG: {threshold: 100}\n"
                                      "  Memory-Exhaustion-ASG: {threshold: 100}\n",
                                  0600)
                      .has_value());
    }
  }

  // The streams close, the agent stops its services (SIGTERM; the supervisor stops nginx and
  // the health app), the servers go (their process groups), then any service process this test
  // saw that is still there (an agent that did not stop them), by pid, only while it is still
  // what it was. PostgreSQL and the temp dir go with their members.
  void TearDown() override {
    if (HasFailure()) {
      std::cerr << Logs();
    }
    streams_.clear();
    if (agent_ != nullptr) {
      NoteServices();
      agent_->SignalAndWait(SIGTERM, 15s);
      agent_.reset();
    }
    for (pid_t pid : service_pids_) {
      const std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline").value_or("");
      if (cmdline.find(host_.dir) != std::string::npos ||
          cmdline.find("nginx: worker") != std::string::npos ||
          cmdline.find("127.0.0.1:" + std::to_string(host_.app_port)) != std::string::npos) {
        kill(pid, SIGKILL);
      }
    }
    a_.proc.reset();
    b_.proc.reset();
  }

  // Records the agent's services and nginx's workers, for TearDown.
  void NoteServices() {
    if (agent_ == nullptr) {
      return;
    }
    for (pid_t child : ChildrenOf(agent_->pid())) {
      service_pids_.insert(child);
      for (pid_t grandchild : ChildrenOf(child)) {
        service_pids_.insert(grandchild);
      }
    }
  }

  // The first start binds port 0 and reads back the port it got. A restart asks for that same
  // port (the agent's list of servers names it), which the test has held since the server died
  // (s.held); medic-server names the port if it cannot listen there.
  void StartServer(ServerProc& s) {
    const size_t log_from = ReadFile(s.log).value_or("").size();
    s.proc = std::make_unique<Subprocess>(
        std::vector<std::string>{Bin("medic-server"), "--config", s.config, "--data-dir",
                                 s.data_dir, "--listen", "127.0.0.1:" + std::to_string(s.port)},
        s.log);
    const int port =
        WaitForReportedPort(s.proc->pid(), s.log, kServerServingOn, kStartTimeout, log_from);
    ASSERT_GT(port, 0) << "medic-server " << s.name
                       << " did not start: " << ReadFile(s.log).value_or("").substr(log_from);
    s.port = port;
    ASSERT_TRUE(Eventually(kStartTimeout,
                           [&] {
                             return !s.alive() ||
                                    (HttpStatus(s.url() + "/healthz") == 200 &&
                                     !s.admin().empty() && PathExists(s.data_dir + "/agent.token"));
                           }) &&
                s.alive())
        << "medic-server " << s.name
        << " did not serve: " << ReadFile(s.log).value_or("").substr(log_from);
    s.held.reset();
  }

  // docs/DEPLOY.md, step 3: A's secrets into B's data dir, mode 0600.
  void CopySecrets() {
    for (const char* name : {"audit.key", "command-signing.key", "agent.token", "admin.token"}) {
      auto text = ReadFile(a_.data_dir + "/" + name);
      ASSERT_TRUE(text.has_value()) << name << " is not in A's data dir";
      ASSERT_TRUE(WriteFileAtomic(b_.data_dir + "/" + name, *text, 0600).has_value()) << name;
    }
  }

  HttpResponse Get(const ServerProc& s, const std::string& path) {
    auto client = NewCurlHttpClient();
    HttpRequest req;
    req.url = s.url() + path;
    req.timeout = 10s;
    req.headers.emplace_back("Authorization", "Bearer " + s.admin());
    return client->Do(req).value_or(HttpResponse{});
  }
  Json GetJson(const ServerProc& s, const std::string& path) {
    HttpResponse r = Get(s, path);
    return r.status == 200 ? ParseJson(r.body).value_or(Json()) : Json();
  }

  // `medic --server URL --token-file ... ARGS` as an operator runs it.
  RunResult Cli(const ServerProc& s, std::vector<std::string> args) {
    std::vector<std::string> argv = {Bin("medic"), "--server", s.url(), "--token-file",
                                     s.token_file()};
    argv.insert(argv.end(), args.begin(), args.end());
    // Its standard error (where a failure says why) goes to cli.stderr, and into `out` when
    // it failed.
    const std::string err_path = dir_.File("cli.stderr");
    unlink(err_path.c_str());
    RunResult r;
    {
      Subprocess p(argv, err_path);
      while (auto line = p.ReadLine(30s)) {
        r.out += *line + "\n";
      }
      auto status = p.Wait(30s);
      if (status && WIFEXITED(*status)) {
        r.exit_code = WEXITSTATUS(*status);
      }
    }
    if (r.exit_code != 0) {
      r.out += ReadFile(err_path).value_or("");
    }
    return r;
  }

  // The state of web-1's Nginx-Down-ALB alarm as server `s` evaluates it, "" if unknown there.
  std::string AlarmState(const ServerProc& s) {
    const Json body = GetJson(s, "/api/v1/alarms");
    const Json list = body.is_object() && body.contains("alarms") ? body["alarms"] : body;
    if (list.is_array()) {
      for (const Json& a : list) {
        if (a.value("alarm_name", "") == kAlarm && a.value("host", "") == kHost) {
          return a.value("state", "");
        }
      }
    }
    return "";
  }
  // Whether web-1 reports to `s` and is healthy there.
  bool HostHealthyOn(const ServerProc& s) {
    const Json body = GetJson(s, "/api/v1/hosts");
    if (body.is_object() && body["hosts"].is_array()) {
      for (const Json& h : body["hosts"]) {
        if (h.value("name", "") == kHost) {
          return h.value("status", "") == "healthy";
        }
      }
    }
    return false;
  }
  // The newest incident of Nginx-Down-ALB that is not in `seen`, as `s` lists it.
  std::optional<Json> NewIncident(const ServerProc& s, const std::set<std::string>& seen) {
    const Json body = GetJson(s, "/api/v1/incidents?alarm=" + std::string(kAlarm));
    if (body.is_object() && body["incidents"].is_array()) {
      for (const Json& i : body["incidents"]) {
        if (seen.count(i.value("incident_id", "")) == 0) {
          return i;
        }
      }
    }
    return std::nullopt;
  }

  int HealthStatus() {
    return HttpStatus("http://127.0.0.1:" + std::to_string(host_.nginx_port) + "/health");
  }
  // How many times nginx started: its master logs one "start worker process" per worker, and
  // this nginx.conf has one.
  int NginxStarts() {
    int n = 0;
    for (const std::string& line :
         SplitLines(ReadFile(host_.LogDir() + "/error.log").value_or(""))) {
      n += line.find("start worker process ") != std::string::npos ? 1 : 0;
    }
    return n;
  }
  // Fixes the agent started for incident `id` (its ledger: one line per start, before it runs).
  int FixesStartedFor(const std::string& id) {
    int n = 0;
    for (const std::string& line :
         SplitLines(ReadFile(host_.StateDir() + "/commands.log").value_or(""))) {
      const Json j = ParseJson(line).value_or(Json());
      if (j.is_object() && j.contains("start") && j.value("incident", "") == id) {
        n += j.value("action", "") == "service.restart" ? 1 : 0;
      }
    }
    return n;
  }
  pid_t NginxMaster() { return ReadPid(host_.NginxPidPath()); }

  // Crashes nginx through `via` (the CLI's chaos, sent to web-1 through its agent), waits for
  // the incident to ask for approval, approves it through `approver` and waits for it to end.
  // Returns the incident as `approver` shows it at the end.
  Json CrashApproveAndFix(ServerProc& via, ServerProc& approver, std::set<std::string>& seen) {
    const pid_t master = NginxMaster();
    EXPECT_GT(master, 1);
    const int starts = NginxStarts();
    // A server learns of an enrolment made on another one through the bus (`changed`
    // credentials, about 0.2 s; longer on a loaded machine): until then it answers 404 and
    // sends nothing, so only that answer is retried.
    RunResult chaos;
    Eventually(10s, [&] {
      chaos = Cli(via, {"chaos", "nginx-crash", "--host", kHost});
      return chaos.exit_code == 0 || chaos.out.find("404") == std::string::npos;
    });
    EXPECT_EQ(chaos.exit_code, 0) << chaos.out;
    if (chaos.exit_code != 0) {
      return Json();
    }
    EXPECT_TRUE(Eventually(15s, [&] { return HealthStatus() != 200; }))
        << "nginx still answers after the crash";
    EXPECT_FALSE(ProcessAlive(master)) << "nginx's master survived the crash";

    std::optional<Json> incident;
    EXPECT_TRUE(Eventually(kIncidentTimeout, [&] {
      incident = NewIncident(approver, seen);
      return incident && incident->value("status", "") == "pending_approval";
    })) << (incident ? incident->dump(2) : "no incident");
    if (!incident || incident->value("status", "") != "pending_approval") {
      return Json();
    }
    const std::string id = incident->value("incident_id", "");
    seen.insert(id);
    EXPECT_EQ((*incident)["instance_id"], kHost);
    EXPECT_EQ((*incident)["ai_suggestion"], "service.restart service=nginx") << incident->dump(2);
    EXPECT_NE(HealthStatus(), 200) << "nothing may heal nginx before the approval";
    EXPECT_EQ(FixesStartedFor(id), 0);

    RunResult approve = Cli(approver, {"approve", id, "--comment", "approved on " + approver.name, "--no-wait"});
    EXPECT_EQ(approve.exit_code, 0) << approve.out;

    Json done;
    EXPECT_TRUE(Eventually(kIncidentTimeout, [&] {
      done = GetJson(approver, "/api/v1/incidents/" + id);
      const std::string status = done.is_object() ? done.value("status", "") : "";
      return status == "completed" || status == "failed" || status == "timeout";
    })) << done.dump(2);
    EXPECT_EQ(done.value("status", ""), "completed") << done.dump(2);
    EXPECT_EQ(HealthStatus(), 200);
    const pid_t new_master = NginxMaster();
    EXPECT_NE(new_master, master);
    EXPECT_TRUE(ProcessAlive(new_master));
    NoteServices();
    // Exactly one fix: one new nginx master, one service.restart in the agent's ledger, one
    // `executing` on the timeline; still so a moment later (a second copy of the fix, from
    // the other server, would come within its bus poll).
    std::this_thread::sleep_for(2s);
    EXPECT_EQ(NginxStarts(), starts + 1) << ReadFile(host_.LogDir() + "/error.log").value_or("");
    EXPECT_EQ(FixesStartedFor(id), 1)
        << ReadFile(host_.StateDir() + "/commands.log").value_or("");
    EXPECT_EQ(NginxMaster(), new_master);
    const std::vector<std::string> events = TimelineEvents(done);
    EXPECT_EQ(std::count(events.begin(), events.end(), "executing"), 1) << done.dump(2);
    EXPECT_TRUE(InOrder(events, {"created", "awaiting_approval", "approved", "executing",
                                 "verified", "completed"}))
        << done["timeline"].dump(2);
    for (const Json& e : done["timeline"]) {
      if (e.value("event", "") == "approved") {
        EXPECT_EQ(e.value("detail", ""), "approved on " + approver.name) << e;
      }
    }
    return done;
  }

  // Whether `stream` carried incident `id` from diagnosing through approval to completed.
  static bool CarriedWholeIncident(const EventStream& stream, const std::string& id) {
    return InOrder(stream.StatusesOf(id),
                   {"diagnosing", "pending_approval", "executing", "completed"});
  }
  static std::string Joined(const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& s : v) {
      out += (out.empty() ? "" : ",") + s;
    }
    return "[" + out + "]";
  }

  std::string Logs() const {
    return "\n--- server-a.log:\n" + ReadFileTail(a_.log, 3000).value_or("") +
           "\n--- server-b.log:\n" + ReadFileTail(b_.log, 3000).value_or("") +
           "\n--- agent.log:\n" + ReadFileTail(dir_.File("agent.log"), 3000).value_or("");
  }

  PostgresServer pg_;
  TempDir dir_;
  std::string dsn_;
  const HeldPort nginx_held_, app_held_;
  cli::DemoHost host_;
  ServerProc a_;
  ServerProc b_;
  std::unique_ptr<Subprocess> agent_;
  std::set<pid_t> service_pids_;
  std::vector<std::unique_ptr<EventStream>> streams_;
};

TEST_F(TwoServerTest, NginxCrashIsFixedWhicheverServerTheAgentTalksToApprovedThroughTheOther) {
  // A first (it creates the schema and the secrets), then B with A's secrets.
  ASSERT_NO_FATAL_FAILURE(StartServer(a_));
  ASSERT_NO_FATAL_FAILURE(CopySecrets());
  ASSERT_NO_FATAL_FAILURE(StartServer(b_));
  EXPECT_EQ(b_.admin(), a_.admin());

  // A dashboard on each server, for the whole test.
  streams_.push_back(std::make_unique<EventStream>(a_.port, a_.admin()));
  streams_.push_back(std::make_unique<EventStream>(b_.port, b_.admin()));
  EventStream& on_a = *streams_[0];
  EventStream& on_b = *streams_[1];
  ASSERT_TRUE(Eventually(kEventTimeout, [&] { return on_a.connected() && on_b.connected(); }))
      << on_a.Head() << "\n" << on_b.Head();

  // The agent: enrolled with a code from A (the first of its list), both URLs, A first.
  RunResult code = Cli(a_, {"--json", "hosts", "enroll", kHost});
  ASSERT_EQ(code.exit_code, 0) << code.out;
  const Json enrol = ParseJson(code.out).value_or(Json());
  ASSERT_TRUE(enrol.is_object() && enrol["code"].is_string()) << code.out;
  const cli::AgentYamlInputs inputs{a_.url(), enrol["code"].get<std::string>(), kNginx,
                                    Bin("medic")};
  ASSERT_TRUE(
      WriteFileAtomic(host_.AgentConfigPath(), cli::AgentYaml(host_, inputs), 0600).has_value());
  agent_ = std::make_unique<Subprocess>(
      std::vector<std::string>{Bin("medic-agent"), "--config", host_.AgentConfigPath(),
                               "--server", a_.url() + "," + b_.url()},
      dir_.File("agent.log"));
  ASSERT_TRUE(Eventually(kHealthyTimeout, [&] {
    return HostHealthyOn(a_) && AlarmState(a_) == "OK" && HealthStatus() == 200;
  })) << AlarmState(a_);
  NoteServices();
  EXPECT_EQ(NginxStarts(), 1);
  std::set<std::string> seen;

  // Case 1: the agent talks to A; the operator crashes nginx and approves through B.
  const Json first = CrashApproveAndFix(b_, b_, seen);
  ASSERT_FALSE(HasFailure());
  const std::string id1 = first.value("incident_id", "");
  EXPECT_TRUE(HostHealthyOn(a_)) << "web-1 left A during case 1";
  // Both dashboards saw the whole incident, whichever server published it.
  EXPECT_TRUE(Eventually(kEventTimeout, [&] {
    return CarriedWholeIncident(on_a, id1) && CarriedWholeIncident(on_b, id1);
  })) << "A's stream: " << Joined(on_a.StatusesOf(id1))
      << " B's stream: " << Joined(on_b.StatusesOf(id1));
  // One incident, read alike from either server.
  EXPECT_EQ(GetJson(a_, "/api/v1/incidents/" + id1), GetJson(b_, "/api/v1/incidents/" + id1));

  // Case 2: A dies (SIGKILL, by pid); the agent fails over to B, which evaluates its alarm.
  ASSERT_EQ(kill(a_.proc->pid(), SIGKILL), 0);
  ASSERT_TRUE(a_.proc->Wait(10s).has_value());
  a_.held = std::make_unique<HeldPort>(a_.port);  // kept for A's return
  ASSERT_EQ(a_.held->port(), a_.port) << "A's port " << a_.port << " was taken once A died";
  ASSERT_TRUE(Eventually(kHealthyTimeout, [&] {
    return HostHealthyOn(b_) && AlarmState(b_) == "OK";
  })) << AlarmState(b_);
  const Json second = CrashApproveAndFix(b_, b_, seen);
  ASSERT_FALSE(HasFailure());
  const std::string id2 = second.value("incident_id", "");
  EXPECT_NE(id2, id1);
  EXPECT_TRUE(Eventually(kEventTimeout, [&] { return CarriedWholeIncident(on_b, id2); }))
      << "B's stream: " << Joined(on_b.StatusesOf(id2));
  EXPECT_TRUE(on_a.StatusesOf(id2).empty()) << "A is dead";

  // A back on its data dir reads both incidents as B does.
  ASSERT_NO_FATAL_FAILURE(StartServer(a_));
  for (const std::string& id : {id1, id2}) {
    const Json on_b_now = GetJson(b_, "/api/v1/incidents/" + id);
    EXPECT_EQ(on_b_now.value("status", ""), "completed") << on_b_now.dump(2);
    EXPECT_EQ(GetJson(a_, "/api/v1/incidents/" + id), on_b_now) << id;
  }
  EXPECT_EQ(NginxStarts(), 3) << "nginx: started once, restarted once per incident";
}

}  // namespace
}  // namespace medic::test
