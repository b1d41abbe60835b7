#include "host/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

#include "host/proc_parsers.h"
#include "core/files.h"

namespace medic::host {

namespace {

// The agent's own cgroup in the v1 hierarchy whose controller list contains `controller`,
// from /proc/self/cgroup ("8:pids:/some/path").
std::string OwnCgroup(const std::string& controller) {
  auto text = ReadFile("/proc/self/cgroup");
  if (!text) {
    return "/";
  }
  return ParseProcCgroup(*text, controller).value_or("/");
}

bool IsDir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

std::vector<pid_t> ParseCgroupProcs(const std::string& text) {
  std::vector<pid_t> pids;
  std::istringstream in(text);
  long pid = 0;
  while (in >> pid) {
    if (pid > 0) {
      pids.push_back(static_cast<pid_t>(pid));
    }
  }
  return pids;
}

Result<std::unique_ptr<CommandCgroup>> CommandCgroup::Create(const std::string& name,
                                                             const std::string& hierarchy) {
  std::vector<std::string> roots;
  if (!hierarchy.empty()) {
    roots.push_back(hierarchy);
  } else {
    for (const char* c : {"pids", "freezer", "memory"}) {
      roots.push_back(std::string("/sys/fs/cgroup/") + c);
    }
  }
  std::string last_error = "no cgroup v1 hierarchy";
  for (const auto& root : roots) {
    if (!IsDir(root) || !PathExists(root + "/cgroup.procs")) {
      continue;
    }
    const std::string controller = root.substr(root.rfind('/') + 1);
    std::string own = OwnCgroup(controller);
    if (own.empty() || own.back() != '/') {
      own += '/';
    }
    const std::string parent = root + own + "medic-agent";
    const std::string path = parent + "/" + name;
    // The parent is removed when its last command's cgroup goes (~CommandCgroup): if that
    // happens between the two mkdirs, create it again.
    bool made = false;
    for (int attempt = 0; attempt < 3 && !made; ++attempt) {
      if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
        last_error = "mkdir " + parent + ": " + std::strerror(errno);
        break;
      }
      made = ::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST;
      if (!made) {
        last_error = "mkdir " + path + ": " + std::strerror(errno);
        if (errno != ENOENT) {
          break;
        }
      }
    }
    if (!made) {
      continue;
    }
    const int fd = ::open((path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      last_error = "open " + path + "/cgroup.procs: " + std::strerror(errno);
      ::rmdir(path.c_str());
      continue;
    }
    return std::unique_ptr<CommandCgroup>(new CommandCgroup(path, fd));
  }
  return Unavailable(last_error);
}

CommandCgroup::~CommandCgroup() {
  if (procs_fd_ >= 0) {
    ::close(procs_fd_);
  }
  // Exited processes may take a moment to leave; try a few times, bounded.
  for (int i = 0; i < 100; ++i) {
    if (::rmdir(path_.c_str()) == 0) {
      // The shared parent too, when this was its last command (else EBUSY: it stays).
      ::rmdir(path_.substr(0, path_.rfind('/')).c_str());
      return;
    }
    if (errno != EBUSY) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::vector<pid_t> CommandCgroup::Pids() const {
  auto text = ReadFile(path_ + "/cgroup.procs");
  return text ? ParseCgroupProcs(*text) : std::vector<pid_t>{};
}

void CommandCgroup::SignalAll(int signal) const {
  for (pid_t pid : Pids()) {
    ::kill(pid, signal);
  }
}

void CommandCgroup::KillAll(int rounds) const {
  for (int i = 0; i < rounds; ++i) {
    const auto pids = Pids();
    if (pids.empty()) {
      return;
    }
    for (pid_t pid : pids) {
      ::kill(pid, SIGKILL);
    }
    std::this_thread::yield();
  }
}

}  // namespace medic::host
