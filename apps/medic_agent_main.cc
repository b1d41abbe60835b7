// medic-agent: parse flags, load config, build the real dependencies in one factory, run until
// SIGTERM/SIGINT, then stop every supervised service and exit 0. See docs/AGENT.md.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "agent/agent.h"
#include "agent/child_reaper.h"
#include "agent/command_runner.h"
#include "agent/flags.h"
#include "agent/supervisor.h"
#include "core/log.h"

namespace {

using namespace medic;
using namespace medic::agent;

// The real dependencies, in construction order (destroyed in reverse).
struct RealAgent {
  SystemClock clock;
  LinuxProcFs procfs;
  ChildReaper reaper;
  std::unique_ptr<ForkExecCommandRunner> runner;
  std::unique_ptr<SupervisorServiceManager> services;
  std::unique_ptr<Agent> agent;
};

// The factory: everything the agent runs on, started. REQUIRES: signals already blocked.
Result<std::unique_ptr<RealAgent>> BuildAgent(const AgentConfig& config) {
  ASSIGN_OR_RETURN(std::string token, ReadToken(config.token_file));
  auto a = std::make_unique<RealAgent>();
  RETURN_IF_ERROR(a->reaper.Start());
  a->runner = std::make_unique<ForkExecCommandRunner>(a->reaper);
  a->services =
      std::make_unique<SupervisorServiceManager>(config.services, a->reaper, a->procfs, a->clock);
  a->services->StartAutostart();
  a->agent = std::make_unique<Agent>(
      config, token,
      AgentDeps{a->clock, a->procfs, *a->runner, *a->services, [] { return NewCurlHttpClient(); }});
  a->agent->Start();
  Agent* agent = a->agent.get();
  a->services->SetExitListener([agent](const std::string&, const ServiceExit&) { agent->CheckNow(); });
  return a;
}

int RunAgent(const AgentConfig& config) {
  for (int fd = 0; fd <= 2; ++fd) {  // children must never inherit a pipe as fd 0-2
    if (::fcntl(fd, F_GETFD) < 0) {
      ::open("/dev/null", O_RDWR);
    }
  }
  SetLogLevelByName(config.log_level);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // before any thread exists
  ::signal(SIGPIPE, SIG_IGN);
  InitHttpClientLibrary();
  auto built = BuildAgent(config);
  if (!built) {
    LogError(built.error().message);
    return 1;
  }
  RealAgent& a = **built;
  LogInfo("medic-agent " + config.name + " reporting to " + config.server + " every " +
          std::to_string(config.interval.count()) + " ms");
  int sig = 0;
  sigwait(&stop_signals, &sig);
  LogInfo(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping");
  a.services->SetExitListener(nullptr);
  const bool clean = a.agent->Stop();
  a.services->StopAll();
  a.reaper.Stop();
  if (!clean) {
    std::_Exit(0);  // a long poll is in flight on a detached thread
  }
  built->reset();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  SetLogPrefix("medic-agent");
  auto flags = ParseAgentFlags(argc, argv);
  if (!flags) {
    std::fprintf(stderr, "medic-agent: %s\n", flags.error().message.c_str());
    return 1;
  }
  if (!flags->help.empty()) {
    std::fputs(flags->help.c_str(), stdout);
    return 0;
  }
  auto config = LoadAgentConfig(flags->config_file, flags->overrides);
  if (config && flags->check_config) {
    std::puts("config OK");
    return 0;
  }
  if (!config) {
    std::fprintf(stderr, "medic-agent: %s\n", config.error().message.c_str());
    return 1;
  }
  if (flags->metrics_listen) {
    std::fprintf(stderr, "medic-agent: --metrics-listen is not supported yet\n");
    return 1;
  }
  return RunAgent(*config);
}
