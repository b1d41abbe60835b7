// Issue 16, acceptance line 3: "After SIGKILL of `medic demo`, a new `medic demo` starts cleanly
// and no namespace, mount, cgroup or process of the old one remains." With the real binaries, as
// root: `medic demo --hosts 2` puts each host (its agent and nginx) in a network namespace of its
// own with its own address behind the demo's hub namespace; a SIGKILLed demo leaves them behind;
// the next demo on the same data dir removes them and starts; a SIGTERMed demo leaves nothing.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <map>
#include <set>

#include "cli/demo_state.h"
#include "tests/integration/demo_fixture.h"

namespace medic::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kReadyTimeout = 120s;  // two hosts on a loaded 2-core machine: generous

struct RunningDemo {
  std::unique_ptr<Subprocess> proc;
  std::string url;
  std::string token_file;
  std::string lb_url;
  std::string error;  // "" once ready
};

RunningDemo StartDemo(const std::string& data, const std::string& stderr_path) {
  RunningDemo d;
  d.proc = std::make_unique<Subprocess>(
      std::vector<std::string>{Bin("medic"), "demo", "--hosts", "2", "--listen", "127.0.0.1:0",
                               "--data-dir", data},
      stderr_path);
  std::optional<std::string> line = d.proc->ReadLine(kReadyTimeout);
  std::optional<ReadyLine> ready = line ? ParseReadyLine(*line) : std::nullopt;
  if (!line.has_value()) {
    d.error = "never ready: " + ReadFileTail(stderr_path, 4000).value_or("");
  } else if (!ready.has_value()) {
    d.error = "unexpected ready line: " + *line;
  } else {
    d.url = ready->url;
    d.token_file = ready->token_file;
    d.lb_url = ready->lb_url;
  }
  return d;
}

cli::DemoState ReadState(const std::string& data) {
  auto text = ReadFile(data + "/" + cli::kDemoStateFile);
  return text ? cli::ParseDemoState(*text).value_or(cli::DemoState{}) : cli::DemoState{};
}

std::optional<uint64_t> StartTime(pid_t pid) {
  auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  return stat ? cli::ParseStartTime(*stat) : std::nullopt;
}

// The recorded processes that still run as the same process (same pid and start time).
std::vector<std::string> StillRunning(const cli::DemoState& s) {
  std::vector<std::string> out;
  for (const cli::DemoProcessRecord& p : s.processes) {
    if (StartTime(p.pid) == std::optional<uint64_t>(p.start_time) && ProcessAlive(p.pid)) {
      out.push_back(p.what + " (pid " + std::to_string(p.pid) + ")");
    }
  }
  return out;
}

// How many times each mount point below `data` is mounted.
std::map<std::string, int> MountCounts(const std::string& data) {
  std::map<std::string, int> out;
  for (const std::string& m : MountsUnder(data)) {
    ++out[m];
  }
  return out;
}

Json HostsOf(const RunningDemo& d) {
  RunResult r =
      Run({Bin("medic"), "--server", d.url, "--token-file", d.token_file, "--json", "hosts"});
  return r.exit_code == 0 ? ParseJson(r.out).value_or(Json()) : Json();
}

bool AllHealthy(const Json& hosts, size_t n) {
  if (!hosts.is_object() || !hosts.contains("hosts") || hosts["hosts"].size() != n) {
    return false;
  }
  for (const Json& h : hosts["hosts"]) {
    if (h.value("status", "") != "healthy") {
      return false;
    }
  }
  return true;
}

class DemoNetnsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Whatever a failed run left: by the pids the demos recorded, their cgroups, namespaces and
    // mounts (all created by the demos this test started).
    for (pid_t pid : demo_pids_) {
      for (const std::string& cg : DemoCgroups(pid)) {
        RemoveCgroupTree(cg);
      }
      for (const std::string& ns : DemoNamespaces(pid)) {
        RemoveNamespace(ns);
      }
    }
    for (const std::string& m : MountsUnder(dir_.File("demo"))) {
      umount2(m.c_str(), MNT_DETACH);
    }
  }

  TempDir dir_;
  std::vector<pid_t> demo_pids_;
};

TEST_F(DemoNetnsTest, HostsInOwnNamespacesAndTheNextDemoRemovesWhatAKilledOneLeft) {
  ASSERT_EQ(geteuid(), 0u) << "this test needs root (network namespaces, mounts, cgroups)";
  const std::string data = dir_.File("demo");

  RunningDemo first = StartDemo(data, dir_.File("first.stderr"));
  ASSERT_NE(first.proc, nullptr);
  demo_pids_.push_back(first.proc->pid());
  ASSERT_EQ(first.error, "");
  const pid_t old_pid = first.proc->pid();

  // Each host in its own namespace with its own address; its agent and nginx run there.
  const Json demo = ParseJson(ReadFile(data + "/demo.json").value_or("")).value_or(Json());
  ASSERT_TRUE(demo.is_object()) << "no demo.json";
  const std::string hub = demo.value("hub_namespace", "");
  EXPECT_EQ(hub, "medic-demo-" + std::to_string(old_pid));
  ASSERT_EQ(demo["hosts"].size(), 2u) << demo.dump(2);
  const cli::DemoState state = ReadState(data);
  ASSERT_EQ(state.pid, old_pid);
  std::set<ino_t> inodes = {NetnsInode("/proc/self/ns/net"), NetnsInode("/run/netns/" + hub)};
  for (int i = 0; i < 2; ++i) {
    const Json& h = demo["hosts"][i];
    const std::string name = "web-" + std::to_string(i + 1);
    SCOPED_TRACE(name);
    const std::string ns = h.value("namespace", "");
    EXPECT_EQ(ns, hub + "-" + name);
    EXPECT_EQ(h.value("address", ""), "10.77.0." + std::to_string(11 + i));
    const ino_t ino = NetnsInode("/run/netns/" + ns);
    ASSERT_NE(ino, 0u);
    EXPECT_TRUE(inodes.insert(ino).second) << "namespace shared with another host or the root";
    const pid_t nginx = ReadPid(data + "/hosts/" + name + "/run/nginx.pid");
    ASSERT_GT(nginx, 1);
    EXPECT_EQ(NetnsInode("/proc/" + std::to_string(nginx) + "/ns/net"), ino);
    pid_t agent = 0;
    for (const cli::DemoProcessRecord& p : state.processes) {
      if (p.what == "medic-agent " + name) {
        agent = p.pid;
      }
    }
    ASSERT_GT(agent, 1);
    EXPECT_EQ(NetnsInode("/proc/" + std::to_string(agent) + "/ns/net"), ino);
    // nginx answers on the host's address, from its own namespace and across the hub's bridge.
    const std::string url = "http://" + h.value("address", "") + ":80/health";
    EXPECT_EQ(HttpStatusIn(ns, url), 200);
    EXPECT_EQ(HttpStatusIn(hub, url), 200);
  }
  // The agents reached medic-server (root namespace) through the relay: both hosts healthy.
  EXPECT_TRUE(AllHealthy(HostsOf(first), 2)) << HostsOf(first).dump(2);
  // The load balancer runs in the hub over the hosts' addresses; the user's loopback URL for it
  // (the relay into the hub) answers 200, and so does the hub's own address from inside it.
  pid_t lb = 0;
  for (const cli::DemoProcessRecord& p : state.processes) {
    if (p.what == "load balancer") {
      lb = p.pid;
    }
  }
  ASSERT_GT(lb, 1);
  EXPECT_EQ(NetnsInode("/proc/" + std::to_string(lb) + "/ns/net"), NetnsInode("/run/netns/" + hub));
  EXPECT_EQ(demo.value("load_balancer", ""), first.lb_url);
  EXPECT_EQ(first.lb_url.rfind("http://127.0.0.1:", 0), 0u) << first.lb_url;
  EXPECT_EQ(HttpStatus(first.lb_url + "/health"), 200);
  EXPECT_EQ(HttpStatusIn(hub, "http://10.77.0.1:80/health"), 200);

  // A crash: SIGKILL to the demo process alone.
  ASSERT_EQ(kill(old_pid, SIGKILL), 0);
  ASSERT_TRUE(first.proc->Wait(10s).has_value());
  EXPECT_FALSE(DemoNamespaces(old_pid).empty()) << "a killed demo leaves its namespaces";
  EXPECT_FALSE(MountsUnder(data).empty()) << "a killed demo leaves its mounts";

  RunningDemo second = StartDemo(data, dir_.File("second.stderr"));
  ASSERT_NE(second.proc, nullptr);
  demo_pids_.push_back(second.proc->pid());
  ASSERT_EQ(second.error, "");
  const std::string second_err = ReadFile(dir_.File("second.stderr")).value_or("");
  EXPECT_NE(second_err.find("cleaned up after a medic demo (pid " + std::to_string(old_pid) +
                            ") that did not stop"),
            std::string::npos)
      << second_err;
  // Nothing of the first remains.
  EXPECT_TRUE(DemoNamespaces(old_pid).empty());
  EXPECT_TRUE(DemoCgroups(old_pid).empty());
  EXPECT_TRUE(StillRunning(state).empty()) << StillRunning(state).front();
  for (const auto& [point, n] : MountCounts(data)) {
    EXPECT_EQ(n, 1) << point << " mounted " << n << " times";
  }
  EXPECT_EQ(MountCounts(data).size(), 2u);
  // The second demo works.
  EXPECT_TRUE(AllHealthy(HostsOf(second), 2)) << HostsOf(second).dump(2);
  EXPECT_EQ(HttpStatus(second.lb_url + "/health"), 200);
  const cli::DemoState state2 = ReadState(data);
  EXPECT_EQ(state2.pid, second.proc->pid());
  EXPECT_EQ(DemoNamespaces(second.proc->pid()).size(), 3u);

  // A clean stop leaves nothing either.
  std::optional<int> status = second.proc->SignalAndWait(SIGTERM, 60s);
  ASSERT_TRUE(status.has_value()) << "the demo did not stop";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  EXPECT_TRUE(DemoNamespaces(second.proc->pid()).empty());
  EXPECT_TRUE(DemoCgroups(second.proc->pid()).empty());
  EXPECT_TRUE(MountsUnder(data).empty());
  EXPECT_TRUE(StillRunning(state2).empty()) << StillRunning(state2).front();
  EXPECT_FALSE(PathExists(data + "/" + cli::kDemoStateFile));
  EXPECT_FALSE(PathExists(data + "/demo.json"));
}

}  // namespace
}  // namespace medic::test
