#include "agent/host_changes.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "core/files.h"
#include "core/sha256.h"
#include "host/safe_open.h"

namespace medic::agent {

namespace {

WallTime FromTimespec(const timespec& ts) {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

// Seconds precision is what every source here has.
std::string When(WallTime t) {
  std::string s = FormatRfc3339(std::chrono::time_point_cast<std::chrono::seconds>(t));
  if (const size_t dot = s.find('.'); dot != std::string::npos && s.back() == 'Z') {
    s = s.substr(0, dot) + "Z";
  }
  return s;
}

// `path` (absolute) under `root` ("/" or a directory, no trailing '/').
std::string UnderRoot(const std::string& root, const std::string& path) {
  if (root.empty() || root == "/") {
    return path;
  }
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') {
    r.pop_back();
  }
  return r + path;
}

// Names as shown to the operator: control characters become '?'.
std::string Printable(std::string s) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      c = '?';
    }
  }
  return s;
}

// The regular file `name` in `dir_fd` (AT_FDCWD: `name` is a path) opened for reading: no
// symlink as its last component, never blocking on a FIFO. -1 with *error otherwise.
int OpenRegularAt(int dir_fd, const char* name, struct stat* st, std::string* error) {
  const int fd = ::openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *error = std::strerror(errno);
    return -1;
  }
  if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    ::close(fd);
    *error = "not a regular file";
    return -1;
  }
  return fd;
}

// The last `cap` bytes of the regular file at `path`, starting at a line boundary; a file that
// reports no size (/proc) is read from its start, `cap` bytes at most. Sets *error when it cannot
// be read.
std::string ReadTail(const std::string& path, uint64_t cap, std::string* error) {
  struct stat st {};
  const int fd = OpenRegularAt(AT_FDCWD, path.c_str(), &st, error);
  if (fd < 0) {
    return "";
  }
  const bool cut = static_cast<uint64_t>(st.st_size) > cap;
  Result<std::string> text = host::ReadTailFd(fd, path, static_cast<size_t>(cap));
  ::close(fd);
  if (!text) {
    *error = text.error().message;
    return "";
  }
  std::string out = std::move(*text);
  if (cut) {
    const size_t nl = out.find('\n');
    out = nl == std::string::npos ? std::string() : out.substr(nl + 1);
  }
  return out;
}

struct FileChange {
  std::string path;  // as the host sees it (without the root prefix)
  WallTime mtime;
  uint64_t size = 0;
  bool symlink = false;
};

struct Walk {
  const ChangesOptions& options;
  WallTime since;
  size_t entries = 0;
  bool stopped = false;     // the entry cap was reached
  bool too_deep = false;    // a directory below max_depth was not entered
  std::vector<FileChange> changed;
  uint64_t hashed_bytes = 0;
  size_t hashed_files = 0;
};

// sha256 of the regular file `name` in `dir_fd`, within the caps; "" with *why when not hashed.
std::string HashFile(Walk& w, int dir_fd, const char* name, uint64_t size, std::string* why) {
  if (size > w.options.max_hash_bytes) {
    *why = "not hashed: larger than " + std::to_string(w.options.max_hash_bytes) + " B";
    return "";
  }
  if (w.hashed_files >= w.options.max_files_hashed ||
      w.hashed_bytes + size > w.options.max_total_hash_bytes) {
    *why = "not hashed: the hashing budget of this report is spent";
    return "";
  }
  struct stat st {};
  std::string error;
  const int fd = OpenRegularAt(dir_fd, name, &st, &error);
  if (fd < 0) {
    *why = "not hashed: " + error;
    return "";
  }
  Sha256 h;
  char buf[65536];
  uint64_t left = w.options.max_hash_bytes + 1;  // a file that grew is cut off, and said so
  uint64_t read_total = 0;
  while (left > 0) {
    const ssize_t n = ::read(fd, buf, std::min<uint64_t>(sizeof(buf), left));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    h.Update(std::string_view(buf, static_cast<size_t>(n)));
    read_total += static_cast<uint64_t>(n);
    left -= static_cast<uint64_t>(n);
  }
  ::close(fd);
  ++w.hashed_files;
  w.hashed_bytes += read_total;
  if (read_total > w.options.max_hash_bytes) {
    *why = "not hashed: it grew past " + std::to_string(w.options.max_hash_bytes) + " B";
    return "";
  }
  return h.HexDigest();
}

// Walks the directory open at `fd` (owned), shown as `shown`, `depth` levels below a watch
// path. Never follows a symlink (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW) and never leaves the file
// system the watch path is on, so a symlink loop or a mount below costs nothing.
void WalkDir(Walk& w, int fd, const std::string& shown, int depth, dev_t dev,
             std::vector<std::pair<FileChange, std::string>>& out) {
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return;
  }
  std::vector<std::string> subdirs;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    if (w.entries >= w.options.max_entries_walked) {
      w.stopped = true;
      break;
    }
    ++w.entries;
    struct stat st {};
    if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;
    }
    const std::string path = shown + "/" + name;
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev == dev) {
        subdirs.push_back(name);
      }
      continue;
    }
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      continue;
    }
    const WallTime mtime = FromTimespec(st.st_mtim);
    if (mtime < w.since) {
      continue;
    }
    FileChange c;
    c.path = path;
    c.mtime = mtime;
    c.size = static_cast<uint64_t>(st.st_size);
    c.symlink = S_ISLNK(st.st_mode);
    std::string note;
    if (c.symlink) {
      char target[4096];
      const ssize_t n = ::readlinkat(::dirfd(d), name.c_str(), target, sizeof(target) - 1);
      note = "symlink -> " + (n >= 0 ? Printable(std::string(target, static_cast<size_t>(n)))
                                     : std::string("?"));
    } else {
      std::string why;
      const std::string hash = HashFile(w, ::dirfd(d), name.c_str(), c.size, &why);
      note = std::to_string(c.size) + " B, " + (hash.empty() ? why : "sha256 " + hash);
    }
    out.emplace_back(std::move(c), std::move(note));
  }
  for (const std::string& name : subdirs) {
    if (w.stopped) {
      break;
    }
    if (depth + 1 > w.options.max_depth) {
      w.too_deep = true;
      continue;
    }
    const int sub = ::openat(::dirfd(d), name.c_str(),
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub >= 0) {
      WalkDir(w, sub, shown + "/" + name, depth + 1, dev, out);
    }
  }
  ::closedir(d);
}

// Keeps the newest `max` of `lines` (oldest first) and says how many were left out.
void AppendNewest(std::string& out, const std::vector<std::string>& lines, size_t max) {
  if (lines.empty()) {
    out += "  none\n";
    return;
  }
  const size_t skip = lines.size() > max ? lines.size() - max : 0;
  if (skip > 0) {
    out += "  (" + std::to_string(skip) + " older not shown)\n";
  }
  for (size_t i = skip; i < lines.size(); ++i) {
    out += "  " + lines[i] + "\n";
  }
}

std::string PackagesSection(const ChangesOptions& o, WallTime since) {
  const std::string path = UnderRoot(o.root, "/var/log/dpkg.log");
  std::string out = "packages (/var/log/dpkg.log):\n";
  std::string error;
  const std::string text = ReadTail(path, o.max_dpkg_bytes, &error);
  if (!error.empty()) {
    return out + "  unknown: cannot read /var/log/dpkg.log: " + error + "\n";
  }
  size_t malformed = 0;
  std::vector<std::string> lines;
  for (const PackageChange& c : ParseDpkgLog(text, since, &malformed)) {
    std::string versions = c.action == "upgrade" ? c.old_version + " -> " + c.new_version
                           : c.action == "install" ? c.new_version
                                                   : c.old_version;
    lines.push_back(When(c.at) + " " + c.action + " " + Printable(c.package) + " " +
                    Printable(versions));
  }
  AppendNewest(out, lines, o.max_lines);
  if (malformed > 0) {
    out += "  (" + std::to_string(malformed) + " line(s) not understood, skipped)\n";
  }
  return out;
}

std::string ServicesSection(const ChangesOptions& o, WallTime since,
                            const std::vector<ServiceStatus>& services) {
  std::string out = "services (the agent's service manager):\n";
  std::vector<std::pair<WallTime, std::string>> events;
  for (const ServiceStatus& s : services) {
    if (s.started_at >= since && s.started_at.time_since_epoch().count() != 0) {
      events.emplace_back(s.started_at,
                          s.name + " started" +
                              (s.running ? " (running, pid " + std::to_string(s.pid) + ")"
                                         : std::string(" (stopped now)")));
    }
    if (s.last_exit && s.last_exit->at >= since) {
      events.emplace_back(s.last_exit->at,
                          s.name + " exited: " + host::DescribeExit(s.last_exit->status));
    }
  }
  std::sort(events.begin(), events.end());
  std::vector<std::string> lines;
  for (const auto& [at, what] : events) {
    lines.push_back(When(at) + " " + what);
  }
  AppendNewest(out, lines, o.max_lines);
  return out;
}

std::string ConfigSection(const ChangesOptions& o, WallTime since) {
  std::string out;
  Walk w{o, since};
  std::vector<std::pair<FileChange, std::string>> found;
  std::string watched;
  for (const std::string& p : o.watch_paths) {
    watched += (watched.empty() ? "" : ", ") + p;
  }
  out += "config files modified under " + watched + " (mtime, size, sha256):\n";
  for (const std::string& p : o.watch_paths) {
    const std::string dir = UnderRoot(o.root, p);
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      out += "  (cannot read " + p + ": " + std::strerror(errno) + ")\n";
      continue;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      continue;
    }
    WalkDir(w, fd, p == "/" ? "" : p, 0, st.st_dev, found);
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first.mtime < b.first.mtime; });
  std::vector<std::string> lines;
  for (const auto& [c, note] : found) {
    lines.push_back(When(c.mtime) + " " + Printable(c.path) + " (" + note + ")");
  }
  AppendNewest(out, lines, o.max_lines);
  if (w.stopped) {
    out += "  (stopped after " + std::to_string(w.entries) + " entries: more may have changed)\n";
  }
  if (w.too_deep) {
    out += "  (directories deeper than " + std::to_string(o.max_depth) + " levels not read)\n";
  }
  return out;
}

std::string RebootSection(const ChangesOptions& o, WallTime since) {
  std::string out = "reboots:\n";
  std::string error;
  const std::string text = ReadTail(UnderRoot(o.root, "/proc/stat"), 64 * 1024, &error);
  int64_t btime = -1;
  for (const std::string& line : SplitLines(text)) {
    if (line.rfind("btime ", 0) == 0) {
      btime = std::strtoll(line.c_str() + 6, nullptr, 10);
    }
  }
  if (btime <= 0) {
    return out + "  unknown: no boot time in /proc/stat\n";
  }
  const WallTime boot = WallTime(std::chrono::seconds(btime));
  if (boot >= since) {
    return out + "  " + When(boot) + " the host booted (within the window)\n";
  }
  return out + "  none: booted " + When(boot) + ", before the window\n";
}

}  // namespace

std::string FormatDpkgTime(WallTime t) {
  const time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::vector<PackageChange> ParseDpkgLog(std::string_view text, WallTime since,
                                        size_t* malformed) {
  std::vector<PackageChange> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) {
      continue;
    }
    std::vector<std::string_view> f;
    size_t i = 0;
    while (i < line.size() && f.size() < 7) {
      while (i < line.size() && line[i] == ' ') {
        ++i;
      }
      const size_t start = i;
      while (i < line.size() && line[i] != ' ') {
        ++i;
      }
      if (i > start) {
        f.push_back(line.substr(start, i - start));
      }
    }
    const bool change = f.size() >= 3 && (f[2] == "install" || f[2] == "upgrade" ||
                                          f[2] == "remove" || f[2] == "purge");
    const bool other = f.size() >= 3 && (f[2] == "status" || f[2] == "configure" ||
                                         f[2] == "startup" || f[2] == "trigproc" ||
                                         f[2] == "conffile");
    if (other) {
      continue;
    }
    std::tm tm{};
    const std::string stamp = f.size() >= 2 ? std::string(f[0]) + " " + std::string(f[1]) : "";
    const char* rest =
        stamp.empty() ? nullptr : ::strptime(stamp.c_str(), "%Y-%m-%d %H:%M:%S", &tm);
    if (!change || f.size() != 6 || rest == nullptr || *rest != '\0') {
      ++*malformed;
      continue;
    }
    tm.tm_isdst = -1;
    const time_t t = std::mktime(&tm);
    if (t == static_cast<time_t>(-1)) {
      ++*malformed;
      continue;
    }
    const WallTime at = WallTime(std::chrono::seconds(t));
    if (at < since) {
      continue;
    }
    out.push_back({at, std::string(f[2]), std::string(f[3]), std::string(f[4]),
                   std::string(f[5])});
  }
  return out;
}

std::string CollectHostChanges(const ChangesOptions& options, WallTime now, Millis window,
                               const std::vector<ServiceStatus>& services) {
  const WallTime since = now - window;
  std::string out = "changes from " + When(since) + " to " + When(now) + ":\n";
  out += PackagesSection(options, since);
  out += ServicesSection(options, since, services);
  out += ConfigSection(options, since);
  out += RebootSection(options, since);
  return out;
}

}  // namespace medic::agent
