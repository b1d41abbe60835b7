// The agent's one factory of real dependencies and its run loop (apps/medic_agent_main.cc).

#include "agent/run_agent.h"

#include "agent/footprint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "agent/agent.h"
#include "agent/child_reaper.h"
#include "agent/command_runner.h"
#include "agent/prometheus.h"
#include "agent/supervisor.h"
#include "agent/systemd.h"
#include "core/files.h"
#include "core/log.h"
#include "transport/mbedtls_http_client.h"
#include "transport/plain_http_client.h"

namespace medic::agent {

namespace {


// The real dependencies, in construction order (destroyed in reverse).
struct RealAgent {
  SystemClock clock;
  host::LinuxProcFs procfs;
  ChildReaper reaper;
  std::unique_ptr<ForkExecCommandRunner> runner;
  std::unique_ptr<SupervisorServiceManager> services;  // empty when systemd manages them
  std::unique_ptr<SystemdServiceManager> systemd;
  std::unique_ptr<CommandLedger> ledger;  // before the agent, which uses it
  std::unique_ptr<Agent> agent;
  std::unique_ptr<MetricsHttpServer> metrics_server;
};

// The factory: everything the agent runs on, started. REQUIRES: signals already blocked.
Result<std::unique_ptr<RealAgent>> BuildAgent(const AgentConfig& config,
                                              const std::optional<std::string>& metrics_listen) {
  // The host's own credential, when it has one; else the agent enrols first (enrolment.h).
  ASSIGN_OR_RETURN(std::string credential, LoadStoredCredential(config.state_dir));
  // The key the server's commands are checked with, kept with the credential.
  ASSIGN_OR_RETURN(std::string command_key, LoadStoredCommandKey(config.state_dir));
  if (!credential.empty() && command_key.empty()) {
    return FailedPrecondition(
        config.state_dir + "/" + kCredentialFile + " has no " + kCommandKeyFile +
        " beside it (the server's command-signing key, received when the host enrols): remove "
        "the credential and enrol the host again (medic hosts enroll " + config.name + ")");
  }
  if (credential.empty()) {
    if (config.enroll_code.empty() && config.token_file.empty()) {
      return FailedPrecondition("this host has no credential in " + config.state_dir +
                                " and no way to enrol: set enroll_code (medic hosts enroll " +
                                config.name + ") or token_file (the bootstrap token)");
    }
    if (config.enroll_code.empty()) {
      RETURN_IF_ERROR(ReadToken(config.token_file));
    }
    RETURN_IF_ERROR(MakeDirs(config.state_dir, 0700));
  }
  auto a = std::make_unique<RealAgent>();
  // Every command id is written here before it runs: nothing runs twice across restarts.
  RETURN_IF_ERROR(MakeDirs(config.state_dir, 0700));
  ASSIGN_OR_RETURN(a->ledger, OpenCommandLedger(config.state_dir + "/commands.log"));
  RETURN_IF_ERROR(a->reaper.Start());
  a->runner = std::make_unique<ForkExecCommandRunner>(a->reaper, config.exec_max_concurrent);
  ASSIGN_OR_RETURN(
      ServiceManagerKind kind,
      ChooseServiceManager(config.service_manager, ReadFile("/proc/1/comm").value_or("")));
  ServiceManager* manager = nullptr;
  if (kind == ServiceManagerKind::kSystemd) {
    std::vector<std::string> names;
    for (const auto& s : config.services) {
      names.push_back(s.name);
    }
    a->systemd = std::make_unique<SystemdServiceManager>(std::move(names), *a->runner);
    a->services = std::make_unique<SupervisorServiceManager>(std::vector<ServiceConfig>{},
                                                             a->reaper, a->procfs, a->clock);
    manager = a->systemd.get();
    LogInfo("services are managed by systemd");
  } else {
    a->services =
        std::make_unique<SupervisorServiceManager>(config.services, a->reaper, a->procfs, a->clock);
    a->services->StartAutostart();
    manager = a->services.get();
  }
  // http:// over plain sockets, https:// over mbed TLS, made (and its CA file read) when an
  // https:// URL is first used; no libcurl (docs/BENCHMARKS.md). The server is verified by
  // tls.ca_file and tls.pin; an https:// health check by tls.ca_file only (the pin is the
  // server's key), or by the system's CAs without one.
  auto client_factory = [](TlsOptions tls) {
    return [tls] {
      return NewSchemeRoutingHttpClient(NewPlainHttpClient(),
                                        [tls] { return NewMbedTlsHttpClient(tls); });
    };
  };
  const TlsOptions server_tls{config.tls_ca_file, config.tls_cert_file, config.tls_key_file,
                              config.tls_pin};
  TlsOptions check_tls = server_tls;
  check_tls.pin.clear();
  a->agent = std::make_unique<Agent>(
      config, credential,
      AgentDeps{a->clock, a->procfs, *a->runner, *manager, client_factory(server_tls),
                client_factory(check_tls), a->ledger.get(), command_key});
  Agent* agent = a->agent.get();
  if (metrics_listen) {
    a->metrics_server =
        std::make_unique<MetricsHttpServer>([agent] { return agent->PrometheusText(); });
    if (auto s = a->metrics_server->Start(*metrics_listen); !s) {
      a->services->StopAll();
      return s.error();
    }
    LogInfo("serving /metrics on port " + std::to_string(a->metrics_server->port()));
  }
  a->agent->Start();
  a->services->SetExitListener(
      [agent](const std::string&, const ServiceExit&) { agent->CheckNow(); });
  return a;
}

}  // namespace

int RunAgentUntilSignal(const AgentConfig& config,
                        const std::optional<std::string>& metrics_listen) {
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
  UseOneMallocArena();
  auto built = BuildAgent(config, metrics_listen);
  if (!built) {
    LogError(built.error().message);
    return 1;
  }
  RealAgent& a = **built;
  std::string servers;
  for (const auto& url : ServerUrls(config)) {
    servers += (servers.empty() ? "" : ", then ") + url;
  }
  LogInfo("medic-agent " + config.name + " reporting to " + servers + " every " +
          std::to_string(config.interval.count()) + " ms");
  int sig = 0;
  // After start-up (enrolment, registration, the first checks and reports), only the code the
  // agent keeps running stays resident.
  const timespec settle{10, 0};
  sig = ::sigtimedwait(&stop_signals, nullptr, &settle);
  if (sig < 0) {
    KeepOnlyExecutedCodeResident();
    sigwait(&stop_signals, &sig);
  }
  LogInfo(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping");
  a.services->SetExitListener(nullptr);
  if (a.metrics_server) {
    a.metrics_server->Stop();
  }
  const bool clean = a.agent->Stop();
  a.services->StopAll();
  a.reaper.Stop();
  if (!clean) {
    std::_Exit(0);  // a long poll is in flight on a detached thread
  }
  built->reset();
  return 0;
}

}  // namespace medic::agent
