#pragma once

// The commands that talk to medic-server, one method each. They print on `out` and return an
// error worded for "medic: <message>". With `json`, listings and shows print the API's JSON,
// pretty-printed.

#include <functional>
#include <optional>
#include <ostream>
#include <string>

#include "cli/api.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"

namespace medic::cli {

// How a command sent to a host is followed to its end (GET /api/v1/commands/ID).
struct CommandWaitOptions {
  bool wait = true;                  // false (--no-wait): return once the server took it
  Millis timeout = Millis(120'000);  // give up waiting (the command may still run)
  Millis interval = Millis(500);     // between two looks at the command
};

class Commands {
 public:
  // All references must outlive the Commands.
  Commands(ApiClient& api, const Clock& clock, std::ostream& out, bool json);

  struct IncidentFilter {
    std::optional<std::string> status, alarm, host, before;
    std::optional<int> limit;
  };
  Status Incidents(const IncidentFilter& filter);
  Status Show(const std::string& id);
  // Fetches the incident, prints the command line it is about to approve and approves that
  // proposal (its action_hash): the server refuses it (409) if the proposal changed since.
  // `option`: the Nth of the incident's options (1-based); none: the first, sent as before.
  Status Approve(const std::string& id, const std::optional<std::string>& comment,
                 std::optional<int64_t> option = std::nullopt);
  // Asks the server to run the recorded undo of the incident's fix (docs/AUTONOMY.md, "Undo").
  Status Undo(const std::string& id);
  Status Reject(const std::string& id, const std::optional<std::string>& comment);
  // Prints the report body as the server sends it (Markdown or HTML).
  Status Report(const std::string& id, const std::string& format);
  Status Hosts();
  Status HostRemove(const std::string& name);
  // Enrolment (admin; docs/PROTOCOL.md, "Enrolment"). HostEnroll prints a single-use code for
  // the host's agent (enroll_code) and when it expires; `ttl` is a duration ("" = 1h).
  Status HostEnroll(const std::string& name, const std::string& ttl);
  // The enrolment requests made with the bootstrap token, one a line with its fingerprint.
  Status HostsPending();
  Status HostApprove(const std::string& name);
  // Cuts the host off at once: its next agent call gets 401.
  Status HostRevoke(const std::string& name);
  // GET /api/v1/alarms, with ?state= and ?host= when given.
  Status Alarms(const std::optional<std::string>& state = std::nullopt,
                const std::optional<std::string>& host = std::nullopt);
  using WaitOptions = CommandWaitOptions;
  // POST /api/v1/chaos through the host's agent; prints the command id, then (unless
  // !wait.wait) waits for the host's result and prints the agent's output. A refusal, a
  // failure, an expiry or no result within wait.timeout is an error carrying the agent's reason.
  Status Chaos(const std::string& host, const std::string& mode, const Json& params,
               const WaitOptions& wait = {});
  // Waits for command `id` to end as above; `what` names it in messages ("chaos oom on web-1").
  Status WaitForCommand(const std::string& id, const std::string& what, const WaitOptions& wait);

  // How the CLI waits between two looks at a command; the real one sleeps. Tests advance a
  // ManualClock instead.
  void SetSleep(std::function<void(Millis)> sleep) { sleep_ = std::move(sleep); }
  Status TokenCreate(const std::string& name, const std::string& role);
  Status TokenRevoke(const std::string& name);
  // GET /api/v1/tokens: NAME ROLE CREATED BY, one token a line (never the secrets: the server
  // keeps only their hashes).
  Status TokenList();
  // GET /api/v1/audit/verify: prints the result; a broken chain is an error naming the first
  // broken entry (exit 1).
  Status AuditVerify();
  // The newest `limit` audit entries (1..1000), newest first.
  Status Audit(int limit);
  // GET /api/v1/settings, one setting a line.
  Status Settings();
  // The automation kill switch (admin): PUT /api/v1/settings {"automation_paused":paused}.
  // Prints the state the server answered; an answer in another state is an error.
  Status SetAutomationPaused(bool paused);

 private:
  // `body` carries what the verb needs besides the comment (approve: action_hash).
  Status Decide(const std::string& verb, const std::string& id, Json body,
                const std::optional<std::string>& comment);
  void PrintJson(const Json& j);

  ApiClient& api_;
  const Clock& clock_;
  std::ostream& out_;
  bool json_;
  std::function<void(Millis)> sleep_;
};

// Parses chaos parameters given as KEY=VALUE words into a JSON object; values that read as a
// number or true/false become one, the rest stay strings.
Result<Json> ParseChaosParams(const std::vector<std::string>& words);

}  // namespace medic::cli
