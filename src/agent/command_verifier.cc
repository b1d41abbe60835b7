#include "agent/command_verifier.h"

#include <mbedtls/base64.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include <vector>

#include "core/files.h"

namespace medic::agent {
namespace {

Result<std::vector<unsigned char>> DecodeBase64(std::string_view text, const char* what) {
  std::vector<unsigned char> out(text.size() / 4 * 3 + 3);
  size_t len = 0;
  if (text.empty() ||
      mbedtls_base64_decode(out.data(), out.size(), &len,
                            reinterpret_cast<const unsigned char*>(text.data()),
                            text.size()) != 0) {
    return InvalidArgument(std::string(what) + " is not base64");
  }
  out.resize(len);
  return out;
}

}  // namespace

struct CommandVerifier::Key {
  Key() { mbedtls_pk_init(&pk); }
  ~Key() { mbedtls_pk_free(&pk); }
  mbedtls_pk_context pk;
};

Result<std::string> LoadStoredCommandKey(const std::string& state_dir) {
  const std::string path = state_dir + "/" + kCommandKeyFile;
  if (!PathExists(path)) {
    return std::string();
  }
  auto text = ReadFile(path);
  if (!text) {
    return FailedPrecondition("cannot read the server's command key " + path + ": " +
                              text.error().message);
  }
  const std::string key(Trim(*text));
  CommandVerifier probe;
  if (Status s = probe.SetKey(key); !s) {
    return FailedPrecondition(path + " does not hold the server's command key (" +
                              s.error().message + "); remove it and the credential to enrol again");
  }
  return key;
}

CommandVerifier::CommandVerifier() = default;
CommandVerifier::~CommandVerifier() = default;

Status CommandVerifier::SetKey(const std::string& public_key) {
  if (public_key.size() > 1024) {
    return InvalidArgument("the command key is too long");
  }
  ASSIGN_OR_RETURN(std::vector<unsigned char> der, DecodeBase64(public_key, "the command key"));
  auto key = std::make_unique<Key>();
  if (mbedtls_pk_parse_public_key(&key->pk, der.data(), der.size()) != 0 ||
      mbedtls_pk_get_type(&key->pk) != MBEDTLS_PK_ECKEY ||
      mbedtls_pk_ec(key->pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
    return InvalidArgument("the command key is not a P-256 public key");
  }
  std::lock_guard<std::mutex> lock(mu_);
  key_ = std::move(key);
  return OkStatus();
}

bool CommandVerifier::has_key() const {
  std::lock_guard<std::mutex> lock(mu_);
  return key_ != nullptr;
}

Result<protocol::Command> CommandVerifier::Verify(const protocol::Command& delivered,
                                                  const std::string& host, WallTime now) const {
  if (delivered.envelope.empty() || delivered.signature.empty()) {
    return PermissionDenied("refused: the command is not signed");
  }
  auto signature = DecodeBase64(delivered.signature, "the signature");
  if (!signature) {
    return PermissionDenied("refused: " + signature.error().message);
  }
  const std::string message = protocol::kEnvelopeContext + delivered.envelope;
  unsigned char hash[32];
  if (mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                         hash, 0) != 0) {
    return Internal("cannot hash the command envelope");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (key_ == nullptr) {
      return PermissionDenied(
          "refused: this agent has no command key (STATE_DIR/command.key); enrol it again");
    }
    if (mbedtls_pk_verify(&key_->pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), signature->data(),
                          signature->size()) != 0) {
      return PermissionDenied("refused: the command's signature is not the server's");
    }
  }
  auto command = protocol::CommandFromEnvelope(delivered.envelope);
  if (!command) {
    return PermissionDenied("refused: a signed but invalid envelope: " +
                            command.error().message);
  }
  if (command->host != host) {
    return PermissionDenied("refused: the command is for host '" + command->host + "', not '" +
                            host + "'");
  }
  if (command->id != delivered.id) {
    return PermissionDenied("refused: the envelope is command " + command->id + ", delivered as " +
                            delivered.id);
  }
  if (now > command->expires_at) {
    return PermissionDenied("refused: expired at " + FormatRfc3339(command->expires_at));
  }
  command->envelope = delivered.envelope;
  command->signature = delivered.signature;
  return command;
}

}  // namespace medic::agent
