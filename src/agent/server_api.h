#pragma once

// The agent's side of the agent <-> server protocol (protocol/wire.h): enrolment, then four
// endpoints and the archive, each request carrying `Authorization: Bearer <the host's own
// credential>`. Transport-agnostic: every call takes the HttpClient of the calling thread.

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
  Result<std::string> StartArchive(HttpClient& http, const std::string& host,
                                   const std::string& path, int64_t size) const;
  Result<int64_t> AppendArchive(HttpClient& http, const std::string& upload_id, int64_t offset,
                                std::string_view bytes) const;
  Result<ArchiveReceipt> FinishArchive(HttpClient& http, const std::string& upload_id,
                                       const std::string& sha256, int64_t bytes) const;

 private:
  HttpRequest NewRequest(const std::string& method, const std::string& path) const;
  Result<EnrollAnswer> Enroll(HttpClient& http, const Json& body,
                              const std::string& bearer) const;

  std::string base_;
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
  // Runs (on the registering thread) after every successful registration.
  void SetListener(std::function<void()> listener);

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
  std::mt19937 rng_{std::random_device{}()};  // Guarded by mu_.
};

}  // namespace medic::agent
