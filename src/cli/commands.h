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
  // Then (unless !wait.wait) waits for the incident to leave `executing`, prints the fix's output
  // and how it ended; an end other than `completed` (the fix failed, was refused, timed out or
  // did not verify), or none within wait.timeout, is an error.
  // `option`: the Nth of the incident's options (1-based); none: the first, sent as before.
  Status Approve(const std::string& id, const std::optional<std::string>& comment,
                 const CommandWaitOptions& wait = {},
                 std::optional<int64_t> option = std::nullopt);
  // A stage gate: the incident's gated diagnose or verify step (docs/AUTONOMY.md).
  Status ApproveStep(const std::string& id, const std::string& step,
                     const std::optional<std::string>& comment);
  // Asks the server to run the recorded undo of the incident's fix (docs/AUTONOMY.md, "Undo").
  Status Undo(const std::string& id);
  Status Reject(const std::string& id, const std::optional<std::string>& comment);
  // Prints the report body as the server sends it (Markdown or HTML).
  Status Report(const std::string& id, const std::string& format);
  Status Hosts();
  // --close-incidents: also closes the host's open incidents (else the server refuses, 409).
  Status HostRemove(const std::string& name, bool close_incidents = false);
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
  // GET /api/v1/autonomy: every alarm x action pair's record and mode (docs/AUTONOMY.md).
  Status Autonomy();
  // Pins the pair to `mode` (automatic | approval: PUT) or unpins it (nullopt: DELETE); admin.
  Status AutonomyPin(const std::string& alarm, const std::string& action,
                     const std::optional<std::string>& mode);
  // GET /api/v1/stats?since=SINCE (a duration; "" = the server's default period).
  Status Stats(const std::string& since);

 private:
  // `body` carries what the verb needs besides the comment (approve: action_hash).
  Status Decide(const std::string& verb, const std::string& id, Json body,
                const std::optional<std::string>& comment, bool print_json = true);
  // GETs `path` every wait.interval until done(answer), and returns that answer; after
  // wait.timeout, DeadlineExceeded(timed_out(last answer)) (with --json, that answer printed
  // first). `label` names the call in errors.
  Result<Json> PollUntil(const std::string& path, const std::string& label,
                         const CommandWaitOptions& wait,
                         const std::function<bool(const Json&)>& done,
                         const std::function<std::string(const Json&)>& timed_out);
  // Approve's wait: polls the incident until it leaves executing (see Approve).
  Status WaitForFix(const std::string& id, const std::string& what,
                    const CommandWaitOptions& wait);
  void PrintJson(const Json& j);
  // With --json the body as it came, else `format`'s text; a body `format` cannot read is an
  // error starting with `what`.
  Status PrintFormatted(const Json& body, Result<std::string> (*format)(const Json&),
                        const std::string& what);

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
