// The three reference scenarios end to end, each with a fresh `medic demo --hosts 1` (real
// server, agent, nginx and health app; the host's log dir a 32 MiB tmpfs and its memory limit a
// 256 MiB memory cgroup), driven only through the medic CLI like a user:
//   chaos through the server -> alarm -> incident with real diagnostics -> (approval mode:
//   `medic approve ID`) -> fix on the host -> alarm back to OK -> `completed`,
// in approval mode and in automatic mode (`medic demo --auto`); and the restart-loop breaker
// with an nginx that crashes again after every restart. Everything the chaos does stays inside
// the demo host's tmpfs and memory cgroup, and the demo removes them when it stops.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <regex>
#include <thread>

#include "tests/integration/demo_fixture.h"

namespace medic::test {
namespace {

using namespace std::chrono_literals;

constexpr char kDisk[] = "Disk-Critical-ASG";
constexpr char kMemory[] = "Memory-Exhaustion-ASG";
constexpr char kNginx[] = "Nginx-Down-ALB";
constexpr char kFillFile[] = "medic-chaos-fill.log";

constexpr auto kIncidentTimeout = 60s;
constexpr auto kCompletionTimeout = 120s;

enum class Mode { kApproval, kAutomatic };

std::string ModeName(const ::testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::kApproval ? "Approval" : "Automatic";
}

bool Contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

class ScenarioTest : public ::testing::TestWithParam<Mode> {
 protected:
  bool automatic() const { return GetParam() == Mode::kAutomatic; }

  void StartDemo() {
    const std::string error = demo_.Start(automatic());
    ASSERT_EQ(error, "") << demo_.Logs();
    // The host really is isolated: its log dir is its own small volume.
    ASSERT_EQ(MountsUnder(demo_.data()), std::vector<std::string>{demo_.log_dir()})
        << "medic demo did not mount the host's log volume (not root?)" << demo_.Logs();
  }

  // The first incident of `alarm` (there was none before the chaos); in approval mode, waits
  // until it asks for approval.
  Json WaitForIncident(const std::string& alarm) {
    std::optional<Json> inc = demo_.WaitForNewIncident(alarm, {}, kIncidentTimeout);
    EXPECT_TRUE(inc.has_value()) << "no " << alarm
                                 << " incident; incidents: " << demo_.Incidents().dump(2)
                                 << demo_.Logs();
    if (!inc.has_value()) {
      return Json();
    }
    const std::string id = (*inc)["incident_id"];
    if (!automatic()) {
      Json pending = demo_.WaitForStatus(id, {"pending_approval"}, kIncidentTimeout);
      EXPECT_EQ(pending.value("status", ""), "pending_approval") << pending.dump(2);
      return pending;
    }
    return *inc;
  }

  // Approval mode: approves through the CLI. Both: waits for the end and checks `completed`
  // with the expected timeline in order and RFC 3339 UTC timestamps.
  Json ApproveAndComplete(const std::string& id) {
    if (!automatic()) {
      RunResult approve = demo_.Run({"approve", id, "--comment", "approved by the e2e test", "--no-wait"});
      EXPECT_EQ(approve.exit_code, 0) << approve.out;
    }
    Json done =
        demo_.WaitForStatus(id, {"completed", "failed", "timeout", "rejected"}, kCompletionTimeout);
    EXPECT_EQ(done.value("status", ""), "completed") << done.dump(2) << demo_.Logs();
    ExpectTimeline(done);
    return done;
  }

  void ExpectTimeline(const Json& done) {
    std::vector<std::string> required = {"created", "diagnosed", "suggested"};
    if (automatic()) {
      required.insert(required.end(), {"auto_approved", "executing", "completed"});
    } else {
      required.insert(required.end(), {"awaiting_approval", "approved", "executing", "completed"});
    }
    EXPECT_TRUE(InOrder(TimelineEvents(done), required))
        << "want in order: " << ::testing::PrintToString(required) << "\n"
        << done["timeline"].dump(2);
    WallTime previous{};
    for (const Json& e : done.value("timeline", Json::array())) {
      const std::string ts = e.value("timestamp", "");
      Result<WallTime> t = ParseRfc3339(ts);
      ASSERT_TRUE(t.has_value()) << e;
      EXPECT_EQ(ts.back(), 'Z') << e;
      EXPECT_GE(*t, previous) << e;
      previous = *t;
      if (e.value("event", "") == "approved") {
        EXPECT_EQ(e.value("actor", ""), "admin") << e;
        EXPECT_EQ(e.value("detail", ""), "approved by the e2e test") << e;
      }
    }
    const std::vector<std::string> events = TimelineEvents(done);
    const bool auto_approved =
        std::find(events.begin(), events.end(), "auto_approved") != events.end();
    EXPECT_EQ(auto_approved, automatic()) << done["timeline"].dump(2);
  }

  void ExpectAlarmBackToOk(const std::string& alarm) {
    EXPECT_TRUE(Eventually(30s, [&] { return demo_.AlarmState(alarm) == "OK"; }))
        << alarm << " is " << demo_.AlarmState(alarm);
  }

  TempDir dir_;
  DemoFixture demo_{dir_};
};

// Disk: the log volume filled to 90 %; the largest file (the fill) is archived on the server,
// checksum-verified, and truncated.
using DiskScenarioTest = ScenarioTest;

TEST_P(DiskScenarioTest, FillArchiveTruncateComplete) {
  ASSERT_NO_FATAL_FAILURE(StartDemo());
  const std::string fill = demo_.log_dir() + "/" + kFillFile;
  ASSERT_LT(UsedPercent(demo_.log_dir()), 85.0);

  RunResult chaos = demo_.Run({"chaos", "disk-fill", "--host", "web-1"});
  ASSERT_EQ(chaos.exit_code, 0) << chaos.out << demo_.Logs();
  off_t size = -1;
  std::string sha;
  if (automatic()) {
    // In automatic mode medic archives and truncates the fill within a few hundred milliseconds
    // of the crossing (the agent's fast watch and archive path, issue 18), often before this test
    // could look at the volume twice. What the fill wrote is in the chaos command's own answer,
    // which the CLI waits for; the archived copy is checked against it below.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(chaos.out, m, std::regex(R"(-> (\d+)[.\d]* ?% used.*wrote (\d+) bytes)")))
        << chaos.out;
    EXPECT_GE(std::stoi(m[1].str()), 90) << chaos.out;
    size = static_cast<off_t>(std::stoll(m[2].str()));
  } else {
    // The chaos is finished when the volume is at its target and the file has stopped growing.
    ASSERT_TRUE(Eventually(30s,
                           [&] {
                             struct stat st {};
                             if (UsedPercent(demo_.log_dir()) < 90.0 ||
                                 stat(fill.c_str(), &st) != 0) {
                               return false;
                             }
                             const bool stable = st.st_size == size;
                             size = st.st_size;
                             return stable;
                           }))
        << "the disk-fill (default path: the agent's log_dir) did not take the log volume to 90 %: "
        << "used " << UsedPercent(demo_.log_dir()) << " %" << demo_.Logs();
    sha = Sha256OfFile(fill);
    ASSERT_EQ(sha.size(), 64u);
    struct stat still {};
    ASSERT_EQ(stat(fill.c_str(), &still), 0);
    ASSERT_EQ(still.st_size, size)
        << "the fill file changed while it was being hashed (a fix that ran before this test "
           "could read it?)";
  }

  Json inc = WaitForIncident(kDisk);
  ASSERT_TRUE(inc.is_object());
  const std::string id = inc["incident_id"];
  EXPECT_EQ(inc["instance_id"], "web-1");

  Json done = ApproveAndComplete(id);
  // Real diagnostics: df and the listing of the host's log directory.
  const std::string diagnostics = done.value("diagnostics", "");
  EXPECT_TRUE(Contains(diagnostics, "disk.usage")) << diagnostics;
  EXPECT_TRUE(Contains(diagnostics, "Use%")) << diagnostics;
  EXPECT_TRUE(Contains(diagnostics, "dir.list")) << diagnostics;
  EXPECT_TRUE(Contains(diagnostics, demo_.log_dir())) << diagnostics;
  EXPECT_TRUE(Contains(diagnostics, kFillFile)) << diagnostics;
  EXPECT_TRUE(Contains(done.value("ai_suggestion", ""), "log.archive_truncate")) << done.dump(2);
  EXPECT_TRUE(Contains(done.value("ai_suggestion", ""), fill)) << done.dump(2);
  if (!automatic()) {
    EXPECT_TRUE(Contains(done.value("remediation_output", ""), "sha256 " + sha)) << done.dump(2);
  }

  // The archive holds exactly what the file held.
  std::vector<std::string> archived;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(demo_.archive_dir(), ec), end; !ec && it != end;
       it.increment(ec)) {
    if (Contains(it->path().filename().string(), kFillFile)) {
      archived.push_back(it->path().string());
    }
  }
  ASSERT_EQ(archived.size(), 1u) << "in " << demo_.archive_dir();
  EXPECT_EQ(std::filesystem::file_size(archived[0]), static_cast<uintmax_t>(size));
  if (automatic()) {
    // Not read before the fix: the copy must be the fill's own lines, and the hash the agent
    // reported must be the copy's.
    sha = Sha256OfFile(archived[0]);
    EXPECT_TRUE(Contains(done.value("remediation_output", ""), "sha256 " + sha)) << done.dump(2);
    // Every line is a filler line, but the fill writes in pieces and cuts the line at the end
    // of each short: those few may be any prefix of one.
    const std::string copy = ReadFile(archived[0]).value_or("");
    size_t lines = 0, cut = 0;
    for (size_t at = 0; at < copy.size();) {
      const size_t end = std::min(copy.find('\n', at), copy.size());
      const std::string line = copy.substr(at, end - at);
      at = end + 1;
      if (Contains(line, "medic-chaos disk-fill: filler line")) {
        ++lines;
      } else {
        ++cut;
        EXPECT_LT(line.size(), 160u) << "not a filler line: " << line.substr(0, 200);
      }
    }
    EXPECT_GT(lines, 1000u);
    EXPECT_LE(cut, lines / 1000 + 2) << lines << " filler lines";
  }
  EXPECT_EQ(Sha256OfFile(archived[0]), sha);

  // The file was truncated and the volume is back under the threshold.
  struct stat after {};
  ASSERT_EQ(stat(fill.c_str(), &after), 0);
  EXPECT_EQ(after.st_size, 0);
  EXPECT_LT(UsedPercent(demo_.log_dir()), 85.0);
  ExpectAlarmBackToOk(kDisk);
}

INSTANTIATE_TEST_SUITE_P(Modes, DiskScenarioTest,
                         ::testing::Values(Mode::kApproval, Mode::kAutomatic), ModeName);

// Memory: a stress-ng hog in the host's memory cgroup takes it to 95 %; the fix stops it.
using MemoryScenarioTest = ScenarioTest;

TEST_P(MemoryScenarioTest, HogKilledMemoryFreedComplete) {
  ASSERT_NO_FATAL_FAILURE(StartDemo());
  RunResult chaos =
      demo_.Run({"chaos", "oom", "--host", "web-1", "--percent", "95", "--duration", "120s"});
  ASSERT_EQ(chaos.exit_code, 0) << chaos.out << demo_.Logs();
  // In approval mode the host stays above 90 % until the fix is approved. In automatic mode
  // medic stops the hog within a few hundred milliseconds of the crossing (the agent's fast
  // watch, issue 18), often between two looks at the host's metrics: there the incident below
  // (raised only from a report above the threshold) and the hog in its diagnostics show it.
  if (!automatic()) {
    EXPECT_TRUE(Eventually(
        60s, [&] { return demo_.HostMetrics().value("mem_used_percent", 0.0) > 90.0; }))
        << demo_.HostMetrics().dump() << demo_.Logs();
  }

  Json inc = WaitForIncident(kMemory);
  ASSERT_TRUE(inc.is_object());
  const std::string id = inc["incident_id"];
  Json done = ApproveAndComplete(id);
  // Real diagnostics: free -m and the processes by memory, the hog among them.
  const std::string diagnostics = done.value("diagnostics", "");
  EXPECT_TRUE(Contains(diagnostics, "memory.usage")) << diagnostics;
  EXPECT_TRUE(Contains(diagnostics, "Mem:")) << diagnostics;
  EXPECT_TRUE(Contains(diagnostics, "process.top")) << diagnostics;
  EXPECT_TRUE(Contains(diagnostics, "RSS")) << diagnostics;
  EXPECT_TRUE(Contains(diagnostics, "stress-ng")) << diagnostics;
  EXPECT_TRUE(Contains(done.value("ai_suggestion", ""), "process.kill")) << done.dump(2);
  EXPECT_TRUE(Contains(done.value("ai_suggestion", ""), "stress-ng")) << done.dump(2);

  EXPECT_TRUE(Eventually(30s, [&] {
    return demo_.HostMetrics().value("mem_used_percent", 100.0) < 90.0;
  })) << demo_.HostMetrics().dump();
  // No hog left in the host's cgroup.
  for (const std::string& cg : DemoCgroups(demo_.demo_pid())) {
    for (pid_t p : CgroupPids(cg)) {
      EXPECT_NE(Trim(ReadFile("/proc/" + std::to_string(p) + "/comm").value_or("")), "stress-ng")
          << "pid " << p;
    }
  }
  ExpectAlarmBackToOk(kMemory);
}

INSTANTIATE_TEST_SUITE_P(Modes, MemoryScenarioTest,
                         ::testing::Values(Mode::kApproval, Mode::kAutomatic), ModeName);

// nginx: master and workers SIGKILLed through the server's chaos; the fix restarts it.
using NginxScenarioTest = ScenarioTest;

TEST_P(NginxScenarioTest, CrashRestartComplete) {
  ASSERT_NO_FATAL_FAILURE(StartDemo());
  ASSERT_EQ(demo_.HostStatus(), 200);
  const pid_t master = ReadPid(demo_.pidfile());
  ASSERT_GT(master, 1);

  RunResult chaos = demo_.Run({"chaos", "nginx-crash", "--host", "web-1"});
  ASSERT_EQ(chaos.exit_code, 0) << chaos.out << demo_.Logs();
  // The outage is seen from outside only in approval mode: in automatic mode medic heals it in
  // tens of milliseconds, often between two looks at the health URL. There the old master's
  // death and, below, the incident and a new master show that it crashed and was healed.
  if (automatic()) {
    ASSERT_TRUE(Eventually(15s, [&] { return !ProcessAlive(master); })) << demo_.Logs();
  } else {
    ASSERT_TRUE(Eventually(15s, [&] { return demo_.HostStatus() != 200; }));
  }

  Json inc = WaitForIncident(kNginx);
  ASSERT_TRUE(inc.is_object());
  const std::string id = inc["incident_id"];
  if (!automatic()) {
    EXPECT_NE(demo_.HostStatus(), 200) << "nothing may heal nginx before approval";
  }
  Json done = ApproveAndComplete(id);
  // Real diagnostics: the service's status and the tail of its logs.
  const std::string diagnostics = done.value("diagnostics", "");
  EXPECT_TRUE(Contains(diagnostics, "service.status service=nginx")) << diagnostics;
  EXPECT_TRUE(Contains(diagnostics, "service.logs service=nginx")) << diagnostics;
  EXPECT_FALSE(Contains(diagnostics, "(not run")) << diagnostics;
  EXPECT_EQ(done.value("ai_suggestion", ""), "service.restart service=nginx");

  EXPECT_EQ(demo_.HostStatus(), 200);
  const pid_t new_master = ReadPid(demo_.pidfile());
  EXPECT_NE(new_master, master);
  EXPECT_TRUE(ProcessAlive(new_master));
  ExpectAlarmBackToOk(kNginx);
}

INSTANTIATE_TEST_SUITE_P(Modes, NginxScenarioTest,
                         ::testing::Values(Mode::kApproval, Mode::kAutomatic), ModeName);

// The restart-loop breaker: automatic mode, an nginx that crashes again each time it is back.
// At most 3 automatic fixes of Nginx-Down-ALB on web-1; the next incident waits for a human and
// its timeline says why.
TEST(BreakerTest, CrashLoopingNginxGetsThreeAutomaticFixesThenWaitsForAHuman) {
  TempDir dir;
  DemoFixture demo(dir);
  const std::string error = demo.Start(/*auto_approve=*/true);
  ASSERT_EQ(error, "") << demo.Logs();

  // The crash loop: whenever nginx is back (a new master in its pidfile) and the previous
  // incident is over, kill it again with the local `medic chaos nginx-crash --pidfile`.
  std::atomic<bool> stop{false};
  std::atomic<int> crashes{0};
  std::thread crasher([&] {
    pid_t last = -1;
    const auto deadline = std::chrono::steady_clock::now() + 240s;
    while (!stop && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(300ms);
      const pid_t master = ReadPid(demo.pidfile());
      if (master <= 1 || master == last || !ProcessAlive(master)) {
        continue;
      }
      bool open = false;
      for (const Json& i : demo.IncidentsOf(kNginx)) {
        const std::string s = i.value("status", "");
        open = open || !(s == "completed" || s == "failed" || s == "timeout" || s == "rejected");
      }
      if (open) {
        continue;
      }
      RunResult r = test::Run({Bin("medic"), "chaos", "nginx-crash", "--pidfile", demo.pidfile()});
      if (r.exit_code == 0) {
        last = master;
        ++crashes;
      }
    }
  });
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joiner() {
      stop = true;
      t.join();
    }
  } joiner{stop, crasher};

  // Waits for the incident that asks a human.
  std::optional<Json> waiting;
  Eventually(
      200s,
      [&] {
        for (const Json& i : demo.IncidentsOf(kNginx)) {
          if (i.value("status", "") == "pending_approval") {
            waiting = i;
            return true;
          }
        }
        return false;
      },
      500ms);
  stop = true;
  ASSERT_TRUE(waiting.has_value())
      << "after " << crashes << " crashes: " << demo.Incidents().dump(2) << demo.Logs();

  std::vector<Json> incidents = demo.IncidentsOf(kNginx);
  int automatic = 0;
  for (const Json& i : incidents) {
    const Json full = demo.Show(i["incident_id"]);
    const std::vector<std::string> events = TimelineEvents(full);
    if (std::find(events.begin(), events.end(), "auto_approved") != events.end()) {
      ++automatic;
    }
  }
  EXPECT_EQ(automatic, 3) << demo.Incidents().dump(2);
  EXPECT_LE(automatic, 3);
  EXPECT_EQ(incidents.size(), 4u) << demo.Incidents().dump(2);

  const Json held = demo.Show((*waiting)["incident_id"]);
  const std::vector<std::string> events = TimelineEvents(held);
  EXPECT_TRUE(
      InOrder(events, {"created", "diagnosed", "suggested", "breaker_open", "awaiting_approval"}))
      << held["timeline"].dump(2);
  EXPECT_EQ(std::find(events.begin(), events.end(), "auto_approved"), events.end());
  bool says_why = false;
  for (const Json& e : held["timeline"]) {
    if (e.value("event", "") == "awaiting_approval") {
      says_why = Contains(e.value("detail", ""), "restart-loop breaker") &&
                 Contains(e.value("detail", ""), "3 automatic fixes");
    }
  }
  EXPECT_TRUE(says_why) << held["timeline"].dump(2);
}

// `medic demo` stops and removes every process, mount and cgroup it started.
TEST(DemoIsolationTest, HostRunsInItsVolumeAndCgroupAndSigtermRemovesEverything) {
  TempDir dir;
  DemoFixture demo(dir);
  const std::string error = demo.Start(/*auto_approve=*/false);
  ASSERT_EQ(error, "") << demo.Logs();

  ASSERT_EQ(MountsUnder(demo.data()), std::vector<std::string>{demo.log_dir()}) << demo.Logs();
  struct statvfs st {};
  ASSERT_EQ(statvfs(demo.log_dir().c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.f_blocks) * st.f_frsize, 32ull << 20);

  const std::vector<std::string> cgroups = DemoCgroups(demo.demo_pid());
  ASSERT_EQ(cgroups.size(), 1u);
  EXPECT_EQ(std::filesystem::path(cgroups[0]).filename().string(),
            "medic-demo-" + std::to_string(demo.demo_pid()) + "-web-1");
  EXPECT_EQ(Trim(ReadFile(cgroups[0] + "/memory.limit_in_bytes").value_or("")), "268435456");
  // The agent and what it supervises (nginx, the health app) are in it.
  const pid_t master = ReadPid(demo.pidfile());
  ASSERT_GT(master, 1);
  const std::vector<pid_t> members = CgroupPids(cgroups[0]);
  EXPECT_NE(std::find(members.begin(), members.end(), master), members.end());
  EXPECT_GE(members.size(), 3u);  // agent, nginx master (+ worker), health app
  // The agent reports its disk against the volume and its memory against the cgroup's limit.
  const Json metrics = demo.HostMetrics();
  EXPECT_TRUE(metrics.contains("disk_used_percent")) << metrics;
  EXPECT_TRUE(metrics.contains("mem_used_percent")) << metrics;

  std::optional<int> status = demo.Stop();
  ASSERT_TRUE(status.has_value()) << "medic demo did not stop on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << demo.Stderr();
  EXPECT_TRUE(MountsUnder(demo.data()).empty());
  EXPECT_FALSE(std::filesystem::exists(cgroups[0]));
  EXPECT_TRUE(DemoCgroups(demo.demo_pid()).empty());
  for (pid_t p : members) {
    EXPECT_FALSE(ProcessAlive(p)) << "pid " << p << " outlived the demo";
  }
}

}  // namespace
}  // namespace medic::test
