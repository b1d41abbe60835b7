#pragma once

// A cgroup of its own for one command, so that everything the command starts can be found and
// killed: a process that double-forks or calls setsid() leaves the process group and session of
// the command, but never its cgroup.
//
// cgroup v1 only (a named or controller hierarchy, e.g. /sys/fs/cgroup/pids); on hosts where no
// writable v1 hierarchy exists Create() fails and the caller falls back to process groups.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace medic::host {

class CommandCgroup {
 public:
  // Creates <hierarchy>/<the agent's own cgroup there>/medic-agent/<name>. `hierarchy` empty:
  // the first writable of /sys/fs/cgroup/{pids,freezer,memory}.
  static Result<std::unique_ptr<CommandCgroup>> Create(const std::string& name,
                                                       const std::string& hierarchy = "");
  // Removes the directory (once it is empty).
  ~CommandCgroup();
  CommandCgroup(const CommandCgroup&) = delete;
  CommandCgroup& operator=(const CommandCgroup&) = delete;

  // A descriptor of cgroup.procs, open for writing: a freshly forked child writes "0" to it to
  // join (async-signal-safe). Close-on-exec.
  int procs_fd() const { return procs_fd_; }
  const std::string& path() const { return path_; }

  // The processes in the cgroup now.
  std::vector<pid_t> Pids() const;
  // Sends `signal` to every process in it, once.
  void SignalAll(int signal) const;
  // SIGKILL to every process in it, repeated until it is empty or `rounds` passes are done
  // (a process forked between reading the list and the kill is caught by the next pass).
  void KillAll(int rounds = 50) const;
  bool Empty() const { return Pids().empty(); }

 private:
  CommandCgroup(std::string path, int procs_fd) : path_(std::move(path)), procs_fd_(procs_fd) {}

  std::string path_;
  int procs_fd_ = -1;
};

// Parses the text of cgroup.procs: one pid per line.
std::vector<pid_t> ParseCgroupProcs(const std::string& text);

}  // namespace medic::host
