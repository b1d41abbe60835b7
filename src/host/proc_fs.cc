#include "host/proc_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/files.h"

namespace medic::host {

LinuxProcFs::~LinuxProcFs() {
  for (const auto& [path, fd] : held_) {
    ::close(fd);
  }
}

std::string LinuxProcFs::Path(const std::string& relative_path) const {
  if (!relative_path.empty() && relative_path[0] == '/') {
    return relative_path;  // an absolute path, e.g. below /sys/fs/cgroup
  }
  return root_ + "/" + relative_path;
}

Result<std::string> LinuxProcFs::Read(const std::string& relative_path) {
  return ReadFile(Path(relative_path));
}

namespace {

// The whole of `fd` from offset 0 (a seq_file generates it afresh for a read at 0); false with
// errno set on an error. A read shorter than asked for is the end: a seq_file fills the buffer
// until its last record, so a kernel file of a few lines takes one pread, not two.
bool PreadAll(int fd, std::string* out) {
  out->clear();
  char buf[4096];
  while (true) {
    const ssize_t n = ::pread(fd, buf, sizeof(buf), static_cast<off_t>(out->size()));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return false;
    }
    out->append(buf, static_cast<size_t>(n));
    if (static_cast<size_t>(n) < sizeof(buf)) {
      return true;
    }
  }
}

}  // namespace

Result<std::string> LinuxProcFs::ReadHeld(const std::string& relative_path) {
  const std::string path = Path(relative_path);
  std::lock_guard<std::mutex> lock(held_mu_);
  std::string text;
  if (auto it = held_.find(path); it != held_.end()) {
    if (PreadAll(it->second, &text)) {
      return text;
    }
    // Gone under us (a removed cgroup answers ENODEV): open it again below.
    ::close(it->second);
    held_.erase(it);
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = "cannot open " + path + ": " + std::strerror(err);
    return err == ENOENT ? NotFound(msg) : Unavailable(msg);
  }
  if (!PreadAll(fd, &text)) {
    const int err = errno;
    ::close(fd);
    return Unavailable("cannot read " + path + ": " + std::strerror(err));
  }
  // A few files at most (meminfo, one cgroup's three); never more than a handful.
  if (held_.size() < 16) {
    held_.emplace(path, fd);
  } else {
    ::close(fd);
  }
  return text;
}

Result<std::string> LinuxProcFs::ReadLink(const std::string& relative_path) {
  char buf[4096];
  const std::string path = root_ + "/" + relative_path;
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf));
  if (n < 0) {
    return NotFound("readlink " + path + ": " + std::strerror(errno));
  }
  return std::string(buf, static_cast<size_t>(n));
}

Result<FsStats> LinuxProcFs::StatFs(const std::string& mount_point) {
  struct statvfs sv {};
  if (::statvfs(mount_point.c_str(), &sv) != 0) {
    const int err = errno;
    std::string msg = "statvfs " + mount_point + ": " + std::strerror(err);
    return err == ENOENT ? NotFound(msg) : Unavailable(msg);
  }
  FsStats s;
  s.blocks = sv.f_blocks;
  s.bfree = sv.f_bfree;
  s.bavail = sv.f_bavail;
  s.files = sv.f_files;
  s.ffree = sv.f_ffree;
  return s;
}

Result<std::vector<int>> LinuxProcFs::ListPids() {
  DIR* dir = ::opendir(root_.c_str());
  if (dir == nullptr) {
    return Unavailable("cannot list " + root_ + ": " + std::strerror(errno));
  }
  std::vector<int> pids;
  while (dirent* e = ::readdir(dir)) {
    const char* n = e->d_name;
    if (*n < '1' || *n > '9') {
      continue;
    }
    char* end = nullptr;
    const long pid = std::strtol(n, &end, 10);
    if (*end == '\0' && pid > 0) {
      pids.push_back(static_cast<int>(pid));
    }
  }
  ::closedir(dir);
  std::sort(pids.begin(), pids.end());
  return pids;
}

std::vector<PidStat> ListProcesses(ProcFs& procfs) {
  std::vector<PidStat> out;
  auto pids = procfs.ListPids();
  if (!pids) {
    return out;
  }
  for (int pid : *pids) {
    auto text = procfs.Read(std::to_string(pid) + "/stat");
    if (!text) {
      continue;  // exited meanwhile
    }
    auto st = ParsePidStat(*text);
    if (st) {
      out.push_back(std::move(*st));
    }
  }
  return out;
}

std::optional<PidStat> LiveProcess(ProcFs& procfs, int pid) {
  Result<std::string> text = procfs.Read(std::to_string(pid) + "/stat");
  if (!text.has_value()) {
    return std::nullopt;
  }
  Result<PidStat> st = ParsePidStat(*text);
  if (!st.has_value() || !IsLive(*st)) {
    return std::nullopt;
  }
  return std::move(st).value();
}

}  // namespace medic::host
