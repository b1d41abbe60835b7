#pragma once

// Commands signed as medic-server signs them (server/commands/command_signer.h, the real
// signer), for tests that deliver commands to an agent: one key per test process.

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "protocol/wire.h"
#include "server/commands/command_signer.h"
#include "tests/fakes/temp_dir.h"

namespace medic::test {

inline const server::CommandSigner& TestCommandSigner() {
  static TempDir dir;
  static std::unique_ptr<server::CommandSigner> signer = [] {
    auto made = server::LoadOrCreateCommandSigner(dir.path() + "/command-signing.key");
    if (!made) {
      std::fprintf(stderr, "cannot make the test's command key: %s\n",
                   made.error().message.c_str());
      std::abort();
    }
    return std::move(*made);
  }();
  return *signer;
}

// The server's public key, as an enrolled agent keeps it (STATE_DIR/command.key).
inline const std::string& TestCommandKey() { return TestCommandSigner().public_key(); }

// `c` as the server sends it to `host`: host and nonce filled in, the envelope signed.
inline protocol::Command SignedFor(const std::string& host, protocol::Command c) {
  struct Capture : server::CommandSink {
    void Send(const std::string&, protocol::Command sent) override { out = std::move(sent); }
    protocol::Command out;
  } capture;
  server::SigningCommandSink(TestCommandSigner(), capture).Send(host, std::move(c));
  return capture.out;
}

}  // namespace medic::test
