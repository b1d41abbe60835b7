#pragma once

// Opening a path beneath a trusted root without following a symbolic link anywhere, and
// checking what was opened before anyone acts on it. Every file the agent truncates, archives,
// tails, lists, cleans or appends a service's output to is opened here (docs/ACTIONS.md,
// "Before touching a file").
//
// How: the root is opened with no symlink in any of its components; the rest of the path is
// opened relative to that descriptor with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV). Where openat2 is missing (ENOSYS: kernel < 5.6, or a
// seccomp filter that refuses it), the same is done one component at a time, each openat()
// relative to the directory opened before it with O_NOFOLLOW, and each directory's device
// compared to the root's. Either way no name is ever resolved twice: the caller gets the
// descriptor and works on it (ftruncate, pread, fdopendir, unlinkat relative to it).
//
// Then fstat: the expected type (regular file or directory), the root's device, and for a
// regular file exactly one link (a hard link to a file elsewhere is refused).

#include <fcntl.h>
#include <sys/stat.h>

#include <string>
#include <string_view>

#include "core/result.h"
#include "host/process_util.h"

namespace medic::host {

enum class SafeKind { kRegularFile, kDirectory };

struct SafeOpenOptions {
  SafeKind kind = SafeKind::kRegularFile;
  // Access mode and extra flags for the final component: O_RDONLY, O_WRONLY, O_RDWR, O_APPEND,
  // O_CREAT (with `mode`). O_NOFOLLOW, O_CLOEXEC, O_NONBLOCK and O_NOCTTY are always added;
  // O_TRUNC is refused (truncate the descriptor after the checks, never before).
  int flags = O_RDONLY;
  mode_t mode = 0640;
  // Refuse a regular file with more than one link (every agent action; see above).
  bool single_link = true;
};

struct SafeFile {
  UniqueFd fd;
  struct stat st {};
};

// Opens `path` beneath `root`. Both absolute, without "." or ".." components; `path` is `root`
// or below it (component-wise). `root` is never "/" (a caller's policy must not allow it) and
// may not contain a symlink either. Errors (PermissionDenied for a symlink, a hard link, a
// mount crossed or the wrong type; NotFound; FailedPrecondition otherwise) name `path` and say
// what was wrong.
Result<SafeFile> OpenBeneath(std::string_view root, std::string_view path,
                             const SafeOpenOptions& options = {});

// The last `max_bytes` of the regular file open at `fd` (read with pread from its current size;
// the offset is not used).
Result<std::string> ReadTailFd(int fd, const std::string& path, size_t max_bytes);

// How OpenBeneath resolves: openat2 when the kernel has it (kAuto), or always the
// component-by-component walk (kWalk; tests run both).
enum class SafeOpenMode { kAuto, kWalk };
void SetSafeOpenModeForTesting(SafeOpenMode mode);

// The directory part of an absolute path ("/var/log/a.log" -> "/var/log"; "/a.log" -> "/").
std::string ParentDir(std::string_view path);

}  // namespace medic::host
