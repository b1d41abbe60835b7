// The service-manager choice and the systemd implementation's argv, with a recording runner.

#include "agent/systemd.h"

#include <gtest/gtest.h>

#include "tests/agent/fakes.h"

namespace medic::agent {
namespace {

using testing::FakeCommandRunner;

TEST(ChooseServiceManager, AutoFollowsPid1AndConfigOverrides) {
  EXPECT_EQ(*ChooseServiceManager("auto", "systemd\n"), ServiceManagerKind::kSystemd);
  EXPECT_EQ(*ChooseServiceManager("auto", "init\n"), ServiceManagerKind::kSupervisor);
  EXPECT_EQ(*ChooseServiceManager("auto", "process_api\n"), ServiceManagerKind::kSupervisor);
  EXPECT_EQ(*ChooseServiceManager("", "systemd"), ServiceManagerKind::kSystemd);
  EXPECT_EQ(*ChooseServiceManager("supervisor", "systemd\n"), ServiceManagerKind::kSupervisor);
  EXPECT_EQ(*ChooseServiceManager("systemd", "init\n"), ServiceManagerKind::kSystemd);
  EXPECT_FALSE(ChooseServiceManager("upstart", "init").has_value());
}

TEST(SystemdServiceManager, RunsSystemctlWithArgvAndNoShell) {
  FakeCommandRunner runner;
  SystemdServiceManager sd({"nginx", "app.service"}, runner);
  EXPECT_EQ(*sd.Start("nginx"), "started nginx.service");
  EXPECT_EQ(*sd.Stop("nginx"), "stopped nginx.service");
  EXPECT_EQ(*sd.Restart("app.service"), "restarted app.service");
  EXPECT_EQ(*sd.Kill("nginx", 9), "sent SIGKILL to nginx.service");
  const std::vector<std::vector<std::string>> want = {
      {"systemctl", "start", "--", "nginx.service"},
      {"systemctl", "stop", "--", "nginx.service"},
      {"systemctl", "restart", "--", "app.service"},
      {"systemctl", "kill", "--signal=9", "--", "nginx.service"},
  };
  EXPECT_EQ(runner.commands_ran(), want);
  // Unknown services never reach systemctl.
  EXPECT_FALSE(sd.Restart("sshd").has_value());
  EXPECT_EQ(runner.commands_ran().size(), 4u);
  EXPECT_EQ(sd.Names(), (std::vector<std::string>{"nginx", "app.service"}));
}

TEST(SystemdServiceManager, StatusFromSystemctlShow) {
  FakeCommandRunner runner;
  runner.SetOutcome(
      CommandOutcome{.started = true,
                     .exit_code = 0,
                     .output = "ActiveState=active\nSubState=running\nMainPID=4242\n"});
  SystemdServiceManager sd({"nginx"}, runner);
  auto s = sd.GetStatus("nginx");
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(s->running);
  EXPECT_EQ(s->pid, 4242);
  EXPECT_EQ(
      runner.commands_ran().back(),
      (std::vector<std::string>{"systemctl", "show", "--property=ActiveState,SubState,MainPID",
                                "--", "nginx.service"}));
  const ServiceStatus failed =
      ParseSystemctlShow("nginx", "ActiveState=failed\nSubState=failed\nMainPID=0\n");
  EXPECT_FALSE(failed.running);
  EXPECT_EQ(failed.pid, 0);
}

TEST(SystemdServiceManager, FailureCarriesSystemctlOutput) {
  FakeCommandRunner runner;
  runner.SetOutcome(CommandOutcome{.started = true,
                                   .exit_code = 5,
                                   .output = "Failed to start nginx.service: Unit not found.\n"});
  SystemdServiceManager sd({"nginx"}, runner);
  auto r = sd.Start("nginx");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message,
            "systemctl start nginx.service: exit code 5: Failed to start nginx.service: Unit not "
            "found.");
}

}  // namespace
}  // namespace medic::agent
