#pragma once

// How an agent gets its host's own credential (docs/PROTOCOL.md, "Enrolment"; docs/AGENT.md).
// The agent keeps it in its state directory:
//
//   STATE_DIR/credential   the host's credential (mode 0600, written atomically); when it
//                          exists the agent uses it and never enrols on its own
//   STATE_DIR/command.key  the server's command-signing public key, received with the
//                          credential (command_verifier.h)
//   STATE_DIR/enroll.key   the random key of a bootstrap enrolment request, kept across restarts
//                          until the host is enrolled (so the request stays the same one)
//
// Without a stored credential the agent enrols: with its enrolment code (`enroll_code`, single
// use: the host is enrolled at once), else with the shared bootstrap token (`token_file`): the
// request then waits until an admin approves it (medic hosts approve NAME) and the agent asks
// again with backoff (Registration drives the attempts).

#include <mutex>
#include <string>

#include "agent/command_verifier.h"
#include "agent/server_api.h"
#include "core/result.h"
#include "transport/http_client.h"

namespace medic::agent {

struct EnrolmentOptions {
  std::string name;                  // the host name to enrol
  std::string state_dir;             // where the credential is kept
  std::string enroll_code;           // "" = none
  std::string bootstrap_token_file;  // "" = none
  std::string hostname;              // the kernel's hostname, shown to the approving admin
};

inline constexpr char kCredentialFile[] = "credential";
inline constexpr char kEnrollKeyFile[] = "enroll.key";

// The stored credential of STATE_DIR: "" when there is none. An unreadable file, or one that
// is not a credential, is an error (the agent must not silently enrol again).
Result<std::string> LoadStoredCredential(const std::string& state_dir);

// Thread-safe.
class Enrolment {
 public:
  // `api` must outlive this; it receives the credential (SetCredential) once enrolled, and
  // `verifier` (when not null; it must outlive this too) the server's command key.
  Enrolment(ServerApi& api, EnrolmentOptions options, CommandVerifier* verifier = nullptr);

  bool enrolled() const;

  // One attempt. OK once the host has its credential: set on the api, and kept in STATE_DIR
  // (a failed write is logged; the credential still serves this run). FailedPrecondition while
  // a bootstrap request waits for approval; InvalidArgument when there is no way to enrol;
  // the server's error otherwise (Unauthenticated: a used, expired or wrong code or token).
  // A code is tried once per run: after it is refused the bootstrap token, if any, is used.
  Status Attempt(HttpClient& http);

 private:
  // The bootstrap request's key: STATE_DIR/enroll.key, created on first use.
  Result<std::string> RequestKey();
  Status Keep(const std::string& credential, const std::string& command_key);

  ServerApi& api_;
  CommandVerifier* const verifier_;
  const EnrolmentOptions options_;
  mutable std::mutex mu_;
  bool enrolled_ = false;     // Guarded by mu_.
  bool code_tried_ = false;   // Guarded by mu_.
  int pending_answers_ = 0;   // Guarded by mu_.
};

}  // namespace medic::agent
