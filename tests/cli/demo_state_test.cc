// The demo's state file (what a running demo created) and the decisions a later demo takes from
// a leftover one: refuse next to a live demo, clean up after a killed one, never kill a reused pid.

#include "cli/demo_state.h"

#include <gtest/gtest.h>

#include <map>

#include "cli/demo_net.h"

namespace medic::cli {
namespace {

DemoState Sample() {
  DemoState s;
  s.pid = 4242;
  s.start_time = 1328528;
  s.processes = {{4250, 1328600, "medic-server"}, {4260, 1328700, "medic-agent web-1"}};
  s.cgroups = {"/sys/fs/cgroup/memory/x/medic-demo-4242-web-1"};
  s.namespaces = {"medic-demo-4242", "medic-demo-4242-web-1"};
  s.mounts = {"/data/demo/hosts/web-1/log"};
  return s;
}

TEST(DemoStateTest, RoundTripsThroughJson) {
  const DemoState s = Sample();
  Result<DemoState> back = ParseDemoState(DumpJson(DemoStateToJson(s)));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(DemoStateTest, RejectsWhatIsNotAStateFile) {
  struct Case {
    std::string_view text;
    std::string_view error;
  };
  for (const Case& c : std::vector<Case>{
           {"", "JSON"},
           {"[]", "object"},
           {R"({"start_time":1})", "bad pid"},
           {R"({"pid":1,"start_time":1})", "bad pid"},
           {R"({"pid":"12","start_time":1})", "bad pid"},
           {R"({"pid":12})", "bad start_time"},
           {R"({"pid":12,"start_time":-3})", "bad start_time"},
           {R"({"pid":12,"start_time":1,"processes":{}})", "processes is not a list"},
           {R"({"pid":12,"start_time":1,"processes":[{"pid":0,"start_time":1}]})", "bad pid"},
           {R"({"pid":12,"start_time":1,"namespaces":"medic-demo-12"})", "namespaces is not"},
           {R"({"pid":12,"start_time":1,"mounts":[7]})", "mounts holds a non-string"},
       }) {
    SCOPED_TRACE(c.text);
    Result<DemoState> r = ParseDemoState(c.text);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find(c.error), std::string::npos) << r.error().message;
  }
}

TEST(DemoStateTest, OnlyWhatADemoCreatesPassesValidation) {
  EXPECT_TRUE(ValidateDemoState(Sample(), "/data/demo").has_value());
  struct Case {
    std::string_view name;
    std::function<void(DemoState&)> change;
    std::string_view error;
  };
  for (const Case& c : std::vector<Case>{
           {"another namespace", [](DemoState& s) { s.namespaces.push_back("cni-1234"); },
            "network namespace cni-1234 is not one a demo creates"},
           {"another demo's", [](DemoState& s) { s.namespaces.push_back("medic-demo-42420"); },
            "network namespace medic-demo-42420"},
           {"a path", [](DemoState& s) { s.namespaces.push_back("medic-demo-4242-../x"); },
            "network namespace medic-demo-4242-../x"},
           {"the whole hierarchy",
            [](DemoState& s) { s.cgroups.push_back("/sys/fs/cgroup/memory"); },
            "cgroup /sys/fs/cgroup/memory is not"},
           {"a cgroup elsewhere",
            [](DemoState& s) { s.cgroups.push_back("/tmp/medic-demo-4242-x"); },
            "cgroup /tmp/medic-demo-4242-x"},
           {"a cgroup of another name",
            [](DemoState& s) { s.cgroups.push_back("/sys/fs/cgroup/memory/user.slice"); },
            "cgroup /sys/fs/cgroup/memory/user.slice"},
           {"a mount outside", [](DemoState& s) { s.mounts.push_back("/home"); }, "mount /home"},
           {"a mount escaping", [](DemoState& s) { s.mounts.push_back("/data/demo/hosts/../x"); },
            "mount /data/demo/hosts/../x"},
       }) {
    SCOPED_TRACE(c.name);
    DemoState s = Sample();
    c.change(s);
    Status v = ValidateDemoState(s, "/data/demo");
    ASSERT_FALSE(v.has_value());
    EXPECT_NE(v.error().message.find(c.error), std::string::npos) << v.error().message;
  }
}

TEST(DemoStateTest, StartTimeIsField22EvenWhenTheNameHoldsParentheses) {
  EXPECT_EQ(ParseStartTime("16371 (cat) R 16369 16369 12958 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 "
                           "0 1328528 3133440 408 18446744073709551615\n"),
            1328528u);
  EXPECT_EQ(ParseStartTime("77 (a) b (c) S 1 77 77 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 "
                           "99 3133440 408"),
            99u);
  EXPECT_EQ(ParseStartTime("77 (a) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0"), std::nullopt);
  EXPECT_EQ(ParseStartTime("77 (a) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 x1 2"), std::nullopt);
  EXPECT_EQ(ParseStartTime("garbage"), std::nullopt);
}

TEST(DemoStateTest, ALeftoverIsALiveDemoOnlyWhenItsPidRunsWithTheSameStartTime) {
  const DemoState s = Sample();
  EXPECT_EQ(JudgeLeftover(s, 1328528u), LeftoverDemo::kRunning);
  EXPECT_EQ(JudgeLeftover(s, std::nullopt), LeftoverDemo::kCrashed);  // dead
  EXPECT_EQ(JudgeLeftover(s, 1999999u), LeftoverDemo::kCrashed);      // pid reused
}

TEST(DemoStateTest, KillsOnlyRecordedProcessesThatAreStillTheSame) {
  DemoState s = Sample();
  s.processes.push_back({4270, 0, "unknown start time"});
  s.processes.push_back({1, 5, "init, never"});
  const std::map<int, uint64_t> now = {
      {4250, 1328600},  // the server, still running
      {4260, 1400000},  // pid reused by something else
      {4270, 7},
      {1, 5},
  };
  const std::vector<DemoProcessRecord> kill = ProcessesToKill(s, [&](int pid) {
    auto it = now.find(pid);
    return it == now.end() ? std::nullopt : std::optional<uint64_t>(it->second);
  });
  EXPECT_EQ(kill, (std::vector<DemoProcessRecord>{{4250, 1328600, "medic-server"}}));
}

TEST(DemoNetPlanTest, AddressesAndNamesOfTheFleet) {
  EXPECT_EQ(DemoHubAddress(), "10.77.0.1");
  EXPECT_EQ(DemoHostAddress(1), "10.77.0.11");
  EXPECT_EQ(DemoHostAddress(2), "10.77.0.12");
  EXPECT_EQ(DemoHostAddress(kDemoMaxNetHosts), "10.77.0.210");
  EXPECT_EQ(DemoHubNamespace(4242), "medic-demo-4242");
  EXPECT_EQ(DemoHostNamespace(4242, "web-3"), "medic-demo-4242-web-3");
}

}  // namespace
}  // namespace medic::cli
