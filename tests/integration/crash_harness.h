#pragma once

// What the crash tests share (crash_recovery_test.cc, crash_consistency_test.cc): the real
// medic-server as a child process that can be SIGKILLed and restarted on the same data directory,
// a kill switch that fires after the Nth acknowledged transition, and fake agents speaking the
// agent protocol over loopback HTTP that record every command and fix they received.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/files.h"
#include "core/json.h"
#include "protocol/actions.h"
#include "protocol/wire.h"
#include "tests/fakes/subprocess.h"
#include "transport/http_client.h"

namespace medic::crash_test {

using namespace std::chrono_literals;

inline std::string Bin(const std::string& name) {
  const char* dir = std::getenv("MEDIC_BIN_DIR");
  return std::string(dir != nullptr ? dir : "build/bin") + "/" + name;
}

inline std::string HostName(int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "crash-%03d", i);
  return buf;
}

inline bool Is2xx(const Result<HttpResponse>& r) {
  return r && r->status >= 200 && r->status < 300;
}

inline Result<HttpResponse> Call(HttpClient& client, const std::string& method,
                                 const std::string& url, const std::string& token,
                                 const std::string& body = "", Millis timeout = Millis(5'000)) {
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

// Polls `fn` every 50 ms until it returns true or `timeout` passes; the last call decides.
template <typename Fn>
bool Eventually(std::chrono::milliseconds timeout, Fn fn) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) {
      return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  return fn();
}

// Where the fake agents find the server, and which run of it that is (1 for the first, +1 at
// each restart). Empty while no server is up.
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

// SIGKILLs the armed server once, from whichever thread counts the `after_acks`th acknowledged
// transition first (or, when armed with fire_on_count false, only counts: the owner calls
// Fire()). Re-armed for each server run. Thread-safe.
class KillSwitch {
 public:
  void Arm(pid_t pid, int after_acks, bool fire_on_count = true) {
    pid_ = -1;
    fired_ = false;
    count_ = 0;
    fire_on_count_ = fire_on_count;
    after_ = after_acks;
    pid_ = pid;
  }
  // After the armed server died (and before its pid is reaped): no later Count() or Fire()
  // signals anything.
  void Disarm() {
    after_ = 0;
    pid_ = -1;
  }
  // Counts one acknowledged transition of the kind the switch watches.
  void Count() {
    const int after = after_.load();
    if (count_.fetch_add(1) + 1 == after && after > 0 && fire_on_count_.load()) {
      Fire();
    }
  }
  void Fire() {
    const pid_t pid = pid_.load();
    if (pid > 0 && !fired_.exchange(true)) {
      kill(pid, SIGKILL);
    }
  }
  bool fired() const { return fired_.load(); }
  int count() const { return count_.load(); }

 private:
  std::atomic<pid_t> pid_{-1};
  std::atomic<int> after_{0};
  std::atomic<bool> fire_on_count_{true};
  std::atomic<int> count_{0};
  std::atomic<bool> fired_{false};
};

// What one fake agent saw and had acknowledged. Guarded by FakeAgent::mu_.
struct AgentLog {
  struct Delivery {
    std::string id;
    std::string action;
    std::string incident;
    bool read_only = false;
    int epoch = 0;  // the server run that delivered it
  };
  struct Ack {  // a result the server answered 2xx
    std::string id;
    std::string action;
    std::string incident;
    bool read_only = false;
    int epoch = 0;            // the server run that acknowledged it
    int delivered_epoch = 0;  // the server run that delivered the command
  };
  struct FixRun {  // a fix the agent executed (each id at most once, as the real agent)
    std::string id;
    std::string incident;
    int exit_code = 0;
    int epoch = 0;
  };
  struct Execution {  // a command the agent ran (diagnostic or fix), whatever admitted it
    std::string id;
    std::string action;
    int epoch = 0;  // the server run that delivered it
  };
  std::vector<Delivery> deliveries;
  std::vector<Ack> acks;
  std::vector<FixRun> fixes_run;
  std::vector<Execution> runs;  // every execution, in order: an id twice means it ran twice
  int alarm_report_acked_epoch = 0;  // first server run that acknowledged a report in alarm
  bool fix_ran = false;              // a fix succeeded: the metric is back to normal (or soon)

  // Helpers for the single-crash test (epoch 1 = before the crash).
  bool alarm_report_acked_before_crash() const { return alarm_report_acked_epoch == 1; }
  std::set<std::string> diag_acked_before_crash() const {
    std::set<std::string> out;
    for (const auto& a : acks) {
      if (a.read_only && a.epoch == 1) {
        out.insert(a.action);
      }
    }
    return out;
  }
  bool fix_acked_before_crash() const {
    for (const auto& a : acks) {
      if (!a.read_only && a.epoch == 1) {
        return true;
      }
    }
    return false;
  }
};

// What decides whether a delivered command runs on a fake agent's host. Without one the fake
// keeps its own map and runs each id at most once; a test that counts runs as a canary passes
// the real agent's ledger instead (agent/command_ledger.h), so that what stops a repeat is the
// product, not the fake. Called on the agent's thread only.
class RunLedger {
 public:
  virtual ~RunLedger() = default;
  // Called at every arrival of a command. nullopt: the command runs now (its start is recorded
  // first, as the agent does); otherwise it does not run and this answer is sent instead.
  virtual std::optional<protocol::CommandResult> Admit(const protocol::Command& command) = 0;
  // The result of a command Admit() let run.
  virtual void Finished(const protocol::CommandResult& result) = 0;
};

// How a fake agent behaves. The defaults: the disk alarm, everything answered at once, the fix
// succeeds and the disk is back to normal at once.
struct FakeAgentOptions {
  std::string metric = "disk_used_percent";  // 95 until a fix succeeds (+ recover_after), then 40
  Millis start_after{0};    // reports the metric normal (40) until then: the alarm opens later
  Millis diag_after{0};     // a diagnostic's answer is posted this long after it arrived
  Millis fix_after{0};      // a fix's result is posted this long after it arrived
  Millis recover_after{0};  // the metric drops this long after the fix succeeded
  int failing_fixes = 0;    // the first N fixes exit 1 (the metric stays high)
  KillSwitch* count_diag = nullptr;  // counts each acknowledged diagnostic answer (may be null)
  KillSwitch* count_fix = nullptr;   // counts each acknowledged fix result (may be null)
  // While *hold_commands (if given) is true the agent does not poll for commands: what the
  // server sends it waits in the server's queue.
  const std::atomic<bool>* hold_commands = nullptr;
  // While *hold_results (if given) is true the agent keeps the results of the fixes it ran (a
  // fix in flight: it ran, the server does not know yet). With it the metric recovers only
  // from when such a result was acknowledged, so the alarm cannot tell the server first.
  const std::atomic<bool>* hold_results = nullptr;
  // While *hold_recovery (if given) is true the metric stays in alarm, also after a fix
  // succeeded (an incident waits in its verification).
  const std::atomic<bool>* hold_recovery = nullptr;
  // Several servers, as the agent's `servers:` list: when non-empty the Endpoint is not used;
  // the agent talks to servers[current] and moves to the next one (in order, wrapping around)
  // only when a request gets no answer or a 5xx, and stays there (sticky), as src/agent's
  // ServerList does. It registers again after each move.
  std::vector<std::string> servers;
  RunLedger* ledger = nullptr;  // not owned; see RunLedger
};

// One host: registers, reports its metric every second, long-polls for commands, runs each id at
// most once (a repeated id gets the stored result, as the real agent does; with
// FakeAgentOptions::ledger the ledger decides, and the fake's own memory does not), answers (now or
// after a delay), and retries answers the server did not acknowledge. Every arrival of a
// command is logged (AgentLog::deliveries), repeats included: a canary that counts fixes must
// count those, not the runs, or a fix sent twice under one id could never be seen.
class FakeAgent {
 public:
  FakeAgent(std::string host, const Endpoint& endpoint, std::string token,
            FakeAgentOptions options = {})
      : host_(std::move(host)),
        endpoint_(endpoint),
        token_(std::move(token)),
        options_(std::move(options)) {}
  ~FakeAgent() { Stop(); }

  void Start() {
    started_ = std::chrono::steady_clock::now();
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
  const FakeAgentOptions& options() const { return options_; }
  // True once the agent has seen the hold and has no long poll open.
  bool holding() const { return holding_.load(); }
  // True while a result waits for its delay or for a server that acknowledges it.
  bool answers_pending() const { return answers_pending_.load(); }
  // With options().servers: how many times the agent moved to the next server.
  int server_moves() const { return moves_.load(); }
  AgentLog log() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Outgoing {
    protocol::CommandResult result;
    std::string action;
    std::string incident;
    bool read_only = false;
    int delivered_epoch = 0;
    Clock::time_point due;
  };

  void Loop() {
    client_ = NewCurlHttpClient();
    while (!stop_) {
      const Endpoint::Snapshot ep =
          options_.servers.empty()
              ? endpoint_.Get()
              : Endpoint::Snapshot{options_.servers[server_index_], 1 + moves_.load()};
      if (ep.url.empty()) {
        std::this_thread::sleep_for(20ms);
        continue;
      }
      if (ep.epoch != epoch_) {
        epoch_ = ep.epoch;
        registered_ = false;
        report_due_ = true;
      }
      fail_over_ = false;
      if (!Step(ep)) {
        if (!options_.servers.empty() && fail_over_) {
          server_index_ = (server_index_ + 1) % options_.servers.size();
          ++moves_;
        }
        std::this_thread::sleep_for(50ms);  // the server is down or restarting
      }
    }
    client_.reset();
  }

  bool ResultsHeld() const {
    return options_.hold_results != nullptr && options_.hold_results->load();
  }

  // Call(), noting whether the outcome moves a multi-server agent on (no answer, or a 5xx).
  Result<HttpResponse> Send(const std::string& method, const std::string& url,
                            const std::string& body = "", Millis timeout = Millis(5'000)) {
    auto r = Call(*client_, method, url, token_, body, timeout);
    if (!r || r->status >= 500) {
      fail_over_ = true;
    }
    return r;
  }

  bool InAlarm() {
    const auto now = Clock::now();
    if (now < started_ + options_.start_after) {
      return false;
    }
    if (options_.hold_recovery != nullptr && options_.hold_recovery->load()) {
      return true;
    }
    return !(fix_ran_ && now >= fixed_at_ + options_.recover_after);
  }

  // One round: register, report, post due answers, long poll, run. False when the server could
  // not be reached.
  bool Step(const Endpoint::Snapshot& ep) {
    if (!registered_) {
      protocol::RegisterRequest reg;
      reg.name = host_;
      reg.hostname = host_;
      reg.version = "crash-test";
      if (!Is2xx(Send("POST", ep.url + "/agent/v1/register", DumpJson(protocol::ToJson(reg))))) {
        return false;
      }
      registered_ = true;
    }
    const bool alarm = InAlarm();
    if (report_due_ || alarm != reported_alarm_ || Clock::now() - last_report_ > 1s) {
      if (!Report(ep, alarm)) {
        return false;
      }
    }
    for (auto it = outgoing_.begin(); it != outgoing_.end();) {
      if (it->due > Clock::now() || (!it->read_only && ResultsHeld())) {
        ++it;
        continue;
      }
      if (!Answer(ep, *it)) {
        return false;
      }
      it = outgoing_.erase(it);
    }
    answers_pending_ = !outgoing_.empty();
    if (options_.hold_commands != nullptr && options_.hold_commands->load()) {
      holding_ = true;
      std::this_thread::sleep_for(50ms);
      return true;
    }
    holding_ = false;
    // A shorter poll while something is due soon (a delayed answer, the alarm's start or end).
    const auto now = Clock::now();
    const bool soon = !outgoing_.empty() || now < started_ + options_.start_after ||
                      (fix_ran_ && now < fixed_at_ + options_.recover_after);
    const int wait_ms = soon ? 300 : 1000;
    auto polled = Send("GET",
                       ep.url + "/agent/v1/commands?host=" + host_ +
                           "&wait_ms=" + std::to_string(wait_ms),
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
    answers_pending_ = !outgoing_.empty();
    return true;
  }

  bool Report(const Endpoint::Snapshot& ep, bool alarm) {
    protocol::Report rep;
    rep.host = host_;
    rep.samples.push_back({SystemClock().Now(), {{options_.metric, alarm ? 95.0 : 40.0}}});
    auto r = Send("POST", ep.url + "/agent/v1/report", DumpJson(protocol::ToJson(rep)));
    if (r && r->status == 404) {
      registered_ = false;  // the server restarted: register again
      return true;
    }
    if (!Is2xx(r)) {
      return false;
    }
    report_due_ = false;
    reported_alarm_ = alarm;
    last_report_ = Clock::now();
    if (alarm) {
      std::lock_guard<std::mutex> lock(mu_);
      if (log_.alarm_report_acked_epoch == 0) {
        log_.alarm_report_acked_epoch = ep.epoch;
      }
    }
    return true;
  }

  void Run(const Endpoint::Snapshot& ep, const protocol::Command& c) {
    const protocol::ActionSpec* spec = protocol::FindAction(c.action);
    const bool read_only = spec != nullptr && spec->read_only;
    // The incident travels in the signed envelope only (not checked here: the real agent does).
    std::string incident = c.incident;
    protocol::Command as_signed = c;  // what the ledger records, nonce included
    if (auto env = protocol::CommandFromEnvelope(c.envelope); env) {
      incident = env->incident;
      as_signed = *env;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      log_.deliveries.push_back({c.id, c.action, incident, read_only, ep.epoch});
    }
    bool admitted = false;
    if (options_.ledger != nullptr) {
      // The ledger decides, at every arrival; a command it holds already is answered as it
      // says, not run.
      if (auto stored = options_.ledger->Admit(as_signed); stored.has_value()) {
        results_[c.id] = *stored;
      } else {
        results_.erase(c.id);
        admitted = true;
      }
    }
    for (const Outgoing& o : outgoing_) {
      if (o.result.id == c.id && !admitted) {
        return;  // its answer is on its way already
      }
    }
    auto done = results_.find(c.id);
    if (done == results_.end()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        log_.runs.push_back({c.id, c.action, ep.epoch});
      }
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
      } else if (read_only) {
        r.output = "ok\n";
      } else {
        const bool fails = fixes_tried_ < options_.failing_fixes;
        ++fixes_tried_;
        r.exit_code = fails ? 1 : 0;
        r.output = fails ? "no space freed\n" : "freed 5.5G\n";
        std::lock_guard<std::mutex> lock(mu_);
        log_.fixes_run.push_back({c.id, incident, r.exit_code, ep.epoch});
        if (!fails && !fix_ran_ && options_.hold_results == nullptr) {
          fix_ran_ = true;
          fixed_at_ = Clock::now();
          log_.fix_ran = true;
        }
      }
      if (options_.ledger != nullptr) {
        options_.ledger->Finished(r);
      }
      done = results_.emplace(c.id, std::move(r)).first;
    }
    const Millis delay = read_only ? options_.diag_after : options_.fix_after;
    outgoing_.push_back(
        {done->second, c.action, incident, read_only, ep.epoch, Clock::now() + delay});
    if (delay.count() == 0 && (read_only || !ResultsHeld()) && Answer(ep, outgoing_.back())) {
      outgoing_.pop_back();
    }
  }

  bool Answer(const Endpoint::Snapshot& ep, const Outgoing& o) {
    if (!Is2xx(Send("POST", ep.url + "/agent/v1/results", DumpJson(protocol::ToJson(o.result))))) {
      return false;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (options_.hold_results != nullptr && !o.read_only && o.result.exit_code == 0 &&
          !fix_ran_) {
        // The fix's effect shows from when the server knows of it (see hold_results).
        fix_ran_ = true;
        fixed_at_ = Clock::now();
        log_.fix_ran = true;
      }
      log_.acks.push_back(
          {o.result.id, o.action, o.incident, o.read_only, ep.epoch, o.delivered_epoch});
    }
    KillSwitch* count = o.read_only ? options_.count_diag : options_.count_fix;
    if (count != nullptr) {
      count->Count();
    }
    return true;
  }

  const std::string host_;
  const Endpoint& endpoint_;
  const std::string token_;
  const FakeAgentOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> holding_{false};
  std::atomic<bool> answers_pending_{false};
  std::atomic<int> moves_{0};
  std::thread thread_;
  Clock::time_point started_{};

  // Used by the agent's own thread only.
  std::unique_ptr<HttpClient> client_;
  int epoch_ = 0;
  size_t server_index_ = 0;  // into options_.servers
  bool fail_over_ = false;   // the last failed request of this round moves the agent on
  bool registered_ = false;
  bool report_due_ = true;
  bool reported_alarm_ = false;
  bool fix_ran_ = false;
  int fixes_tried_ = 0;
  Clock::time_point fixed_at_{};
  Clock::time_point last_report_{};
  std::map<std::string, protocol::CommandResult> results_;  // id -> what it answered
  std::vector<Outgoing> outgoing_;  // answers not yet acknowledged, in arrival order

  mutable std::mutex mu_;
  AgentLog log_;  // Guarded by mu_.
};

// Stops every agent (all asked first, then joined: a long poll ends within a second), also when
// an assertion returns early.
struct StopAgents {
  std::vector<std::unique_ptr<FakeAgent>>& agents;
  ~StopAgents() { StopAll(agents); }
  static void StopAll(std::vector<std::unique_ptr<FakeAgent>>& agents) {
    for (auto& a : agents) {
      a->RequestStop();
    }
    for (auto& a : agents) {
      a->Stop();
    }
  }
};

// The medic-server binary on a fresh loopback port; SIGKILLed (its process group) when the
// object dies, so a failing test leaves nothing running.
class ServerProcess {
 public:
  ServerProcess(std::string data_dir, std::string config, std::string stderr_path)
      : data_dir_(std::move(data_dir)),
        config_(std::move(config)),
        stderr_path_(std::move(stderr_path)) {}

  // Starts the server on a port of its own choosing (--listen 127.0.0.1:0, read back from its
  // "serving on" line: no port is picked here and released for the server to take, which
  // another process could take first) and waits until it answers with this data directory's
  // admin token. Its URL, or "" when it did not come up.
  std::string Start() {
    std::error_code ec;
    const auto log_start = std::filesystem::file_size(stderr_path_, ec);
    proc_ = std::make_unique<test::Subprocess>(
        std::vector<std::string>{Bin("medic-server"), "--config", config_, "--data-dir",
                                 data_dir_, "--listen", "127.0.0.1:0"},
        stderr_path_);
    auto client = NewCurlHttpClient();
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    std::string url;
    while (std::chrono::steady_clock::now() < deadline && test::ProcessAlive(proc_->pid())) {
      if (url.empty()) {
        url = ServingUrl(ec ? 0 : log_start);
      }
      const std::string admin(Trim(ReadFile(data_dir_ + "/admin.token").value_or("")));
      if (!url.empty() && !admin.empty() &&
          Is2xx(Call(*client, "GET", url + "/api/v1/settings", admin, "", Millis(1'000)))) {
        return url;
      }
      std::this_thread::sleep_for(20ms);
    }
    proc_->SignalAndWait(SIGKILL, 5s);
    proc_.reset();
    return "";
  }

  pid_t pid() const { return proc_ ? proc_->pid() : -1; }

  // Waits for the process to die (after a KillSwitch fired); true if it died of SIGKILL.
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
  // "http://127.0.0.1:PORT" from the first "serving on" line after byte `from` of the server's
  // standard error (the file is appended to across restarts), or "".
  std::string ServingUrl(uintmax_t from) const {
    const int port = test::ReportedPort(stderr_path_, test::kServerServingOn, from);
    return port > 0 ? "http://127.0.0.1:" + std::to_string(port) : "";
  }

  const std::string data_dir_;
  const std::string config_;
  const std::string stderr_path_;
  std::unique_ptr<test::Subprocess> proc_;
};

inline std::vector<std::string> Events(const Json& inc) {
  std::vector<std::string> out;
  for (const auto& e : inc["timeline"]) {
    out.push_back(e.value("event", ""));
  }
  return out;
}

inline int CountOf(const std::vector<std::string>& events, const std::string& name) {
  return static_cast<int>(std::count(events.begin(), events.end(), name));
}

// True when `event` occurs before the first "resumed" entry (or anywhere, without one).
inline bool BeforeRestart(const std::vector<std::string>& events, const std::string& event) {
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

inline bool IsOpenStatus(const std::string& s) {
  return s == "diagnosing" || s == "pending_approval" || s == "executing";
}

inline WallTime TimeOf(const Json& j) {
  if (!j.is_string()) {
    return WallTime::max();
  }
  return ParseRfc3339(j.get<std::string>()).value_or(WallTime::max());
}

// Every incident (with `status`, in `view`: "" or "summary"), newest first; nullopt when the
// server does not answer.
inline std::optional<std::vector<Json>> TryListIncidents(HttpClient& client,
                                                         const std::string& url,
                                                         const std::string& token,
                                                         const std::string& status = "",
                                                         const std::string& view = "") {
  auto r = Call(client, "GET",
                url + "/api/v1/incidents?limit=1000" + (status.empty() ? "" : "&status=" + status) +
                    (view.empty() ? "" : "&view=" + view),
                token, "", Millis(10'000));
  if (!Is2xx(r)) {
    return std::nullopt;
  }
  auto j = ParseJson(r->body);
  if (!j || !(*j)["incidents"].is_array()) {
    return std::nullopt;
  }
  std::vector<Json> out;
  for (const auto& inc : (*j)["incidents"]) {
    out.push_back(inc);
  }
  return out;
}

// Every incident, newest first (empty, with a test failure, when the server does not answer).
inline std::vector<Json> ListIncidents(HttpClient& client, const std::string& url,
                                       const std::string& token, const std::string& status = "") {
  auto list = TryListIncidents(client, url, token, status);
  EXPECT_TRUE(list.has_value()) << "GET /api/v1/incidents failed";
  return list.value_or(std::vector<Json>{});
}

}  // namespace medic::crash_test
