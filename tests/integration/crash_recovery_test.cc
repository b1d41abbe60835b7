// Crash recovery under concurrent load (issue 4): the real medic-server, 100 fake agents speaking
// the agent protocol over loopback HTTP, SIGKILL in the middle of concurrent transitions (once
// while diagnostics are answered, once while incidents are approved and fixed), then a restart
// on the same data directory. Asserts that every acknowledged transition survived, that no
// (alarm, host) got a second open incident, that recovery leaves nothing in diagnosing or
// executing, that no fix is delivered twice by one server, and that no command runs twice.
// Every fake agent admits what it is sent through the real agent's command ledger
// (agent_ledger.h: agent::AdmitCommand over a commands.log), and the test counts the runs the
// ledger let through; in the approvals run a fifth of the hosts ran their fix before the kill
// and hold its result, so the restarted server offers that fix again and only the ledger stands
// between it and a second run.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/files.h"
#include "core/json.h"
#include "tests/fakes/temp_dir.h"
#include "tests/integration/agent_ledger.h"
#include "tests/integration/crash_harness.h"
#include "tests/server/enroll_host.h"
#include "transport/http_client.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using namespace crash_test;

constexpr int kHosts = 100;
constexpr int kApprovers = 8;
constexpr char kAlarm[] = "Disk-Critical-ASG";
constexpr char kComment[] = "approved by the crash test";
// Shortened through the config file so that a fix that never ran fails quickly (the
// diagnostics deadline is lengthened instead: 100 hosts on a loaded machine).
constexpr auto kVerificationWindow = 4s;

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
    return ListIncidents(*client_, url_, admin_, status);
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
  // MEDIC_CRASH_SEED=S replays a failed run: the seed picks the kill point.
  const char* replay = std::getenv("MEDIC_CRASH_SEED");
  const unsigned seed = replay != nullptr && *replay != '\0'
                            ? static_cast<unsigned>(std::strtoul(replay, nullptr, 10))
                            : std::random_device{}();
  std::printf("MEDIC_CRASH_SEED=%u\n", seed);
  std::mt19937 rng(seed);
  // Diagnosis: after 20..240 of the 300 diagnostic answers (three per host: the runbook's two and
  // host.changes); approvals: after 15..60 of the 80
  // approved once the in-flight hosts' fixes ran.
  const int kill_after = when == KillDuring::kDiagnosis
                             ? std::uniform_int_distribution<int>(20, 240)(rng)
                             : std::uniform_int_distribution<int>(15, 60)(rng);
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
  // that approved fixes sit undelivered in the server's memory when it dies; and another fifth
  // runs its fix before the kill but keeps the result (a fix in flight), so that the restarted
  // server offers the same command again.
  std::atomic<bool> hold{false};
  std::atomic<bool> hold_results{true};
  std::set<std::string> held_hosts;
  std::set<std::string> in_flight_hosts;
  std::vector<std::unique_ptr<AgentLedger>> ledgers;  // outlive the agents (declared first)
  std::vector<std::unique_ptr<FakeAgent>> agents;
  ASSERT_TRUE(MakeDirs(dir_.File("ledgers"), 0700).has_value());
  for (int i = 0; i < kHosts; ++i) {
    const bool held = when == KillDuring::kApprovals && i % 5 == 0;
    const bool in_flight = when == KillDuring::kApprovals && i % 5 == 1;
    if (held) {
      held_hosts.insert(HostName(i));
    }
    if (in_flight) {
      in_flight_hosts.insert(HostName(i));
    }
    ledgers.push_back(std::make_unique<AgentLedger>(HostName(i)));
    ASSERT_TRUE(ledgers.back()->Open(dir_.File("ledgers/" + HostName(i) + ".commands.log")));
    FakeAgentOptions options;
    options.ledger = ledgers.back().get();
    options.count_diag = when == KillDuring::kDiagnosis ? &kill : nullptr;
    options.hold_commands = held ? &hold : nullptr;
    options.hold_results = in_flight ? &hold_results : nullptr;
    agents.push_back(std::make_unique<FakeAgent>(HostName(i), endpoint, credentials[i], options));
  }
  // Stops every agent before anything else dies, also when an assertion returns early.
  StopAgents stop_agents{agents};
  for (auto& a : agents) {
    a->Start();
  }

  std::set<std::string> pending_before_crash;
  if (when == KillDuring::kDiagnosis) {
    ASSERT_TRUE(Eventually(30s, [&] { return kill.fired(); }))
        << "fewer than " << kill_after << " diagnostic answers in 30 s: " << first.StderrTail();
  } else {
    std::vector<Json> pending;
    ASSERT_TRUE(Eventually(30s,
                           [&] {
                             pending = Incidents("pending_approval");
                             return pending.size() == static_cast<size_t>(kHosts);
                           }))
        << pending.size() << " of " << kHosts << " incidents reached pending_approval";
    std::vector<std::string> ids;
    std::vector<std::string> held_ids;
    std::vector<std::string> in_flight_ids;
    for (const auto& inc : pending) {
      const std::string id = inc["incident_id"];
      const std::string host = inc["instance_id"];
      pending_before_crash.insert(id);
      (held_hosts.count(host)        ? held_ids
       : in_flight_hosts.count(host) ? in_flight_ids
                                     : ids)
          .push_back(id);
    }
    // The in-flight hosts first: approved, their fixes delivered and run, results held.
    ApproveConcurrently(in_flight_ids, nullptr);
    ASSERT_TRUE(Eventually(30s, [&] {
      for (auto& a : agents) {
        if (in_flight_hosts.count(a->host()) != 0 && a->log().fixes_run.empty()) {
          return false;
        }
      }
      return true;
    })) << "not every in-flight host ran its fix";
    std::shuffle(ids.begin(), ids.end(), rng);
    std::shuffle(held_ids.begin(), held_ids.end(), rng);
    // Half of the held hosts' incidents go first, so that some are approved before the kill.
    const auto half = held_ids.begin() + static_cast<long>(held_ids.size() / 2);
    ids.insert(ids.begin() + static_cast<long>(ids.size() / 2), half, held_ids.end());
    ids.insert(ids.begin(), held_ids.begin(), half);
    hold = true;
    ASSERT_TRUE(Eventually(10s, [&] {
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
    if (log.alarm_report_acked_before_crash()) {
      ASSERT_EQ(incs.size(), 1u) << "the alarm of an acknowledged report opened " << incs.size()
                                 << " incidents";
    }
    if (incs.empty()) {
      continue;
    }
    const auto events = Events(incs[0]);
    if (log.diag_acked_before_crash().size() == 3) {  // every diagnostic of the gathering
      EXPECT_TRUE(BeforeRestart(events, "diagnosed"))
          << "every diagnostic was acknowledged, the diagnosis is lost: " << incs[0].dump(1);
    }
    if (log.fix_acked_before_crash()) {
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
  // The in-flight hosts keep their results until the new server has offered each of them its
  // fix again (the incident was executing, the server knows of no result): the ledger must
  // answer that offer with the stored result, not run the fix a second time.
  if (!in_flight_hosts.empty()) {
    ASSERT_TRUE(Eventually(30s, [&] {
      for (auto& a : agents) {
        if (in_flight_hosts.count(a->host()) == 0) {
          continue;
        }
        bool offered_again = false;
        for (const auto& d : a->log().deliveries) {
          offered_again = offered_again || (!d.read_only && d.epoch == 2);
        }
        if (!offered_again) {
          return false;
        }
      }
      return true;
    })) << "the restarted server did not offer every in-flight fix again: "
        << second.StderrTail();
  }
  hold_results = false;
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
  const bool settled = Eventually(45s, [&] {
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
  // The in-flight fixes: run before the kill, offered again by the restarted server; the ledger
  // answered each repeat (asserted below: each ran once).
  int offered_again = 0;
  for (const auto& [host, log] : after) {
    for (const auto& d : log.deliveries) {
      offered_again += in_flight_hosts.count(host) != 0 && !d.read_only && d.epoch == 2 ? 1 : 0;
    }
  }
  std::printf("in-flight fixes offered again after the restart: %d of %d hosts\n", offered_again,
              static_cast<int>(in_flight_hosts.size()));
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
    // What ran on the host, as the real agent's ledger admitted it: each id once at most.
    std::map<std::string, int> runs_of;
    for (const auto& r : log.runs) {
      EXPECT_EQ(++runs_of[r.id], 1) << "command " << r.id << " (" << r.action
                                    << ") ran twice; delivered in server run " << r.epoch;
    }
    if (in_flight_hosts.count(host) != 0) {
      EXPECT_EQ(log.fixes_run.size(), 1u) << "the in-flight fix ran again after the restart";
    }
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
