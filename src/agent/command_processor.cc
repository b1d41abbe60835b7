#include "agent/command_processor.h"

#include "core/log.h"

namespace medic::agent {

const protocol::CommandResult* CommandHistory::Find(const std::string& id) const {
  auto it = results_.find(id);
  return it == results_.end() ? nullptr : &it->second;
}

void CommandHistory::Remember(const protocol::CommandResult& result) {
  if (results_.count(result.id) == 0) {
    order_.push_back(result.id);
  }
  results_[result.id] = result;
  while (order_.size() > capacity_) {
    results_.erase(order_.front());
    order_.pop_front();
  }
}

CommandProcessor::CommandProcessor(std::string host, const Policy& policy, ActionExecutor& executor,
                                   Clock& clock)
    : host_(std::move(host)), policy_(policy), executor_(executor), clock_(clock) {}

protocol::CommandResult CommandProcessor::Process(const protocol::Command& command) {
  const SteadyTime start = clock_.SteadyNow();
  protocol::CommandResult r;
  auto finish = [&](protocol::CommandResult out) {
    out.id = command.id;
    out.host = host_;
    out.duration_ms = std::chrono::duration_cast<Millis>(clock_.SteadyNow() - start).count();
    LogInfo(
        "command " + command.id + " " + command.action + ": " +
        (out.ran ? "ran, exit code " + std::to_string(out.exit_code) : "not run: " + out.error));
    return out;
  };
  if (clock_.Now() > command.expires_at) {
    r.ran = false;
    r.error = "expired";
    return finish(r);
  }
  auto action = protocol::ValidateAction(command.action, command.params);
  if (!action) {
    r.ran = false;
    r.error = "invalid command: " + action.error().message;
    return finish(r);
  }
  if (Status s = policy_.Check(*action); !s) {
    r.ran = false;
    r.error = s.error().message;
    return finish(r);
  }
  LogInfo("running command " + command.id + ": " + protocol::RenderCommandLine(*action));
  return finish(executor_.Execute(*action, Millis(command.timeout_ms)));
}

}  // namespace medic::agent
