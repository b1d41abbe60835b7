#pragma once

// ServiceManager: start, stop, restart and inspect the services a host runs. The built-in
// supervisor (supervisor.h) is the implementation on machines whose PID 1 is not systemd.

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "host/process_util.h"
#include "core/clock.h"
#include "core/result.h"

namespace medic::agent {

struct ServiceExit {
  pid_t pid = 0;
  host::ExitStatus status;
  WallTime at;
};

struct ServiceStatus {
  std::string name;
  bool running = false;
  pid_t pid = 0;  // main process, when running
  WallTime started_at;
  std::optional<ServiceExit> last_exit;
  // Processes still in the service's process group other than its main process, e.g. an nginx
  // worker whose master was killed. Each as "PID (comm)".
  std::vector<std::string> leftovers;
};

// "nginx: running, pid 42 since 2026-...Z" / "nginx: stopped; last exit: killed by signal 9
// (SIGKILL) at ...; leftover processes of its group: 43 (nginx)". Pure.
std::string FormatServiceStatus(const ServiceStatus& s);

// Thread-safe. Start/Stop/Restart/Kill return a one-line summary on success.
class ServiceManager {
 public:
  virtual ~ServiceManager() = default;
  virtual Result<std::string> Start(std::string_view name) = 0;
  virtual Result<std::string> Stop(std::string_view name) = 0;
  // Stop (if it runs or left processes behind), then Start.
  virtual Result<std::string> Restart(std::string_view name) = 0;
  virtual Result<ServiceStatus> GetStatus(std::string_view name) = 0;
  // Sends `signal` to the service's whole process group (a crash, for chaos).
  virtual Result<std::string> Kill(std::string_view name, int signal) = 0;
  virtual std::vector<std::string> Names() const = 0;
};

}  // namespace medic::agent
