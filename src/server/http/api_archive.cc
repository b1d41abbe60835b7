// The archive routes (docs/PROTOCOL.md, "Archive"): agents upload a log file in chunks before
// truncating it (log.archive_truncate); operators list what was archived.

#include <algorithm>

#include "server/archive/archive.h"
#include "server/http/api_util.h"
#include "server/http/routes.h"

namespace medic::server {

namespace {

struct StartRequest {
  std::string host;
  std::string path;
  int64_t size = 0;
};

Result<StartRequest> ParseStart(const ApiRequest& req) {
  ASSIGN_OR_RETURN(Json body, ParseBody(req, false));
  StartRequest r;
  ASSIGN_OR_RETURN(r.host, RequireString(body, "host"));
  if (!protocol::IsValidHostName(r.host)) {
    return InvalidArgument("invalid host name '" + r.host + "'");
  }
  ASSIGN_OR_RETURN(r.path, RequireString(body, "path"));
  ASSIGN_OR_RETURN(auto size, OptionalInt(body, "size"));
  if (!size) {
    return InvalidArgument("field 'size' (bytes, an integer) is required");
  }
  r.size = *size;
  return r;
}

struct FinishRequest {
  std::string sha256;
  int64_t bytes = 0;
};

Result<FinishRequest> ParseFinish(const ApiRequest& req) {
  ASSIGN_OR_RETURN(Json body, ParseBody(req, false));
  FinishRequest r;
  ASSIGN_OR_RETURN(r.sha256, RequireString(body, "sha256"));
  if (r.sha256.size() != 64 ||
      r.sha256.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return InvalidArgument("field 'sha256' must be 64 hex digits");
  }
  ASSIGN_OR_RETURN(auto bytes, OptionalInt(body, "bytes"));
  if (!bytes || *bytes < 0) {
    return InvalidArgument("field 'bytes' (a non-negative integer) is required");
  }
  r.bytes = *bytes;
  return r;
}

Result<int64_t> ParseOffset(const ApiRequest& req) {
  auto it = req.query.find("offset");
  if (it == req.query.end()) {
    return InvalidArgument("query parameter 'offset' is required");
  }
  const std::string& s = it->second;
  if (s.empty() || s.size() > 15 || s.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgument("offset must be a non-negative integer");
  }
  return std::stoll(s);
}

// The largest chunk (the agent sends 4 MiB; agents before issue 18 sent 512 KiB): the only route
// with a body over 1 MiB, and the only one with the upload deadline. A request gets it only
// when authenticated as the host that started the upload, with a valid offset, and never more
// than the announced size (reserved within the host's quota at the start) leaves after that
// offset: decided on the headers, before any of the body is read (ChunkBodyLimit). Whether the
// offset is the right one is Append's to say (409), once the chunk is read.
constexpr size_t kArchiveChunkMaxBytes = 8 * 1024 * 1024;
// What one GET of a restore answers at most.
constexpr size_t kRestoreChunkBytes = 4 * 1024 * 1024;

// Route::body_limit_for of PUT /agent/v1/archive/{id}.
Result<size_t> ChunkBodyLimit(const Archive& archive, const ApiRequest& req) {
  auto it = req.path_params.find("id");
  if (it == req.path_params.end()) {
    return NotFound("no upload id");
  }
  ASSIGN_OR_RETURN(int64_t size, archive.AnnouncedSize(it->second, req.principal));
  ASSIGN_OR_RETURN(int64_t offset, ParseOffset(req));
  return static_cast<size_t>(
      std::clamp<int64_t>(size - offset, 0, static_cast<int64_t>(kArchiveChunkMaxBytes)));
}

// An upload in progress is only ever continued by the host that started it.
Status CheckUploader(const Archive& archive, const ApiRequest& req) {
  auto it = req.path_params.find("id");
  if (it == req.path_params.end()) {
    return OkStatus();
  }
  if (auto host = archive.UploaderOf(it->second); host && *host != req.principal) {
    return PermissionDenied("upload " + it->second + " belongs to another host");
  }
  return OkStatus();
}

Json ArchivedFileToJson(const ArchivedFile& f) {
  Json j{{"host", f.host},
         {"name", f.name},
         {"location", f.location},
         {"bytes", f.bytes},
         {"archived_at", FormatRfc3339(f.archived_at)}};
  if (!f.sha256.empty()) {
    j["sha256"] = f.sha256;
  }
  return j;
}

}  // namespace

void AddArchiveRoutes(Router& router, Archive& archive, const CommandQueue& commands) {
  router.Add({"POST", "/agent/v1/archive", Role::kAgent,
              "start uploading a file to the archive ({host, path, size}; host: the caller's "
              "own; only for a log.archive_truncate of that path it was sent and has not "
              "answered) -> {upload_id}",
              [&archive, &commands](ApiRequest& req, Responder respond) {
                auto r = ParseStart(req);
                if (!r) {
                  return respond(ErrorResponse(r.error()));
                }
                if (r->host != req.principal) {
                  return respond(ErrorResponse(
                      403, "host '" + req.principal + "' may not upload as '" + r->host + "'"));
                }
                if (!commands.AwaitsArchive(req.principal, r->path)) {
                  return respond(ErrorResponse(
                      403, "host '" + req.principal + "' was not asked to archive " + r->path +
                               " (no log.archive_truncate of that path is outstanding)"));
                }
                auto id = archive.Start(req.principal, r->path, r->size);
                if (!id) {
                  return respond(ErrorResponse(id.error()));
                }
                respond(JsonResponse(200, Json{{"upload_id", *id}}));
              }});
  router.Add({"PUT", "/agent/v1/archive/{id}", Role::kAgent,
              "append raw bytes to an upload (?offset=N, N = bytes received so far; "
              "at most 8 MiB per chunk and what the announced size leaves, refused before "
              "the body is read; the agent sends 4 MiB) -> {received}",
              [&archive](ApiRequest& req, Responder respond) {
                // The checks of the admission again, in its order (for callers without it).
                if (auto limit = ChunkBodyLimit(archive, req); !limit) {
                  return respond(ErrorResponse(limit.error()));
                }
                auto offset = ParseOffset(req);
                if (!offset) {
                  return respond(ErrorResponse(offset.error()));
                }
                auto received = archive.Append(req.path_params["id"], *offset, req.body);
                if (!received) {
                  return respond(ErrorResponse(received.error()));
                }
                respond(JsonResponse(200, Json{{"received", *received}}));
              },
              kArchiveChunkMaxBytes, /*upload=*/true,
              [&archive](const ApiRequest& req) { return ChunkBodyLimit(archive, req); }});
  router.Add(
      {"POST", "/agent/v1/archive/{id}/finish", Role::kAgent,
       "end an upload ({sha256, bytes}); 409 when the stored copy differs, 503 when the s3 "
       "backend's bucket did not confirm it "
       "-> {sha256, bytes, location}",
       [&archive](ApiRequest& req, Responder respond) {
         if (Status s = CheckUploader(archive, req); !s) {
           return respond(ErrorResponse(s.error()));
         }
         auto r = ParseFinish(req);
         if (!r) {
           return respond(ErrorResponse(r.error()));
         }
         auto f = archive.Finish(req.path_params["id"], r->sha256, r->bytes);
         if (!f) {
           return respond(ErrorResponse(f.error()));
         }
         respond(JsonResponse(
             200, Json{{"sha256", f->sha256}, {"bytes", f->bytes}, {"location", f->location}}));
       }});
  router.Add({"GET", "/agent/v1/restore/{name}", Role::kAgent,
              "bytes of the caller's own archived file NAME (?offset=N; at most 4 MiB), only "
              "while a log.restore of it is outstanding for the caller (medic undo)",
              [&archive, &commands](ApiRequest& req, Responder respond) {
                const std::string& name = req.path_params["name"];
                auto offset = ParseOffset(req);
                if (!offset) {
                  return respond(ErrorResponse(offset.error()));
                }
                if (!commands.AwaitsRestore(req.principal, name)) {
                  return respond(ErrorResponse(
                      403, "host '" + req.principal + "' was not asked to restore " + name +
                               " (no log.restore of it is outstanding)"));
                }
                auto bytes = archive.Read(req.principal, name, *offset, kRestoreChunkBytes);
                if (!bytes) {
                  return respond(ErrorResponse(bytes.error()));
                }
                ApiResponse r;
                r.status = 200;
                r.content_type = "application/octet-stream";
                r.body = std::move(*bytes);
                respond(std::move(r));
              }});
  router.Add({"GET", "/api/v1/archive", Role::kViewer,
              "archived log files, newest first (?limit=N)",
              [&archive](ApiRequest& req, Responder respond) {
                if (Status s = RequireQueryKeys(req, {"limit"}); !s) {
                  return respond(ErrorResponse(s.error()));
                }
                auto limit = ParseLimit(req, 100);
                if (!limit) {
                  return respond(ErrorResponse(limit.error()));
                }
                auto files = archive.List(static_cast<size_t>(*limit));
                if (!files) {
                  return respond(ErrorResponse(files.error()));
                }
                Json out = Json::array();
                for (const auto& f : *files) {
                  out.push_back(ArchivedFileToJson(f));
                }
                respond(JsonResponse(200, Json{{"files", std::move(out)}}));
              }});
}

}  // namespace medic::server
