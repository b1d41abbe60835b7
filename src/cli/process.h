#pragma once

// Starting and stopping child processes: the boundary `medic demo` orchestrates through.

#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace medic::cli {

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  // Starts argv (argv[0] is a path, no shell) with stdin from /dev/null and stdout and stderr
  // appended to `log_path`, in a new process group, with PR_SET_PDEATHSIG(SIGTERM) so it does
  // not outlive this process. Returns its pid, which is also its process group id.
  virtual Result<int> Start(const std::vector<std::string>& argv, const std::string& log_path) = 0;
  // Sends `sig` to the process, or to its whole process group when `group` is true. Only for
  // pids this launcher started.
  virtual void Signal(int pid, int sig, bool group) = 0;
  // Waits up to `timeout` (zero: just looks) for a started pid to exit and reaps it. True once
  // it has exited; stays true afterwards.
  virtual bool WaitExit(int pid, Millis timeout) = 0;
};

// fork/exec/waitpid. REQUIRES: used from one thread.
std::unique_ptr<ProcessLauncher> NewPosixProcessLauncher();

}  // namespace medic::cli
