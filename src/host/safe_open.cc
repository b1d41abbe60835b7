#include "host/safe_open.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

namespace medic::host {

namespace {

std::atomic<SafeOpenMode> g_mode{SafeOpenMode::kAuto};
// Set once openat2 answered ENOSYS: walk from then on.
std::atomic<bool> g_no_openat2{false};

// Splits an absolute path into its components; empty ones ("//", a trailing '/') are skipped.
// Returns false for a relative path or a "." / ".." component.
bool Components(std::string_view path, std::vector<std::string>* out) {
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string_view::npos) {
    return false;
  }
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) {
      next = path.size();
    }
    const std::string_view part = path.substr(pos, next - pos);
    if (part == "." || part == "..") {
      return false;
    }
    if (!part.empty()) {
      out->emplace_back(part);
    }
    pos = next + 1;
  }
  return true;
}

std::string Join(const std::vector<std::string>& parts, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to; ++i) {
    out += (out.empty() ? "" : "/") + parts[i];
  }
  return out;
}

std::string ErrnoText(int err) { return std::strerror(err); }

// What an open error means for a path the caller asked about.
Error OpenError(const std::string& path, const std::string& at, int err) {
  switch (err) {
    case ELOOP:
      return PermissionDenied("refusing " + path + ": " + at +
                              " is a symbolic link (the agent follows no symlink in any component)");
    case EXDEV:
      return PermissionDenied("refusing " + path + ": " + at +
                              " is on another file system or mount (never crossed)");
    case ENOENT:
      return NotFound("cannot open " + path + ": " + at + " does not exist");
    case ENOTDIR:
      return PermissionDenied("refusing " + path + ": " + at +
                              " is not a directory (or is a symbolic link)");
    default:
      return FailedPrecondition("cannot open " + path + ": " + at + ": " + ErrnoText(err));
  }
}

// Opens components [0, n) of `parts` as directories below `start` (an O_PATH directory fd, or
// AT_FDCWD with an absolute first component), each with O_NOFOLLOW, each relative to the one
// before. With `dev` set, every directory must be on that device.
Result<UniqueFd> WalkDirs(int start, const std::vector<std::string>& parts, size_t n,
                          const std::string& path, const dev_t* dev, std::string* at) {
  UniqueFd cur(start == AT_FDCWD ? ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)
                                  : ::fcntl(start, F_DUPFD_CLOEXEC, 0));
  if (!cur.valid()) {
    return FailedPrecondition("cannot open " + path + ": " + ErrnoText(errno));
  }
  for (size_t i = 0; i < n; ++i) {
    *at += (at->empty() || at->back() != '/' ? "/" : "") + parts[i];
    UniqueFd next(
        ::openat(cur.get(), parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) {
      const int err = errno;
      struct stat lst {};
      if (::fstatat(cur.get(), parts[i].c_str(), &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(lst.st_mode)) {
        return OpenError(path, *at, ELOOP);
      }
      return OpenError(path, *at, err);
    }
    struct stat st {};
    if (::fstat(next.get(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return OpenError(path, *at, ENOTDIR);
    }
    if (dev != nullptr && st.st_dev != *dev) {
      return OpenError(path, *at, EXDEV);
    }
    cur = std::move(next);
  }
  return cur;
}

}  // namespace

Result<std::string> ReadTailFd(int fd, const std::string& path, size_t max_bytes) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return FailedPrecondition("cannot stat " + path + ": " + ErrnoText(errno));
  }
  off_t off = st.st_size > static_cast<off_t>(max_bytes) ? st.st_size - static_cast<off_t>(max_bytes)
                                                         : 0;
  std::string out;
  char buf[8192];
  while (out.size() < max_bytes) {
    const ssize_t n = ::pread(fd, buf, std::min(sizeof(buf), max_bytes - out.size()), off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return FailedPrecondition("cannot read " + path + ": " + ErrnoText(errno));
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

void SetSafeOpenModeForTesting(SafeOpenMode mode) { g_mode = mode; }

std::string ParentDir(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') {
    path.remove_suffix(1);
  }
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) {
    return "/";
  }
  return std::string(path.substr(0, slash));
}

Result<SafeFile> OpenBeneath(std::string_view root_view, std::string_view path_view,
                             const SafeOpenOptions& options) {
  const std::string root(root_view), path(path_view);
  std::vector<std::string> root_parts, parts;
  if (!Components(root, &root_parts) || !Components(path, &parts)) {
    return PermissionDenied("refusing " + path + ": not an absolute, clean path beneath " + root);
  }
  if (root_parts.empty()) {
    return PermissionDenied("refusing " + path + ": / is never an allowed root");
  }
  if (parts.size() < root_parts.size() ||
      !std::equal(root_parts.begin(), root_parts.end(), parts.begin())) {
    return PermissionDenied("refusing " + path + ": not beneath " + root);
  }
  if ((options.flags & O_TRUNC) != 0) {
    return InvalidArgument("OpenBeneath: O_TRUNC is never used (truncate after the checks)");
  }

  // The root itself: no symlink in any of its components either.
  std::string at;
  ASSIGN_OR_RETURN(UniqueFd root_fd,
                   WalkDirs(AT_FDCWD, root_parts, root_parts.size(), path, nullptr, &at));
  struct stat root_st {};
  if (::fstat(root_fd.get(), &root_st) != 0) {
    return FailedPrecondition("cannot stat " + root + ": " + ErrnoText(errno));
  }

  const bool dir = options.kind == SafeKind::kDirectory;
  int flags = dir ? (O_RDONLY | O_DIRECTORY) : options.flags;
  flags |= O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  const std::string rel = Join(parts, root_parts.size(), parts.size());

  SafeFile out;
  bool done = false;
  if (g_mode.load() == SafeOpenMode::kAuto && !g_no_openat2.load()) {
    open_how how{};
    how.flags = static_cast<uint64_t>(flags);
    how.mode = (flags & O_CREAT) != 0 ? options.mode : 0;
    how.resolve =
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    long fd = -1;
    for (int attempt = 0; attempt < 8; ++attempt) {
      fd = ::syscall(SYS_openat2, root_fd.get(), rel.empty() ? "." : rel.c_str(), &how,
                     sizeof(how));
      if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) {
        break;
      }
    }
    if (fd >= 0) {
      out.fd.reset(static_cast<int>(fd));
      done = true;
    } else if (errno == ENOSYS) {
      g_no_openat2 = true;  // no openat2 here (kernel < 5.6, seccomp): walk from now on
    } else if (errno == EPERM) {
      // A seccomp filter's answer, or the file's own (immutable for O_WRONLY): the walk
      // below gives the file's answer if that is what it was.
    } else {
      const int err = errno;
      // Name the component at fault when it is a symlink (ELOOP/ENOTDIR say little).
      if (err == ELOOP || err == ENOTDIR || err == EXDEV) {
        std::string prefix = root;
        UniqueFd cur(::fcntl(root_fd.get(), F_DUPFD_CLOEXEC, 0));
        for (size_t i = root_parts.size(); i < parts.size() && cur.valid(); ++i) {
          prefix += "/" + parts[i];
          struct stat lst {};
          if (::fstatat(cur.get(), parts[i].c_str(), &lst, AT_SYMLINK_NOFOLLOW) != 0) {
            break;
          }
          if (S_ISLNK(lst.st_mode)) {
            return OpenError(path, prefix, ELOOP);
          }
          cur.reset(::openat(cur.get(), parts[i].c_str(),
                             O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        }
      }
      return OpenError(path, rel.empty() ? root : root + "/" + rel, err);
    }
  }
  if (!done) {
    // The fallback: one component at a time, O_NOFOLLOW each, on the root's device.
    std::vector<std::string> below(parts.begin() + static_cast<long>(root_parts.size()),
                                   parts.end());
    std::string where = root;
    if (below.empty()) {
      out.fd.reset(::openat(root_fd.get(), ".", flags));
    } else {
      ASSIGN_OR_RETURN(UniqueFd parent, WalkDirs(root_fd.get(), below, below.size() - 1, path,
                                                 &root_st.st_dev, &where));
      where += "/" + below.back();
      out.fd.reset(::openat(parent.get(), below.back().c_str(), flags, options.mode));
      if (!out.fd.valid()) {
        const int err = errno;
        struct stat lst {};
        if (::fstatat(parent.get(), below.back().c_str(), &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(lst.st_mode)) {
          return OpenError(path, where, ELOOP);
        }
        return OpenError(path, where, err);
      }
    }
    if (!out.fd.valid()) {
      return OpenError(path, where, errno);
    }
  }

  if (::fstat(out.fd.get(), &out.st) != 0) {
    return FailedPrecondition("cannot stat " + path + ": " + ErrnoText(errno));
  }
  if (out.st.st_dev != root_st.st_dev) {
    return PermissionDenied("refusing " + path + ": it is on another file system than " + root);
  }
  if (dir) {
    if (!S_ISDIR(out.st.st_mode)) {
      return PermissionDenied("refusing " + path + ": not a directory");
    }
    return out;
  }
  if (!S_ISREG(out.st.st_mode)) {
    return PermissionDenied("refusing " + path + ": not a regular file");
  }
  if (options.single_link && out.st.st_nlink != 1) {
    return PermissionDenied("refusing " + path + ": it has " + std::to_string(out.st.st_nlink) +
                            " hard links (a hard-linked file may be a file outside the allowed "
                            "paths; only files with exactly one link are touched)");
  }
  return out;
}

}  // namespace medic::host
