#include "agent/service_manager.h"

namespace medic::agent {

std::string FormatServiceStatus(const ServiceStatus& s) {
  std::string out = s.name + ": ";
  if (s.running) {
    out += "running, pid " + std::to_string(s.pid) + " since " + FormatRfc3339(s.started_at);
  } else {
    out += "stopped";
  }
  if (s.last_exit) {
    out += "; last exit: pid " + std::to_string(s.last_exit->pid) + " " +
           host::DescribeExit(s.last_exit->status) + " at " + FormatRfc3339(s.last_exit->at);
  } else if (!s.running) {
    out += "; not started since the agent started";
  }
  if (s.leftovers.empty()) {
    out += "; no leftover processes in its process group";
  } else {
    out += "; leftover processes in its process group:";
    for (const auto& l : s.leftovers) {
      out += " " + l;
    }
  }
  return out;
}

}  // namespace medic::agent
