// A stand-in for the agent's command path, for chaos tests that must run inside a memory cgroup:
// reads one action per line on stdin ({"name":..,"params":{..}}), runs it as the agent does
// (ValidateAction, the local policy of the YAML config named by argv[1], ActionExecutor with the
// real /proc and a real ChildReaper) and writes one JSON line per result on stdout.

#include <unistd.h>

#include <iostream>
#include <string>

#include "agent/action_executor.h"
#include "agent/child_reaper.h"
#include "agent/config.h"
#include "agent/policy.h"
#include "host/proc_fs.h"
#include "core/files.h"
#include "core/json.h"
#include "tests/agent/fakes.h"
#include "protocol/actions.h"

int main(int argc, char** argv) {
  using namespace medic;
  using namespace medic::agent;
  if (argc != 2) {
    std::cerr << "usage: agent_chaos_helper CONFIG.yaml\n";
    return 2;
  }
  auto text = ReadFile(argv[1]);
  auto config = text ? ParseAgentConfig(*text, argv[1]) : Result<AgentConfig>(text.error());
  if (!config) {
    std::cerr << config.error().message << "\n";
    return 2;
  }
  ChildReaper reaper;
  if (!reaper.Start()) {
    std::cerr << "cannot start the child reaper\n";
    return 2;
  }
  const Policy policy(PolicyRulesFromConfig(*config, ::getpid()));
  host::LinuxProcFs procfs;
  testing::FakeCommandRunner runner;
  testing::FakeServiceManager services;
  ExecutorOptions options;
  options.self_pid = ::getpid();
  options.spawn_child = [&reaper](const std::function<void()>& child_main) {
    return reaper.Spawn(child_main, nullptr);
  };
  ActionExecutor executor(options, policy, runner, services, procfs);
  std::string line;
  while (std::getline(std::cin, line)) {
    Json out;
    auto request = ParseJsonObject(line);
    auto action = request ? protocol::ValidateAction(request->value("name", ""),
                                                     request->value("params", Json::object()))
                          : Result<protocol::Action>(request.error());
    if (!action) {
      out = {{"ran", false}, {"error", action.error().message}};
    } else if (Status s = policy.Check(*action); !s) {
      out = {{"ran", false}, {"error", s.error().message}};
    } else {
      const protocol::CommandResult r = executor.Execute(*action, Millis(30'000));
      out = {{"ran", r.ran}, {"exit_code", r.exit_code}, {"output", r.output}, {"error", r.error}};
    }
    std::cout << DumpJson(out) << std::endl;
  }
  reaper.Stop();
  return 0;
}
