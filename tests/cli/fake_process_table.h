#pragma once

// A process table held in memory: /proc/PID/stat lines and files by path; records signals.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cli/chaos.h"

namespace medic::cli {

class FakeProcessTable : public ProcessTable {
 public:
  // Adds a process with the given /proc/PID/stat fields.
  void AddProcess(int pid, const std::string& comm, char state, int ppid, int pgid) {
    files_["/proc/" + std::to_string(pid) + "/stat"] =
        std::to_string(pid) + " (" + comm + ") " + state + " " + std::to_string(ppid) + " " +
        std::to_string(pgid) + " " + std::to_string(pgid) + " 0 -1 4194560 1 0 0 0\n";
    pids_.push_back(pid);
  }
  void SetFile(const std::string& path, std::string content) { files_[path] = std::move(content); }

  Result<std::string> ReadFile(const std::string& path) override {
    auto it = files_.find(path);
    if (it == files_.end()) {
      return NotFound("cannot open " + path + ": No such file or directory");
    }
    return it->second;
  }
  std::vector<int> ListPids() override { return pids_; }
  Status Signal(int pid, int sig) override {
    signals_.emplace_back(pid, sig);
    return OkStatus();
  }

  const std::vector<std::pair<int, int>>& signals() const { return signals_; }

 private:
  std::map<std::string, std::string> files_;
  std::vector<int> pids_;
  std::vector<std::pair<int, int>> signals_;
};

}  // namespace medic::cli
