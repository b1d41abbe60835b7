#pragma once

// The agent's side of the agent <-> server protocol (protocol/wire.h): enrolment, then four
// endpoints and the archive, each request carrying `Authorization: Bearer <the host's own
// credential>`. Transport-agnostic: every call takes the HttpClient of the calling thread.
// With several server URLs (servers sharing one store), every call goes to the one the agent
// talks to now and fails over to the next (ServerList, ShouldFailOver; docs/AGENT.md
// "Several servers").

#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "protocol/wire.h"
#include "transport/http_client.h"

namespace medic::agent {

// Exponential backoff with jitter: min(cap, base * 2^attempt), scaled into [50 %, 100 %] by
// `jitter` in [0, 1). Pure.
Millis BackoffDelay(int attempt, Millis base, Millis cap, double jitter);

// True for the errors that mean "the server does not know this host (any more)": HTTP 401 and
// 404, e.g. after a server restart. The agent registers again.
bool NeedsRegistration(const Error& e);

// True when a request's outcome means "this server cannot serve us now", so the agent moves to
// its next server URL: no answer at all (connection refused or reset, timeout, TLS failure: any
// error of the HttpClient) or a 5xx. A 4xx is an answer: 401/403 would be refused by every
// server (they share one store), 400/409/413/422 are about the request itself. Pure.
bool ShouldFailOver(const Result<HttpResponse>& outcome);

// The agent's server URLs and the one it talks to now. Sticky: the agent stays on a server
// while it answers, and moves on (in list order, wrapping around) only when a request to it
// fails over; it never returns to the first by itself. Thread-safe (the reporter, the poller and
// the archive upload share one list, so they move together).
class ServerList {
 public:
  // REQUIRES: `urls` non-empty, without trailing slashes.
  explicit ServerList(std::vector<std::string> urls);

  struct Entry {
    size_t index = 0;
    std::string url;
  };
  Entry Current() const;
  size_t size() const { return urls_.size(); }
  const std::vector<std::string>& urls() const { return urls_; }

  // A request to urls[index] failed over, because of `reason`: moves to the next URL and
  // returns true, unless the list has one URL or another thread moved away from `index`
  // already (then the caller simply uses Current()). Logs one line per move; after a whole
  // round without an answer, one line, and none until a server answers again.
  bool MoveFrom(size_t index, const std::string& reason);
  // urls[index] answered (anything that does not fail over).
  void Answered(size_t index);
  // Runs after every move, outside the lock (the agent registers again with the new server).
  void SetMoveListener(std::function<void()> listener);
  uint64_t moves() const;

 private:
  const std::vector<std::string> urls_;
  mutable std::mutex mu_;
  size_t current_ = 0;              // Guarded by mu_.
  size_t unanswered_moves_ = 0;     // Guarded by mu_. Moves since the last answer.
  uint64_t moves_ = 0;              // Guarded by mu_.
  std::function<void()> listener_;  // Guarded by mu_.
};

// What the server answers when an archive upload is finished and verified.
struct ArchiveReceipt {
  std::string sha256;    // of the copy the server stored, lowercase hex
  int64_t bytes = 0;
  std::string location;  // where the server keeps it
};

// What POST /agent/v1/enroll answered: the host's credential (201), or that its request waits
// for an admin's approval (202, with the request's fingerprint).
struct EnrollAnswer {
  bool pending = false;
  std::string credential;   // when not pending
  std::string command_key;  // when not pending: the server's command-signing public key
  std::string fingerprint;  // when pending
};

// One polled command: parsed, or the reason it could not be (with its id when it had one).
struct PolledCommand {
  std::string id;
  std::optional<protocol::Command> command;
  std::string parse_error;
};

class ServerApi {
 public:
  // `server_url` without a trailing slash. `credential`: the host's own ("" until enrolled).
  ServerApi(std::string server_url, std::string credential);
  // Several URLs of servers sharing one store, in order of preference (ServerList); the
  // credential (and the caller's TLS settings) apply to each. REQUIRES: non-empty.
  ServerApi(std::vector<std::string> server_urls, std::string credential);

  // The URLs and which one is in use; thread-safe.
  ServerList& servers() const { return servers_; }

  // Thread-safe: the credential every later request carries (set once enrolled).
  void SetCredential(std::string credential);
  bool has_credential() const;

  // POST /agent/v1/enroll (docs/PROTOCOL.md, "Enrolment"): with an enrolment code
  // ({name, code}, no Authorization), or with the bootstrap token ({name, key, hostname}).
  Result<EnrollAnswer> EnrollWithCode(HttpClient& http, const std::string& name,
                                      const std::string& code) const;
  Result<EnrollAnswer> EnrollWithBootstrap(HttpClient& http, const std::string& bootstrap_token,
                                           const std::string& name, const std::string& key,
                                           const std::string& hostname) const;

  Result<protocol::RegisterResponse> Register(HttpClient& http,
                                              const protocol::RegisterRequest& request) const;
  Status SendReport(HttpClient& http, const protocol::Report& report) const;
  // Long poll: the server answers when it has commands or after `wait`.
  Result<std::vector<PolledCommand>> PollCommands(HttpClient& http, const std::string& host,
                                                  Millis wait) const;
  Status PostResult(HttpClient& http, const protocol::CommandResult& result) const;

  // The archive upload (docs/PROTOCOL.md, "Archive"): start -> upload id; append raw bytes at
  // `offset` (the bytes sent so far) -> bytes received; finish -> the server's receipt, or an
  // error (FailedPrecondition for a 409: the stored copy differs and was deleted).
  // An upload id belongs to the server that issued it: append and finish are not retried on
  // another server within the call (a move in between makes them fail, and the action with
  // them, leaving the file as it was).
  Result<std::string> StartArchive(HttpClient& http, const std::string& host,
                                   const std::string& path, int64_t size) const;
  Result<int64_t> AppendArchive(HttpClient& http, const std::string& upload_id, int64_t offset,
                                std::string_view bytes) const;
  Result<ArchiveReceipt> FinishArchive(HttpClient& http, const std::string& upload_id,
                                       const std::string& sha256, int64_t bytes) const;
  // Bytes of this host's archived file `name` from `offset` (at most 4 MiB; empty at its end),
  // for a log.restore the server sent (medic undo).
  Result<std::string> FetchArchived(HttpClient& http, const std::string& name,
                                    int64_t offset) const;

 private:
  // `path` relative to the server URL, e.g. "/agent/v1/report".
  HttpRequest NewRequest(const std::string& method, const std::string& path) const;
  // Sends `req` (its url: the path) to the current server; when the outcome fails over, moves
  // to the next and sends it there, each server once at most (one round); the caller's backoff
  // spaces the rounds. `one_server`: no retry on another server (a move still happens).
  Result<HttpResponse> Send(HttpClient& http, const HttpRequest& req,
                            bool one_server = false) const;
  Result<EnrollAnswer> Enroll(HttpClient& http, const Json& body,
                              const std::string& bearer) const;

  mutable ServerList servers_;
  mutable std::mutex mu_;
  std::string credential_;  // Guarded by mu_.
};

class Enrolment;

// Registration state shared by the reporter (which registers) and the command poller (which
// waits for it). Thread-safe. With an `enrolment` (agent/enrolment.h) that is not done yet,
// each attempt first tries to enrol (same backoff), then registers.
class Registration {
 public:
  Registration(const ServerApi& api, protocol::RegisterRequest request, Millis backoff_base,
               Millis backoff_cap, Enrolment* enrolment = nullptr);

  bool registered() const;
  // True when not registered and the backoff since the last failure has passed.
  bool Due(SteadyTime now) const;
  SteadyTime next_attempt() const;
  // One registration attempt; on failure the next one is scheduled with backoff.
  Status Attempt(HttpClient& http, SteadyTime now);
  // The server forgot us (401/404): register again at once.
  void Invalidate();
  // The agent moved to another server: register there too (it refreshes the host's facts;
  // a server with its own store learns the host). Quiet, unlike Invalidate.
  void RegisterAgain();
  // Runs (on the registering thread) after every successful registration.
  void SetListener(std::function<void()> listener);
  // The thresholds the last successful registration's answer asked the agent to watch (empty
  // before the first one, and when the server sends none).
  std::vector<protocol::WatchedThreshold> watch() const;

 private:
  const ServerApi& api_;
  Enrolment* const enrolment_;  // may be null: the credential is known
  const protocol::RegisterRequest request_;
  const Millis base_, cap_;
  mutable std::mutex mu_;
  bool registered_ = false;                   // Guarded by mu_.
  int failures_ = 0;                          // Guarded by mu_.
  SteadyTime next_attempt_{};                 // Guarded by mu_.
  std::function<void()> listener_;            // Guarded by mu_.
  std::vector<protocol::WatchedThreshold> watch_;  // Guarded by mu_.
  std::mt19937 rng_{std::random_device{}()};  // Guarded by mu_.
};

}  // namespace medic::agent
