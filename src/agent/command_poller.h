#pragma once

// The command loop: long-polls the server for commands, runs each once (by id: in memory, and
// across restarts through the ledger), and posts every result back, retrying a few times when
// the server cannot be reached.

#include <functional>
#include <random>
#include <string>

#include "agent/command_ledger.h"
#include "agent/command_processor.h"
#include "agent/server_api.h"
#include "transport/http_client.h"

namespace medic::agent {

struct PollerOptions {
  std::string host;
  Millis wait{25'000};      // long-poll wait the server may hold the request
  int result_attempts = 4;  // tries per result on transport failure
  Millis retry_base{250};
  // The state directory's ledger (command_ledger.h); null: ids are remembered in memory only.
  CommandLedger* ledger = nullptr;
};

class CommandVerifier;

// Driven by one thread through RunOnce.
class CommandPoller {
 public:
  // `sleep` waits between result retries; it returns false when the agent is stopping.
  // Every command is checked by `verifier` (its signature, host, expiry) before anything else;
  // one it refuses is answered with the reason and never run.
  CommandPoller(PollerOptions options, const ServerApi& api, Registration& registration,
                const CommandVerifier& verifier, CommandProcessor& processor,
                std::function<bool(Millis)> sleep, const Clock& clock);

  // One poll and the commands it brought. Returns how long to wait before the next poll.
  Millis RunOnce(HttpClient& http);

  uint64_t executed() const { return executed_; }

 private:
  void PostWithRetry(HttpClient& http, const protocol::CommandResult& result);
  // The answer to a command refused before it started (logged, and kept in the ledger).
  protocol::CommandResult Refuse(const protocol::Command& delivered, const std::string& reason);
  // Runs a command the ledger has not seen: recorded (durably) first, then run, then its result
  // recorded. One the ledger saw is not run again: its stored result, or "interrupted".
  protocol::CommandResult RunOnceAcrossRestarts(const protocol::Command& command);

  PollerOptions options_;
  const ServerApi& api_;
  Registration& registration_;
  const CommandVerifier& verifier_;
  CommandProcessor& processor_;
  std::function<bool(Millis)> sleep_;
  const Clock& clock_;
  CommandHistory history_;
  int poll_failures_ = 0;
  uint64_t executed_ = 0;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace medic::agent
