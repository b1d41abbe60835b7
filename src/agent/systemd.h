#pragma once

// Service managers behind one interface: systemd (systemctl) when PID 1 is systemd, the
// built-in supervisor otherwise; `service_manager:` in the config overrides the choice.

#include <string>
#include <string_view>
#include <vector>

#include "agent/command_runner.h"
#include "agent/service_manager.h"
#include "core/result.h"

namespace medic::agent {

enum class ServiceManagerKind { kSupervisor, kSystemd };

// Pure. `setting` is the config's service_manager ("auto", "supervisor", "systemd"); with
// "auto", systemd when `pid1_comm` (/proc/1/comm, newline allowed) is "systemd".
Result<ServiceManagerKind> ChooseServiceManager(std::string_view setting,
                                                std::string_view pid1_comm);

// Pure: "nginx" -> "nginx.service"; names with a unit suffix are kept.
std::string SystemdUnitName(std::string_view service);

// Pure: the output of `systemctl show --property=... -- UNIT` into a status.
ServiceStatus ParseSystemctlShow(std::string_view name, std::string_view text);

// Runs systemctl through a CommandRunner (argv, no shell): start, stop, restart, show, kill.
// Only the configured service names are known; anything else is NotFound.
class SystemdServiceManager : public ServiceManager {
 public:
  SystemdServiceManager(std::vector<std::string> names, CommandRunner& runner,
                        Millis timeout = Millis(90'000));

  Result<std::string> Start(std::string_view name) override;
  Result<std::string> Stop(std::string_view name) override;
  Result<std::string> Restart(std::string_view name) override;
  Result<ServiceStatus> GetStatus(std::string_view name) override;
  Result<std::string> Kill(std::string_view name, int signal) override;
  std::vector<std::string> Names() const override { return names_; }

 private:
  Result<std::string> Systemctl(std::string_view name, std::vector<std::string> args,
                                const std::string& done);
  Status Known(std::string_view name) const;

  std::vector<std::string> names_;
  CommandRunner& runner_;
  Millis timeout_;
};

}  // namespace medic::agent
