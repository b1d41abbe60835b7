#include "agent/enrolment.h"

#include <unistd.h>

#include "agent/config.h"
#include "core/files.h"
#include "core/log.h"

namespace medic::agent {

namespace {

bool IsCredentialText(std::string_view s) {
  return s.size() >= 32 && s.size() <= 256 &&
         s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

Result<std::string> LoadStoredCredential(const std::string& state_dir) {
  const std::string path = state_dir + "/" + kCredentialFile;
  if (!PathExists(path)) {
    return std::string();
  }
  auto text = ReadFile(path);
  if (!text) {
    return FailedPrecondition("cannot read this host's credential " + path + ": " +
                              text.error().message);
  }
  const std::string credential(Trim(*text));
  if (!IsCredentialText(credential)) {
    return FailedPrecondition(path + " does not hold a credential; remove it to enrol again");
  }
  return credential;
}

Enrolment::Enrolment(ServerApi& api, EnrolmentOptions options, CommandVerifier* verifier)
    : api_(api), verifier_(verifier), options_(std::move(options)) {}

bool Enrolment::enrolled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return enrolled_;
}

Result<std::string> Enrolment::RequestKey() {
  const std::string path = options_.state_dir + "/" + kEnrollKeyFile;
  if (PathExists(path)) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    const std::string key(Trim(text));
    if (IsCredentialText(key)) {
      return key;
    }
  }
  RETURN_IF_ERROR(MakeDirs(options_.state_dir, 0700));
  const std::string key = RandomHex(32);
  RETURN_IF_ERROR(WriteFileAtomic(path, key + "\n", 0600));
  return key;
}

Status Enrolment::Keep(const std::string& credential, const std::string& command_key) {
  RETURN_IF_ERROR(MakeDirs(options_.state_dir, 0700));
  // The key first: a credential is never on disk without the key its commands are checked with.
  RETURN_IF_ERROR(WriteFileAtomic(options_.state_dir + "/" + kCommandKeyFile, command_key + "\n",
                                  0600));
  RETURN_IF_ERROR(WriteFileAtomic(options_.state_dir + "/" + kCredentialFile, credential + "\n",
                                  0600));
  ::unlink((options_.state_dir + "/" + kEnrollKeyFile).c_str());
  return OkStatus();
}

Status Enrolment::Attempt(HttpClient& http) {
  bool try_code = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (enrolled_) {
      return OkStatus();
    }
    try_code = !options_.enroll_code.empty() && !code_tried_;
  }
  Result<EnrollAnswer> answer = InvalidArgument(
      "this host has no credential in " + options_.state_dir +
      " and no way to enrol: set enroll_code (medic hosts enroll " + options_.name +
      ") or token_file (the bootstrap token)");
  if (try_code) {
    answer = api_.EnrollWithCode(http, options_.name, options_.enroll_code);
    if (!answer && answer.error().code != ErrorCode::kUnavailable) {
      std::lock_guard<std::mutex> lock(mu_);
      code_tried_ = true;  // refused: a code never becomes valid later
      LogError("the enrolment code was refused (" + answer.error().message + ")" +
               (options_.bootstrap_token_file.empty()
                    ? "; an admin must make a new one: medic hosts enroll " + options_.name
                    : "; asking with the bootstrap token instead"));
    }
  }
  const bool code_refused = try_code && !answer && answer.error().code != ErrorCode::kUnavailable;
  if (!options_.bootstrap_token_file.empty() && (!try_code || code_refused)) {
    ASSIGN_OR_RETURN(std::string token, ReadToken(options_.bootstrap_token_file));
    ASSIGN_OR_RETURN(std::string key, RequestKey());
    answer = api_.EnrollWithBootstrap(http, token, options_.name, key, options_.hostname);
  }
  if (!answer) {
    return answer.error();
  }
  if (answer->pending) {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_answers_++ % 60 == 0) {
      LogWarn("waiting for an admin to approve this host: medic hosts approve " + options_.name +
              " (request " + answer->fingerprint + ")");
    }
    return FailedPrecondition("enrolment of " + options_.name + " waits for approval");
  }
  if (verifier_ != nullptr) {
    if (Status s = verifier_->SetKey(answer->command_key); !s) {
      return Unavailable("enrol: the server's command key is not usable: " + s.error().message);
    }
  }
  api_.SetCredential(answer->credential);
  if (Status s = Keep(answer->credential, answer->command_key); !s) {
    LogError("enrolled, but the credential could not be kept in " + options_.state_dir + " (" +
             s.error().message + "): the next start will need a new enrolment");
  }
  LogInfo("enrolled as " + options_.name + "; the credential is in " + options_.state_dir + "/" +
          kCredentialFile);
  std::lock_guard<std::mutex> lock(mu_);
  enrolled_ = true;
  return OkStatus();
}

}  // namespace medic::agent
