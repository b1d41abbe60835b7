#include "agent/systemd.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "host/process_util.h"
#include "core/files.h"
#include "host/text.h"

namespace medic::agent {

Result<ServiceManagerKind> ChooseServiceManager(std::string_view setting,
                                                std::string_view pid1_comm) {
  if (setting == "supervisor") {
    return ServiceManagerKind::kSupervisor;
  }
  if (setting == "systemd") {
    return ServiceManagerKind::kSystemd;
  }
  if (setting != "auto" && !setting.empty()) {
    return InvalidArgument("service_manager must be auto, supervisor or systemd, not '" +
                           std::string(setting) + "'");
  }
  return Trim(pid1_comm) == "systemd" ? ServiceManagerKind::kSystemd
                                      : ServiceManagerKind::kSupervisor;
}

std::string SystemdUnitName(std::string_view service) {
  for (std::string_view suffix : {".service", ".socket", ".target", ".timer", ".scope"}) {
    if (service.size() > suffix.size() &&
        service.substr(service.size() - suffix.size()) == suffix) {
      return std::string(service);
    }
  }
  return std::string(service) + ".service";
}

ServiceStatus ParseSystemctlShow(std::string_view name, std::string_view text) {
  ServiceStatus s;
  s.name = std::string(name);
  host::LineReader lines(text);
  while (const std::optional<std::string_view> next = lines.Next()) {
    const std::string_view line = *next;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      continue;
    }
    const std::string_view key = line.substr(0, eq);
    const std::string_view value = line.substr(eq + 1);
    if (key == "ActiveState") {
      s.running = value == "active" || value == "reloading" || value == "activating";
    } else if (key == "MainPID") {
      int pid = 0;
      std::from_chars(value.data(), value.data() + value.size(), pid);
      s.pid = pid;
    }
  }
  if (!s.running) {
    s.pid = 0;
  }
  return s;
}

SystemdServiceManager::SystemdServiceManager(std::vector<std::string> names, CommandRunner& runner,
                                             Millis timeout)
    : names_(std::move(names)), runner_(runner), timeout_(timeout) {}

Status SystemdServiceManager::Known(std::string_view name) const {
  if (std::find(names_.begin(), names_.end(), name) == names_.end()) {
    return NotFound("unknown service '" + std::string(name) + "'");
  }
  return OkStatus();
}

Result<std::string> SystemdServiceManager::Systemctl(std::string_view name,
                                                     std::vector<std::string> args,
                                                     const std::string& done) {
  RETURN_IF_ERROR(Known(name));
  CommandSpec spec;
  spec.argv = {"systemctl"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.argv.push_back("--");
  spec.argv.push_back(SystemdUnitName(name));
  spec.timeout = timeout_;
  const CommandOutcome o = runner_.Run(spec);
  if (!o.Succeeded()) {
    std::string why = !o.started    ? o.error
                      : o.timed_out ? "timed out"
                                    : host::DescribeExit(host::ExitStatus{o.exit_code, o.signal, false});
    std::string out = o.output;
    while (!out.empty() && out.back() == '\n') {
      out.pop_back();
    }
    return Internal("systemctl " + args.front() + " " + SystemdUnitName(name) + ": " + why +
                    (out.empty() ? "" : ": " + out));
  }
  return done;
}

Result<std::string> SystemdServiceManager::Start(std::string_view name) {
  return Systemctl(name, {"start"}, "started " + SystemdUnitName(name));
}

Result<std::string> SystemdServiceManager::Stop(std::string_view name) {
  return Systemctl(name, {"stop"}, "stopped " + SystemdUnitName(name));
}

Result<std::string> SystemdServiceManager::Restart(std::string_view name) {
  return Systemctl(name, {"restart"}, "restarted " + SystemdUnitName(name));
}

Result<std::string> SystemdServiceManager::Kill(std::string_view name, int signal) {
  return Systemctl(name, {"kill", "--signal=" + std::to_string(signal)},
                   "sent " + host::SignalName(signal) + " to " + SystemdUnitName(name));
}

Result<ServiceStatus> SystemdServiceManager::GetStatus(std::string_view name) {
  RETURN_IF_ERROR(Known(name));
  CommandSpec spec;
  spec.argv = {"systemctl", "show", "--property=ActiveState,SubState,MainPID", "--",
               SystemdUnitName(name)};
  spec.timeout = Millis(10'000);
  const CommandOutcome o = runner_.Run(spec);
  if (!o.Succeeded()) {
    return Internal("systemctl show " + SystemdUnitName(name) + " failed: " + o.error + o.output);
  }
  return ParseSystemctlShow(name, o.output);
}

}  // namespace medic::agent
