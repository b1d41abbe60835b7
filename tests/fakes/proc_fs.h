#pragma once

// Captured /proc text (tests/fixtures/agent) and FakeProcFs, a ProcFs over files set by the test.

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/files.h"
#include "host/proc_fs.h"

namespace medic::host::testing {

// The path of a fixture file under tests/fixtures/agent: from MEDIC_SOURCE_DIR when the test
// runner sets it, else from the source tree this test was built from.
inline std::string FixturePath(const std::string& name) {
  const char* src = std::getenv("MEDIC_SOURCE_DIR");
  const std::string dir = src != nullptr ? std::string(src) + "/tests/fixtures/agent"
                                         : std::string(MEDIC_AGENT_FIXTURES);
  return dir + "/" + name;
}

inline std::string Fixture(const std::string& name) {
  auto text = ReadFile(FixturePath(name));
  return text ? *text : "";
}

class FakeProcFs : public ProcFs {
 public:
  Result<std::string> Read(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) {
      return NotFound("no fake file " + path);
    }
    return it->second;
  }
  Result<FsStats> StatFs(const std::string& mount) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = mounts_.find(mount);
    if (it == mounts_.end()) {
      return NotFound("no fake mount " + mount);
    }
    return it->second;
  }
  Result<std::vector<int>> ListPids() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int> pids;
    for (const auto& [path, text] : files_) {
      const size_t slash = path.find("/stat");
      if (slash != std::string::npos && path.substr(slash) == "/stat") {
        pids.push_back(std::stoi(path.substr(0, slash)));
      }
    }
    return pids;
  }

  Result<std::string> ReadLink(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = links_.find(path);
    if (it == links_.end()) {
      return NotFound("no fake link " + path);
    }
    return it->second;
  }

  void SetFile(const std::string& path, std::string text) {
    std::lock_guard<std::mutex> lock(mu_);
    files_[path] = std::move(text);
  }
  void SetLink(const std::string& path, std::string target) {
    std::lock_guard<std::mutex> lock(mu_);
    links_[path] = std::move(target);
  }
  void SetMount(const std::string& mount, FsStats stats) {
    std::lock_guard<std::mutex> lock(mu_);
    mounts_[mount] = stats;
  }
  // The /proc/PID/stat fields a fake process has.
  struct Process {
    int pid = 0;
    std::string comm;
    char state = 'S';
    int ppid = 1;
    int pgrp = 0;  // 0: the process leads its own group (pgrp = pid)
  };
  // Adds (or replaces) /proc/PID/stat and /proc/PID/comm for a process.
  void AddProcess(const Process& p) {
    SetFile(std::to_string(p.pid) + "/stat",
            std::to_string(p.pid) + " (" + p.comm + ") " + p.state + " " + std::to_string(p.ppid) +
                " " + std::to_string(p.pgrp ? p.pgrp : p.pid) + " 1 0 -1 0 0 0 0 0 0 0");
    SetFile(std::to_string(p.pid) + "/comm", p.comm + "\n");
  }
  void AddProcess(int pid, const std::string& comm, int pgrp = 0, char state = 'S') {
    AddProcess(Process{.pid = pid, .comm = comm, .state = state, .pgrp = pgrp});
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> files_;
  std::map<std::string, FsStats> mounts_;
  std::map<std::string, std::string> links_;
};

}  // namespace medic::host::testing
