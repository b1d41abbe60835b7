#pragma once

// The server's log archive: agents stream a file in chunks (log.archive_truncate), the server
// keeps it under DIR/HOST/<UTC time>-<basename> once the SHA-256 of what it stored equals the
// agent's. docs/PROTOCOL.md ("Archive") describes the three agent routes on top of this.
//
// Layout: DIR/.partial/ID holds an upload in progress; DIR/HOST/NAME the archived files. An
// upload lives in memory only: it expires `upload_ttl` after its last chunk (its partial file is
// deleted), and a server restart forgets every upload (Init deletes leftover partial files).
//
// Limits (ArchiveOptions): announced bytes are reserved across uploads against the file system's
// free space minus a floor kept for the database, a quota per host, and a retention (age, total
// size). The SHA-256 is computed while the bytes arrive, so Finish does no long work.
//
// Backends (ArchiveOptions::backend): `dir` keeps the files in DIR/HOST/NAME; `s3` stages each
// file there, uploads it to the bucket as PREFIX + HOST/NAME (S3Uploader: Content-MD5 on every
// PUT, the ETag checked), answers Finish only once the bucket confirmed the bytes, and then
// deletes the staged copy; a failed upload deletes it too and Finish fails (the agent keeps its
// file). Retention (Prune) is the dir backend's; a bucket's is its lifecycle rule.
//
// Thread-safe: uploads may proceed concurrently; one upload's calls are serialized.

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "server/archive/s3_client.h"
#include "server/archive/s3_config.h"

namespace medic::server {

struct ArchiveOptions {
  Millis upload_ttl{10 * 60 * 1000};           // an upload without a chunk this long is dropped
  int64_t max_file_bytes = int64_t{16} << 30;  // largest announced size accepted
  size_t max_uploads = 16;                     // uploads in progress at once
  // The floor kept free on the archive's file system (which the database usually shares): Start
  // refuses an upload whose announced size, on top of what the uploads in progress may still
  // write, would leave less than this free.
  uint64_t min_free_bytes = uint64_t{512} << 20;
  // What one host may keep in the archive, its uploads in progress counted at their announced
  // size. 0: no quota.
  uint64_t host_quota_bytes = uint64_t{10} << 30;
  // Retention, applied by Prune (the server's tick): files older than max_age are deleted, then
  // the oldest while all files together exceed max_total_bytes. 0: no limit.
  Millis max_age{Millis(30LL * 24 * 3600 * 1000)};
  uint64_t max_total_bytes = 0;
  // `archive.backend`: where archived files go (dir: DIR/HOST/NAME; s3: the `archive.s3` bucket).
  enum class Backend { kDir, kS3 };
  Backend backend = Backend::kDir;
  S3Config s3;  // with backend kS3: completed (CompleteS3Config)
};

struct ArchivedFile {
  std::string host;
  std::string name;      // <UTC time>-<basename>
  std::string location;  // DIR/HOST/NAME on the server, or s3://BUCKET/KEY
  int64_t bytes = 0;
  std::string sha256;  // lowercase hex; known for files archived since this server started
  WallTime archived_at{};
};

// True for a basename the archive stores: 1-200 bytes, no '/', no "..", not ".", no control
// characters.
bool IsValidArchiveBasename(std::string_view name);

class Archive {
 public:
  // `s3_client` makes the s3 backend's HTTP clients (default: libcurl); tests pass their own.
  Archive(std::string dir, const Clock& clock, ArchiveOptions options = {},
          S3Uploader::ClientFactory s3_client = nullptr);
  ~Archive();
  Archive(const Archive&) = delete;
  Archive& operator=(const Archive&) = delete;

  // Creates DIR and DIR/.partial (mode 0700) and deletes partial files left by a previous run.
  Status Init();

  // Announces an upload of at most `size` bytes of `path` (the agent's absolute path; only its
  // basename is kept) from `host`. Returns the upload id.
  Result<std::string> Start(const std::string& host, const std::string& path, int64_t size);
  // Appends bytes at `offset`, which must equal the bytes received so far (FailedPrecondition
  // otherwise, naming the expected offset); the total may not exceed the announced size
  // (ResourceExhausted). Returns the bytes received so far.
  Result<int64_t> Append(const std::string& id, int64_t offset, std::string_view bytes);
  // Ends an upload: fsyncs the stored file and compares the SHA-256 and length of the bytes this
  // process wrote into it (hashed as Append wrote them; nothing is read back) with the
  // agent's. On a match the file moves to DIR/HOST/NAME (the directory fsynced too); on a
  // mismatch it is deleted and FailedPrecondition says why. With the s3 backend the file then
  // goes to the bucket (this call lasts as long as the upload) and its local copy is deleted;
  // Unavailable, naming the store's answer, when the bucket did not confirm it. The upload is
  // over either way.
  Result<ArchivedFile> Finish(const std::string& id, const std::string& sha256, int64_t bytes);

  // The announced size of upload `id`, asked before a chunk is read (the chunk at offset N may be
  // at most size - N bytes): NotFound when it is not in progress, PermissionDenied when `host`
  // did not start it.
  Result<int64_t> AnnouncedSize(const std::string& id, const std::string& host) const;

  // The host that started upload `id`, while it is in progress; nullopt otherwise.
  std::optional<std::string> UploaderOf(const std::string& id) const;

  // Drops uploads idle longer than upload_ttl. Start, Append and Finish call it too.
  void ExpireIdle();
  // Applies the retention (max_age, max_total_bytes); returns how many files it deleted. Does
  // nothing with the s3 backend (the bucket's lifecycle rule is its retention).
  int Prune();
  // Bytes the uploads in progress may still write (announced minus received).
  uint64_t reserved_bytes() const;
  size_t uploads_in_progress() const;

  // Every archived file, newest first, at most `limit`. sha256 is filled for files finished by
  // this process. With the s3 backend: the objects this process uploaded (the bucket has all).
  Result<std::vector<ArchivedFile>> List(size_t limit) const;

  // The archived file of `host` at `location` (as Finish returned it: DIR/HOST/NAME), for a
  // restore: NotFound unless it is a regular file directly in `host`'s own directory of this
  // (dir backend) archive. Its sha256 is the one recorded when it was stored, else computed now
  // from the file (the server's own copy).
  Result<ArchivedFile> Find(const std::string& host, const std::string& location) const;
  // Up to `length` bytes at `offset` of `host`'s archived file `name` (fewer at its end).
  // NotFound as Find; InvalidArgument for an offset past its end.
  Result<std::string> Read(const std::string& host, const std::string& name, int64_t offset,
                           size_t length) const;

  const std::string& dir() const { return dir_; }

 private:
  struct Upload;
  std::shared_ptr<Upload> Find(const std::string& id);
  void Drop(const std::string& id);
  // Every archived file (unsorted), with its size and mtime.
  std::vector<ArchivedFile> Scan(const std::string& only_host = "") const;
  // Takes `key` (HOST/NAME) for an upload to the bucket; false when this process took it before.
  // Beyond 1000 names, forgets those of other seconds than `stamp` (the <UTC time> of names).
  bool ReserveS3Name(const std::string& key, const std::string& stamp);

  const std::string dir_;
  const Clock& clock_;
  const ArchiveOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Upload>> uploads_;  // Guarded by mu_.
  std::map<std::string, std::string> sha_of_;               // location -> sha256. Guarded by mu_.
  std::unique_ptr<S3Uploader> s3_;  // with the s3 backend
  std::vector<ArchivedFile> uploaded_;  // to the bucket by this process, at most 1000. Guarded by mu_.
  std::set<std::string> s3_names_;  // HOST/NAME put in the bucket or staged. Guarded by mu_.
};

}  // namespace medic::server
