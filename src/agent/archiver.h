#pragma once

// The disk actions: log.archive_truncate (copy a log file to the server's archive, verify the
// checksum, then truncate it) and disk.cleanup (delete old regular files below a directory).
// See docs/ACTIONS.md. Both take policy-checked real paths; the executor does the checking.

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/server_api.h"
#include "core/clock.h"
#include "core/result.h"
#include "transport/http_client.h"

namespace medic::agent {

// Where archived files go: the server's archive routes, or a fake in tests.
class ArchiveSink {
 public:
  virtual ~ArchiveSink() = default;
  // Announces an upload of `size` bytes of `path`; returns its id.
  virtual Result<std::string> Start(const std::string& path, int64_t size) = 0;
  // Sends bytes at `offset` (the bytes sent so far); returns the bytes received so far.
  virtual Result<int64_t> Append(const std::string& upload_id, int64_t offset,
                                 std::string_view bytes) = 0;
  // Ends the upload; the receipt carries the sha256 of the copy the archive stored.
  virtual Result<ArchiveReceipt> Finish(const std::string& upload_id, const std::string& sha256,
                                        int64_t bytes) = 0;
  // Bytes of this host's archived file `name` from `offset` (a bounded chunk; empty at its
  // end), for log.restore. Default: unavailable.
  virtual Result<std::string> Fetch(const std::string& name, int64_t offset) {
    return Unavailable("this agent cannot fetch " + name + " from an archive (offset " +
                       std::to_string(offset) + ")");
  }
};

// ArchiveSink over ServerApi. Makes its HttpClient on first use (curl handles belong to one
// thread at a time: calls are serialized by a mutex). `api` must outlive it.
class ServerArchiveSink : public ArchiveSink {
 public:
  ServerArchiveSink(const ServerApi& api, std::string host,
                    std::function<std::unique_ptr<HttpClient>()> new_http_client);

  Result<std::string> Start(const std::string& path, int64_t size) override;
  Result<int64_t> Append(const std::string& upload_id, int64_t offset,
                         std::string_view bytes) override;
  Result<ArchiveReceipt> Finish(const std::string& upload_id, const std::string& sha256,
                                int64_t bytes) override;
  Result<std::string> Fetch(const std::string& name, int64_t offset) override;

 private:
  HttpClient& Client();  // REQUIRES: mu_ held.

  const ServerApi& api_;
  const std::string host_;
  std::function<std::unique_ptr<HttpClient>()> new_http_client_;
  std::mutex mu_;
  std::unique_ptr<HttpClient> http_;  // Guarded by mu_.
};

struct ArchiveLimits {
  // Bytes per Append. The server takes up to 8 MiB per chunk (servers before issue 18: 1 MiB);
  // two chunks are in memory while archiving (one sent, the next read and hashed meanwhile).
  size_t chunk_bytes = 4 * 1024 * 1024;
  // The next chunk is read and hashed on a helper thread while the current one is sent. False:
  // one after the other, as before issue 18 (bench/archive_bench.cc's baseline).
  bool read_ahead = true;
  // After the upload, bytes the file gained meanwhile are uploaded as a further piece; this many
  // pieces at most, then the action fails without truncating (the file grows too fast).
  int max_pieces = 5;
  SteadyTime deadline = SteadyTime::max();  // steady_clock; past it the action fails
};

// Streams the regular file `path` to `sink` in chunks while hashing it (the next chunk is read
// and hashed on a helper thread while the current one is sent), finishes the upload,
// and truncates the file only when the archive's sha256 and byte count equal the agent's.
// Bytes appended while uploading are uploaded too (a further piece) before the truncation; only
// what is written between the last size check and ftruncate(2) — microseconds — can be lost.
// Returns the output:
//   archived PATH (N bytes) to LOCATION
//   sha256 HEX
//   [archived PATH bytes A-B (N bytes) to LOCATION2 / sha256 HEX2 ...]
//   truncated PATH
// On any failure the file is left as it was and the error says why.
// `fd` is the file, open O_RDWR, already checked by host::OpenBeneath (regular, one link, on
// the root's device); `path` names it in messages and uploads. The file is never reopened.
Result<std::string> ArchiveAndTruncate(int fd, const std::string& path, ArchiveSink& sink,
                                       const ArchiveLimits& limits = {});
// The same for `path` opened beneath its own directory (host::OpenBeneath: no symlink in any
// component, one link). For callers without a policy root (tests, the server's archive test).
Result<std::string> ArchiveAndTruncate(const std::string& path, ArchiveSink& sink,
                                       const ArchiveLimits& limits = {});

// log.restore (the undo of log.archive_truncate, docs/ACTIONS.md): puts the archived copy
// `archive` (`bytes` long, sha256 `sha256`, fetched from `sink`) back in front of what the file
// `fd` holds now. The copy is fetched twice: first only to check its length and sha256 against
// `bytes` and `sha256` (on a mismatch the file is left as it was; nothing is stored, so a disk
// that was full needs no room for a second copy), then to write it over the file from offset 0,
// followed by what the file held (kept in memory: at most 64 MiB, else it is refused). The file
// keeps its inode, so a process holding it open keeps writing to it; lines written during the
// second pass can be lost, as with the truncation. The archived part is read back and checked.
// Returns the output:
//   restored PATH from ARCHIVE (N bytes, sha256 HEX)
//   kept the M bytes PATH held (written after it was archived), after them
Result<std::string> RestoreArchived(int fd, const std::string& path, const std::string& archive,
                                    const std::string& sha256, int64_t bytes, ArchiveSink& sink,
                                    SteadyTime deadline = SteadyTime::max());

// disk.cleanup's older_than: a ParseDuration duration ("12h", "90m") or whole days ("7d").
Result<Millis> ParseAge(std::string_view text);

struct CleanupLimits {
  size_t max_entries = 100'000;  // directory entries examined, at most
  int max_depth = 32;
  size_t list_cap = 50;  // removed paths listed in the output
};

struct CleanupReport {
  int64_t files = 0;
  int64_t bytes = 0;
  std::vector<std::string> removed;   // at most list_cap paths
  std::vector<std::string> problems;  // entries that could not be examined or removed
  bool stopped_early = false;         // max_entries reached
};

// Deletes the regular files below `dir` whose mtime is before `cutoff`. Never follows a
// symbolic link (symlinks are neither followed nor removed), never leaves dir's file system,
// never removes directories, never removes a file with more than one link. Works relative to
// directory descriptors only (fdopendir, fstatat, openat O_NOFOLLOW, unlinkat): no name is
// resolved from the top again.
// `dir_fd` is the directory, open O_RDONLY|O_DIRECTORY, checked by host::OpenBeneath; the
// function takes ownership of it. `dir` names it in the report.
Result<CleanupReport> CleanupOldFiles(int dir_fd, const std::string& dir, WallTime cutoff,
                                      const CleanupLimits& limits = {});
// The same for `dir` opened as its own root (host::OpenBeneath(dir, dir)).
Result<CleanupReport> CleanupOldFiles(const std::string& dir, WallTime cutoff,
                                      const CleanupLimits& limits = {});
// "removed N files (B bytes) under DIR older than AGE" and the list.
std::string FormatCleanupReport(const std::string& dir, std::string_view age,
                                const CleanupReport& report, size_t list_cap);

}  // namespace medic::agent
