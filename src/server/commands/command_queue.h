#pragma once

// Commands waiting for their hosts, and the hosts' long polls waiting for commands. A command
// enqueued for a host whose agent is parked in a long poll is handed over at once (no polling
// delay). Delivery is at-least-once — a command delivered but not answered within
// `redeliver_after` goes out again on the next poll — and the agent runs each id at most once.
// Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "protocol/wire.h"

namespace medic::server {

// Where the incident manager sends commands. An interface so tests can record them.
class CommandSink {
 public:
  virtual ~CommandSink() = default;
  virtual void Send(const std::string& host, protocol::Command command) = 0;
};

class CommandQueue : public CommandSink {
 public:
  using Deliver = std::function<void(std::vector<protocol::Command>)>;

  CommandQueue(const Clock& clock, Millis redeliver_after = Millis(15'000))
      : clock_(clock), redeliver_after_(redeliver_after) {}

  // A command whose id is queued for the host already replaces that one (a copy another server
  // sent, the same fix offered again after a takeover): the host is offered it once.
  void Send(const std::string& host, protocol::Command command) override;

  // Answers `deliver` now if commands are due for the host, else at the next Send for it or at
  // `deadline` (with an empty list), whichever is first. A newer poll from the same host
  // answers the older one with an empty list. After Shutdown a poll is answered at once, never
  // parked. Returns the poll's ticket, for Cancel.
  uint64_t Poll(const std::string& host, SteadyTime deadline, Deliver deliver);

  // The poll `ticket` of `host` is no longer wanted (its client closed the connection): if it
  // is still parked it is dropped unanswered (its `deliver` is destroyed, not called). No-op
  // for a poll already answered or replaced.
  void Cancel(const std::string& host, uint64_t ticket);

  // The host answered this command: it is not delivered again.
  void Complete(const std::string& host, const std::string& command_id);
  // The same, and the result is kept for Lookup (while the recipient is remembered).
  void Complete(const protocol::CommandResult& result);

  // What became of a command this queue sent (GET /api/v1/commands/ID): its state, and the
  // host's result once it answered. Known from Send until some time after the command expires
  // (as RecipientOf); nullopt for an id this queue does not know (any more).
  struct Record {
    std::string id;
    std::string host;
    std::string action;
    Json params = Json::object();
    WallTime sent_at;
    WallTime expires_at;
    int64_t timeout_ms = 0;
    // queued (not yet handed to the host), delivered (handed over, no result yet), succeeded,
    // failed (ran, and did not exit 0), refused (the host did not run it: the result's error
    // says why), expired (never delivered before it expired, or no result by its expiry and
    // timeout).
    std::string state;
    std::optional<protocol::CommandResult> result;
  };
  std::optional<Record> Lookup(const std::string& command_id) const;

  // The host a command was sent to, while its result may still come (until some time after the
  // command expires); nullopt for an id this queue does not know (any more).
  std::optional<std::string> RecipientOf(const std::string& command_id) const;

  // Whether `host` was sent a log.archive_truncate of `path` that it has not answered yet: the
  // archive takes an upload only for such a command (docs/PROTOCOL.md, "Archive").
  bool AwaitsArchive(const std::string& host, const std::string& path) const;
  // Whether `host` was sent a log.restore of the archived file `archive` that it has not
  // answered yet: the archive serves a file's bytes back only for such a command.
  bool AwaitsRestore(const std::string& host, const std::string& archive) const;

  // Answers the host's parked poll now, with an empty list (its credential was revoked: the
  // poll's own answer decides what the agent is told).
  void Wake(const std::string& host);

  // Answers expired polls and drops commands past their expiry. Call periodically.
  void RunOnce();

  // Answers every parked poll with an empty list (server shutdown); from then on a poll is
  // answered at once (so nothing the HTTP server must outlive is held here).
  void Shutdown();

  size_t pending(const std::string& host) const;
  size_t parked_polls() const;

 private:
  struct Entry {
    protocol::Command command;
    bool delivered = false;
    SteadyTime delivered_at;
  };
  struct Recipient {
    std::string host;
    WallTime forget_at;
    std::string archive_path;  // params.path of a log.archive_truncate; "" for other actions
    std::string restore_archive;  // params.archive of a log.restore; "" for other actions
    bool answered = false;
    bool delivered = false;
    std::string action;
    Json params = Json::object();
    WallTime sent_at;
    WallTime expires_at;
    int64_t timeout_ms = 0;
    std::optional<protocol::CommandResult> result;
  };
  struct Waiter {
    SteadyTime deadline;
    Deliver deliver;
    uint64_t ticket = 0;
  };
  // REQUIRES: mu_ held. Removes a parked poll (and its deadline) and returns its deliver.
  Deliver UnparkLocked(std::map<std::string, Waiter>::iterator w);
  // REQUIRES: mu_ held. Takes the commands due for delivery and marks them delivered.
  std::vector<protocol::Command> TakeDueLocked(const std::string& host, SteadyTime now);

  const Clock& clock_;
  const Millis redeliver_after_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Entry>> queues_;  // Guarded by mu_.
  std::map<std::string, Waiter> waiters_;             // Guarded by mu_.
  // The parked polls by (deadline, ticket) -> host, so that a tick looks at the expired ones
  // only (10,000 parked polls are not walked ten times a second). Guarded by mu_.
  std::map<std::pair<SteadyTime, uint64_t>, std::string> by_deadline_;
  std::map<std::string, Recipient> recipients_;       // command id -> host. Guarded by mu_.
  uint64_t next_ticket_ = 1;                          // Guarded by mu_.
  bool shut_down_ = false;                            // Guarded by mu_.
};

}  // namespace medic::server
