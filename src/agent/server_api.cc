#include "agent/server_api.h"

#include <algorithm>
#include <cmath>

#include "agent/enrolment.h"
#include "core/files.h"
#include "core/log.h"

namespace medic::agent {

namespace {

// Maps an HTTP answer that is not a success onto an Error; the body's {"error": ...} is quoted.
Error HttpError(const std::string& what, const HttpResponse& resp) {
  std::string detail;
  if (auto j = ParseJsonObject(resp.body); j && j->contains("error") && (*j)["error"].is_string()) {
    detail = (*j)["error"].get<std::string>();
  } else {
    detail = resp.body.substr(0, 200);
  }
  const std::string msg =
      what + ": HTTP " + std::to_string(resp.status) + (detail.empty() ? "" : " " + detail);
  switch (resp.status) {
    case 401:
      return Unauthenticated(msg);
    case 403:
      return PermissionDenied(msg);
    case 404:
      return NotFound(msg);
    case 400:
    case 409:
    case 413:
    case 422:
      return InvalidArgument(msg);
    default:
      return Unavailable(msg);
  }
}

Result<HttpResponse> Expect2xx(const std::string& what, Result<HttpResponse> resp) {
  if (!resp) {
    return resp.error();
  }
  if (resp->status < 200 || resp->status > 299) {
    return HttpError(what, *resp);
  }
  return resp;
}

}  // namespace

Millis BackoffDelay(int attempt, Millis base, Millis cap, double jitter) {
  const double raw = static_cast<double>(base.count()) * std::pow(2.0, std::min(attempt, 30));
  const double capped = std::min(raw, static_cast<double>(cap.count()));
  const double j = std::clamp(jitter, 0.0, 1.0);
  return Millis(static_cast<int64_t>(capped * (0.5 + 0.5 * j)));
}

bool NeedsRegistration(const Error& e) {
  return e.code == ErrorCode::kUnauthenticated || e.code == ErrorCode::kNotFound;
}

bool ShouldFailOver(const Result<HttpResponse>& outcome) {
  return !outcome || outcome->status >= 500;
}

ServerList::ServerList(std::vector<std::string> urls) : urls_(std::move(urls)) {
  if (urls_.empty()) {
    std::abort();  // REQUIRES violated: the config always has a server
  }
}

ServerList::Entry ServerList::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Entry{current_, urls_[current_]};
}

bool ServerList::MoveFrom(size_t index, const std::string& reason) {
  std::function<void()> listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (urls_.size() < 2 || index != current_) {
      return false;
    }
    current_ = (current_ + 1) % urls_.size();
    ++moves_;
    ++unanswered_moves_;
    if (unanswered_moves_ < urls_.size()) {
      LogWarn("server " + urls_[index] + " unreachable (" + reason + "); now talking to " +
              urls_[current_]);
    } else if (unanswered_moves_ == urls_.size()) {
      LogWarn("no server answers (" + std::to_string(urls_.size()) + " URLs; last: " +
              urls_[index] + ": " + reason + "); trying each in turn with backoff, samples " +
              "wait in the buffer");
    }
    listener = listener_;
  }
  if (listener) {
    listener();
  }
  return true;
}

void ServerList::Answered(size_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  if (index != current_) {
    return;
  }
  if (unanswered_moves_ >= urls_.size()) {
    LogInfo("server " + urls_[current_] + " answers; now talking to it");
  }
  unanswered_moves_ = 0;
}

void ServerList::SetMoveListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listener_ = std::move(listener);
}

uint64_t ServerList::moves() const {
  std::lock_guard<std::mutex> lock(mu_);
  return moves_;
}

ServerApi::ServerApi(std::string server_url, std::string credential)
    : ServerApi(std::vector<std::string>{std::move(server_url)}, std::move(credential)) {}

ServerApi::ServerApi(std::vector<std::string> server_urls, std::string credential)
    : servers_(std::move(server_urls)), credential_(std::move(credential)) {}

Result<HttpResponse> ServerApi::Send(HttpClient& http, const HttpRequest& req,
                                     bool one_server) const {
  const size_t tries = one_server ? 1 : servers_.size();
  Result<HttpResponse> outcome = Unavailable("no server tried");
  for (size_t i = 0; i < tries; ++i) {
    const ServerList::Entry server = servers_.Current();
    HttpRequest attempt = req;
    attempt.url = server.url + req.url;
    outcome = http.Do(attempt);
    if (!ShouldFailOver(outcome)) {
      servers_.Answered(server.index);
      return outcome;
    }
    servers_.MoveFrom(server.index, outcome ? "HTTP " + std::to_string(outcome->status)
                                            : outcome.error().message);
  }
  return outcome;
}

void ServerApi::SetCredential(std::string credential) {
  std::lock_guard<std::mutex> lock(mu_);
  credential_ = std::move(credential);
}

bool ServerApi::has_credential() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !credential_.empty();
}

HttpRequest ServerApi::NewRequest(const std::string& method, const std::string& path) const {
  HttpRequest req;
  req.method = method;
  req.url = path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    req.headers.emplace_back("Authorization", "Bearer " + credential_);
  }
  req.headers.emplace_back("Accept", "application/json");
  if (method != "GET") {
    req.headers.emplace_back("Content-Type", "application/json");
  }
  req.timeout = Millis(5'000);
  req.connect_timeout = Millis(2'000);
  return req;
}

Result<EnrollAnswer> ServerApi::Enroll(HttpClient& http, const Json& body,
                                       const std::string& bearer) const {
  HttpRequest req;
  req.method = "POST";
  req.url = "/agent/v1/enroll";
  if (!bearer.empty()) {
    req.headers.emplace_back("Authorization", "Bearer " + bearer);
  }
  req.headers.emplace_back("Accept", "application/json");
  req.headers.emplace_back("Content-Type", "application/json");
  req.timeout = Millis(5'000);
  req.connect_timeout = Millis(2'000);
  req.body = DumpJson(body);
  ASSIGN_OR_RETURN(HttpResponse resp, Expect2xx("enrol", Send(http, req)));
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(resp.body));
  EnrollAnswer out;
  if (resp.status == 202) {
    out.pending = true;
    auto fp = j.find("fingerprint");
    if (fp != j.end() && fp->is_string()) {
      out.fingerprint = fp->get<std::string>();
    }
    return out;
  }
  ASSIGN_OR_RETURN(out.credential, RequireString(j, "credential"));
  if (out.credential.size() < 32 || out.credential.size() > 256 ||
      out.credential.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return InvalidArgument("enrol: the server sent an invalid credential");
  }
  ASSIGN_OR_RETURN(out.command_key, RequireString(j, "command_key"));
  return out;
}

Result<EnrollAnswer> ServerApi::EnrollWithCode(HttpClient& http, const std::string& name,
                                               const std::string& code) const {
  return Enroll(http, Json{{"name", name}, {"code", code}}, "");
}

Result<EnrollAnswer> ServerApi::EnrollWithBootstrap(HttpClient& http,
                                                    const std::string& bootstrap_token,
                                                    const std::string& name,
                                                    const std::string& key,
                                                    const std::string& hostname) const {
  return Enroll(http, Json{{"name", name}, {"key", key}, {"hostname", hostname}},
                bootstrap_token);
}

Result<protocol::RegisterResponse> ServerApi::Register(
    HttpClient& http, const protocol::RegisterRequest& request) const {
  HttpRequest req = NewRequest("POST", "/agent/v1/register");
  req.body = DumpJson(protocol::ToJson(request));
  ASSIGN_OR_RETURN(HttpResponse resp, Expect2xx("register", Send(http, req)));
  if (Trim(resp.body).empty()) {
    return protocol::RegisterResponse{};
  }
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(resp.body));
  return protocol::RegisterResponseFromJson(j);
}

Status ServerApi::SendReport(HttpClient& http, const protocol::Report& report) const {
  HttpRequest req = NewRequest("POST", "/agent/v1/report");
  req.body = DumpJson(protocol::ToJson(report));
  ASSIGN_OR_RETURN(HttpResponse resp, Expect2xx("report", Send(http, req)));
  (void)resp;
  return OkStatus();
}

Result<std::vector<PolledCommand>> ServerApi::PollCommands(HttpClient& http,
                                                           const std::string& host,
                                                           Millis wait) const {
  HttpRequest req = NewRequest(
      "GET", "/agent/v1/commands?host=" + host + "&wait_ms=" + std::to_string(wait.count()));
  req.timeout = wait + Millis(5'000);
  ASSIGN_OR_RETURN(HttpResponse resp, Expect2xx("poll commands", Send(http, req)));
  std::vector<PolledCommand> out;
  if (resp.status == 204 || Trim(resp.body).empty()) {
    return out;
  }
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(resp.body));
  auto it = j.find("commands");
  if (it == j.end() || !it->is_array()) {
    return InvalidArgument("poll commands: field 'commands' must be a list");
  }
  // Commands are parsed one by one, so one malformed command is answered, not fatal.
  for (const auto& c : *it) {
    PolledCommand pc;
    if (c.is_object() && c.contains("id") && c["id"].is_string()) {
      pc.id = c["id"].get<std::string>();
    }
    auto cmd = protocol::CommandFromJson(c);
    if (cmd) {
      pc.command = std::move(*cmd);
    } else {
      pc.parse_error = cmd.error().message;
    }
    out.push_back(std::move(pc));
  }
  return out;
}

Status ServerApi::PostResult(HttpClient& http, const protocol::CommandResult& result) const {
  HttpRequest req = NewRequest("POST", "/agent/v1/results");
  req.body = DumpJson(protocol::ToJson(result));
  ASSIGN_OR_RETURN(HttpResponse resp, Expect2xx("post result", Send(http, req)));
  (void)resp;
  return OkStatus();
}

Result<std::string> ServerApi::StartArchive(HttpClient& http, const std::string& host,
                                            const std::string& path, int64_t size) const {
  HttpRequest req = NewRequest("POST", "/agent/v1/archive");
  req.body = DumpJson(Json{{"host", host}, {"path", path}, {"size", size}});
  ASSIGN_OR_RETURN(HttpResponse resp, Expect2xx("archive start", Send(http, req)));
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(resp.body));
  ASSIGN_OR_RETURN(std::string id, RequireString(j, "upload_id"));
  if (id.empty() || id.size() > 128 ||
      id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return InvalidArgument("archive start: the server sent an invalid upload id");
  }
  return id;
}

Result<int64_t> ServerApi::AppendArchive(HttpClient& http, const std::string& upload_id,
                                         int64_t offset, std::string_view bytes) const {
  HttpRequest req =
      NewRequest("PUT", "/agent/v1/archive/" + upload_id + "?offset=" + std::to_string(offset));
  for (auto& [name, value] : req.headers) {
    if (name == "Content-Type") {
      value = "application/octet-stream";
    }
  }
  req.body = std::string(bytes);
  req.timeout = Millis(30'000);
  ASSIGN_OR_RETURN(HttpResponse resp,
                   Expect2xx("archive append", Send(http, req, /*one_server=*/true)));
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(resp.body));
  ASSIGN_OR_RETURN(auto received, OptionalInt(j, "received"));
  if (!received) {
    return InvalidArgument("archive append: the answer has no 'received'");
  }
  return *received;
}

Result<std::string> ServerApi::FetchArchived(HttpClient& http, const std::string& name,
                                             int64_t offset) const {
  HttpRequest req =
      NewRequest("GET", "/agent/v1/restore/" + name + "?offset=" + std::to_string(offset));
  req.timeout = Millis(30'000);
  ASSIGN_OR_RETURN(HttpResponse resp,
                   Expect2xx("archive fetch", Send(http, req, /*one_server=*/true)));
  return std::move(resp.body);
}

Result<ArchiveReceipt> ServerApi::FinishArchive(HttpClient& http, const std::string& upload_id,
                                                const std::string& sha256, int64_t bytes) const {
  HttpRequest req = NewRequest("POST", "/agent/v1/archive/" + upload_id + "/finish");
  req.body = DumpJson(Json{{"sha256", sha256}, {"bytes", bytes}});
  req.timeout = Millis(300'000);  // with the s3 backend the server uploads to the bucket first
  auto resp = Send(http, req, /*one_server=*/true);
  if (resp && resp->status == 409) {
    Error e = HttpError("archive finish", *resp);
    return FailedPrecondition(e.message);
  }
  ASSIGN_OR_RETURN(HttpResponse ok, Expect2xx("archive finish", std::move(resp)));
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(ok.body));
  ArchiveReceipt r;
  ASSIGN_OR_RETURN(r.sha256, RequireString(j, "sha256"));
  ASSIGN_OR_RETURN(r.location, RequireString(j, "location"));
  ASSIGN_OR_RETURN(auto n, OptionalInt(j, "bytes"));
  if (!n) {
    return InvalidArgument("archive finish: the answer has no 'bytes'");
  }
  r.bytes = *n;
  return r;
}

Registration::Registration(const ServerApi& api, protocol::RegisterRequest request,
                           Millis backoff_base, Millis backoff_cap, Enrolment* enrolment)
    : api_(api),
      enrolment_(enrolment),
      request_(std::move(request)),
      base_(backoff_base),
      cap_(backoff_cap) {}

bool Registration::registered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return registered_;
}

bool Registration::Due(SteadyTime now) const {
  std::lock_guard<std::mutex> lock(mu_);
  return !registered_ && now >= next_attempt_;
}

SteadyTime Registration::next_attempt() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_attempt_;
}

void Registration::SetListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listener_ = std::move(listener);
}

std::vector<protocol::WatchedThreshold> Registration::watch() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watch_;
}

void Registration::RegisterAgain() {
  std::lock_guard<std::mutex> lock(mu_);
  registered_ = false;
  next_attempt_ = SteadyTime{};
}

void Registration::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  if (registered_) {
    LogWarn("the server no longer knows this host; registering again");
  }
  registered_ = false;
}

Status Registration::Attempt(HttpClient& http, SteadyTime now) {
  Result<protocol::RegisterResponse> resp = protocol::RegisterResponse{};
  bool enrolling = false;
  if (enrolment_ != nullptr && !enrolment_->enrolled()) {
    enrolling = true;
    if (Status s = enrolment_->Attempt(http); !s) {
      resp = s.error();
    }
  }
  if (resp) {
    resp = api_.Register(http, request_);
  }
  std::function<void()> listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!resp) {
      const Millis delay =
          BackoffDelay(failures_, base_, cap_, std::uniform_real_distribution<>(0, 1)(rng_));
      if ((failures_ == 0 || failures_ % 20 == 0) &&
          !(enrolling && resp.error().code == ErrorCode::kFailedPrecondition)) {
        LogWarn("registration failed (retrying with backoff): " + resp.error().message +
                (resp.error().code == ErrorCode::kUnauthenticated && api_.has_credential()
                     ? "; the server refuses this host's credential (revoked?): an admin must "
                       "enrol it again (medic hosts enroll " +
                           request_.name +
                           "), then remove the stored credential and start with the new code"
                     : ""));
      }
      ++failures_;
      next_attempt_ = now + delay;
      return resp.error();
    }
    LogInfo("registered with the server as " + request_.name);
    for (const auto& group : resp->ignored_target_groups) {
      LogWarn("the server has no target group '" + group +
              "' (its config decides which exist): that target is not checked");
    }
    registered_ = true;
    failures_ = 0;
    watch_ = std::move(resp->watch);
    listener = listener_;
  }
  if (listener) {
    listener();
  }
  return OkStatus();
}

}  // namespace medic::agent
