#pragma once

// Safe ground for chaos tests on a shared machine (they run as root):
//   TmpfsDir      a 16 MiB tmpfs mounted on a fresh temp directory: the only disk disk-fill sees
//   MemoryCgroup  a memory cgroup v1 created as a CHILD of this test's own, with a small limit:
//                 the only memory oom sees (the code under test runs in a process inside it)
//   TestChild     a process started by fork/exec (optionally inside the cgroup) with pipes
// Everything is undone in the destructors, also when an assertion failed: processes are killed by
// pid (or as members of the cgroup this test created), the tmpfs is unmounted, the cgroup removed.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "host/cgroup.h"
#include "host/proc_parsers.h"
#include "core/files.h"

namespace medic::chaos_testing {

inline double UsedPercent(const std::string& dir) {
  struct statvfs sv {};
  if (::statvfs(dir.c_str(), &sv) != 0) {
    return -1;
  }
  host::FsStats s;
  s.blocks = sv.f_blocks;
  s.bfree = sv.f_bfree;
  s.bavail = sv.f_bavail;
  return host::DiskUsedPercent(s).value_or(-1);
}

class TmpfsDir {
 public:
  explicit TmpfsDir(const std::string& size = "16m") {
    char tmpl[] = "/tmp/medic-chaos-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      error_ = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    base_ = tmpl;
    mount_ = base_ + "/fs";
    ::mkdir(mount_.c_str(), 0755);
    const std::string opts = "size=" + size + ",mode=0755";
    if (::mount("tmpfs", mount_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
      error_ = std::string("mount tmpfs: ") + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~TmpfsDir() {
    if (mounted_ && ::umount(mount_.c_str()) != 0) {
      ::umount2(mount_.c_str(), MNT_DETACH);
    }
    if (!base_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(base_, ec);
    }
  }
  TmpfsDir(const TmpfsDir&) = delete;
  TmpfsDir& operator=(const TmpfsDir&) = delete;

  bool ok() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& base() const { return base_; }    // a plain directory holding the mount
  const std::string& mount() const { return mount_; }  // the tmpfs

 private:
  std::string base_;
  std::string mount_;
  std::string error_;
  bool mounted_ = false;
};

class MemoryCgroup {
 public:
  explicit MemoryCgroup(uint64_t limit_bytes) {
    auto self = ReadFile("/proc/self/cgroup");
    std::optional<std::string> own = self ? host::ParseProcCgroup(*self, "memory") : std::nullopt;
    if (!own) {
      error_ = "no memory cgroup v1 hierarchy for this process";
      return;
    }
    std::string parent = "/sys/fs/cgroup/memory" + (*own == "/" ? std::string() : *own);
    static int counter = 0;
    path_ = parent + "/medic-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    if (::mkdir(path_.c_str(), 0755) != 0) {
      error_ = "mkdir " + path_ + ": " + std::strerror(errno);
      path_.clear();
      return;
    }
    const int fd = ::open((path_ + "/memory.limit_in_bytes").c_str(), O_WRONLY | O_CLOEXEC);
    const std::string v = std::to_string(limit_bytes);
    if (fd < 0 || ::write(fd, v.data(), v.size()) != static_cast<ssize_t>(v.size())) {
      error_ = "cannot set memory.limit_in_bytes: " + std::string(std::strerror(errno));
    }
    if (fd >= 0) {
      ::close(fd);
    }
    procs_fd_ = ::open((path_ + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (procs_fd_ < 0 && error_.empty()) {
      error_ = "cannot open cgroup.procs";
    }
  }
  ~MemoryCgroup() {
    if (procs_fd_ >= 0) {
      ::close(procs_fd_);
    }
    if (path_.empty()) {
      return;
    }
    // Only processes this test put here (and their children) can be in it.
    for (int round = 0; round < 100 && !Pids().empty(); ++round) {
      for (pid_t pid : Pids()) {
        ::kill(pid, SIGKILL);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (int round = 0; round < 100 && ::rmdir(path_.c_str()) != 0; ++round) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;

  bool ok() const { return !path_.empty() && error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }
  int procs_fd() const { return procs_fd_; }

  std::vector<pid_t> Pids() const {
    auto text = ReadFile(path_ + "/cgroup.procs");
    return text ? host::ParseCgroupProcs(*text) : std::vector<pid_t>{};
  }
  // The cgroup's memory as the agent's mem_used_percent counts it.
  double UsedPercent() const {
    auto limit = ReadFile(path_ + "/memory.limit_in_bytes");
    auto usage = ReadFile(path_ + "/memory.usage_in_bytes");
    auto stat = ReadFile(path_ + "/memory.stat");
    auto meminfo = ReadFile("/proc/meminfo");
    if (!limit || !usage || !meminfo) {
      return -1;
    }
    auto mem = host::ParseMeminfo(*meminfo);
    if (!mem) {
      return -1;
    }
    auto cg = host::CgroupMemoryV1(*limit, *usage, stat.value_or(""), mem->total_kb * 1024);
    return cg ? host::CgroupMemUsedPercent(*cg) : -1;
  }

 private:
  std::string path_;
  std::string error_;
  int procs_fd_ = -1;
};

// Waits (bounded polling) until `pred` holds; true when it did.
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

inline bool ProcessAlive(pid_t pid) {
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text) {
    return false;
  }
  auto st = host::ParsePidStat(*text);
  return st && st->state != 'Z' && st->state != 'X';
}

// A child process with its stdin and stdout (and stderr, merged or separate) on pipes.
class TestChild {
 public:
  // `cgroup_procs_fd` >= 0: the child joins that cgroup before exec.
  TestChild(const std::vector<std::string>& argv, int cgroup_procs_fd = -1) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
        ::pipe2(err, O_CLOEXEC) != 0) {
      return;
    }
    std::vector<char*> args;
    for (const auto& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      if (cgroup_procs_fd >= 0 && ::write(cgroup_procs_fd, "0", 1) != 1) {
        ::_exit(126);
      }
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
  }
  ~TestChild() {
    if (pid_ > 0 && !waited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {in_, out_, err_}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }
  TestChild(const TestChild&) = delete;
  TestChild& operator=(const TestChild&) = delete;

  pid_t pid() const { return pid_; }

  bool WriteLine(const std::string& line) {
    const std::string s = line + "\n";
    return ::write(in_, s.data(), s.size()) == static_cast<ssize_t>(s.size());
  }
  void CloseStdin() {
    ::close(in_);
    in_ = -1;
  }
  // One line of stdout (without '\n'), or nullopt at EOF or after `limit`.
  std::optional<std::string> ReadLine(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (true) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return std::nullopt;
      }
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      char chunk[4096];
      const ssize_t n = ::read(out_, chunk, sizeof(chunk));
      if (n <= 0) {
        return std::nullopt;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  // Everything left on stdout and stderr, then the exit status (waits for the exit).
  int Finish(std::string* out, std::string* err) {
    if (in_ >= 0) {
      CloseStdin();
    }
    *out = buf_ + DrainFd(out_);
    *err = DrainFd(err_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    waited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  static std::string DrainFd(int fd) {
    std::string s;
    char chunk[4096];
    ssize_t n;
    while ((n = ::read(fd, chunk, sizeof(chunk))) > 0) {
      s.append(chunk, static_cast<size_t>(n));
    }
    return s;
  }

  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  std::string buf_;
  bool waited_ = false;
};

// A canary named like the hog but outside the test cgroup: /bin/sleep copied to DIR/stress-ng
// (comm comes from the file name), sleeping 300 s. Killed by pid when destroyed.
class Canary {
 public:
  explicit Canary(const std::string& dir) {
    path_ = dir + "/stress-ng";
    std::error_code ec;
    std::filesystem::copy_file("/bin/sleep", path_,
                               std::filesystem::copy_options::overwrite_existing, ec);
    ::chmod(path_.c_str(), 0755);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      ::execl(path_.c_str(), path_.c_str(), "300", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Canary() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Canary(const Canary&) = delete;
  Canary& operator=(const Canary&) = delete;

  pid_t pid() const { return pid_; }
  // Running (not a zombie) with comm "stress-ng".
  bool Alive() const {
    auto comm = ReadFile("/proc/" + std::to_string(pid_) + "/comm");
    return ProcessAlive(pid_) && comm && Trim(*comm) == "stress-ng";
  }

 private:
  std::string path_;
  pid_t pid_ = -1;
};

}  // namespace medic::chaos_testing
