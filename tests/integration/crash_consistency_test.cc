// Crash consistency (issue 12): rounds of SIGKILLs of the real medic-server at random moments
// while 100 incidents move through their transitions concurrently, each followed by a restart on
// the same data directory. 100 fake agents (crash_harness.h) keep answering over loopback HTTP,
// some late (their answers reach the next server run), half of them with the disk alarm, which
// waits for a human (approval mode; an approver thread approves, or for some hosts rejects), half
// with the memory alarm, which the runbook fixes automatically; some fixes fail first (the alarm
// is judged again), some alarms clear only after a while (the verifying phase), some hosts start
// late (incidents open throughout the round). Each round kills the server 1 to 3 times, after a
// random number of acknowledged transitions (diagnostic answers, fix results, approvals and
// rejections). After each restart, and at the end of the round:
//   - nothing acknowledged is lost: an acknowledged approval, rejection, fix result, both
//     diagnostics of an incident, or report in alarm is in the store;
//   - no (alarm, host) has two open incidents, or two that overlap in time;
//   - nothing is stuck: after the last restart, with no human acting, every incident reaches a
//     final status or waits for a human (pending_approval, with an approval deadline when it has
//     a fix to approve) within a bounded wait; then, with the approver back, every incident ends;
//   - nothing is fixed twice: each incident sends one fix command id at most, the agents ran at
//     most one fix per incident, and only for an incident that was approved or auto-approved.
//
// Each round's seed is printed; MEDIC_CRASH_SEED=S replays that round (the plan: kill points
// and agent behaviour; thread timing differs from run to run). MEDIC_CRASH_ROUNDS=N runs N rounds
// (default 2, the bounded run in `make test`; `make bench-crash` runs 20, docs/BENCHMARKS.md).

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/files.h"
#include "core/json.h"
#include "tests/fakes/temp_dir.h"
#include "tests/integration/crash_harness.h"
#include "tests/server/enroll_host.h"
#include "transport/http_client.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using namespace crash_test;

constexpr int kHosts = 100;
constexpr int kApprovers = 4;
constexpr char kDiskAlarm[] = "Disk-Critical-ASG";    // waits for a human (approval mode)
constexpr char kMemAlarm[] = "Memory-Exhaustion-ASG";  // fixed automatically (the runbook)
constexpr char kComment[] = "decided by the crash-consistency test";

bool Watched(const Json& inc) {
  return inc["alarm_name"] == kDiskAlarm || inc["alarm_name"] == kMemAlarm;
}

std::string Str(const Json& j, const char* key) { return j.value(key, std::string()); }

// A round, drawn from its seed.
struct Plan {
  unsigned seed = 0;
  struct Kill {
    int after = 0;     // acknowledged transitions of the server run before its SIGKILL
    Millis delay{0};   // 0: killed by the thread that got the last acknowledgement; else this
                       // long after it (with `after` 0: this long after the restart)
  };
  std::vector<Kill> kills;
  std::vector<FakeAgentOptions> agents;
  std::set<std::string> rejected_hosts;  // the approver rejects the first proposal of these
};

Plan MakePlan(unsigned seed) {
  Plan p;
  p.seed = seed;
  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&](double p) { return std::bernoulli_distribution(p)(rng); };
  const int kills = uniform(1, 3);
  for (int k = 0; k < kills; ++k) {
    Plan::Kill kill;
    if (k > 0 && chance(0.2)) {
      // While the agents come back with their late answers, and recovery's commands go out.
      kill.delay = Millis(uniform(1, 300));
    } else {
      // Some 350-450 transitions are acknowledged in a round (more after each restart).
      kill.after = uniform(5, k == 0 ? 250 : 120);
      kill.delay = Millis(chance(0.5) ? 0 : uniform(1, 500));
    }
    p.kills.push_back(kill);
  }
  for (int i = 0; i < kHosts; ++i) {
    FakeAgentOptions o;
    o.metric = chance(0.5) ? "disk_used_percent" : "mem_used_percent";
    o.start_after = Millis(chance(0.5) ? uniform(0, 8'000) : 0);
    o.diag_after = Millis(chance(0.3) ? uniform(100, 2'000) : 0);
    o.fix_after = Millis(chance(0.3) ? uniform(200, 3'000) : 0);
    // Past the 4 s verification window for a few: the fix "did not work", the alarm is judged
    // again and a fresh incident fixes it.
    o.recover_after = Millis(chance(0.05) ? 7'000 : chance(0.3) ? uniform(300, 2'500) : 0);
    o.failing_fixes = chance(0.1) ? 1 : 0;
    if (o.metric == "disk_used_percent" && chance(0.12)) {
      p.rejected_hosts.insert(HostName(i));
    }
    p.agents.push_back(o);
  }
  return p;
}

const char kConfig[] =
    "approval_mode: true\n"
    "approval_timeout: 1h\n"
    "breaker:\n"
    "  max_fixes: 20\n"
    "  window: 1h\n"
    "runbooks:\n"
    "  Disk-Critical-ASG:\n"
    "    diagnostics_timeout: 30s\n"
    "    verification_window: 4s\n"
    "  Memory-Exhaustion-ASG:\n"
    "    fix: {action: service.restart, params: {service: crash-test}}\n"
    "    approval_required: false\n"
    "    diagnostics_timeout: 30s\n"
    "    verification_window: 4s\n";

// What the test itself had acknowledged (approvals, rejections). Thread-safe.
class Decisions {
 public:
  void Approved(const std::string& id, int epoch) {
    std::lock_guard<std::mutex> lock(mu_);
    approved_[id] = epoch;
  }
  void Rejected(const std::string& id, const std::string& host, int epoch) {
    std::lock_guard<std::mutex> lock(mu_);
    rejected_[id] = epoch;
    rejected_hosts_.insert(host);
  }
  bool HostRejected(const std::string& host) const {
    std::lock_guard<std::mutex> lock(mu_);
    return rejected_hosts_.count(host) != 0;
  }
  std::map<std::string, int> approved() const {
    std::lock_guard<std::mutex> lock(mu_);
    return approved_;
  }
  std::map<std::string, int> rejected() const {
    std::lock_guard<std::mutex> lock(mu_);
    return rejected_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, int> approved_;  // incident id -> server run that acknowledged it
  std::map<std::string, int> rejected_;
  std::set<std::string> rejected_hosts_;
};

// Decides every pending proposal of the watched alarms, from kApprovers threads, while enabled:
// approves it, or rejects the first one of a host the plan names. Each 2xx is counted by `kill`.
class Approver {
 public:
  Approver(const Endpoint& endpoint, std::string token, const Plan& plan, KillSwitch& kill,
           Decisions& decisions)
      : endpoint_(endpoint),
        token_(std::move(token)),
        plan_(plan),
        kill_(kill),
        decisions_(decisions) {}
  ~Approver() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  // Pause(): returns once no decision is in flight; nothing is decided until Resume().
  void Pause() {
    enabled_ = false;
    while (busy_.load()) {
      std::this_thread::sleep_for(10ms);
    }
  }
  void Resume() { enabled_ = true; }

 private:
  void Loop() {
    auto client = NewCurlHttpClient();
    while (!stop_) {
      busy_ = true;
      const Endpoint::Snapshot ep = endpoint_.Get();
      std::vector<std::pair<std::string, std::string>> todo;  // id, host
      if (enabled_ && !ep.url.empty()) {
        if (auto list = TryListIncidents(*client, ep.url, token_, "pending_approval")) {
          for (const auto& inc : *list) {
            if (Watched(inc) && !Str(inc, "action_hash").empty()) {
              todo.emplace_back(Str(inc, "incident_id"), Str(inc, "instance_id"));
            }
          }
        }
      }
      if (!todo.empty() && enabled_) {
        Decide(ep, todo);
      }
      busy_ = false;
      std::this_thread::sleep_for(todo.empty() ? 200ms : 20ms);
    }
  }

  void Decide(const Endpoint::Snapshot& ep,
              const std::vector<std::pair<std::string, std::string>>& todo) {
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kApprovers; ++t) {
      threads.emplace_back([&] {
        auto client = NewCurlHttpClient();
        for (size_t i = next++; i < todo.size() && enabled_; i = next++) {
          const auto& [id, host] = todo[i];
          const std::string base = ep.url + "/api/v1/incidents/" + id;
          if (plan_.rejected_hosts.count(host) != 0 && !decisions_.HostRejected(host)) {
            auto r = Call(*client, "POST", base + "/reject", token_,
                          DumpJson(Json{{"comment", kComment}}));
            if (Is2xx(r)) {
              decisions_.Rejected(id, host, ep.epoch);
              kill_.Count();
            }
            continue;
          }
          // An approval names the proposal it approves: read it first.
          auto got = Call(*client, "GET", base, token_);
          std::string hash;
          if (Is2xx(got)) {
            if (auto j = ParseJson(got->body)) {
              hash = j->value("action_hash", "");
            }
          }
          if (hash.empty()) {
            continue;
          }
          auto r = Call(*client, "POST", base + "/approve", token_,
                        DumpJson(Json{{"action_hash", hash}, {"comment", kComment}}));
          if (Is2xx(r)) {
            decisions_.Approved(id, ep.epoch);
            kill_.Count();
          }
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
  }

  const Endpoint& endpoint_;
  const std::string token_;
  const Plan& plan_;
  KillSwitch& kill_;
  Decisions& decisions_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> enabled_{true};
  std::atomic<bool> busy_{false};
  std::thread thread_;
};

const Json* FindIncident(const std::vector<Json>& all, const std::string& id) {
  for (const auto& inc : all) {
    if (Str(inc, "incident_id") == id) {
      return &inc;
    }
  }
  return nullptr;
}

std::string StatusLine(const std::vector<Json>& all) {
  std::map<std::string, int> statuses;
  for (const auto& inc : all) {
    ++statuses[Str(inc, "status")];
  }
  std::string line;
  for (const auto& [s, n] : statuses) {
    line += " " + s + "=" + std::to_string(n);
  }
  return line;
}

// Nothing acknowledged so far is missing from `all` (the store as a restarted server sees it, or
// the end of the round), and no (alarm, host) has two open incidents.
void CheckNothingLost(const std::vector<Json>& all, const std::map<std::string, AgentLog>& logs,
                      const Decisions& decisions) {
  std::map<std::pair<std::string, std::string>, int> open_per_pair;
  std::set<std::string> hosts_with_incident;
  for (const auto& inc : all) {
    if (IsOpenStatus(Str(inc, "status"))) {
      ++open_per_pair[{Str(inc, "alarm_name"), Str(inc, "instance_id")}];
    }
    if (Watched(inc)) {
      hosts_with_incident.insert(Str(inc, "instance_id"));
    }
  }
  for (const auto& [pair, n] : open_per_pair) {
    EXPECT_EQ(n, 1) << n << " open incidents for " << pair.first << " on " << pair.second;
  }
  for (const auto& [id, epoch] : decisions.approved()) {
    const Json* inc = FindIncident(all, id);
    ASSERT_NE(inc, nullptr) << "incident " << id << " approved (run " << epoch << ") is gone";
    const auto events = Events(*inc);
    EXPECT_EQ(CountOf(events, "approved"), 1) << inc->dump(1);
    EXPECT_EQ(CountOf(events, "executing"), 1) << "acknowledged approval: " << inc->dump(1);
    EXPECT_NE(Str(*inc, "status"), "pending_approval") << inc->dump(1);
    EXPECT_NE(Str(*inc, "status"), "rejected") << inc->dump(1);
  }
  for (const auto& [id, epoch] : decisions.rejected()) {
    const Json* inc = FindIncident(all, id);
    ASSERT_NE(inc, nullptr) << "incident " << id << " rejected (run " << epoch << ") is gone";
    EXPECT_EQ(Str(*inc, "status"), "rejected") << inc->dump(1);
  }
  for (const auto& [host, log] : logs) {
    SCOPED_TRACE(host);
    if (log.alarm_report_acked_epoch != 0) {
      EXPECT_EQ(hosts_with_incident.count(host), 1u)
          << "a report in alarm was acknowledged (run " << log.alarm_report_acked_epoch
          << "), but the host has no incident";
    }
    // A command reaches a host only after its incident's step was written: a delivered fix
    // means an acknowledged `executing` (approved or automatic).
    for (const auto& d : log.deliveries) {
      const Json* inc = FindIncident(all, d.incident);
      ASSERT_NE(inc, nullptr) << "incident " << d.incident << " of delivered command " << d.id
                              << " (" << d.action << ", run " << d.epoch << ") is gone";
      if (!d.read_only) {
        EXPECT_EQ(CountOf(Events(*inc), "executing"), 1)
            << "fix " << d.id << " was delivered (run " << d.epoch
            << "), but its incident did not record it: " << inc->dump(1);
      }
    }
    std::map<std::pair<std::string, int>, std::set<std::string>> diag_acks;  // (inc, run) -> ids
    for (const auto& a : log.acks) {
      const Json* inc = FindIncident(all, a.incident);
      ASSERT_NE(inc, nullptr) << "incident " << a.incident << " of acknowledged result " << a.id
                              << " (" << a.action << ", run " << a.epoch << ") is gone";
      if (a.read_only && a.epoch == a.delivered_epoch) {
        // A diagnostic sent by an earlier run is acknowledged but not used: the incident
        // gathers its diagnostics again after a restart.
        diag_acks[{a.incident, a.epoch}].insert(a.id);
      } else if (!a.read_only) {
        const auto events = Events(*inc);
        EXPECT_TRUE(CountOf(events, "executed") + CountOf(events, "interrupted") >= 1)
            << "the result of fix " << a.id << " was acknowledged (run " << a.epoch
            << "), the execution is lost: " << inc->dump(1);
      }
    }
    for (const auto& [key, ids] : diag_acks) {
      // Every diagnostic of one gathering: the runbook's two, then what changed (host.changes).
      if (ids.size() == 3) {
        const Json* inc = FindIncident(all, key.first);
        EXPECT_GE(CountOf(Events(*inc), "diagnosed"), 1)
            << "every diagnostic was acknowledged (run " << key.second
            << "), the diagnosis is lost: " << inc->dump(1);
      }
    }
  }
}

// Every proposal waiting for a human expires at a stored deadline (a pending incident with no
// fix, e.g. Host-Unreachable, waits for its alarm to clear instead).
void CheckApprovalDeadlines(const std::vector<Json>& all) {
  for (const auto& inc : all) {
    if (Str(inc, "status") == "pending_approval" && inc["action"].is_object() &&
        !Str(inc["action"], "name").empty()) {
      EXPECT_TRUE(inc["action"].contains("approval_expires_at"))
          << "a proposal waits without an approval deadline: " << inc.dump(1);
    }
  }
}

// Right after a restart (no agent or approver has spoken to it yet): every diagnosing or
// executing incident was picked up by recovery (its last entry is `resumed`: diagnostics sent
// again, or the fix offered again or left to the alarm, each with a deadline), and every proposal
// waiting for a human has an approval deadline.
void CheckRecovered(const std::vector<Json>& all) {
  for (const auto& inc : all) {
    const std::string status = Str(inc, "status");
    if (status == "diagnosing" || status == "executing") {
      const auto events = Events(inc);
      EXPECT_TRUE(!events.empty() && events.back() == "resumed")
          << "a " << status << " incident that recovery did not resume: " << inc.dump(1);
    }
  }
  CheckApprovalDeadlines(all);
}

// The end of a round: nothing open, nothing overlapping, nothing fixed twice.
void CheckFinal(const std::vector<Json>& all, const std::map<std::string, AgentLog>& logs) {
  std::set<std::string> ids;
  std::map<std::pair<std::string, std::string>, std::vector<const Json*>> per_pair;
  for (const auto& inc : all) {
    const std::string id = Str(inc, "incident_id");
    EXPECT_TRUE(ids.insert(id).second) << "incident " << id << " listed twice";
    per_pair[{Str(inc, "alarm_name"), Str(inc, "instance_id")}].push_back(&inc);
    if (!Watched(inc)) {
      continue;
    }
    const std::string status = Str(inc, "status");
    EXPECT_FALSE(IsOpenStatus(status)) << "still open at the end: " << inc.dump(1);
    const auto events = Events(inc);
    EXPECT_LE(CountOf(events, "approved") + CountOf(events, "auto_approved"), 1) << inc.dump(1);
    EXPECT_LE(CountOf(events, "executing"), 1) << "a second fix: " << inc.dump(1);
    if (!IsOpenStatus(status)) {
      EXPECT_FALSE(inc["resolved_at"].is_null()) << inc.dump(1);
      if (status != "completed") {
        EXPECT_FALSE(Str(inc, "reason").empty()) << "closed without a reason: " << inc.dump(1);
      }
    }
    if (status == "completed" && CountOf(events, "executing") == 1) {
      EXPECT_FALSE(Str(inc, "remediation_output").empty())
          << "completed, but the fix's output was lost: " << inc.dump(1);
    }
  }
  for (auto& [pair, incs] : per_pair) {
    std::sort(incs.begin(), incs.end(), [](const Json* a, const Json* b) {
      return TimeOf((*a)["created_at"]) < TimeOf((*b)["created_at"]);
    });
    for (size_t i = 1; i < incs.size(); ++i) {
      EXPECT_GE(TimeOf((*incs[i])["created_at"]), TimeOf((*incs[i - 1])["resolved_at"]))
          << "two incidents of " << pair.first << " on " << pair.second << " open at once:\n"
          << incs[i - 1]->dump(1) << "\n"
          << incs[i]->dump(1);
    }
  }
  for (const auto& [host, log] : logs) {
    SCOPED_TRACE(host);
    std::map<std::string, std::set<std::string>> fix_ids;  // incident -> fix command ids sent
    for (const auto& d : log.deliveries) {
      if (!d.read_only) {
        fix_ids[d.incident].insert(d.id);
      }
    }
    for (const auto& [incident, set] : fix_ids) {
      EXPECT_EQ(set.size(), 1u) << "incident " << incident << " sent " << set.size() << " fixes";
    }
    std::map<std::string, int> runs;  // incident -> fixes the agent ran for it
    for (const auto& f : log.fixes_run) {
      ++runs[f.incident];
      const Json* inc = FindIncident(all, f.incident);
      ASSERT_NE(inc, nullptr) << "fix " << f.id << " ran for an unknown incident";
      const auto events = Events(*inc);
      EXPECT_EQ(CountOf(events, "approved") + CountOf(events, "auto_approved"), 1)
          << "fix " << f.id << " ran without approval: " << inc->dump(1);
      EXPECT_NE(Str(*inc, "status"), "rejected") << inc->dump(1);
    }
    for (const auto& [incident, n] : runs) {
      EXPECT_EQ(n, 1) << "incident " << incident << " was fixed " << n << " times";
    }
  }
}

class CrashConsistencyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    InitHttpClientLibrary();
    // The built-in brain only: no model is consulted, whatever the environment says.
    setenv("MEDIC_AI_PROVIDER", "none", 1);
  }

  // One round of the plan; failures are reported through gtest.
  void RunRound(const Plan& plan) {
    test::TempDir dir;
    const std::string data = dir.File("data");
    const std::string config = dir.File("server.yaml");
    ASSERT_TRUE(WriteFileAtomic(config, kConfig).has_value());

    int epoch = 1;
    auto server = std::make_unique<ServerProcess>(data, config, dir.File("server1.stderr"));
    std::string url = server->Start();
    ASSERT_FALSE(url.empty()) << "medic-server did not start: " << server->StderrTail();
    const std::string admin(Trim(ReadFile(data + "/admin.token").value_or("")));
    auto client = NewCurlHttpClient();
    const test::CallFn call = [&](const std::string& method, const std::string& path,
                                  const std::string& token, const std::string& body) {
      auto r = Call(*client, method, url + path, token, body);
      return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
    };
    std::vector<std::string> credentials;
    for (int i = 0; i < kHosts; ++i) {
      credentials.push_back(test::EnrollHost(call, admin, HostName(i)));
      ASSERT_FALSE(credentials.back().empty());
    }

    KillSwitch kill;
    Endpoint endpoint;
    Decisions decisions;
    std::vector<std::unique_ptr<FakeAgent>> agents;
    for (int i = 0; i < kHosts; ++i) {
      FakeAgentOptions o = plan.agents[i];
      o.count_diag = &kill;
      o.count_fix = &kill;
      agents.push_back(std::make_unique<FakeAgent>(HostName(i), endpoint, credentials[i], o));
    }
    Approver approver(endpoint, admin, plan, kill, decisions);
    // Stops the approver, then every agent, before the server dies, also on an early return.
    struct StopAll {
      Approver& approver;
      std::vector<std::unique_ptr<FakeAgent>>& agents;
      ~StopAll() {
        approver.Stop();
        StopAgents::StopAll(agents);
      }
    } stop_all{approver, agents};
    auto logs = [&] {
      std::map<std::string, AgentLog> out;
      for (auto& a : agents) {
        out[a->host()] = a->log();
      }
      return out;
    };
    auto all_settled = [&](const std::vector<Json>& all) {
      for (const auto& inc : all) {
        if (Watched(inc) && IsOpenStatus(Str(inc, "status"))) {
          return false;
        }
      }
      return true;
    };

    endpoint.Set(url, epoch);
    for (auto& a : agents) {
      a->Start();
    }
    approver.Start();

    for (const Plan::Kill& kp : plan.kills) {
      SCOPED_TRACE("server run " + std::to_string(epoch));
      const bool on_count = kp.delay.count() == 0;
      kill.Arm(server->pid(), kp.after, on_count);
      // Bounded: when the round has settled before the count is reached, the kill comes then.
      auto last_look = std::chrono::steady_clock::now();
      const bool reached = Eventually(120s, [&] {
        if (kill.fired() || (!on_count && kill.count() >= kp.after)) {
          return true;
        }
        if (std::chrono::steady_clock::now() - last_look < 1s) {
          return false;
        }
        last_look = std::chrono::steady_clock::now();
        auto list = TryListIncidents(*client, url, admin, "", "summary");
        return list && list->size() >= static_cast<size_t>(kHosts) && all_settled(*list);
      });
      const int acked = kill.count();
      if (!kill.fired()) {
        if (reached && !on_count) {
          std::this_thread::sleep_for(kp.delay);  // the kill's moment, not a synchronisation
        }
        kill.Fire();
      }
      std::printf("  run %d: SIGKILL after %d acknowledged transitions (+%lld ms)%s\n", epoch,
                  acked, static_cast<long long>(kp.delay.count()),
                  reached && acked >= kp.after ? "" : " (settled before the count)");
      std::fflush(stdout);
      ASSERT_TRUE(server->WaitKilled()) << "the server did not die of SIGKILL";
      kill.Disarm();
      endpoint.Set("", 0);  // the agents keep their unacknowledged answers and wait
      approver.Pause();

      const std::map<std::string, AgentLog> before = logs();
      ++epoch;
      server = std::make_unique<ServerProcess>(
          data, config, dir.File("server" + std::to_string(epoch) + ".stderr"));
      url = server->Start();
      ASSERT_FALSE(url.empty()) << "medic-server did not restart: " << server->StderrTail();
      // Recovery runs before the server answers; nobody else talks to it yet, so what the store
      // holds now is what survived the crash plus what Recover() wrote.
      const std::vector<Json> recovered = ListIncidents(*client, url, admin);
      std::printf("  run %d recovered:%s\n", epoch, StatusLine(recovered).c_str());
      std::fflush(stdout);
      CheckNothingLost(recovered, before, decisions);
      CheckRecovered(recovered);
      if (HasFailure()) {
        return;
      }
      endpoint.Set(url, epoch);
      approver.Resume();
    }

    // No human acts: every incident ends or waits for one, by itself.
    approver.Pause();
    std::vector<Json> all;
    const bool by_itself = Eventually(120s, [&] {
      auto list = TryListIncidents(*client, url, admin);
      if (!list) {
        return false;
      }
      all = *list;
      for (const auto& inc : all) {
        const std::string status = Str(inc, "status");
        if (status == "diagnosing" || status == "executing") {
          return false;
        }
      }
      return true;
    });
    ASSERT_TRUE(by_itself) << "incidents stuck without a human:" << StatusLine(all) << "\n"
                           << server->StderrTail();
    std::printf("  without a human:%s\n", StatusLine(all).c_str());
    std::fflush(stdout);
    CheckApprovalDeadlines(all);
    // The approver again: every incident ends, and every answer is in.
    approver.Resume();
    const bool settled = Eventually(180s, [&] {
      auto list = TryListIncidents(*client, url, admin);
      if (!list) {
        return false;
      }
      all = *list;
      std::set<std::string> hosts;
      for (const auto& inc : all) {
        if (Watched(inc)) {
          hosts.insert(Str(inc, "instance_id"));
        }
      }
      for (auto& a : agents) {
        if (a->answers_pending()) {
          return false;
        }
      }
      return hosts.size() == static_cast<size_t>(kHosts) && all_settled(all);
    });
    approver.Stop();
    StopAgents::StopAll(agents);
    all = ListIncidents(*client, url, admin);
    std::printf("  end:%s\n", StatusLine(all).c_str());
    std::fflush(stdout);
    std::string open;
    for (const auto& inc : all) {
      if (Watched(inc) && IsOpenStatus(Str(inc, "status"))) {
        open += inc.dump(1) + "\n";
      }
    }
    ASSERT_TRUE(settled) << "the round did not settle; open:\n" << open << server->StderrTail();
    const std::map<std::string, AgentLog> after = logs();
    CheckNothingLost(all, after, decisions);
    CheckFinal(all, after);
    server->Terminate();
  }
};

TEST_F(CrashConsistencyTest, RandomSigkillsDuringConcurrentTransitions) {
  std::vector<unsigned> seeds;
  if (const char* s = std::getenv("MEDIC_CRASH_SEED"); s != nullptr && *s != '\0') {
    seeds.push_back(static_cast<unsigned>(std::strtoul(s, nullptr, 10)));
  } else {
    const char* n = std::getenv("MEDIC_CRASH_ROUNDS");
    const int rounds = n != nullptr && *n != '\0' ? std::atoi(n) : 2;
    std::random_device rd;
    for (int i = 0; i < rounds; ++i) {
      seeds.push_back(rd());
    }
  }
  int passed = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < seeds.size(); ++i) {
    const Plan plan = MakePlan(seeds[i]);
    const auto round_start = std::chrono::steady_clock::now();
    std::printf("round %zu/%zu: MEDIC_CRASH_SEED=%u, %zu kills\n", i + 1, seeds.size(),
                seeds[i], plan.kills.size());
    std::fflush(stdout);
    {
      SCOPED_TRACE("round " + std::to_string(i + 1) + ", replay with MEDIC_CRASH_SEED=" +
                   std::to_string(seeds[i]));
      RunRound(plan);
    }
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now() - round_start)
                          .count();
    std::printf("round %zu/%zu: MEDIC_CRASH_SEED=%u %s in %lld s\n", i + 1, seeds.size(),
                seeds[i], HasFailure() ? "FAILED" : "passed", static_cast<long long>(secs));
    std::fflush(stdout);
    if (HasFailure()) {
      break;
    }
    ++passed;
  }
  const auto total = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::steady_clock::now() - start)
                         .count();
  std::printf("crash consistency: %d of %zu rounds passed in %lld s\n", passed, seeds.size(),
              static_cast<long long>(total));
}

}  // namespace
}  // namespace medic
