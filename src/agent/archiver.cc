#include "agent/archiver.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <malloc.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <future>

#include "host/process_util.h"
#include "host/safe_open.h"
#include "core/log.h"
#include "core/sha256.h"

namespace medic::agent {

namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

struct Piece {
  int64_t bytes = 0;
  std::string sha256;
  std::string location;
};

// Reads bytes [at, at + want) of `fd` into `buf` (resized to want) and adds them to `hash`.
Status ReadChunk(int fd, const std::string& path, int64_t at, size_t want, std::string& buf,
                 Sha256& hash) {
  buf.resize(want);
  size_t got = 0;
  while (got < want) {
    const ssize_t n = ::pread(fd, buf.data() + got, want - got, at + static_cast<int64_t>(got));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Internal(Errno("cannot read " + path));
    }
    if (n == 0) {
      return FailedPrecondition(path +
                                " shrank while it was being archived (someone else "
                                "truncated or rewrote it)");
    }
    got += static_cast<size_t>(n);
  }
  hash.Update(buf);
  return OkStatus();
}

// Uploads bytes [from, to) of `fd` as one archive upload and checks the receipt. Reading and
// hashing chunk k+1 (on a helper thread) overlaps sending chunk k: the hash costs no time of
// its own. `hash` is only touched by the reader, one chunk after the other.
Result<Piece> UploadRange(int fd, const std::string& path, int64_t from, int64_t to,
                          ArchiveSink& sink, const ArchiveLimits& limits) {
  const int64_t size = to - from;
  ASSIGN_OR_RETURN(std::string id, sink.Start(path, size));
  Sha256 hash;
  auto want_at = [&](int64_t at) {
    return static_cast<size_t>(std::min<int64_t>(size - at, limits.chunk_bytes));
  };
  std::string sending;
  std::string reading;
  std::future<Status> next;
  auto read_async = [&](int64_t at) {
    next = std::async(limits.read_ahead ? std::launch::async : std::launch::deferred, [&, at] {
      return ReadChunk(fd, path, from + at, want_at(at), reading, hash);
    });
  };
  if (size > 0) {
    read_async(0);
  }
  int64_t sent = 0;
  while (sent < size) {
    RETURN_IF_ERROR(next.get());
    std::swap(sending, reading);
    const int64_t after = sent + static_cast<int64_t>(sending.size());
    if (after < size) {
      read_async(after);  // joined below by get(), or by ~future on an early return
    }
    if (std::chrono::steady_clock::now() > limits.deadline) {
      return DeadlineExceeded("ran out of time after uploading " + std::to_string(sent) + " of " +
                              std::to_string(size) + " bytes");
    }
    ASSIGN_OR_RETURN(int64_t received, sink.Append(id, sent, sending));
    sent = after;
    if (received != sent) {
      return FailedPrecondition("the archive received " + std::to_string(received) + " bytes, " +
                                std::to_string(sent) + " were sent");
    }
  }
  Piece p;
  p.bytes = size;
  p.sha256 = hash.HexDigest();
  ASSIGN_OR_RETURN(ArchiveReceipt receipt, sink.Finish(id, p.sha256, size));
  if (receipt.sha256 != p.sha256 || receipt.bytes != size) {
    return FailedPrecondition("checksum mismatch: the archive stored " +
                              std::to_string(receipt.bytes) + " bytes with sha256 " +
                              receipt.sha256 + ", the agent sent " + std::to_string(size) +
                              " bytes with sha256 " + p.sha256);
  }
  p.location = receipt.location;
  return p;
}

}  // namespace

ServerArchiveSink::ServerArchiveSink(const ServerApi& api, std::string host,
                                     std::function<std::unique_ptr<HttpClient>()> new_http_client)
    : api_(api), host_(std::move(host)), new_http_client_(std::move(new_http_client)) {}

HttpClient& ServerArchiveSink::Client() {
  if (!http_) {
    http_ = new_http_client_();
  }
  return *http_;
}

Result<std::string> ServerArchiveSink::Start(const std::string& path, int64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  return api_.StartArchive(Client(), host_, path, size);
}

Result<int64_t> ServerArchiveSink::Append(const std::string& upload_id, int64_t offset,
                                          std::string_view bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  return api_.AppendArchive(Client(), upload_id, offset, bytes);
}

Result<ArchiveReceipt> ServerArchiveSink::Finish(const std::string& upload_id,
                                                 const std::string& sha256, int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  return api_.FinishArchive(Client(), upload_id, sha256, bytes);
}

Result<std::string> ServerArchiveSink::Fetch(const std::string& name, int64_t offset) {
  std::lock_guard<std::mutex> lock(mu_);
  return api_.FetchArchived(Client(), name, offset);
}

namespace {

// Writes all of `data` at `at` of `fd`.
Status WriteAllAt(int fd, const std::string& path, std::string_view data, int64_t at) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                               at + static_cast<int64_t>(done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Internal(Errno("cannot write " + path));
    }
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

}  // namespace

Result<std::string> RestoreArchived(int fd, const std::string& path, const std::string& archive,
                                    const std::string& sha256, int64_t bytes, ArchiveSink& sink,
                                    SteadyTime deadline) {
  struct TrimHeapAfter {
    ~TrimHeapAfter() { ::malloc_trim(0); }
  } trim;
  const std::string base = path.substr(path.rfind('/') + 1);
  if (archive.size() <= base.size() + 1 ||
      archive.compare(archive.size() - base.size() - 1, std::string::npos, "-" + base) != 0) {
    return PermissionDenied("refusing to restore " + archive + " to " + path +
                            ": it was archived from another file (only the file it was archived "
                            "from is restored)");
  }
  // Reads the whole copy from the archive, handing each chunk to `use`; its length and sha256.
  auto fetch = [&](const std::function<Status(int64_t, const std::string&)>& use)
      -> Result<std::pair<int64_t, std::string>> {
    Sha256 hash;
    int64_t got = 0;
    while (got < bytes) {
      if (std::chrono::steady_clock::now() > deadline) {
        return DeadlineExceeded("ran out of time after fetching " + std::to_string(got) +
                                " of " + std::to_string(bytes) + " bytes of " + archive);
      }
      ASSIGN_OR_RETURN(std::string chunk, sink.Fetch(archive, got));
      if (chunk.empty()) {
        break;
      }
      if (got + static_cast<int64_t>(chunk.size()) > bytes) {
        return FailedPrecondition("the archive sent more than the " + std::to_string(bytes) +
                                  " bytes of " + archive);
      }
      hash.Update(chunk);
      RETURN_IF_ERROR(use(got, chunk));
      got += static_cast<int64_t>(chunk.size());
    }
    return std::make_pair(got, hash.HexDigest());
  };
  auto mismatch = [&](int64_t got, const std::string& digest) {
    return "checksum mismatch: the archive sent " + std::to_string(got) + " bytes with sha256 " +
           digest + ", the archive recorded " + std::to_string(bytes) + " bytes with sha256 " +
           sha256;
  };
  // First pass: the copy is checked before the file is touched (nothing is kept: a full disk,
  // the reason it was archived, may have no room for a second copy).
  {
    auto first = fetch([](int64_t, const std::string&) { return OkStatus(); });
    if (!first) {
      return Error{first.error().code, first.error().message + "; " + path + " was not changed"};
    }
    if (first->first != bytes || first->second != sha256) {
      return FailedPrecondition(mismatch(first->first, first->second) + "; " + path +
                                " was not changed");
    }
  }
  // What the file holds now (written after it was archived) follows the copy.
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    return FailedPrecondition(path + " is not a regular file with one link; not changed");
  }
  constexpr int64_t kMaxKept = int64_t{64} << 20;
  if (st.st_size > kMaxKept) {
    return FailedPrecondition(path + " holds " + std::to_string(st.st_size) +
                              " bytes written since it was archived (more than " +
                              std::to_string(kMaxKept) + "); not changed: restore it by hand");
  }
  std::string kept(static_cast<size_t>(st.st_size), '\0');
  for (size_t at = 0; at < kept.size();) {
    const ssize_t n = ::pread(fd, kept.data() + at, kept.size() - at, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return Internal(Errno("cannot read " + path) + "; not changed");
    }
    at += static_cast<size_t>(n);
  }
  // Second pass: the copy written over the file from offset 0 (the same inode: a service holding
  // it open keeps writing to it), then what it held.
  auto second = fetch([&](int64_t at, const std::string& chunk) {
    return WriteAllAt(fd, path, chunk, at);
  });
  if (!second) {
    return Error{second.error().code, second.error().message + "; " + path +
                                          " may be partly restored"};
  }
  if (second->first != bytes || second->second != sha256) {
    return FailedPrecondition(mismatch(second->first, second->second) + " the second time; " +
                              path + " may be partly restored");
  }
  RETURN_IF_ERROR(WriteAllAt(fd, path, kept, bytes));
  if (::fsync(fd) != 0) {
    return Internal(Errno("cannot sync " + path));
  }
  // Read back: the file now starts with exactly the archived bytes.
  Sha256 check;
  std::string buf;
  for (int64_t at = 0; at < bytes;) {
    buf.resize(static_cast<size_t>(std::min<int64_t>(bytes - at, 1 << 20)));
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
    if (n <= 0) {
      return Internal(Errno("cannot read back " + path));
    }
    check.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    at += n;
  }
  if (check.HexDigest() != sha256) {
    return Internal(path + " does not read back as the archived copy after the restore");
  }
  std::string out = "restored " + path + " from " + archive + " (" + std::to_string(bytes) +
                    " bytes, sha256 " + sha256 + ")\n";
  if (!kept.empty()) {
    out += "kept the " + std::to_string(kept.size()) + " bytes " + path +
           " held (written after it was archived), after them\n";
  }
  LogInfo("log.restore: " + out);
  return out;
}

Result<std::string> ArchiveAndTruncate(const std::string& path, ArchiveSink& sink,
                                       const ArchiveLimits& limits) {
  host::SafeOpenOptions o;
  o.flags = O_RDWR;
  ASSIGN_OR_RETURN(host::SafeFile f, host::OpenBeneath(host::ParentDir(path), path, o));
  return ArchiveAndTruncate(f.fd.get(), path, sink, limits);
}

Result<std::string> ArchiveAndTruncate(int fd, const std::string& path, ArchiveSink& sink,
                                       const ArchiveLimits& limits) {
  // The chunk buffers (and the requests' copies) are a few MiB: handed back to the system after,
  // so the idle agent's resident memory stays what it was (docs/BENCHMARKS.md, footprint).
  struct TrimHeapAfter {
    ~TrimHeapAfter() { ::malloc_trim(0); }
  } trim;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return FailedPrecondition(path + " is not a regular file");
  }
  if (st.st_nlink != 1) {
    return PermissionDenied("refusing " + path + ": it has " + std::to_string(st.st_nlink) +
                            " hard links");
  }
  if (st.st_size == 0) {
    return std::string(path + " is empty; nothing to archive or truncate\n");
  }
  std::string out;
  auto failed = [&](const Error& e) {
    return Error{e.code, out + e.message + "; " + path + " was not truncated"};
  };
  int64_t done = 0;
  int64_t target = st.st_size;
  for (int piece = 0;; ++piece) {
    auto p = UploadRange(fd, path, done, target, sink, limits);
    if (!p) {
      return failed(p.error());
    }
    out += "archived " + path +
           (piece == 0 ? "" : " bytes " + std::to_string(done) + "-" + std::to_string(target)) +
           " (" + std::to_string(p->bytes) + " bytes) to " + p->location + "\n";
    out += "sha256 " + p->sha256 + "\n";
    done = target;
    if (::fstat(fd, &st) != 0) {
      return failed(Internal(Errno("cannot stat " + path)));
    }
    if (st.st_nlink != 1) {
      return failed(PermissionDenied(path + " was hard-linked while it was being archived"));
    }
    if (st.st_size == done) {
      break;
    }
    if (st.st_size < done) {
      return failed(FailedPrecondition(path + " shrank while it was being archived"));
    }
    if (piece + 1 >= limits.max_pieces) {
      return failed(FailedPrecondition(path + " keeps growing (" + std::to_string(st.st_size) +
                                       " bytes now)"));
    }
    target = st.st_size;  // written while we uploaded: archive that too before truncating
  }
  // Only bytes written between the fstat above and this call are lost.
  if (::ftruncate(fd, 0) != 0) {
    return failed(Internal(Errno("cannot truncate " + path)));
  }
  out += "truncated " + path + "\n";
  LogInfo("log.archive_truncate: archived and truncated " + path + " (" + std::to_string(done) +
          " bytes)");
  return out;
}

Result<Millis> ParseAge(std::string_view text) {
  if (!text.empty() && text.back() == 'd') {
    const std::string_view digits = text.substr(0, text.size() - 1);
    if (digits.empty() || digits.size() > 5 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos) {
      return InvalidArgument("not an age: '" + std::string(text) + "' (use e.g. 7d, 12h, 90m)");
    }
    return Millis(std::stoll(std::string(digits)) * 86'400'000);
  }
  return ParseDuration(text);
}

namespace {

class Cleaner {
 public:
  Cleaner(dev_t dev, WallTime cutoff, const CleanupLimits& limits, CleanupReport* report)
      : dev_(dev), cutoff_(cutoff), limits_(limits), report_(report) {}

  // Takes ownership of dirfd.
  void Walk(int dirfd, const std::string& where, int depth) {
    DIR* d = ::fdopendir(dirfd);
    if (d == nullptr) {
      ::close(dirfd);
      Problem(Errno("cannot read " + where));
      return;
    }
    // Names first, then act: unlinking while readdir runs is allowed but makes order murky.
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") {
        continue;
      }
      if (++seen_ > limits_.max_entries) {
        report_->stopped_early = true;
        break;
      }
      names.push_back(name);
    }
    for (const auto& name : names) {
      const std::string path = where + "/" + name;
      struct stat st {};
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) {
          Problem(Errno("cannot stat " + path));
        }
        continue;
      }
      if (st.st_dev != dev_) {
        continue;  // a mount point (or a file on another file system): never crossed
      }
      if (S_ISDIR(st.st_mode)) {
        if (depth + 1 > limits_.max_depth) {
          Problem(path + " is nested too deep; not examined");
          continue;
        }
        const int sub =
            ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
          Problem(Errno("cannot open " + path));
          continue;
        }
        struct stat again {};
        if (::fstat(sub, &again) != 0 || again.st_dev != st.st_dev || again.st_ino != st.st_ino) {
          ::close(sub);  // swapped between fstatat and openat
          Problem(path + " changed while it was examined");
          continue;
        }
        Walk(sub, path, depth + 1);
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        continue;  // symlinks, sockets, FIFOs, devices: never touched
      }
      if (st.st_nlink != 1) {
        Problem(path + " has " + std::to_string(st.st_nlink) +
                " hard links; not removed (only files with exactly one link are)");
        continue;
      }
      const WallTime mtime = std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec);
      if (mtime >= cutoff_) {
        continue;
      }
      // unlinkat never follows a symlink: if one was swapped in, the link itself goes.
      if (::unlinkat(dirfd, name.c_str(), 0) != 0) {
        Problem(Errno("cannot remove " + path));
        continue;
      }
      ++report_->files;
      report_->bytes += st.st_size;
      if (report_->removed.size() < limits_.list_cap) {
        report_->removed.push_back(path);
      }
    }
    ::closedir(d);  // closes dirfd
  }

 private:
  void Problem(std::string what) {
    if (report_->problems.size() < limits_.list_cap) {
      report_->problems.push_back(std::move(what));
    }
  }

  const dev_t dev_;
  const WallTime cutoff_;
  const CleanupLimits& limits_;
  CleanupReport* report_;
  size_t seen_ = 0;
};

}  // namespace

Result<CleanupReport> CleanupOldFiles(const std::string& dir, WallTime cutoff,
                                      const CleanupLimits& limits) {
  host::SafeOpenOptions o;
  o.kind = host::SafeKind::kDirectory;
  ASSIGN_OR_RETURN(host::SafeFile f, host::OpenBeneath(dir, dir, o));
  return CleanupOldFiles(f.fd.release(), dir, cutoff, limits);
}

Result<CleanupReport> CleanupOldFiles(int fd, const std::string& dir, WallTime cutoff,
                                      const CleanupLimits& limits) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const Error e = Internal(Errno("cannot stat " + dir));
    ::close(fd);
    return e;
  }
  CleanupReport report;
  Cleaner(st.st_dev, cutoff, limits, &report).Walk(fd, dir == "/" ? "" : dir, 0);
  LogInfo("disk.cleanup: removed " + std::to_string(report.files) + " files (" +
          std::to_string(report.bytes) + " bytes) under " + dir);
  return report;
}

std::string FormatCleanupReport(const std::string& dir, std::string_view age,
                                const CleanupReport& report, size_t list_cap) {
  std::string out = "removed " + std::to_string(report.files) + " files (" +
                    std::to_string(report.bytes) + " bytes) under " + dir + " older than " +
                    std::string(age) + "\n";
  for (const auto& p : report.removed) {
    out += "removed " + p + "\n";
  }
  if (report.files > static_cast<int64_t>(report.removed.size())) {
    out += "(" + std::to_string(report.files - static_cast<int64_t>(report.removed.size())) +
           " more not listed; at most " + std::to_string(list_cap) + " are)\n";
  }
  for (const auto& p : report.problems) {
    out += "skipped: " + p + "\n";
  }
  if (report.stopped_early) {
    out += "stopped early: too many entries; run it again to continue\n";
  }
  return out;
}

}  // namespace medic::agent
