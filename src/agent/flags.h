#pragma once

// medic-agent's command line (see CONTRACT.md).

#include <optional>
#include <string>

#include "agent/config.h"
#include "core/result.h"

namespace medic::agent {

struct AgentFlags {
  std::string config_file;
  ConfigOverrides overrides;
  std::optional<std::string> metrics_listen;
  bool check_config = false;
  std::string help;  // non-empty: --help was given; print it and exit 0
};

// Parses argv; errors describe the bad flag.
Result<AgentFlags> ParseAgentFlags(int argc, const char* const* argv);

}  // namespace medic::agent
