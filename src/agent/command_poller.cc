#include "agent/command_poller.h"

#include "agent/command_verifier.h"
#include "core/log.h"

namespace medic::agent {

CommandPoller::CommandPoller(PollerOptions options, const ServerApi& api,
                             Registration& registration, const CommandVerifier& verifier,
                             CommandProcessor& processor, std::function<bool(Millis)> sleep,
                             const Clock& clock)
    : options_(std::move(options)),
      api_(api),
      registration_(registration),
      verifier_(verifier),
      processor_(processor),
      sleep_(std::move(sleep)),
      clock_(clock) {}

Millis CommandPoller::RunOnce(HttpClient& http) {
  if (!registration_.registered()) {
    return Millis(5'000);  // the registration listener wakes the loop earlier
  }
  auto polled = api_.PollCommands(http, options_.host, options_.wait);
  if (!polled) {
    if (NeedsRegistration(polled.error())) {
      registration_.Invalidate();
    }
    if (poll_failures_ == 0) {
      LogWarn("polling for commands failed (retrying with backoff): " + polled.error().message);
    }
    const double jitter = std::uniform_real_distribution<>(0, 1)(rng_);
    return BackoffDelay(poll_failures_++, Millis(250), Millis(5'000), jitter);
  }
  poll_failures_ = 0;
  for (const PolledCommand& pc : *polled) {
    if (pc.id.empty()) {
      LogWarn("ignoring a command without an id: " + pc.parse_error);
      continue;
    }
    protocol::CommandResult result;
    if (const protocol::CommandResult* seen = history_.Find(pc.id)) {
      LogInfo("command " + pc.id + " was delivered again; sending its result again");
      result = *seen;
    } else if (!pc.command) {
      result.id = pc.id;
      result.host = options_.host;
      result.ran = false;
      result.error = "invalid command: " + pc.parse_error;
      history_.Remember(result);
    } else if (auto verified = verifier_.Verify(*pc.command, options_.host, clock_.Now());
               !verified) {
      // Not remembered: the genuine command of this id, if there is one, may still come.
      result = Refuse(*pc.command, verified.error().message);
    } else {
      result = RunOnceAcrossRestarts(*verified);
      history_.Remember(result);
    }
    PostWithRetry(http, result);
  }
  return Millis(0);
}

protocol::CommandResult CommandPoller::Refuse(const protocol::Command& delivered,
                                              const std::string& reason) {
  LogWarn("command " + delivered.id + " (" + delivered.action + ") " + reason);
  if (options_.ledger != nullptr) {
    options_.ledger->Refuse(delivered, reason);
  }
  protocol::CommandResult r;
  r.id = delivered.id;
  r.host = options_.host;
  r.ran = false;
  r.error = reason;
  return r;
}

protocol::CommandResult CommandPoller::RunOnceAcrossRestarts(const protocol::Command& command) {
  CommandLedger* ledger = options_.ledger;
  if (ledger != nullptr) {
    Admission admitted = AdmitCommand(*ledger, command, options_.host);
    switch (admitted.kind) {
      case Admission::Kind::kRun:
        break;
      case Admission::Kind::kReplay:
        return Refuse(command, admitted.answer.error);
      case Admission::Kind::kRepeat:
        LogInfo("command " + command.id + " ran before a restart; sending its result again");
        return admitted.answer;
      case Admission::Kind::kInterrupted:
        LogWarn("command " + command.id + " (" + command.action +
                ") was interrupted by a restart of the agent; it is not run again");
        return admitted.answer;
      case Admission::Kind::kNotRecorded:
        LogError("command " + command.id + ": " + admitted.answer.error);
        return admitted.answer;
    }
  }
  protocol::CommandResult result = processor_.Process(command);
  ++executed_;
  if (ledger != nullptr) {
    if (Status s = ledger->Finish(result); !s) {
      LogError("command " + command.id + ": its result is not in the ledger: " +
               s.error().message);
    }
  }
  return result;
}

void CommandPoller::PostWithRetry(HttpClient& http, const protocol::CommandResult& result) {
  for (int attempt = 0; attempt < options_.result_attempts; ++attempt) {
    const Status s = api_.PostResult(http, result);
    if (s) {
      return;
    }
    const bool transient =
        s.error().code == ErrorCode::kUnavailable || s.error().code == ErrorCode::kDeadlineExceeded;
    if (!transient || attempt + 1 == options_.result_attempts) {
      LogWarn("could not deliver the result of command " + result.id + ": " + s.error().message);
      if (NeedsRegistration(s.error())) {
        registration_.Invalidate();
      }
      return;
    }
    const double jitter = std::uniform_real_distribution<>(0, 1)(rng_);
    if (!sleep_(BackoffDelay(attempt, options_.retry_base, Millis(5'000), jitter))) {
      return;
    }
  }
}

}  // namespace medic::agent
