#include "server/identity/host_identities.h"

#include "core/files.h"
#include "core/log.h"
#include "core/sha256.h"
#include "protocol/wire.h"

namespace medic::server {

namespace {

constexpr size_t kCredentialBytes = 32;  // 256 bits
constexpr size_t kCodeBytes = 16;        // 128 bits: short-lived and single-use

Status CheckName(const std::string& name) {
  if (!protocol::IsValidHostName(name)) {
    return InvalidArgument("invalid host name '" + name +
                           "' (1-64 of [A-Za-z0-9._-], not starting with '.' or '-')");
  }
  return OkStatus();
}

// Compares hashes without an early exit (http/sessions.h has the same for the router).
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

bool IsLowerHex(std::string_view s) {
  return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

std::string RequestFingerprint(std::string_view key) { return Sha256Hex(key).substr(0, 16); }

HostIdentities::HostIdentities(Store& store, const Clock& clock, std::string bootstrap_token_hash,
                               HostIdentityOptions options)
    : store_(store),
      clock_(clock),
      bootstrap_hash_(std::move(bootstrap_token_hash)),
      options_(options) {}

Status HostIdentities::Load() {
  ASSIGN_OR_RETURN(auto stored, store_.ListHostCredentials());
  std::lock_guard<std::mutex> lock(mu_);
  host_by_hash_.clear();
  hash_by_host_.clear();
  for (const auto& c : stored) {
    host_by_hash_[c.secret_hash] = c.name;
    hash_by_host_[c.name] = c.secret_hash;
  }
  return OkStatus();
}

Status HostIdentities::Reload() {
  std::lock_guard<std::mutex> write(write_mu_);
  return Load();
}

Result<EnrollmentCode> HostIdentities::CreateCode(const std::string& name,
                                                  std::optional<Millis> ttl,
                                                  const std::string& actor) {
  RETURN_IF_ERROR(CheckName(name));
  const Millis t = ttl.value_or(options_.default_code_ttl);
  if (t < Millis(60'000) || t > options_.max_code_ttl) {
    return InvalidArgument("an enrolment code's ttl must be from 1m to " +
                           std::to_string(options_.max_code_ttl.count() / 3'600'000) + "h");
  }
  const WallTime now = clock_.Now();
  // Counts the codes of every server on the store. Two servers making codes at once may pass
  // the bound by one each: it is there against a runaway script, not an exact quota.
  ASSIGN_OR_RETURN(const int64_t unused, store_.PruneEnrollmentCodes(now));
  if (unused >= static_cast<int64_t>(options_.max_codes)) {
    return ResourceExhausted("too many unused enrolment codes (" +
                             std::to_string(options_.max_codes) +
                             "); wait for some to expire or be used");
  }
  EnrollmentCode out{name, RandomHex(kCodeBytes), now + t};
  RETURN_IF_ERROR(store_.PutEnrollmentCode({Sha256Hex(out.code), name, out.expires_at, actor}));
  return out;
}

Result<IssuedCredential> HostIdentities::IssueLocked(const std::string& name,
                                                     const std::string& issued_by) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (hash_by_host_.count(name) == 0 && hash_by_host_.size() >= options_.max_hosts) {
      refused_over_host_limit_.fetch_add(1);
      return ResourceExhausted("host '" + name + "' cannot enrol: " +
                               std::to_string(options_.max_hosts) +
                               " hosts have a credential already (limits.hosts); revoke retired "
                               "ones (medic hosts revoke NAME) or raise the limit");
    }
  }
  IssuedCredential out{name, RandomHex(kCredentialBytes)};
  const std::string hash = Sha256Hex(out.credential);
  RETURN_IF_ERROR(store_.PutHostCredential({name, hash, clock_.Now(), issued_by}));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto old = hash_by_host_.find(name); old != hash_by_host_.end()) {
      host_by_hash_.erase(old->second);
    }
    hash_by_host_[name] = hash;
    host_by_hash_[hash] = name;
  }
  // The credential is issued whatever happens here: a request left behind is only listed
  // (approved) until the host is revoked or enrols again.
  if (Status s = store_.DeletePendingEnrollment(name);
      !s && s.error().code != ErrorCode::kNotFound) {
    LogWarn("host " + name + " enrolled, but its enrolment request stays listed: " +
            s.error().message);
  }
  LogInfo("host " + name + " enrolled (" + issued_by + ")");
  return out;
}

Result<IssuedCredential> HostIdentities::EnrollWithCode(const std::string& name,
                                                        std::string_view code) {
  RETURN_IF_ERROR(CheckName(name));
  const std::string hash = Sha256Hex(code);
  std::lock_guard<std::mutex> write(write_mu_);
  // Taken, not read: of two servers redeeming one code at once, only one gets it.
  ASSIGN_OR_RETURN(std::optional<EnrollmentCodeRecord> taken,
                   store_.TakeEnrollmentCode(hash, name, clock_.Now()));
  if (!taken) {
    return Unauthenticated("invalid, used or expired enrolment code for host '" + name + "'");
  }
  Result<IssuedCredential> out = IssueLocked(name, "code:" + taken->created_by);
  if (!out) {
    // Not redeemed after all: the code stays usable, as if it had not been tried.
    if (Status s = store_.PutEnrollmentCode(*taken); !s) {
      LogWarn("the enrolment code of host " + name + " is lost: " + s.error().message);
      return Error{out.error().code, out.error().message +
                                         "; the enrolment code could not be kept either (" +
                                         s.error().message + "): make a new one"};
    }
  }
  return out;
}

Result<std::optional<IssuedCredential>> HostIdentities::EnrollWithBootstrap(
    std::string_view bootstrap_token, const std::string& name, std::string_view key,
    const std::string& hostname) {
  if (bootstrap_token.empty() || !ConstantTimeEquals(Sha256Hex(bootstrap_token), bootstrap_hash_)) {
    return Unauthenticated("invalid bootstrap token");
  }
  RETURN_IF_ERROR(CheckName(name));
  if (key.size() < 32 || key.size() > 128 || !IsLowerHex(key)) {
    return InvalidArgument("field 'key' must be 32-128 lowercase hex digits (random, kept by "
                           "the agent until it is enrolled)");
  }
  const std::string key_hash = Sha256Hex(key);
  std::lock_guard<std::mutex> write(write_mu_);
  ASSIGN_OR_RETURN(std::optional<PendingEnrollmentRecord> request,
                   store_.GetPendingEnrollment(name));
  if (!request) {
    ASSIGN_OR_RETURN(const std::vector<PendingEnrollmentRecord> waiting,
                     store_.ListPendingEnrollments());
    if (waiting.size() >= options_.max_pending) {
      return ResourceExhausted("too many enrolment requests wait for approval (" +
                               std::to_string(options_.max_pending) + ")");
    }
    const bool automatic = options_.auto_approve && !IsEnrolled(name);
    // Filed unless another server filed one for the name meanwhile: then that one counts.
    ASSIGN_OR_RETURN(request,
                     store_.FilePendingEnrollment({name, key_hash, clock_.Now(),
                                                   hostname.substr(0, 255),
                                                   automatic ? "auto" : ""}));
    if (ConstantTimeEquals(request->key_hash, key_hash)) {
      if (!automatic) {
        LogInfo("host " + name + " asks to enrol with the bootstrap token (request " +
                key_hash.substr(0, 16) + "); an admin must approve it");
        return std::optional<IssuedCredential>();
      }
      LogWarn("host " + name + " enrolled with the bootstrap token without an admin (request " +
              key_hash.substr(0, 16) + ", --auto-approve-hosts)");
    }
  }
  if (!ConstantTimeEquals(request->key_hash, key_hash)) {
    return AlreadyExists("host '" + name +
                         "' already has an enrolment request made with another key; an "
                         "admin can revoke it (medic hosts revoke " + name + ")");
  }
  if (request->approved_by.empty()) {
    return std::optional<IssuedCredential>();
  }
  ASSIGN_OR_RETURN(IssuedCredential out, IssueLocked(name, "approval:" + request->approved_by));
  return std::optional<IssuedCredential>(std::move(out));
}

Result<std::vector<PendingHost>> HostIdentities::Pending() const {
  ASSIGN_OR_RETURN(const std::vector<PendingEnrollmentRecord> stored,
                   store_.ListPendingEnrollments());
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<PendingHost> out;
  for (const PendingEnrollmentRecord& r : stored) {
    out.push_back(PendingHost{r.name, r.requested_at, r.key_hash.substr(0, 16), r.hostname,
                              !r.approved_by.empty(), hash_by_host_.count(r.name) > 0});
  }
  return out;
}

Status HostIdentities::Approve(const std::string& name, const std::string& actor) {
  return store_.ApprovePendingEnrollment(name, actor);
}

Status HostIdentities::Revoke(const std::string& name) {
  std::lock_guard<std::mutex> write(write_mu_);
  bool had = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = hash_by_host_.find(name); it != hash_by_host_.end()) {
      host_by_hash_.erase(it->second);
      hash_by_host_.erase(it);
      had = true;
    }
  }
  // Codes and the request first: either could give the host a new credential.
  std::string failed;
  Result<int> codes = store_.DeleteEnrollmentCodes(name);
  if (!codes) {
    failed += "; its enrolment codes could not be deleted (one could enrol it again): " +
              codes.error().message;
  } else {
    had = had || *codes > 0;
  }
  Status request = store_.DeletePendingEnrollment(name);
  if (!request && request.error().code != ErrorCode::kNotFound) {
    failed += "; its enrolment request could not be deleted (if approved, its agent could "
              "collect a credential): " + request.error().message;
  }
  had = had || request.has_value();
  Status stored = store_.DeleteHostCredential(name);
  if (!stored && stored.error().code != ErrorCode::kNotFound) {
    failed += "; its credential could not be deleted from the store (it would come back after "
              "a restart): " + stored.error().message;
  }
  if (!failed.empty()) {
    return Internal("host " + name + " is cut off on this server" + failed +
                    "; revoke it again");
  }
  if (!had && !stored) {
    return NotFound("host '" + name + "' has no credential, enrolment request or code");
  }
  return OkStatus();
}

Result<std::string> HostIdentities::Authenticate(std::string_view credential) const {
  const std::string hash = Sha256Hex(credential);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = host_by_hash_.find(hash);
  if (it == host_by_hash_.end()) {
    return Unauthenticated("invalid or revoked host credential");
  }
  return it->second;
}

bool HostIdentities::IsEnrolled(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return hash_by_host_.count(name) > 0;
}

size_t HostIdentities::enrolled_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hash_by_host_.size();
}

}  // namespace medic::server
