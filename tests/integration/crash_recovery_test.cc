// Crash recovery under concurrent load (issue 4): the real medic-server, 100 fake agents speaking
// the agent protocol over loopback HTTP, SIGKILL in the middle of concurrent transitions (once
// while diagnostics are answered, once while incidents are approved and fixed), then a restart
// on the same data directory. Asserts that every acknowledged transition survived, that no
// (alarm, host) got a second open incident, that recovery leaves nothing in diagnosing or
// executing, and that no fix is delivered twice.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/clock.h"
#include "core/files.h"
#include "core/json.h"
#include "protocol/actions.h"
#include "protocol/wire.h"
#include "tests/fakes/subprocess.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/enroll_host.h"
#include "transport/http_client.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

constexpr int kHosts = 100;
constexpr int kApprovers = 8;
constexpr char kAlarm[] = "Disk-Critical-ASG";
constexpr char kComment[] = "approved by the crash test";
// Shortened through the config file so that a fix that never ran fails quickly (the
// diagnostics deadline is lengthened instead: 100 hosts on a loaded machine).
constexpr auto kVerificationWindow = 4s;

std::string Bin(const std::string& name) {
  const char* dir = std::getenv("MEDIC_BIN_DIR");
  return std::string(dir != nullptr ? dir : "build/bin") + "/" + name;
}

std::string HostName(int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "crash-%03d", i);
  return buf;
}

bool Is2xx(const Result<HttpResponse>& r) { return r && r->status >= 200 && r->status < 300; }

Result<HttpResponse> Call(HttpClient& client, const std::string& method, const std::string& url,
                          const std::string& token, const std::string& body = "",
                          Millis timeout = Millis(5'000)) {
  HttpRequest req;
  req.method = method;
  req.url = url;
  req.headers.emplace_back("Authorization", "Bearer " + token);
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
  }
  req.body = body;
  req.timeout = timeout;
  req.connect_timeout = Millis(1'000);
  return client.Do(req);
}

// Where the fake agents find the server, and which run of it that is (1 before the crash, 2
// after the restart). Empty while no server is up.
class Endpoint {
 public:
  struct Snapshot {
    std::string url;
    int epoch = 0;
  };
  Snapshot Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return snap_;
  }
  void Set(std::string url, int epoch) {
    std::lock_guard<std::mutex> lock(mu_);
    snap_ = Snapshot{std::move(url), epoch};
  }

 private:
  mutable std::mutex mu_;
  Snapshot snap_;  // Guarded by mu_.
};

// SIGKILLs the server once, from whichever thread reaches the trigger first.
class KillSwitch {
 public:
  void Arm(pid_t pid, int after_acks) {
    pid_ = pid;
    after_ = after_acks;
  }
  // Counts one acknowledged transition of the kind the switch watches.
  void Count() {
    if (after_ > 0 && count_.fetch_add(1) + 1 == after_) {
      Fire();
    }
  }
  void Fire() {
    if (pid_ > 0 && !fired_.exchange(true)) {
      kill(pid_, SIGKILL);
    }
  }
  bool fired() const { return fired_.load(); }

 private:
  pid_t pid_ = -1;
  int after_ = 0;
  std::atomic<int> count_{0};
  std::atomic<bool> fired_{false};
};

// What one fake agent saw and had acknowledged. Guarded by FakeAgent::mu_.
struct AgentLog {
  struct Delivery {
    std::string id;
    std::string action;
    bool read_only = false;
    int epoch = 0;
  };
  std::vector<Delivery> deliveries;
  bool alarm_report_acked_before_crash = false;   // the first report (disk at 95 %)
  std::set<std::string> diag_acked_before_crash;  // actions whose results run 1 acknowledged
  bool fix_ran = false;
  bool fix_acked_before_crash = false;
};

// One host: registers, reports its disk (95 % until the fix runs, then 40 %), long-polls for
// commands, runs each id at most once (a repeated id gets the stored result, as the real agent
// does), answers, and retries answers the server did not acknowledge.
class FakeAgent {
 public:
  // While *hold_commands (if given) is true the agent does not poll for commands: what the
  // server sends it waits in the server's queue.
  FakeAgent(std::string host, const Endpoint& endpoint, std::string token, KillSwitch* diag_kill,
            const std::atomic<bool>* hold_commands)
      : host_(std::move(host)),
        endpoint_(endpoint),
        token_(std::move(token)),
        diag_kill_(diag_kill),
        hold_commands_(hold_commands) {}
  ~FakeAgent() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }
  // RequestStop() every agent first, then Stop() each: a long poll ends within a second.
  void RequestStop() { stop_ = true; }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  const std::string& host() const { return host_; }
  // True once the agent has seen the hold and has no long poll open.
  bool holding() const { return holding_.load(); }
  AgentLog log() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

 private:
  void Loop() {
    client_ = NewCurlHttpClient();
    while (!stop_) {
      const Endpoint::Snapshot ep = endpoint_.Get();
      if (ep.url.empty()) {
        std::this_thread::sleep_for(20ms);
        continue;
      }
      if (ep.epoch != epoch_) {
        epoch_ = ep.epoch;
        registered_ = false;
        report_due_ = true;
      }
      if (!Step(ep)) {
        std::this_thread::sleep_for(50ms);  // the server is down or restarting
      }
    }
    client_.reset();
  }

  // One round: register, report, retry answers, long poll, run and answer. False when the
  // server could not be reached.
  bool Step(const Endpoint::Snapshot& ep) {
    if (!registered_) {
      protocol::RegisterRequest reg;
      reg.name = host_;
      reg.hostname = host_;
      reg.version = "crash-test";
      if (!Is2xx(Call(*client_, "POST", ep.url + "/agent/v1/register", token_,
                      DumpJson(protocol::ToJson(reg))))) {
        return false;
      }
      registered_ = true;
    }
    if (report_due_ || std::chrono::steady_clock::now() - last_report_ > 1s) {
      if (!Report(ep)) {
        return false;
      }
    }
    for (auto it = unanswered_.begin(); it != unanswered_.end();) {
      if (!Answer(ep, it->first, it->second)) {
        return false;
      }
      it = unanswered_.erase(it);
    }
    if (hold_commands_ != nullptr && hold_commands_->load()) {
      holding_ = true;
      std::this_thread::sleep_for(50ms);
      return true;
    }
    holding_ = false;
    auto polled =
        Call(*client_, "GET", ep.url + "/agent/v1/commands?host=" + host_ + "&wait_ms=1000", token_,
             "", Millis(5'000));
    if (!Is2xx(polled)) {
      return false;
    }
    auto json = ParseJson(polled->body);
    if (!json) {
      ADD_FAILURE() << host_ << ": command batch is not JSON: " << polled->body;
      return true;
    }
    auto batch = protocol::CommandBatchFromJson(*json);
    if (!batch) {
      ADD_FAILURE() << host_ << ": bad command batch: " << polled->body;
      return true;
    }
    for (const protocol::Command& c : batch->commands) {
      Run(ep, c);
    }
    return true;
  }

  bool Report(const Endpoint::Snapshot& ep) {
    protocol::Report rep;
    rep.host = host_;
    const double disk = fix_ran_ ? 40 : 95;
    rep.samples.push_back({SystemClock().Now(), {{"disk_used_percent", disk}}});
    auto r = Call(*client_, "POST", ep.url + "/agent/v1/report", token_,
                  DumpJson(protocol::ToJson(rep)));
    if (r && r->status == 404) {
      registered_ = false;  // the server restarted: register again
      return true;
    }
    if (!Is2xx(r)) {
      return false;
    }
    report_due_ = false;
    last_report_ = std::chrono::steady_clock::now();
    if (ep.epoch == 1 && disk > 85) {
      std::lock_guard<std::mutex> lock(mu_);
      log_.alarm_report_acked_before_crash = true;
    }
    return true;
  }

  void Run(const Endpoint::Snapshot& ep, const protocol::Command& c) {
    const protocol::ActionSpec* spec = protocol::FindAction(c.action);
    const bool read_only = spec != nullptr && spec->read_only;
    {
      std::lock_guard<std::mutex> lock(mu_);
      log_.deliveries.push_back({c.id, c.action, read_only, ep.epoch});
    }
    auto done = results_.find(c.id);
    if (done == results_.end()) {
      protocol::CommandResult r;
      r.id = c.id;
      r.host = host_;
      r.ran = true;
      r.exit_code = 0;
      r.duration_ms = 3;
      if (c.action == "disk.usage") {
        r.output = "Filesystem Size Used Avail Use% Mounted on\n/dev/vda1 10G 9.5G 0.5G 95% /\n";
      } else if (c.action == "dir.list") {
        r.output = "total 0\n";  // no regular file: the runbook's fallback fix, no upload
      } else if (!read_only) {
        r.output = "freed 5.5G\n";
        fix_ran_ = true;
        report_due_ = true;
        std::lock_guard<std::mutex> lock(mu_);
        log_.fix_ran = true;
      }
      done = results_.emplace(c.id, std::move(r)).first;
    }
    if (!Answer(ep, done->second, read_only)) {
      unanswered_.emplace_back(done->second, read_only);
    }
  }

  bool Answer(const Endpoint::Snapshot& ep, const protocol::CommandResult& r, bool read_only) {
    if (!Is2xx(Call(*client_, "POST", ep.url + "/agent/v1/results", token_,
                    DumpJson(protocol::ToJson(r))))) {
      return false;
    }
    if (ep.epoch != 1) {
      return true;
    }
    std::string action;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& d : log_.deliveries) {
        if (d.id == r.id) {
          action = d.action;
        }
      }
      if (read_only) {
        log_.diag_acked_before_crash.insert(action);
      } else {
        log_.fix_acked_before_crash = true;
      }
    }
    if (read_only && diag_kill_ != nullptr) {
      diag_kill_->Count();
    }
    return true;
  }

  const std::string host_;
  const Endpoint& endpoint_;
  const std::string token_;
  KillSwitch* const diag_kill_;
  const std::atomic<bool>* const hold_commands_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> holding_{false};
  std::thread thread_;

  // Used by the agent's own thread only.
  std::unique_ptr<HttpClient> client_;
  int epoch_ = 0;
  bool registered_ = false;
  bool report_due_ = true;
  bool fix_ran_ = false;
  std::chrono::steady_clock::time_point last_report_{};
  std::map<std::string, protocol::CommandResult> results_;  // id -> what it answered
  std::vector<std::pair<protocol::CommandResult, bool>> unanswered_;

  mutable std::mutex mu_;
  AgentLog log_;  // Guarded by mu_.
};

// The medic-server binary on a fresh loopback port; SIGKILLed (its process group) when the
// object dies, so a failing test leaves nothing running.
class ServerProcess {
 public:
  ServerProcess(std::string data_dir, std::string config, std::string stderr_path)
      : data_dir_(std::move(data_dir)),
        config_(std::move(config)),
        stderr_path_(std::move(stderr_path)) {}

  // Starts the server and waits until it answers with this data directory's admin token.
  // A port taken between FreePort() and the server's bind is retried with another.
  std::string Start() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      const int port = test::FreePort();
      proc_ = std::make_unique<test::Subprocess>(
          std::vector<std::string>{Bin("medic-server"), "--config", config_, "--data-dir",
                                   data_dir_, "--listen", "127.0.0.1:" + std::to_string(port)},
          stderr_path_);
      const std::string url = "http://127.0.0.1:" + std::to_string(port);
      auto client = NewCurlHttpClient();
      const auto deadline = std::chrono::steady_clock::now() + 15s;
      while (std::chrono::steady_clock::now() < deadline && test::ProcessAlive(proc_->pid())) {
        const std::string admin(Trim(ReadFile(data_dir_ + "/admin.token").value_or("")));
        if (!admin.empty() &&
            Is2xx(Call(*client, "GET", url + "/api/v1/settings", admin, "", Millis(1'000)))) {
          return url;
        }
        std::this_thread::sleep_for(20ms);
      }
      proc_->SignalAndWait(SIGKILL, 5s);
      proc_.reset();
    }
    return "";
  }

  pid_t pid() const { return proc_ ? proc_->pid() : -1; }

  // Waits for the process to die (after a KillSwitch fired); true if it did.
  bool WaitKilled() {
    auto status = proc_->Wait(10s);
    return status.has_value() && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL;
  }

  void Terminate() {
    if (proc_) {
      proc_->SignalAndWait(SIGTERM, 10s);
      proc_.reset();
    }
  }

  std::string StderrTail() const { return ReadFileTail(stderr_path_, 3000).value_or(""); }

 private:
  const std::string data_dir_;
  const std::string config_;
  const std::string stderr_path_;
  std::unique_ptr<test::Subprocess> proc_;
};

std::vector<std::string> Events(const Json& inc) {
  std::vector<std::string> out;
  for (const auto& e : inc["timeline"]) {
    out.push_back(e.value("event", ""));
  }
  return out;
}

int CountOf(const std::vector<std::string>& events, const std::string& name) {
  return static_cast<int>(std::count(events.begin(), events.end(), name));
}

// True when `event` occurs before the first "resumed" entry (or anywhere, without one).
bool BeforeRestart(const std::vector<std::string>& events, const std::string& event) {
  for (const auto& e : events) {
    if (e == "resumed") {
      return false;
    }
    if (e == event) {
      return true;
    }
  }
  return false;
}

bool IsOpenStatus(const std::string& s) {
  return s == "diagnosing" || s == "pending_approval" || s == "executing";
}

WallTime TimeOf(const Json& j) {
  if (!j.is_string()) {
    return WallTime::max();
  }
  return ParseRfc3339(j.get<std::string>()).value_or(WallTime::max());
}

enum class KillDuring { kDiagnosis, kApprovals };

void PrintTo(KillDuring when, std::ostream* os) {
  *os << (when == KillDuring::kDiagnosis ? "Diagnosis" : "Approvals");
}

std::string Name(const ::testing::TestParamInfo<KillDuring>& info) {
  std::ostringstream os;
  PrintTo(info.param, &os);
  return os.str();
}

class CrashRecoveryTest : public ::testing::TestWithParam<KillDuring> {
 protected:
  static void SetUpTestSuite() {
    InitHttpClientLibrary();
    // The built-in brain only: no model is consulted, whatever the environment says.
    setenv("MEDIC_AI_PROVIDER", "none", 1);
  }

  void SetUp() override {
    data_ = dir_.File("data");
    config_ = dir_.File("server.yaml");
    ASSERT_TRUE(WriteFileAtomic(config_,
                                "approval_mode: true\n"
                                "runbooks:\n"
                                "  Disk-Critical-ASG:\n"
                                "    diagnostics_timeout: 30s\n"
                                "    verification_window: " +
                                    std::to_string(kVerificationWindow.count()) + "s\n")
                    .has_value());
  }

  // Every incident, newest first.
  std::vector<Json> Incidents(const std::string& status = "") {
    auto r =
        Call(*client_, "GET",
             url_ + "/api/v1/incidents?limit=1000" + (status.empty() ? "" : "&status=" + status),
             admin_, "", Millis(10'000));
    EXPECT_TRUE(Is2xx(r)) << (r ? r->body : r.error().ToString());
    if (!Is2xx(r)) {
      return {};
    }
    auto j = ParseJson(r->body);
    std::vector<Json> out;
    if (j && (*j)["incidents"].is_array()) {
      for (const auto& inc : (*j)["incidents"]) {
        out.push_back(inc);
      }
    }
    return out;
  }

  // Approves `ids` from kApprovers threads at once. Each 2xx is an acknowledged transition:
  // recorded with the status the server answered, and counted by `kill` (may be null).
  void ApproveConcurrently(const std::vector<std::string>& ids, KillSwitch* kill) {
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kApprovers; ++t) {
      threads.emplace_back([&] {
        auto client = NewCurlHttpClient();
        for (size_t i = next++; i < ids.size(); i = next++) {
          // An approval names the proposal it approves: read it first.
          auto got = Call(*client, "GET", url_ + "/api/v1/incidents/" + ids[i], admin_, "");
          std::string hash;
          if (Is2xx(got)) {
            if (auto j = ParseJson(got->body)) {
              hash = j->value("action_hash", "");
            }
          }
          if (hash.empty()) {
            continue;
          }
          auto r = Call(*client, "POST", url_ + "/api/v1/incidents/" + ids[i] + "/approve", admin_,
                        DumpJson(Json{{"action_hash", hash}, {"comment", kComment}}));
          if (!Is2xx(r)) {
            continue;
          }
          std::string status;
          if (auto j = ParseJson(r->body)) {
            status = j->value("status", "");
          }
          {
            std::lock_guard<std::mutex> lock(acked_mu_);
            acked_approvals_[ids[i]] = status;
          }
          if (kill != nullptr) {
            kill->Count();
          }
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
  }

  test::TempDir dir_;
  std::string data_, config_, url_, admin_;
  std::unique_ptr<HttpClient> client_ = NewCurlHttpClient();
  std::mutex acked_mu_;
  std::map<std::string, std::string> acked_approvals_;  // id -> status answered. Guarded.
};

TEST_P(CrashRecoveryTest, SigkillDuringConcurrentTransitionsLosesNothing) {
  const KillDuring when = GetParam();
  std::random_device rd;
  const unsigned seed = rd();
  std::mt19937 rng(seed);
  // Diagnosis: after 20..160 of the 200 diagnostic answers; approvals: after 15..80 of 100.
  const int kill_after = when == KillDuring::kDiagnosis
                             ? std::uniform_int_distribution<int>(20, 160)(rng)
                             : std::uniform_int_distribution<int>(15, 80)(rng);
  SCOPED_TRACE("seed " + std::to_string(seed) + ", SIGKILL after " + std::to_string(kill_after) +
               " acknowledged " +
               (when == KillDuring::kDiagnosis ? "diagnostic answers" : "approvals"));

  ServerProcess first(data_, config_, dir_.File("server1.stderr"));
  url_ = first.Start();
  ASSERT_FALSE(url_.empty()) << "medic-server did not start: " << first.StderrTail();
  admin_ = std::string(Trim(ReadFile(data_ + "/admin.token").value_or("")));
  // Each fake agent enrols its host with a code, as `medic demo` does, and keeps its credential
  // across the server's restart.
  auto client = NewCurlHttpClient();
  const test::CallFn call = [&](const std::string& method, const std::string& path,
                                const std::string& token, const std::string& body) {
    auto r = Call(*client, method, url_ + path, token, body);
    return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
  };
  std::vector<std::string> credentials;
  for (int i = 0; i < kHosts; ++i) {
    credentials.push_back(test::EnrollHost(call, admin_, HostName(i)));
    ASSERT_FALSE(credentials.back().empty());
  }

  KillSwitch kill;
  kill.Arm(first.pid(), kill_after);
  Endpoint endpoint;
  endpoint.Set(url_, 1);
  // In the approvals run every fifth host stops fetching commands while approvals go on, so
  // that approved fixes sit undelivered in the server's memory when it dies.
  std::atomic<bool> hold{false};
  std::set<std::string> held_hosts;
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (int i = 0; i < kHosts; ++i) {
    const bool held = when == KillDuring::kApprovals && i % 5 == 0;
    if (held) {
      held_hosts.insert(HostName(i));
    }
    agents.push_back(std::make_unique<FakeAgent>(HostName(i), endpoint, credentials[i],
                                                 when == KillDuring::kDiagnosis ? &kill : nullptr,
                                                 held ? &hold : nullptr));
  }
  // Stops every agent before anything else dies, also when an assertion returns early.
  struct StopAgents {
    std::vector<std::unique_ptr<FakeAgent>>& agents;
    ~StopAgents() {
      for (auto& a : agents) {
        a->RequestStop();
      }
      for (auto& a : agents) {
        a->Stop();
      }
    }
  } stop_agents{agents};
  for (auto& a : agents) {
    a->Start();
  }

  auto eventually = [](std::chrono::milliseconds timeout, auto fn) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (fn()) {
        return true;
      }
      std::this_thread::sleep_for(50ms);
    }
    return fn();
  };

  std::set<std::string> pending_before_crash;
  if (when == KillDuring::kDiagnosis) {
    ASSERT_TRUE(eventually(30s, [&] { return kill.fired(); }))
        << "fewer than " << kill_after << " diagnostic answers in 30 s: " << first.StderrTail();
  } else {
    std::vector<Json> pending;
    ASSERT_TRUE(eventually(30s,
                           [&] {
                             pending = Incidents("pending_approval");
                             return pending.size() == static_cast<size_t>(kHosts);
                           }))
        << pending.size() << " of " << kHosts << " incidents reached pending_approval";
    std::vector<std::string> ids;
    std::vector<std::string> held_ids;
    for (const auto& inc : pending) {
      const std::string id = inc["incident_id"];
      pending_before_crash.insert(id);
      (held_hosts.count(inc["instance_id"].get<std::string>()) ? held_ids : ids).push_back(id);
    }
    std::shuffle(ids.begin(), ids.end(), rng);
    std::shuffle(held_ids.begin(), held_ids.end(), rng);
    // Half of the held hosts' incidents go first, so that some are approved before the kill.
    const auto half = held_ids.begin() + static_cast<long>(held_ids.size() / 2);
    ids.insert(ids.begin() + static_cast<long>(ids.size() / 2), half, held_ids.end());
    ids.insert(ids.begin(), held_ids.begin(), half);
    hold = true;
    ASSERT_TRUE(eventually(10s, [&] {
      for (auto& a : agents) {
        if (held_hosts.count(a->host()) != 0 && !a->holding()) {
          return false;
        }
      }
      return true;
    })) << "the held agents still poll";
    ApproveConcurrently(ids, &kill);
    ASSERT_TRUE(kill.fired()) << "only " << acked_approvals_.size() << " approvals acknowledged";
  }
  ASSERT_TRUE(first.WaitKilled()) << "the server did not die of SIGKILL";
  endpoint.Set("", 0);  // the agents keep their unacknowledged answers and wait
  std::map<std::string, std::string> acked_approvals;
  {
    std::lock_guard<std::mutex> lock(acked_mu_);
    acked_approvals = acked_approvals_;
    acked_approvals_.clear();
  }
  std::map<std::string, AgentLog> before;  // host -> what it had acknowledged
  for (auto& a : agents) {
    before[a->host()] = a->log();
  }

  // The restart. Recovery runs before the server answers; the agents are still away, so what
  // the store holds now is what survived the crash plus what Recover() wrote.
  ServerProcess second(data_, config_, dir_.File("server2.stderr"));
  url_ = second.Start();
  ASSERT_FALSE(url_.empty()) << "medic-server did not restart: " << second.StderrTail();
  const std::vector<Json> recovered = Incidents();

  std::map<std::string, std::vector<Json>> by_host;  // Disk-Critical-ASG incidents per host
  std::map<std::pair<std::string, std::string>, int> open_per_pair;
  for (const auto& inc : recovered) {
    const std::string status = inc["status"];
    if (IsOpenStatus(status)) {
      ++open_per_pair[{inc["alarm_name"].get<std::string>(),
                       inc["instance_id"].get<std::string>()}];
    }
    if (inc["alarm_name"] == kAlarm) {
      by_host[inc["instance_id"].get<std::string>()].push_back(inc);
    }
    const auto events = Events(inc);
    if (status == "diagnosing" || status == "executing") {
      EXPECT_EQ(CountOf(events, "resumed"), 1)
          << "a recovered " << status << " incident needs one resumed entry: " << inc.dump(1);
    }
  }
  for (const auto& [pair, n] : open_per_pair) {
    EXPECT_EQ(n, 1) << n << " open incidents for " << pair.first << " on " << pair.second;
  }
  {
    std::map<std::string, int> statuses;
    for (const auto& inc : recovered) {
      ++statuses[inc["status"].get<std::string>()];
    }
    std::string line;
    for (const auto& [s, n] : statuses) {
      line += " " + s + "=" + std::to_string(n);
    }
    std::printf("after the crash (%d acknowledged approvals):%s\n",
                static_cast<int>(acked_approvals.size()), line.c_str());
  }
  for (const auto& [host, log] : before) {
    SCOPED_TRACE(host);
    const auto& incs = by_host[host];
    if (log.alarm_report_acked_before_crash) {
      ASSERT_EQ(incs.size(), 1u) << "the alarm of an acknowledged report opened " << incs.size()
                                 << " incidents";
    }
    if (incs.empty()) {
      continue;
    }
    const auto events = Events(incs[0]);
    if (log.diag_acked_before_crash.size() == 2) {
      EXPECT_TRUE(BeforeRestart(events, "diagnosed"))
          << "both diagnostics were acknowledged, the diagnosis is lost: " << incs[0].dump(1);
    }
    if (log.fix_acked_before_crash) {
      EXPECT_TRUE(BeforeRestart(events, "executed"))
          << "the fix's result was acknowledged, the execution is lost: " << incs[0].dump(1);
    }
  }
  for (const auto& [id, answered] : acked_approvals) {
    SCOPED_TRACE(id);
    EXPECT_EQ(answered, "executing");
    const Json* inc = nullptr;
    for (const auto& r : recovered) {
      if (r["incident_id"] == id) {
        inc = &r;
      }
    }
    ASSERT_NE(inc, nullptr) << "an approved incident is gone";
    const std::string status = (*inc)["status"];
    EXPECT_TRUE(status == "executing" || status == "completed" || status == "failed" ||
                status == "timeout")
        << "acknowledged approval, but the incident is " << status << ": " << inc->dump(1);
    int approvals = 0;
    for (const auto& e : (*inc)["timeline"]) {
      if (e["event"] == "approved") {
        ++approvals;
        EXPECT_EQ(e["actor"], "admin");
        EXPECT_EQ(e["detail"], kComment);
      }
    }
    EXPECT_EQ(approvals, 1) << inc->dump(1);
  }

  // The agents come back (they register again on the 404 of their next report); every
  // incident still pending from before the crash, or the first one of a host whose alarm the
  // dead server never acknowledged, is approved, concurrently again.
  endpoint.Set(url_, 2);
  hold = false;
  std::map<std::string, Json> tracked;  // host -> its first Disk-Critical-ASG incident
  auto refresh = [&]() -> std::vector<Json> {
    std::vector<Json> all = Incidents();
    tracked.clear();
    for (const auto& inc : all) {  // newest first: the last one seen is the oldest
      if (inc["alarm_name"] == kAlarm) {
        tracked[inc["instance_id"].get<std::string>()] = inc;
      }
    }
    return all;
  };
  std::vector<Json> all;
  const bool settled = eventually(45s, [&] {
    all = refresh();
    std::vector<std::string> to_approve;
    bool done = tracked.size() == static_cast<size_t>(kHosts);
    for (const auto& [host, inc] : tracked) {
      const std::string status = inc["status"];
      if (status == "pending_approval") {
        to_approve.push_back(inc["incident_id"].get<std::string>());
      }
      done = done && !IsOpenStatus(status);
    }
    for (const auto& inc : all) {
      const std::string status = inc["status"];
      done = done && status != "diagnosing" && status != "executing";
    }
    if (!to_approve.empty()) {
      ApproveConcurrently(to_approve, nullptr);
    }
    return done;
  });
  std::map<std::string, AgentLog> after;
  for (auto& a : agents) {
    a->RequestStop();
  }
  for (auto& a : agents) {
    a->Stop();
    after[a->host()] = a->log();
  }
  all = refresh();
  std::string stuck;
  for (const auto& inc : all) {
    if (inc["status"] == "diagnosing" || inc["status"] == "executing") {
      stuck += inc.dump(1) + "\n";
    }
  }
  ASSERT_TRUE(settled) << tracked.size() << " hosts with an incident; stuck:\n"
                       << stuck << second.StderrTail();

  // Nothing stuck, nothing duplicated, every fix delivered at most once, and an incident is
  // completed exactly when its host ran the fix.
  open_per_pair.clear();
  std::set<std::string> ids_seen;
  for (const auto& inc : all) {
    const std::string id = inc["incident_id"];
    EXPECT_TRUE(ids_seen.insert(id).second) << "incident " << id << " listed twice";
    const std::string status = inc["status"];
    const auto events = Events(inc);
    EXPECT_LE(CountOf(events, "approved"), 1) << inc.dump(1);
    EXPECT_LE(CountOf(events, "executing"), 1) << "a second fix: " << inc.dump(1);
    if (IsOpenStatus(status)) {
      ++open_per_pair[{inc["alarm_name"].get<std::string>(),
                       inc["instance_id"].get<std::string>()}];
    } else {
      EXPECT_FALSE(inc["resolved_at"].is_null()) << inc.dump(1);
      if (status != "completed") {
        EXPECT_FALSE(inc.value("reason", "").empty()) << "closed without a reason: " << inc.dump(1);
      }
    }
  }
  for (const auto& [pair, n] : open_per_pair) {
    EXPECT_EQ(n, 1) << n << " open incidents for " << pair.first << " on " << pair.second;
  }
  {
    std::map<std::string, int> statuses;
    for (const auto& [host, inc] : tracked) {
      ++statuses[inc["status"].get<std::string>()];
    }
    std::string line;
    for (const auto& [s, n] : statuses) {
      line += " " + s + "=" + std::to_string(n);
    }
    std::printf("after recovery:%s\n", line.c_str());
  }
  // Fixes approved (acknowledged) before the crash but not run by then: the stored command is
  // offered again after the restart (it had not expired), and runs once.
  int resent_fixes = 0;
  for (const auto& [id, answered] : acked_approvals) {
    for (const auto& [host, inc] : tracked) {
      if (inc["incident_id"] == id && !before[host].fix_ran) {
        ++resent_fixes;
        EXPECT_TRUE(after[host].fix_ran)
            << "an acknowledged approval whose fix had not run was lost: " << inc.dump(1);
      }
    }
  }
  std::printf("approved fixes that ran only after the restart: %d\n", resent_fixes);
  // A fix that ran while the server died: its result, posted again to the new server (or
  // answered again when the command is re-offered), is matched to the incident.
  int completed_without_output = 0;
  for (const auto& [host, inc] : tracked) {
    if (inc["status"] == "completed" && inc.value("remediation_output", "").empty()) {
      ++completed_without_output;
    }
  }
  EXPECT_EQ(completed_without_output, 0) << "completed incidents whose fix output was lost";
  std::set<std::string> delivered_ids;
  for (const auto& [host, log] : after) {
    SCOPED_TRACE(host);
    ASSERT_EQ(tracked.count(host), 1u) << "no incident for a host at 95 %";
    const Json& inc = tracked[host];
    // Another incident of the same alarm and host may only follow the first one's end.
    for (const auto& other : all) {
      if (other["alarm_name"] == kAlarm && other["instance_id"] == host &&
          other["incident_id"] != inc["incident_id"]) {
        EXPECT_GE(TimeOf(other["created_at"]), TimeOf(inc["resolved_at"]))
            << "two incidents open at once:\n"
            << inc.dump(1) << "\n"
            << other.dump(1);
      }
    }
    // A command id reaches the agent at most once per server life; only the fix may be
    // offered again after the crash (same id: the agent runs it once), and only one fix exists.
    std::set<std::string> fix_ids;
    std::set<std::pair<std::string, int>> per_epoch;
    for (const auto& d : log.deliveries) {
      EXPECT_TRUE(per_epoch.insert({d.id, d.epoch}).second)
          << "command " << d.id << " (" << d.action << ") delivered twice by one server";
      if (d.read_only) {
        EXPECT_TRUE(delivered_ids.insert(d.id).second)
            << "diagnostic " << d.id << " (" << d.action << ") delivered twice";
      } else {
        fix_ids.insert(d.id);
      }
    }
    EXPECT_LE(fix_ids.size(), 1u) << "more than one fix was sent to " << host;
    if (log.fix_ran) {
      EXPECT_EQ(inc["status"], "completed") << inc.dump(1);
      EXPECT_EQ(CountOf(Events(inc), "executing"), 1) << inc.dump(1);
    } else {
      EXPECT_TRUE(inc["status"] == "failed" || inc["status"] == "timeout") << inc.dump(1);
    }
    if (when == KillDuring::kDiagnosis) {
      EXPECT_TRUE(log.fix_ran) << "no approval was lost in this run: " << inc.dump(1);
    }
    if (pending_before_crash.count(inc["incident_id"].get<std::string>()) == 0 &&
        when == KillDuring::kApprovals) {
      ADD_FAILURE() << "an incident that was not pending at the crash: " << inc.dump(1);
    }
  }
  second.Terminate();
}

INSTANTIATE_TEST_SUITE_P(KillDuring, CrashRecoveryTest,
                         ::testing::Values(KillDuring::kDiagnosis, KillDuring::kApprovals), Name);

}  // namespace
}  // namespace medic
