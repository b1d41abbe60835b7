#pragma once

// The built-in supervisor: runs the services of the agent's config as its own children, for
// hosts without systemd (containers, these build machines).
//
// Each service runs in its own session and process group (setsid), with stdin from /dev/null
// and stdout/stderr appended to its `log`. Its exit is noticed by event (the ChildReaper's
// waitid), recorded with time and status, and NOT acted upon: restarting is the server's call.
// Stop signals the whole process group, waits up to stop_timeout for the group to be gone, then
// SIGKILLs the group, so an nginx worker left behind by a killed master goes too.

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/child_reaper.h"
#include "agent/config.h"
#include "host/proc_fs.h"
#include "agent/service_manager.h"
#include "core/clock.h"

namespace medic::agent {

struct SupervisorOptions {
  Millis start_check{200};  // a service that dies this soon after start failed to start
  Millis kill_wait{2'000};  // how long the group may take to go after SIGKILL
};

class SupervisorServiceManager : public ServiceManager {
 public:
  using ExitListener = std::function<void(const std::string& name, const ServiceExit& exit)>;

  // `reaper` (started), `procfs` and `clock` must outlive this object.
  SupervisorServiceManager(std::vector<ServiceConfig> services, ChildReaper& reaper, host::ProcFs& procfs,
                           Clock& clock, SupervisorOptions options = {});
  // Leaves running services running; call StopAll() first to stop them.
  ~SupervisorServiceManager() override = default;

  Result<std::string> Start(std::string_view name) override;
  Result<std::string> Stop(std::string_view name) override;
  Result<std::string> Restart(std::string_view name) override;
  Result<ServiceStatus> GetStatus(std::string_view name) override;
  Result<std::string> Kill(std::string_view name, int signal) override;
  std::vector<std::string> Names() const override;

  // Starts every service with autostart; failures are logged, not fatal.
  void StartAutostart();
  // Stops every service (and its leftovers), e.g. on agent shutdown.
  void StopAll();
  // Called on the reaper thread whenever a service's main process exits.
  void SetExitListener(ExitListener listener);

 private:
  struct Service {
    ServiceConfig config;
    bool running = false;
    pid_t pid = 0;
    pid_t pgid = 0;  // kept after exit while leftovers may remain
    WallTime started_at;
    uint64_t generation = 0;         // bumped by every start
    uint64_t exited_generation = 0;  // the last generation whose main process exited
    std::optional<ServiceExit> last_exit;
  };
  // Shared with the reaper's exit callbacks, which may run after this object is gone.
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::map<std::string, Service, std::less<>> services;  // Guarded by mu.
    ExitListener listener;                                 // Guarded by mu.
    Clock* clock = nullptr;
  };

  // REQUIRE: op_mu_ held.
  Result<std::string> StartLocked(const std::string& name);
  Result<std::string> StopLocked(const std::string& name);
  // Waits until the service's main process has exited and group `pgid` is empty.
  bool WaitGone(const std::string& name, pid_t pgid, Millis timeout);
  std::vector<host::PidStat> GroupMembers(pid_t pgid, pid_t except_pid);
  Result<std::string> Known(std::string_view name) const;

  ChildReaper& reaper_;
  host::ProcFs& procfs_;
  SupervisorOptions options_;
  std::shared_ptr<Shared> shared_;
  std::mutex op_mu_;  // serializes Start/Stop/Restart/Kill
};

}  // namespace medic::agent
