#pragma once

// Who each agent is (docs/PROTOCOL.md, "Enrolment"). An agent starts with either a single-use
// enrolment code an admin made for its host name, or the fleet's shared bootstrap token. A
// valid code enrols the host at once; the bootstrap token only files an enrolment request that
// waits, as `pending`, until an admin approves it. Either way the host then receives its own
// credential (256 random bits from the kernel's CSPRNG) and authenticates every agent call with
// it; the credential names the host. Revoking a host drops its credential at once.
//
// Only SHA-256 hashes of credentials, codes and request keys are kept, all in the store.
// Credentials are also held in memory (Authenticate() runs on every agent call; Reload() picks
// up another server's). Codes and pending requests are read from the store at each use and never
// cached: with several servers on one store (docs/DEPLOY.md) a code made on any server is
// accepted by any server, exactly once (Store::TakeEnrollmentCode), a request filed on one is
// approved on another, and both survive a restart.
//
// Thread-safe. Authenticate() takes one short lock; the operations that write the store are
// serialised among themselves (within this server; the store keeps servers apart) and never
// hold that lock while they write.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "server/store/store.h"

namespace medic::server {

struct HostIdentityOptions {
  Millis default_code_ttl{3'600'000};  // 1 h
  Millis max_code_ttl{7 * 24 * 3'600'000LL};
  size_t max_codes = 10'000;   // unused, unexpired codes at once
  size_t max_pending = 1'000;  // enrolment requests waiting for approval at once
  // Hosts with a credential (`limits.hosts`): enrolling a new name past it is refused
  // (ResourceExhausted); a host that has a credential may always get a new one.
  size_t max_hosts = 20'000;
  // --auto-approve-hosts (labs, benchmarks): a bootstrap request for a name that has no
  // credential yet is approved at once; re-enrolling a known name still waits for an admin.
  bool auto_approve = false;
};

// What an admin gets from CreateCode: the code itself (shown once) and when it expires.
struct EnrollmentCode {
  std::string name;
  std::string code;
  WallTime expires_at;
};

// What an enrolled agent receives: its host name and its credential (shown once).
struct IssuedCredential {
  std::string name;
  std::string credential;
};

// An enrolment request filed with the bootstrap token, as an admin sees it.
struct PendingHost {
  std::string name;
  WallTime requested_at;
  // The first 16 hex digits of SHA-256(the agent's request key): the agent logs the same, so an
  // admin can tell that the request they approve is the one their host made.
  std::string fingerprint;
  std::string hostname;  // the kernel's hostname, as the agent says (informational)
  bool approved = false;
  bool enrolled = false;  // the name already has a credential (approval replaces it)
};

class HostIdentities {
 public:
  // `bootstrap_token_hash`: lowercase hex SHA-256 of the shared bootstrap token (agent.token).
  // `store` and `clock` must outlive this object.
  HostIdentities(Store& store, const Clock& clock, std::string bootstrap_token_hash,
                 HostIdentityOptions options = {});

  // At start: the stored credentials. Errors are the store's.
  Status Load();
  // The stored credentials again, when another server sharing the store issued or revoked one
  // (docs/DEPLOY.md); serialised with this server's own writes. Errors are the store's, and
  // then nothing changes.
  Status Reload();

  // Admin: a new single-use code for `name`, valid for `ttl` (nullopt: the default, 1 h),
  // stored as a hash. InvalidArgument for a bad name or ttl; ResourceExhausted past max_codes
  // (unexpired codes in the store, made on any server); a store error as it is.
  Result<EnrollmentCode> CreateCode(const std::string& name, std::optional<Millis> ttl,
                                    const std::string& actor);

  // Agent with a code: a code made for `name`, unexpired and unused, is consumed and the host
  // gets a new credential (replacing any it had). Unauthenticated otherwise (one message for
  // every reason); InvalidArgument for a bad name; a store error as it is. The code is taken
  // from the store first (so that two servers cannot both redeem it); when the credential then
  // cannot be issued it is put back, and if even that fails the error says to make a new code.
  Result<IssuedCredential> EnrollWithCode(const std::string& name, std::string_view code);

  // Agent with the bootstrap token: files (or finds) the request of `name` made with `key` (the
  // agent's random request key, kept across its restarts). Returns the credential once an admin
  // approved that request, nullopt while it waits. Unauthenticated for a wrong bootstrap token;
  // AlreadyExists when the name has a request made with another key; InvalidArgument for a bad
  // name or key; ResourceExhausted past max_pending; a store error as it is.
  Result<std::optional<IssuedCredential>> EnrollWithBootstrap(std::string_view bootstrap_token,
                                                              const std::string& name,
                                                              std::string_view key,
                                                              const std::string& hostname);

  // Admin: the waiting requests, by name. Errors are the store's.
  Result<std::vector<PendingHost>> Pending() const;
  // Admin: approves the request of `name`; its agent gets a credential at its next call, on
  // whichever server it makes it. NotFound without one; a store error as it is.
  Status Approve(const std::string& name, const std::string& actor);
  // Admin: cuts `name` off at once: its credential (memory, then store), its request and its
  // unused codes. NotFound if it had none of these; Internal after the host is cut off in memory
  // when the store could not delete all of it (a credential would come back after a restart, a
  // code could still enrol it: revoke again).
  Status Revoke(const std::string& name);

  // The host whose credential this is; Unauthenticated otherwise.
  Result<std::string> Authenticate(std::string_view credential) const;
  bool IsEnrolled(const std::string& name) const;
  size_t enrolled_count() const;
  // Enrolments refused since the start because max_hosts hosts had a credential.
  uint64_t refused_over_host_limit() const { return refused_over_host_limit_.load(); }

 private:
  // Writes a new credential for `name` to the store, then memory, and drops the name's
  // enrolment request. ResourceExhausted for a new name when max_hosts hosts have one.
  // REQUIRES: write_mu_ held.
  Result<IssuedCredential> IssueLocked(const std::string& name, const std::string& issued_by);

  Store& store_;
  const Clock& clock_;
  const std::string bootstrap_hash_;
  const HostIdentityOptions options_;

  std::mutex write_mu_;  // serialises the operations that write the store; taken before mu_
  mutable std::mutex mu_;
  std::map<std::string, std::string> host_by_hash_;  // credential hash -> host. Guarded by mu_.
  std::map<std::string, std::string> hash_by_host_;  // host -> credential hash. Guarded by mu_.
  std::atomic<uint64_t> refused_over_host_limit_{0};
};

// The first 16 hex digits of SHA-256(key): how an enrolment request is told apart.
std::string RequestFingerprint(std::string_view key);

}  // namespace medic::server
