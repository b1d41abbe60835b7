#pragma once

// The server's command-signing key, and the CommandSink that signs every command on its way to
// a host (docs/PROTOCOL.md, "Signed commands"; docs/SECURITY.md).
//
// The key is ECDSA P-256, kept in DATA_DIR/command-signing.key (PEM, 0600), apart from the TLS
// key: a leaked TLS key lets an attacker impersonate the server to agents that do not pin it,
// but not make an agent run anything. Agents receive the public key when they enrol and refuse
// every command whose envelope is not signed by it.

#include <memory>
#include <string>

#include "core/result.h"
#include "server/commands/command_queue.h"

namespace medic::server {

class CommandSigner {
 public:
  virtual ~CommandSigner() = default;
  // The base64 DER SubjectPublicKeyInfo of the key, as agents keep it (STATE_DIR/command.key).
  virtual const std::string& public_key() const = 0;
  // The base64 DER ECDSA signature over kEnvelopeContext + envelope.
  virtual Result<std::string> Sign(const std::string& envelope) const = 0;
};

// Loads the key at `path`, or makes it (and its directory, 0700) when there is none. A file
// that is not a P-256 private key, or is readable by others, is an error naming it.
Result<std::unique_ptr<CommandSigner>> LoadOrCreateCommandSigner(const std::string& path);

// Fills in host, nonce and envelope of every command, signs it and passes it on to `next`. A
// command that cannot be signed is not sent (logged: the incident then times out like a lost
// command). Thread-safe when `next` is.
class SigningCommandSink : public CommandSink {
 public:
  SigningCommandSink(const CommandSigner& signer, CommandSink& next)
      : signer_(signer), next_(next) {}
  void Send(const std::string& host, protocol::Command command) override;

 private:
  const CommandSigner& signer_;
  CommandSink& next_;
};

}  // namespace medic::server
