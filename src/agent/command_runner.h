#pragma once

// CommandRunner: runs one program to completion with bounded output and a deadline. No shell is
// ever involved: argv goes to execve as it is.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/child_reaper.h"
#include "core/clock.h"

namespace medic::agent {

struct CommandSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in host::kSafePath unless it holds a '/'
  Millis timeout{30'000};         // then SIGTERM to the process group
  Millis kill_grace{2'000};       // then SIGKILL to the process group
  size_t output_cap = 64 * 1024;  // bytes kept of stdout, and of stderr; the rest is dropped
  // Put the command in a cgroup (v1) of its own when one can be made, so that descendants which
  // left its process group (double fork + setsid) are found and killed too.
  bool use_cgroup = true;
  std::string run_as;       // user name to run as ("" = the agent's user); needs root
  std::string working_dir;  // "" = "/"
};

struct CommandOutcome {
  bool started = false;  // false: it could not be started; see error
  std::string error;
  int exit_code = -1;  // valid when started && signal == 0
  int signal = 0;
  bool timed_out = false;
  std::string output;  // stdout, then stderr
  bool truncated = false;
  Millis duration{0};
  pid_t pid = 0;           // also the process group id
  bool in_cgroup = false;  // the command ran in a cgroup of its own

  bool Succeeded() const { return started && !timed_out && signal == 0 && exit_code == 0; }
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  virtual CommandOutcome Run(const CommandSpec& spec) = 0;
};

// fork + execve in a new session and process group, stdin from /dev/null, stdout and stderr
// through pipes, environment scrubbed to PATH and LANG=C. When the program exits, whatever is
// left of its process group gets SIGKILL shortly after (a diagnostic leaves nothing behind); on
// the deadline the whole group gets SIGTERM, then SIGKILL after the grace period. Every signal
// also goes to each process of the command's own cgroup (v1, when one can be created), which
// catches descendants that left the group with setsid or a double fork. Run returns once the
// group and the cgroup are empty (reaped by the ChildReaper; the agent is a subreaper).
// Thread-safe.
class ForkExecCommandRunner : public CommandRunner {
 public:
  // At most `max_concurrent` commands run at once; more callers wait their turn.
  explicit ForkExecCommandRunner(ChildReaper& reaper, int max_concurrent = 4);
  ~ForkExecCommandRunner() override;
  CommandOutcome Run(const CommandSpec& spec) override;

 private:
  CommandOutcome RunNow(const CommandSpec& spec);

  ChildReaper& reaper_;
  struct Slots;
  std::unique_ptr<Slots> slots_;
};

}  // namespace medic::agent
