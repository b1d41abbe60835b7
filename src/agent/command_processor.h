#pragma once

// What happens to one command from the server: expiry check, ValidateAction (again: the server
// is not trusted), the local policy, then execution. And the memory of recent command ids, so
// a command delivered twice runs once.

#include <deque>
#include <string>
#include <unordered_map>

#include "agent/action_executor.h"
#include "agent/policy.h"
#include "core/clock.h"
#include "protocol/wire.h"

namespace medic::agent {

// The results of the last `capacity` commands by id, oldest forgotten first. Not thread-safe.
class CommandHistory {
 public:
  explicit CommandHistory(size_t capacity = 1000) : capacity_(capacity) {}
  const protocol::CommandResult* Find(const std::string& id) const;
  void Remember(const protocol::CommandResult& result);
  size_t size() const { return results_.size(); }

 private:
  size_t capacity_;
  std::deque<std::string> order_;
  std::unordered_map<std::string, protocol::CommandResult> results_;
};

class CommandProcessor {
 public:
  CommandProcessor(std::string host, const Policy& policy, ActionExecutor& executor, Clock& clock);

  // Never throws; every outcome, refusals included, is a CommandResult for the server.
  protocol::CommandResult Process(const protocol::Command& command);

 private:
  std::string host_;
  const Policy& policy_;
  ActionExecutor& executor_;
  Clock& clock_;
};

}  // namespace medic::agent
