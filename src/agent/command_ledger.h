#pragma once

// The agent's ledger of the commands it started and what came of them, kept in its state
// directory (STATE_DIR/commands.log, mode 0600): a command id is written, and fsynced, before
// its action starts, so a command the server delivers again after the agent (or the server)
// restarted is never run a second time, also when the agent was killed while it ran. It is the
// host's own append-only record of what ran there, too: one JSON line per start (with the
// incident, who approved it and the envelope's nonce), per result, and per command refused
// before it started (a bad signature, another host's, expired, a replayed nonce).

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/result.h"
#include "protocol/wire.h"

namespace medic::agent {

class CommandLedger {
 public:
  struct Entry {
    std::string action;
    std::optional<protocol::CommandResult> result;  // nullopt: started, never finished
  };
  virtual ~CommandLedger() = default;
  // What the ledger knows of the id; nullopt when it never started here.
  virtual std::optional<Entry> Find(const std::string& id) const = 0;
  // The id that started with this nonce; nullopt when none did (or it was forgotten).
  virtual std::optional<std::string> FindNonce(const std::string& nonce) const = 0;
  // Records the start; durable (fsynced) when it returns OK. The action must not run otherwise.
  virtual Status Start(const protocol::Command& command) = 0;
  // Records the result (durable too).
  virtual Status Finish(const protocol::CommandResult& result) = 0;
  // Records that a delivered command was refused before it started (not durable: nothing ran).
  // It does not count as the id's outcome: the genuine command of that id may still come.
  virtual void Refuse(const protocol::Command& delivered, const std::string& reason) = 0;
};

// Opens (creating, 0600) the ledger file and reads what it holds; a torn last line (a crash in
// the middle of a write) is ignored. Keeps the newest `keep` ids; the file is rewritten to those
// when it has grown past twice as many lines.
Result<std::unique_ptr<CommandLedger>> OpenCommandLedger(const std::string& path,
                                                         size_t keep = 10'000);

// The ledger's decision on a delivered (and verified) command, before anything runs: the
// agent's at-most-once rule, in one place (CommandPoller; the crash tests' fake agents).
struct Admission {
  enum class Kind {
    kRun,          // never started here; its start is recorded (durably): run it, then Finish()
    kReplay,       // its nonce was used by another id: refuse it (CommandLedger::Refuse)
    kRepeat,       // it ran before: `answer` is its stored result, sent again
    kInterrupted,  // it started and never finished (the agent stopped): not run again
    kNotRecorded,  // its start could not be recorded: not run
  };
  Kind kind = Kind::kRun;
  // What to answer instead of running it (every kind but kRun); for kReplay, `answer.error`
  // is the reason to refuse with. kInterrupted's answer is already in the ledger.
  protocol::CommandResult answer;
};
Admission AdmitCommand(CommandLedger& ledger, const protocol::Command& command,
                       const std::string& host);

}  // namespace medic::agent
