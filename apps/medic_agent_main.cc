// medic-agent: parse flags, load config, run on the real dependencies (RunAgentUntilSignal)
// until SIGTERM/SIGINT, then stop every supervised service and exit 0. See docs/AGENT.md.

#include <cstdio>
#include <string>

#include "agent/config.h"
#include "agent/flags.h"
#include "agent/prometheus.h"
#include "agent/run_agent.h"
#include "core/log.h"

int main(int argc, char** argv) {
  medic::SetLogPrefix("medic-agent");
  auto flags = medic::agent::ParseAgentFlags(argc, argv);
  if (!flags) {
    std::fprintf(stderr, "medic-agent: %s\n", flags.error().message.c_str());
    return 1;
  }
  if (!flags->help.empty()) {
    std::fputs(flags->help.c_str(), stdout);
    return 0;
  }
  auto config = medic::agent::LoadAgentConfig(flags->config_file, flags->overrides);
  if (config && flags->check_config) {
    std::puts("config OK");
    return 0;
  }
  if (!config) {
    std::fprintf(stderr, "medic-agent: %s\n", config.error().message.c_str());
    return 1;
  }
  if (flags->metrics_listen) {
    if (auto hp = medic::agent::ParseListenAddress(*flags->metrics_listen); !hp) {
      std::fprintf(stderr, "medic-agent: %s\n", hp.error().message.c_str());
      return 1;
    }
  }
  return medic::agent::RunAgentUntilSignal(*config, flags->metrics_listen);
}
