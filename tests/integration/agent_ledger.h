#pragma once

// The real agent's ledger (agent/command_ledger.h, a commands.log file) behind a crash test's
// fake agent (crash_harness.h's RunLedger): every delivered command is admitted by
// agent::AdmitCommand, the rule medic-agent's CommandPoller applies, so a command that arrives
// twice runs once because the product says so, not because the fake remembers it. The fake
// counts the runs the ledger let through (AgentLog::runs). Used by crash_recovery_test and
// cluster_kill_test; needs medic_agent.

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "agent/command_ledger.h"
#include "tests/integration/crash_harness.h"

namespace medic::crash_test {

class AgentLedger : public RunLedger {
 public:
  explicit AgentLedger(std::string host) : host_(std::move(host)) {}

  // Opens (creating) the ledger file at `path`; false, with a test failure, when it cannot.
  bool Open(const std::string& path) {
    auto l = agent::OpenCommandLedger(path);
    if (!l) {
      ADD_FAILURE() << "cannot open the ledger " << path << ": " << l.error().ToString();
      return false;
    }
    ledger_ = std::move(*l);
    return true;
  }

  std::optional<protocol::CommandResult> Admit(const protocol::Command& command) override {
    agent::Admission a = agent::AdmitCommand(*ledger_, command, host_);
    if (a.kind == agent::Admission::Kind::kRun) {
      return std::nullopt;
    }
    if (a.kind == agent::Admission::Kind::kReplay) {
      ledger_->Refuse(command, a.answer.error);
    }
    return a.answer;
  }
  void Finished(const protocol::CommandResult& result) override {
    EXPECT_TRUE(ledger_->Finish(result).has_value()) << host_ << ": " << result.id;
  }

 private:
  const std::string host_;
  std::unique_ptr<agent::CommandLedger> ledger_;
};

}  // namespace medic::crash_test
