#pragma once

// Recording fakes for IncidentManager tests: a command sink that records what would have been
// sent to hosts (nothing runs), and alarm states set by the test.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "server/alarms/alarms.h"
#include "protocol/wire.h"
#include "server/commands/command_queue.h"

namespace medic::test {

// A command result as an agent posts it when the command ran and exited 0.
inline protocol::CommandResult OkResult(const std::string& id, std::string output = "fine",
                                        const std::string& host = "web-1") {
  protocol::CommandResult r;
  r.id = id;
  r.host = host;
  r.ran = true;
  r.exit_code = 0;
  r.output = std::move(output);
  return r;
}

// Nginx-Down-ALB on web-1 going into ALARM, and back to OK.
inline server::AlarmTransition ToAlarm() {
  return {"Nginx-Down-ALB", "web-1",     server::AlarmState::kOk,
          server::AlarmState::kAlarm, WallTime{}, "1 of 1"};
}
inline server::AlarmTransition ToOk() {
  return {"Nginx-Down-ALB", "web-1",        server::AlarmState::kAlarm,
          server::AlarmState::kOk, WallTime{}, "0 of 1"};
}

class RecordingSink : public server::CommandSink {
 public:
  void Send(const std::string& host, protocol::Command c) override {
    sent.push_back({host, std::move(c)});
  }
  std::vector<std::pair<std::string, protocol::Command>> sent;
};

class FakeAlarms : public server::AlarmStateView {
 public:
  server::AlarmState StateOf(const std::string&, const std::string&) const override {
    return state;
  }
  void SetRemediating(const std::string& rule, const std::string& host, bool on) override {
    remediating[{rule, host}] = on;
  }
  server::AlarmState state = server::AlarmState::kAlarm;
  std::map<std::pair<std::string, std::string>, bool> remediating;  // last hold per pair
};

}  // namespace medic::test
