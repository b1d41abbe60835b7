#pragma once

// ChildReaper: the one place in the agent that waits for child processes.
//
// The agent is a child subreaper (prctl(PR_SET_CHILD_SUBREAPER)), so besides its own children it
// adopts orphaned descendants (an nginx worker whose master died, a diagnostic's background job).
// One thread blocks in waitid(P_ALL) — an event, not a poll — and for each exited child either
// hands its status to the owner that spawned it or, for adopted orphans, just reaps it.
//
// Spawn() forks and registers the child under the same lock the reaper takes before looking a
// pid up, so an owned child can never be mistaken for an orphan, however early it dies.
//
// REQUIRES: at most one ChildReaper runs per process, and nothing else in the process waits for
// children (no system(), popen() or waitpid()). Thread-safe.

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "host/process_util.h"
#include "core/result.h"

namespace medic::agent {

class ChildReaper {
 public:
  // Runs on the reaper thread, once, after the child has been reaped. Must not block long.
  using ExitCallback = std::function<void(pid_t pid, const host::ExitStatus& status)>;

  ChildReaper() = default;
  ~ChildReaper();
  ChildReaper(const ChildReaper&) = delete;
  ChildReaper& operator=(const ChildReaper&) = delete;

  // Makes the process a child subreaper and starts the reaping thread.
  Status Start();
  // Stops the reaping thread. Children still running are no longer reaped.
  void Stop();

  // Forks. The child runs `child_main`, which must exec or _exit and may only make
  // async-signal-safe calls. The parent gets the pid; `on_exit` (may be empty) runs when the
  // child has exited and been reaped.
  Result<pid_t> Spawn(const std::function<void()>& child_main, ExitCallback on_exit);

  // Adopted orphans reaped so far.
  uint64_t orphans_reaped() const;

 private:
  void Loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<pid_t, ExitCallback> owned_;  // Guarded by mu_.
  uint64_t spawn_generation_ = 0;        // Guarded by mu_.
  uint64_t orphans_ = 0;                 // Guarded by mu_.
  bool stop_ = false;                    // Guarded by mu_.
  std::thread thread_;
};

}  // namespace medic::agent
