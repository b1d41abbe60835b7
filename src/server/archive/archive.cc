#include "server/archive/archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <future>

#include "core/files.h"
#include "core/log.h"
#include "core/sha256.h"
#include "protocol/wire.h"

namespace medic::server {

namespace {

// A chunk at least this large is hashed on a helper thread while it is written (Append).
constexpr size_t kHashApartBytes = 1 << 20;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// 20261130T001131Z
std::string CompactUtc(WallTime t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

Status FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Internal(Errno("cannot open " + dir));
  }
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) {
    errno = saved;
    return Internal(Errno("cannot fsync " + dir));
  }
  return OkStatus();
}

bool IsValidArchiveHost(const std::string& host) {
  return protocol::IsValidHostName(host) && host != "." && host != ".." && host[0] != '.';
}

std::string LowerHex(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

}  // namespace

bool Archive::ReserveS3Name(const std::string& key, const std::string& stamp) {
  std::lock_guard<std::mutex> lock(mu_);
  if (s3_names_.size() >= 1000) {
    // Only this second's names (HOST/<stamp>…) can still collide.
    for (auto it = s3_names_.begin(); it != s3_names_.end();) {
      const size_t slash = it->find('/');
      it = it->compare(slash + 1, stamp.size(), stamp) == 0 ? std::next(it)
                                                            : s3_names_.erase(it);
    }
  }
  return s3_names_.insert(key).second;
}

bool IsValidArchiveBasename(std::string_view name) {
  if (name.empty() || name.size() > 200 || name == "." ||
      name.find("..") != std::string_view::npos || name.find('/') != std::string_view::npos) {
    return false;
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return false;
    }
  }
  return true;
}

struct Archive::Upload {
  std::mutex mu;  // serializes this upload's calls
  std::string id;
  std::string host;
  std::string basename;
  std::string partial;         // DIR/.partial/ID
  int64_t size = 0;            // announced maximum
  int fd = -1;                 // Guarded by mu.
  Sha256 sha;                  // of the bytes received. Guarded by mu.
  std::atomic<int64_t> received{0};  // written under mu; read by reserved_bytes without it
  bool done = false;           // finished, failed or expired. Guarded by mu.
  SteadyTime last_activity{};  // Guarded by Archive::mu_.

  // Closes and deletes the partial file. REQUIRES: mu held.
  void Discard() {
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
    ::unlink(partial.c_str());
    done = true;
  }
};

Archive::Archive(std::string dir, const Clock& clock, ArchiveOptions options,
                 S3Uploader::ClientFactory s3_client)
    : dir_(std::move(dir)), clock_(clock), options_(std::move(options)) {
  if (options_.backend == ArchiveOptions::Backend::kS3) {
    s3_ = std::make_unique<S3Uploader>(options_.s3, clock_, std::move(s3_client));
  }
}

Archive::~Archive() {
  std::map<std::string, std::shared_ptr<Upload>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(uploads_);
  }
  for (auto& [id, u] : left) {
    std::lock_guard<std::mutex> ul(u->mu);
    u->Discard();
  }
}

Status Archive::Init() {
  RETURN_IF_ERROR(MakeDirs(dir_, 0700));
  const std::string partial = dir_ + "/.partial";
  RETURN_IF_ERROR(MakeDirs(partial, 0700));
  if (DIR* d = ::opendir(partial.c_str())) {
    int removed = 0;
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != ".." && ::unlink((partial + "/" + name).c_str()) == 0) {
        ++removed;
      }
    }
    ::closedir(d);
    if (removed > 0) {
      LogInfo("archive: removed " + std::to_string(removed) + " unfinished upload(s)");
    }
  }
  return OkStatus();
}

std::shared_ptr<Archive::Upload> Archive::Find(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = uploads_.find(id);
  if (it == uploads_.end()) {
    return nullptr;
  }
  it->second->last_activity = clock_.SteadyNow();
  return it->second;
}

void Archive::Drop(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  uploads_.erase(id);
}

std::optional<std::string> Archive::UploaderOf(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = uploads_.find(id);
  if (it == uploads_.end()) {
    return std::nullopt;
  }
  return it->second->host;
}

Result<int64_t> Archive::AnnouncedSize(const std::string& id, const std::string& host) const {
  std::shared_ptr<Upload> u;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = uploads_.find(id);
    if (it != uploads_.end()) {
      u = it->second;
    }
  }
  if (u == nullptr) {
    return NotFound("no upload " + id + " (finished, failed or expired)");
  }
  if (u->host != host) {
    return PermissionDenied("upload " + id + " belongs to another host");
  }
  return u->size;
}

size_t Archive::uploads_in_progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  return uploads_.size();
}

void Archive::ExpireIdle() {
  std::vector<std::shared_ptr<Upload>> expired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const SteadyTime now = clock_.SteadyNow();
    for (auto it = uploads_.begin(); it != uploads_.end();) {
      if (now - it->second->last_activity >= options_.upload_ttl) {
        expired.push_back(it->second);
        it = uploads_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& u : expired) {
    std::lock_guard<std::mutex> ul(u->mu);
    if (!u->done) {
      LogWarn("archive: upload " + u->id + " of " + u->host + ":" + u->basename +
              " expired after " + std::to_string(u->received) + " bytes");
      u->Discard();
    }
  }
}

Result<std::string> Archive::Start(const std::string& host, const std::string& path, int64_t size) {
  ExpireIdle();
  if (!IsValidArchiveHost(host)) {
    return InvalidArgument("invalid host name '" + host + "'");
  }
  if (path.empty() || path[0] != '/' || path.back() == '/') {
    return InvalidArgument("path must be the absolute path of a file");
  }
  const std::string basename = path.substr(path.rfind('/') + 1);
  if (!IsValidArchiveBasename(basename)) {
    return InvalidArgument("file name '" + basename + "' cannot be archived");
  }
  if (size < 0 || size > options_.max_file_bytes) {
    return ResourceExhausted("size must be 0.." + std::to_string(options_.max_file_bytes) +
                             " bytes");
  }
  // What the host keeps already (a directory scan: uploads are rare).
  uint64_t kept = 0;
  if (options_.host_quota_bytes > 0) {
    for (const auto& f : Scan(host)) {
      kept += static_cast<uint64_t>(f.bytes);
    }
  }
  struct statvfs vfs {};
  if (::statvfs(dir_.c_str(), &vfs) != 0) {
    return Internal(Errno("cannot statvfs " + dir_));
  }
  const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  auto u = std::make_shared<Upload>();
  u->id = RandomHex(16);
  u->host = host;
  u->basename = basename;
  u->size = size;
  u->partial = dir_ + "/.partial/" + u->id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (uploads_.size() >= options_.max_uploads) {
      return ResourceExhausted("too many uploads in progress (" + std::to_string(uploads_.size()) +
                               ")");
    }
    // Reserved: what every upload in progress may still write; the host's: their whole size.
    uint64_t reserved = 0;
    uint64_t host_pending = 0;
    for (const auto& [id, other] : uploads_) {
      reserved += static_cast<uint64_t>(other->size - other->received.load());
      if (other->host == host) {
        host_pending += static_cast<uint64_t>(other->size);
      }
    }
    const uint64_t need = reserved + static_cast<uint64_t>(size) + options_.min_free_bytes;
    if (free_bytes < need) {
      return ResourceExhausted(
          "the archive's file system has " + std::to_string(free_bytes) + " bytes free; " +
          std::to_string(reserved) + " are reserved for uploads in progress and " +
          std::to_string(options_.min_free_bytes) +
          " are kept free for the database, so an upload of " + std::to_string(size) +
          " bytes does not fit");
    }
    if (options_.host_quota_bytes > 0 &&
        kept + host_pending + static_cast<uint64_t>(size) > options_.host_quota_bytes) {
      return ResourceExhausted("host " + host + " keeps " + std::to_string(kept) +
                               " bytes in the archive and is uploading " +
                               std::to_string(host_pending) + "; " + std::to_string(size) +
                               " more would exceed its quota of " +
                               std::to_string(options_.host_quota_bytes) + " bytes");
    }
    u->fd = ::open(u->partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (u->fd < 0) {
      return Internal(Errno("cannot create " + u->partial));
    }
    u->last_activity = clock_.SteadyNow();
    uploads_[u->id] = u;
  }
  LogInfo("archive: upload " + u->id + " of " + host + ":" + path + " (" + std::to_string(size) +
          " bytes) started");
  return u->id;
}

Result<int64_t> Archive::Append(const std::string& id, int64_t offset, std::string_view bytes) {
  ExpireIdle();
  auto u = Find(id);
  if (u == nullptr) {
    return NotFound("no upload " + id + " (finished, failed or expired)");
  }
  std::lock_guard<std::mutex> ul(u->mu);
  if (u->done) {
    return NotFound("no upload " + id + " (finished, failed or expired)");
  }
  if (offset != u->received) {
    return FailedPrecondition("offset " + std::to_string(offset) + " is wrong: " +
                              std::to_string(u->received) + " bytes received so far");
  }
  if (static_cast<int64_t>(bytes.size()) > u->size - u->received) {
    return ResourceExhausted("upload " + id + " would exceed its announced size of " +
                             std::to_string(u->size) + " bytes");
  }
  // The hash of a large chunk runs on a helper thread while the chunk is written: Finish
  // answers from it (nothing is read back), so it must cover exactly what write() stored — an
  // upload whose write fails is discarded below, hash and all.
  std::future<void> hashed;
  if (bytes.size() >= kHashApartBytes) {
    hashed = std::async(std::launch::async, [&u, bytes] { u->sha.Update(bytes); });
  } else {
    u->sha.Update(bytes);
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(u->fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      const Error e = n < 0 && errno == ENOSPC
                          ? ResourceExhausted(Errno("archive: cannot write " + u->partial))
                          : Internal(Errno("archive: cannot write " + u->partial));
      if (hashed.valid()) {
        hashed.wait();
      }
      u->Discard();
      Drop(id);
      LogWarn(e.message);
      return e;
    }
    done += static_cast<size_t>(n);
  }
  if (hashed.valid()) {
    hashed.wait();
  }
  u->received += static_cast<int64_t>(bytes.size());
  return u->received.load();
}

Result<ArchivedFile> Archive::Finish(const std::string& id, const std::string& sha256,
                                     int64_t bytes) {
  ExpireIdle();
  auto u = Find(id);
  if (u == nullptr) {
    return NotFound("no upload " + id + " (finished, failed or expired)");
  }
  std::lock_guard<std::mutex> ul(u->mu);
  if (u->done) {
    return NotFound("no upload " + id + " (finished, failed or expired)");
  }
  auto fail = [&](Error e) {
    u->Discard();
    Drop(id);
    LogWarn("archive: upload " + id + " of " + u->host + ":" + u->basename +
            " failed: " + e.message);
    return e;
  };
  // The file's time is the archive's clock: the retention (Prune) reads it back.
  const WallTime now = clock_.Now();
  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(
      now.time_since_epoch());
  const timespec times[2] = {
      {static_cast<time_t>(since_epoch.count() / 1'000'000'000),
       static_cast<long>(since_epoch.count() % 1'000'000'000)},
      {static_cast<time_t>(since_epoch.count() / 1'000'000'000),
       static_cast<long>(since_epoch.count() % 1'000'000'000)}};
  if (::futimens(u->fd, times) != 0 || ::fsync(u->fd) != 0) {
    return fail(Internal(Errno("cannot fsync " + u->partial)));
  }
  ::close(u->fd);
  u->fd = -1;
  // Hashed as the bytes arrived: written is what was hashed (write() either wrote all of a
  // chunk or the upload failed).
  const std::string stored_sha = u->sha.HexDigest();
  const int64_t stored_bytes = u->received.load();
  const std::string want = LowerHex(sha256);
  if (stored_bytes != bytes || stored_sha != want) {
    return fail(FailedPrecondition("checksum mismatch: the server stored " +
                                   std::to_string(stored_bytes) + " bytes with sha256 " +
                                   stored_sha + ", the agent sent " + std::to_string(bytes) +
                                   " bytes with sha256 " + want + "; the copy was deleted"));
  }
  const std::string host_dir = dir_ + "/" + u->host;
  const bool new_dir = !PathExists(host_dir);
  if (Status s = MakeDirs(host_dir, 0700); !s) {
    return fail(s.error());
  }
  const std::string stamp = CompactUtc(now);
  std::string name;
  for (int n = 0;; ++n) {
    name = stamp + (n == 0 ? "" : "-" + std::to_string(n)) + "-" + u->basename;
    // An object this process put in the bucket under that name is gone from the staging
    // directory: the name stays taken (a PUT would replace it).
    if (s3_ != nullptr && !ReserveS3Name(u->host + "/" + name, stamp)) {
      if (n >= 1000) {
        return fail(Internal("no free name for " + u->basename + " in " + host_dir));
      }
      continue;
    }
    // link() never replaces an existing file, unlike rename().
    if (::link(u->partial.c_str(), (host_dir + "/" + name).c_str()) == 0) {
      break;
    }
    if (errno != EEXIST || n >= 1000) {
      return fail(Internal(Errno("cannot store " + host_dir + "/" + name)));
    }
  }
  ::unlink(u->partial.c_str());
  u->done = true;
  Drop(id);
  // (The s3 backend's copy is staged only: the bucket is where it must last.)
  Status synced = s3_ != nullptr ? OkStatus() : FsyncDir(host_dir);
  if (synced && new_dir) {
    synced = FsyncDir(dir_);
  }
  if (!synced) {
    return synced.error();  // the file is there; its directory entry may not survive a crash
  }
  ArchivedFile f;
  f.host = u->host;
  f.name = name;
  f.location = host_dir + "/" + name;
  f.bytes = stored_bytes;
  f.sha256 = stored_sha;
  f.archived_at = now;
  if (s3_ != nullptr) {
    // The staged copy goes whatever the bucket answers: confirmed, it is there; refused, the
    // agent keeps its file (it truncates only after a successful finish).
    auto where = s3_->Upload(S3ObjectKey(options_.s3.prefix, u->host, name), f.location);
    ::unlink(f.location.c_str());
    if (!where) {
      LogWarn("archive: upload " + id + " of " + u->host + ":" + u->basename + ": " +
              where.error().message);
      return Error{where.error().code == ErrorCode::kInternal ? ErrorCode::kInternal
                                                              : ErrorCode::kUnavailable,
                   where.error().message};
    }
    f.location = *where;
    std::lock_guard<std::mutex> lock(mu_);
    sha_of_[f.location] = f.sha256;
    uploaded_.push_back(f);
    if (uploaded_.size() > 1000) {
      sha_of_.erase(uploaded_.front().location);
      uploaded_.erase(uploaded_.begin());
    }
    return f;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    sha_of_[f.location] = f.sha256;
  }
  LogInfo("archive: stored " + f.location + " (" + std::to_string(f.bytes) + " bytes, sha256 " +
          f.sha256 + ")");
  return f;
}

std::vector<ArchivedFile> Archive::Scan(const std::string& only_host) const {
  std::vector<ArchivedFile> out;
  std::vector<std::string> hosts;
  if (!only_host.empty()) {
    hosts.push_back(only_host);
  } else if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (!name.empty() && name[0] != '.') {
        hosts.push_back(name);
      }
    }
    ::closedir(d);
  }
  for (const auto& host : hosts) {
    const std::string host_dir = dir_ + "/" + host;
    DIR* hd = ::opendir(host_dir.c_str());
    if (hd == nullptr) {
      continue;
    }
    while (dirent* e = ::readdir(hd)) {
      const std::string name = e->d_name;
      struct stat st {};
      if (name.empty() || name[0] == '.' || ::lstat((host_dir + "/" + name).c_str(), &st) != 0 ||
          !S_ISREG(st.st_mode)) {
        continue;
      }
      ArchivedFile f;
      f.host = host;
      f.name = name;
      f.location = host_dir + "/" + name;
      f.bytes = st.st_size;
      f.archived_at = WallTime(std::chrono::duration_cast<WallTime::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
      out.push_back(std::move(f));
    }
    ::closedir(hd);
  }
  return out;
}

uint64_t Archive::reserved_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t reserved = 0;
  for (const auto& [id, u] : uploads_) {
    reserved += static_cast<uint64_t>(u->size - u->received.load());
  }
  return reserved;
}

int Archive::Prune() {
  if (s3_ != nullptr || (options_.max_age.count() <= 0 && options_.max_total_bytes == 0)) {
    return 0;
  }
  std::vector<ArchivedFile> files = Scan();
  // Oldest first: by modification time (the time it was archived), then name.
  std::sort(files.begin(), files.end(), [](const ArchivedFile& a, const ArchivedFile& b) {
    return a.archived_at != b.archived_at ? a.archived_at < b.archived_at
                                          : a.location < b.location;
  });
  uint64_t total = 0;
  for (const auto& f : files) {
    total += static_cast<uint64_t>(f.bytes);
  }
  const WallTime now = clock_.Now();
  int deleted = 0;
  for (const auto& f : files) {
    const bool too_old = options_.max_age.count() > 0 && now - f.archived_at > options_.max_age;
    const bool too_much = options_.max_total_bytes > 0 && total > options_.max_total_bytes;
    if (!too_old && !too_much) {
      break;  // every later file is newer, and the total fits
    }
    if (::unlink(f.location.c_str()) != 0) {
      LogWarn(Errno("archive: cannot delete " + f.location));
      continue;
    }
    total -= static_cast<uint64_t>(f.bytes);
    ++deleted;
    LogInfo("archive: deleted " + f.location + " (" + std::to_string(f.bytes) + " bytes, " +
            (too_old ? "older than the retention" : "over the archive's total size") + ")");
    std::lock_guard<std::mutex> lock(mu_);
    sha_of_.erase(f.location);
  }
  return deleted;
}

Result<ArchivedFile> Archive::Find(const std::string& host, const std::string& location) const {
  const std::string host_dir = dir_ + "/" + host;
  const std::string name =
      location.rfind(host_dir + "/", 0) == 0 ? location.substr(host_dir.size() + 1) : "";
  if (s3_ != nullptr || host.empty() || host[0] == '.' || host.find('/') != std::string::npos ||
      name.empty() || name[0] == '.' || !IsValidArchiveBasename(name)) {
    return NotFound("'" + location + "' is no archived file of host " + host + " in " + dir_ +
                    (s3_ != nullptr ? " (restores come from the dir backend only)" : ""));
  }
  struct stat st {};
  if (::lstat(location.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return NotFound("the archived file " + location + " is gone (retention?)");
  }
  ArchivedFile f;
  f.host = host;
  f.name = name;
  f.location = location;
  f.bytes = st.st_size;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = sha_of_.find(location); it != sha_of_.end()) {
      f.sha256 = it->second;
    }
  }
  if (f.sha256.empty()) {
    // Archived before this server started: hashed from the server's own copy, in chunks.
    const int fd = ::open(location.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      return NotFound(Errno("cannot open " + location));
    }
    Sha256 hash;
    std::string buf(1 << 20, '\0');
    ssize_t n = 0;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) {
        hash.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
      }
    }
    ::close(fd);
    if (n < 0) {
      return Internal("cannot read " + location);
    }
    f.sha256 = hash.HexDigest();
  }
  return f;
}

Result<std::string> Archive::Read(const std::string& host, const std::string& name,
                                  int64_t offset, size_t length) const {
  ASSIGN_OR_RETURN(ArchivedFile f, Find(host, dir_ + "/" + host + "/" + name));
  if (offset < 0 || offset > f.bytes) {
    return InvalidArgument("offset " + std::to_string(offset) + " is past the end of " + name +
                           " (" + std::to_string(f.bytes) + " bytes)");
  }
  const int fd = ::open(f.location.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return NotFound(Errno("cannot open " + f.location));
  }
  std::string out(std::min<int64_t>(static_cast<int64_t>(length), f.bytes - offset), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + got, out.size() - got, offset + got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

Result<std::vector<ArchivedFile>> Archive::List(size_t limit) const {
  if (!PathExists(dir_)) {
    return std::vector<ArchivedFile>();
  }
  std::vector<ArchivedFile> out = Scan();
  if (s3_ != nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    out = uploaded_;  // the local directory holds only files being uploaded
  }
  std::sort(out.begin(), out.end(), [](const ArchivedFile& a, const ArchivedFile& b) {
    return a.name != b.name ? a.name > b.name : a.host < b.host;  // names start with the time
  });
  if (out.size() > limit) {
    out.resize(limit);
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& f : out) {
    if (auto it = sha_of_.find(f.location); it != sha_of_.end()) {
      f.sha256 = it->second;
    }
  }
  return out;
}

}  // namespace medic::server
