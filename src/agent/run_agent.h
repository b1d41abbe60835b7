#pragma once

// medic-agent as a process: the real dependencies built in one factory (a clock, /proc, the child
// reaper, the command runner, systemd or the built-in supervisor, the agent, the optional
// /metrics listener), run until SIGTERM or SIGINT, then every supervised service is stopped.

#include <optional>
#include <string>

#include "agent/config.h"

namespace medic::agent {

// Blocks SIGINT/SIGTERM, builds and starts the agent for `config` (and /metrics on
// `metrics_listen` when given), waits for a signal, stops. Returns the process exit code (logs
// the error when the start fails). REQUIRES: called from main() before any thread exists.
int RunAgentUntilSignal(const AgentConfig& config,
                        const std::optional<std::string>& metrics_listen);

}  // namespace medic::agent
