#pragma once

// A command the agent's ledger saw start and never finish: the agent was stopped (SIGKILL, a
// crash, a power loss) while it ran (agent/command_ledger.h). Whether it did its work is
// unknown. The agent never runs it again and answers it with this error; the server does not
// retry such a fix automatically (server/incidents/incident_manager.h).

#include <string_view>

#include "protocol/wire.h"

namespace medic::protocol {

inline constexpr std::string_view kInterruptedError =
    "interrupted: the agent stopped while this command ran; it is not run again";

// True for the agent's answer to an interrupted command.
inline bool IsInterrupted(const CommandResult& r) { return r.ran && r.error == kInterruptedError; }

}  // namespace medic::protocol
