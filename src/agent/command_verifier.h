#pragma once

// The agent's check of the server's signature on every command (docs/PROTOCOL.md, "Signed
// commands"; docs/SECURITY.md). The agent runs only what a command's envelope says, and only
// when the envelope is signed by the key it received when it enrolled (STATE_DIR/command.key),
// names this host and is not past its not_after. The plain fields next to the envelope are not
// trusted. Replays are the ledger's business (command_ledger.h): a signed envelope names its id
// and nonce, and the ledger runs an id at most once.

#include <memory>
#include <mutex>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "protocol/wire.h"

namespace medic::agent {

inline constexpr char kCommandKeyFile[] = "command.key";

// The public key kept in STATE_DIR/command.key: "" when there is none; an unreadable file, or
// one that is not a key, is an error.
Result<std::string> LoadStoredCommandKey(const std::string& state_dir);

// Thread-safe.
class CommandVerifier {
 public:
  CommandVerifier();
  ~CommandVerifier();
  CommandVerifier(const CommandVerifier&) = delete;
  CommandVerifier& operator=(const CommandVerifier&) = delete;

  // The server's public key: base64 of a DER SubjectPublicKeyInfo of a P-256 key.
  // InvalidArgument for anything else (the key is then unchanged).
  Status SetKey(const std::string& public_key);
  bool has_key() const;

  // The command `delivered` carries, taken from its envelope: PermissionDenied, with the
  // reason, when there is no key yet, no envelope or signature, a signature that is not the
  // server's, an envelope for another host or with another id than `delivered`'s, or one past
  // its not_after at `now`.
  Result<protocol::Command> Verify(const protocol::Command& delivered, const std::string& host,
                                   WallTime now) const;

 private:
  struct Key;
  mutable std::mutex mu_;
  std::unique_ptr<Key> key_;  // Guarded by mu_; null until SetKey.
};

}  // namespace medic::agent
