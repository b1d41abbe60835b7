#include "cli/commands.h"

#include <charconv>
#include <cstdio>
#include <thread>
#include <vector>

#include "cli/autonomy_format.h"
#include "cli/format.h"
#include "cli/net.h"
#include "core/display.h"

namespace medic::cli {

namespace {

// The page GET /api/v1/incidents answers without ?limit.
constexpr int kServerIncidentPage = 100;

// A word as a shell reads it back: plain, or single-quoted.
std::string QuoteArgument(const std::string& word) {
  const bool plain = !word.empty() && word.find_first_not_of(
                                          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789-_.:/@%+=,") == std::string::npos;
  if (plain) {
    return word;
  }
  std::string out = "'";
  for (char c : word) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

}  // namespace

Commands::Commands(ApiClient& api, const Clock& clock, std::ostream& out, bool json)
    : api_(api), clock_(clock), out_(out), json_(json) {}

void Commands::PrintJson(const Json& j) { out_ << DumpJson(j, 2) << "\n"; }

Status Commands::Incidents(const IncidentFilter& filter) {
  std::string path = "/api/v1/incidents";
  std::string sep = "?";
  auto add = [&](const char* key, const std::optional<std::string>& value) {
    if (value.has_value()) {
      path += sep + key + "=" + UrlEncode(*value);
      sep = "&";
    }
  };
  add("status", filter.status);
  add("alarm", filter.alarm);
  add("host", filter.host);
  add("before", filter.before);
  if (filter.limit.has_value()) {
    path += sep + "limit=" + std::to_string(*filter.limit);
  }
  ASSIGN_OR_RETURN(Json body, api_.Call("GET", path, nullptr, "incidents"));
  if (json_) {
    PrintJson(body);
    return OkStatus();
  }
  Result<std::string> text = FormatIncidentList(body, clock_.Now());
  if (!text.has_value()) {
    return Internal("incidents: " + text.error().message);
  }
  out_ << *text;
  // A full page may have more behind it: how to ask for the next one (GET /api/v1/incidents
  // answers 100 without a limit).
  const Json& list = body["incidents"];
  const size_t page = static_cast<size_t>(filter.limit.value_or(kServerIncidentPage));
  if (list.size() >= page && list.back().is_object()) {
    std::string next = "medic incidents --before " + StringOr(list.back(), "incident_id");
    for (const auto& [flag, value] : {std::pair{"--status", filter.status},
                                      std::pair{"--alarm", filter.alarm},
                                      std::pair{"--host", filter.host}}) {
      if (value.has_value()) {
        next += std::string(" ") + flag + " " + QuoteArgument(*value);
      }
    }
    if (filter.limit.has_value()) {
      next += " --limit " + std::to_string(*filter.limit);
    }
    out_ << "next page: " << SanitizeForDisplay(next) << "\n";
  }
  return OkStatus();
}

Status Commands::Show(const std::string& id) {
  const std::string what = "show " + id;
  ASSIGN_OR_RETURN(Json body,
                   api_.Call("GET", "/api/v1/incidents/" + UrlEncode(id), nullptr, what));
  if (json_) {
    PrintJson(body);
    return OkStatus();
  }
  Result<std::string> text = FormatIncident(body, clock_.Now());
  if (!text.has_value()) {
    return Internal(what + ": " + text.error().message);
  }
  out_ << *text;
  return OkStatus();
}

Status Commands::Decide(const std::string& verb, const std::string& id, Json body,
                        const std::optional<std::string>& comment, bool print_json) {
  if (comment.has_value()) {
    body["comment"] = *comment;
  }
  ASSIGN_OR_RETURN(Json inc, api_.Call("POST", "/api/v1/incidents/" + UrlEncode(id) + "/" + verb,
                                       &body, verb + " " + id));
  if (json_) {
    if (print_json) {
      PrintJson(inc);
    }
    return OkStatus();
  }
  const std::string status = inc.is_object() && inc.contains("status") && inc["status"].is_string()
                                 ? inc["status"].get<std::string>()
                                 : "unknown";
  out_ << (verb == "reject" ? "rejected " : "approved ") << id << ": status " << status << "\n";
  return OkStatus();
}

Status Commands::Approve(const std::string& id, const std::optional<std::string>& comment,
                         const CommandWaitOptions& wait, std::optional<int64_t> option) {
  const std::string what = "approve " + id;
  // Approve exactly what is shown: the proposal as it is now, named by its hash.
  ASSIGN_OR_RETURN(Json inc,
                   api_.Call("GET", "/api/v1/incidents/" + UrlEncode(id), nullptr, what));
  auto text = [&inc](const char* key) {
    return inc.is_object() && inc.contains(key) && inc[key].is_string()
               ? inc[key].get<std::string>()
               : std::string();
  };
  const std::string hash = text("action_hash");
  if (const std::string step = text("awaiting"); step == "diagnose" || step == "verify") {
    return FailedPrecondition(what + ": the incident waits for the approval of its " + step +
                              " step, not of a fix: medic approve " + id + " --step " + step);
  }
  if (hash.empty()) {
    return FailedPrecondition(what + ": the incident proposes no fix to approve (status " +
                              (text("status").empty() ? "unknown" : text("status")) + ")");
  }
  std::string line = text("ai_suggestion");
  Json body{{"action_hash", hash}};
  if (option.has_value()) {
    body["option"] = *option;
    const Json& options = inc.contains("options") ? inc["options"] : Json();
    if (options.is_array() && *option >= 1 && static_cast<size_t>(*option) <= options.size() &&
        options[*option - 1].is_object()) {
      line = "option " + std::to_string(*option) + ": " +
             options[*option - 1].value("line", std::string());
    }
  }
  if (!json_) {
    // The server's strings are shown as text, never as terminal control sequences.
    out_ << "approving " << SanitizeForDisplay(id) << " on " << SanitizeForDisplay(text("instance_id"))
         << ": " << SanitizeForDisplay(line) << " (action_hash "
         << SanitizeForDisplay(hash) << ")\n";
  }
  RETURN_IF_ERROR(Decide("approve", id, std::move(body), comment,
                         /*print_json=*/!wait.wait));
  if (!wait.wait) {
    return OkStatus();
  }
  return WaitForFix(id, what, wait);
}

Result<Json> Commands::PollUntil(const std::string& path, const std::string& label,
                                 const CommandWaitOptions& wait,
                                 const std::function<bool(const Json&)>& done,
                                 const std::function<std::string(const Json&)>& timed_out) {
  const SteadyTime deadline = clock_.SteadyNow() + wait.timeout;
  while (true) {
    ASSIGN_OR_RETURN(Json answer, api_.Call("GET", path, nullptr, label));
    if (done(answer)) {
      return answer;
    }
    if (clock_.SteadyNow() >= deadline) {
      if (json_) {
        PrintJson(answer);
      }
      return DeadlineExceeded(timed_out(answer));
    }
    if (sleep_) {
      sleep_(wait.interval);
    } else {
      std::this_thread::sleep_for(wait.interval);
    }
  }
}

Status Commands::WaitForFix(const std::string& id, const std::string& what,
                            const CommandWaitOptions& wait) {
  if (!json_) {
    out_ << "waiting for the fix and its verification (--no-wait returns at once)\n";
  }
  // pending_approval: the approval is being recorded by the incident's driver (a cluster).
  ASSIGN_OR_RETURN(
      Json inc,
      PollUntil(
          "/api/v1/incidents/" + UrlEncode(id), what, wait,
          [](const Json& j) {
            const std::string st = j.is_object() ? StringOr(j, "status") : "";
            return st != "executing" && st != "pending_approval";
          },
          [&](const Json& j) {
            return what + ": the fix did not end within " +
                   std::to_string(wait.timeout.count() / 1000) + "s (incident " + id + " is " +
                   StringOr(j, "status") + "; it may still end: medic show " + id + ")";
          }));
  const std::string status = StringOr(inc, "status");
  if (json_) {
    PrintJson(inc);
  } else {
    const std::string output = StringOr(inc, "remediation_output");
    if (!output.empty()) {
      out_ << SanitizeForDisplay(output);
      if (output.back() != '\n') {
        out_ << "\n";
      }
    }
  }
  const std::string reason = StringOr(inc, "reason");
  if (status == "completed") {
    std::string verified;
    const Json& timeline = FieldOrNull(inc, "timeline");
    if (timeline.is_array()) {
      for (const Json& e : timeline) {
        if (e.is_object() && StringOr(e, "event") == "verified") {
          verified = StringOr(e, "detail");
        }
      }
    }
    if (!json_) {
      out_ << what << ": completed"
           << (verified.empty() ? "" : " (verified: " + SanitizeForDisplay(verified) + ")")
           << "\n";
    }
    return OkStatus();
  }
  return Internal(what + ": the incident ended " + (status.empty() ? "unknown" : status) +
                  (reason.empty() ? "" : ": " + SanitizeForDisplay(reason)));
}

Status Commands::ApproveStep(const std::string& id, const std::string& step,
                             const std::optional<std::string>& comment) {
  return Decide("approve-step", id, Json{{"step", step}}, comment);
}

Status Commands::Undo(const std::string& id) {
  Json body = Json::object();
  ASSIGN_OR_RETURN(Json inc, api_.Call("POST", "/api/v1/incidents/" + UrlEncode(id) + "/undo",
                                       &body, "undo " + id));
  if (json_) {
    PrintJson(inc);
    return OkStatus();
  }
  const Json undo = inc.is_object() && inc.contains("action") && inc["action"].is_object()
                        ? inc["action"].value("undo", Json::object())
                        : Json::object();
  out_ << "undo of " << SanitizeForDisplay(id) << " sent: "
       << SanitizeForDisplay(undo.is_object() ? undo.value("line", std::string()) : "")
       << " (`medic show " << SanitizeForDisplay(id) << "`: undone or undo_failed)\n";
  return OkStatus();
}

Status Commands::Reject(const std::string& id, const std::optional<std::string>& comment) {
  return Decide("reject", id, Json::object(), comment);
}

Status Commands::Audit(int limit) {
  ASSIGN_OR_RETURN(Json body, api_.Call("GET", "/api/v1/audit?limit=" + std::to_string(limit),
                                        nullptr, "audit"));
  if (json_) {
    PrintJson(body);
    return OkStatus();
  }
  if (!body.is_object() || !body.contains("audit") || !body["audit"].is_array()) {
    return Internal("audit: the server's answer has no 'audit' list");
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : body["audit"]) {
    if (!e.is_object()) {
      continue;
    }
    auto text = [&](const char* key) {
      return e.contains(key) && e[key].is_string() ? e[key].get<std::string>() : std::string();
    };
    const std::string id =
        e.contains("id") && e["id"].is_number_integer() ? std::to_string(e["id"].get<int64_t>())
                                                        : "";
    // One line per entry: a detail's newlines and escapes are shown, not obeyed.
    std::string detail = SanitizeForDisplay(text("detail"));
    for (size_t p = detail.find('\n'); p != std::string::npos; p = detail.find('\n', p + 2)) {
      detail.replace(p, 1, "\\n");
    }
    rows.push_back({id, SanitizeForDisplay(text("timestamp")), SanitizeForDisplay(text("actor")),
                    SanitizeForDisplay(text("action")), detail});
  }
  if (rows.empty()) {
    out_ << "the audit log is empty\n";
    return OkStatus();
  }
  out_ << FormatTable({"ID", "TIME", "ACTOR", "ACTION", "DETAIL"}, rows);
  return OkStatus();
}

Status Commands::AuditVerify() {
  ASSIGN_OR_RETURN(Json v, api_.Call("GET", "/api/v1/audit/verify", nullptr, "audit verify"));
  if (!v.is_object() || !v.contains("ok") || !v["ok"].is_boolean()) {
    return Internal("audit verify: the server's answer has no 'ok'");
  }
  const bool ok = v["ok"].get<bool>();
  const int64_t entries = IntOr(v, "entries", 0);
  if (json_) {
    PrintJson(v);
  } else if (ok) {
    out_ << "audit log intact: " << entries << " entries, head "
         << SanitizeForDisplay(StringOr(v, "head")) << "\n";
  }
  if (ok) {
    return OkStatus();
  }
  std::string entry = "an entry";
  if (v.contains("first_broken") && v["first_broken"].is_object()) {
    const Json& b = v["first_broken"];
    entry = "entry " + std::to_string(IntOr(b, "id", 0)) + " (" +
            StringOr(b, "timestamp") + " " + StringOr(b, "actor") + " " + StringOr(b, "action") +
            ")";
  }
  return FailedPrecondition(SanitizeForDisplay("audit verify: the audit log is broken at " +
                                               entry + " of " + std::to_string(entries) + ": " +
                                               StringOr(v, "reason")));
}

Status Commands::Report(const std::string& id, const std::string& format) {
  if (format != "md" && format != "html") {
    return InvalidArgument("report " + id + ": --format must be md or html");
  }
  ASSIGN_OR_RETURN(
      HttpResponse resp,
      api_.Send("GET", "/api/v1/incidents/" + UrlEncode(id) + "/report?format=" + format, nullptr,
                "report " + id));
  // The server escapes the report; a compromised one must not reach the terminal either.
  const std::string body = SanitizeForDisplay(resp.body);
  out_ << body;
  if (!body.empty() && body.back() != '\n') {
    out_ << "\n";
  }
  return OkStatus();
}

Status Commands::Hosts() {
  ASSIGN_OR_RETURN(Json body, api_.Call("GET", "/api/v1/hosts", nullptr, "hosts"));
  if (json_) {
    PrintJson(body);
    return OkStatus();
  }
  Result<std::string> text = FormatHostList(body, clock_.Now());
  if (!text.has_value()) {
    return Internal("hosts: " + text.error().message);
  }
  out_ << *text;
  return OkStatus();
}

Status Commands::HostRemove(const std::string& name, bool close_incidents) {
  ASSIGN_OR_RETURN(Json resp,
                   api_.Call("DELETE",
                             "/api/v1/hosts/" + UrlEncode(name) +
                                 (close_incidents ? "?close_incidents=true" : ""),
                             nullptr, "hosts remove " + name));
  if (json_) {
    PrintJson(resp);
    return OkStatus();
  }
  out_ << "removed host " << name << "\n";
  if (resp.contains("closed_incidents") && resp["closed_incidents"].is_array()) {
    for (const Json& id : resp["closed_incidents"]) {
      out_ << "closed incident " << (id.is_string() ? id.get<std::string>() : id.dump())
           << " (host removed)\n";
    }
  }
  return OkStatus();
}

Status Commands::HostEnroll(const std::string& name, const std::string& ttl) {
  Json body = Json::object();
  if (!ttl.empty()) {
    body["ttl"] = ttl;
  }
  ASSIGN_OR_RETURN(Json resp, api_.Call("POST", "/api/v1/hosts/" + UrlEncode(name) + "/enroll",
                                        &body, "hosts enroll " + name));
  if (json_) {
    PrintJson(resp);
    return OkStatus();
  }
  if (!resp.is_object() || !resp.contains("code") || !resp["code"].is_string()) {
    return Internal("hosts enroll " + name + ": the server's answer carries no code");
  }
  out_ << resp["code"].get<std::string>() << "\n";
  out_ << "single use, expires " << StringOr(resp, "expires_at") << "; give it to " << name
       << "'s agent (enroll_code in its config, or --enroll-code)\n";
  return OkStatus();
}

Status Commands::HostsPending() {
  ASSIGN_OR_RETURN(Json resp, api_.Call("GET", "/api/v1/hosts/pending", nullptr, "hosts pending"));
  if (json_) {
    PrintJson(resp);
    return OkStatus();
  }
  if (!resp.is_object() || !resp.contains("pending") || !resp["pending"].is_array()) {
    return Internal("hosts pending: the server's answer has no 'pending' list");
  }
  if (resp["pending"].empty()) {
    out_ << "no enrolment requests wait for approval\n";
    return OkStatus();
  }
  out_ << "NAME                REQUEST           HOSTNAME             ASKED                     "
          "STATE\n";
  for (const auto& p : resp["pending"]) {
    if (!p.is_object()) {
      continue;
    }
    std::string state = BoolOr(p, "approved", false) ? "approved, not picked up" : "waiting";
    if (BoolOr(p, "enrolled", false)) {
      state += " (replaces its credential)";
    }
    char line[512];
    std::snprintf(line, sizeof(line), "%-19s %-17s %-20s %-25s %s\n",
                  SanitizeForDisplay(StringOr(p, "name")).c_str(),
                  SanitizeForDisplay(StringOr(p, "fingerprint")).c_str(),
                  SanitizeForDisplay(StringOr(p, "hostname")).c_str(),
                  SanitizeForDisplay(StringOr(p, "requested_at")).c_str(), state.c_str());
    out_ << line;
  }
  return OkStatus();
}

Status Commands::HostApprove(const std::string& name) {
  ASSIGN_OR_RETURN(Json resp, api_.Call("POST", "/api/v1/hosts/" + UrlEncode(name) + "/approve",
                                        nullptr, "hosts approve " + name));
  if (json_) {
    PrintJson(resp);
    return OkStatus();
  }
  out_ << "approved " << name << ": its agent gets its credential at its next call\n";
  return OkStatus();
}

Status Commands::HostRevoke(const std::string& name) {
  ASSIGN_OR_RETURN(Json resp, api_.Call("POST", "/api/v1/hosts/" + UrlEncode(name) + "/revoke",
                                        nullptr, "hosts revoke " + name));
  if (json_) {
    PrintJson(resp);
    return OkStatus();
  }
  out_ << "revoked host " << name << ": its agent is cut off\n";
  return OkStatus();
}

Status Commands::Alarms(const std::optional<std::string>& state,
                        const std::optional<std::string>& host) {
  std::string path = "/api/v1/alarms";
  std::string sep = "?";
  for (const auto& [key, value] : {std::pair{"state", &state}, std::pair{"host", &host}}) {
    if (value->has_value()) {
      path += sep + key + "=" + UrlEncode(**value);
      sep = "&";
    }
  }
  ASSIGN_OR_RETURN(Json body, api_.Call("GET", path, nullptr, "alarms"));
  if (json_) {
    PrintJson(body);
    return OkStatus();
  }
  Result<std::string> text = FormatAlarmList(body, clock_.Now());
  if (!text.has_value()) {
    return Internal("alarms: " + text.error().message);
  }
  out_ << *text;
  return OkStatus();
}

Status Commands::Chaos(const std::string& host, const std::string& mode, const Json& params,
                       const WaitOptions& wait) {
  const Json body = {{"host", host}, {"mode", mode}, {"params", params}};
  const std::string what = "chaos " + mode + " on " + host;
  ASSIGN_OR_RETURN(Json resp, api_.Call("POST", "/api/v1/chaos", &body, what));
  std::string id;
  if (resp.is_object() && resp.contains("command_id") && resp["command_id"].is_string()) {
    id = resp["command_id"].get<std::string>();
  }
  // With several servers, one whose host reports to another server sends the command on over
  // the bus: its state is followed there, not here (docs/API.md, "Commands").
  const bool tracked = !resp.is_object() || resp.value("tracked", true);
  if (!tracked && wait.wait && !json_) {
    out_ << "chaos " << mode << " sent to " << host << ": command " << id << " (" << host
         << " reports to another server, which follows the command; not waiting)\n";
    return OkStatus();
  }
  if (!wait.wait || id.empty() || !tracked) {
    if (json_) {
      PrintJson(resp);
      return OkStatus();
    }
    out_ << "chaos " << mode << " sent to " << host << ": command " << (id.empty() ? "-" : id)
         << "\n";
    return OkStatus();
  }
  if (!json_) {
    out_ << "chaos " << mode << " sent to " << host << ": command " << id
         << ", waiting for the result\n";
    out_.flush();
  }
  return WaitForCommand(id, what, wait);
}

Status Commands::WaitForCommand(const std::string& id, const std::string& what,
                                const WaitOptions& wait) {
  ASSIGN_OR_RETURN(
      Json command,
      PollUntil(
          "/api/v1/commands/" + UrlEncode(id), what + ": command " + id, wait,
          [](const Json& j) {
            const std::string st = j.is_object() ? StringOr(j, "state") : "";
            return st != "queued" && st != "delivered";
          },
          [&](const Json& j) {
            return what + ": no result within " + std::to_string(wait.timeout.count() / 1000) +
                   "s (command " + id + " is " + StringOr(j, "state") +
                   "; it may still run: GET /api/v1/commands/" + id + ")";
          }));
  const std::string state = command.is_object() ? StringOr(command, "state") : "";
  const Json& result = FieldOrNull(command, "result");
  if (json_) {
    PrintJson(command);
  } else if (result.is_object()) {
    const std::string output = StringOr(result, "output");
    if (!output.empty()) {
      out_ << SanitizeForDisplay(output);
      if (output.back() != '\n') {
        out_ << "\n";
      }
    }
    if (result.value("truncated", false)) {
      out_ << "(output truncated by the agent)\n";
    }
  }
  const std::string error = result.is_object() ? StringOr(result, "error") : "";
  const std::string host = StringOr(command, "host");
  if (state == "succeeded") {
    if (!json_) {
      out_ << what << ": succeeded\n";
    }
    return OkStatus();
  }
  if (state == "refused") {
    return FailedPrecondition(what + ": " + host + " refused it: " +
                              (error.empty() ? "no reason given" : error));
  }
  if (state == "failed") {
    std::string how;
    if (result.value("timed_out", false)) {
      how = "timed out";
    } else if (const int sig = result.value("signal", 0); sig != 0) {
      how = "killed by signal " + std::to_string(sig);
    } else {
      how = "exit " + std::to_string(result.value("exit_code", -1));
    }
    return Internal(what + ": failed on " + host + " (" + how + ")" +
                    (error.empty() ? "" : ": " + error));
  }
  if (state == "expired") {
    return DeadlineExceeded(what + ": command " + id + " expired before " + host +
                            " answered (is its agent running and polling?)");
  }
  return Internal(what + ": command " + id + " is in an unknown state '" + state + "'");
}

Status Commands::TokenCreate(const std::string& name, const std::string& role) {
  const Json body = {{"name", name}, {"role", role}};
  ASSIGN_OR_RETURN(Json resp, api_.Call("POST", "/api/v1/tokens", &body, "token create " + name));
  if (json_) {
    PrintJson(resp);
    return OkStatus();
  }
  if (!resp.is_object() || !resp.contains("token") || !resp["token"].is_string()) {
    return Internal("token create " + name + ": the server's answer carries no token");
  }
  out_ << resp["token"].get<std::string>() << "\n";
  return OkStatus();
}

Status Commands::TokenList() {
  ASSIGN_OR_RETURN(Json resp, api_.Call("GET", "/api/v1/tokens", nullptr, "token list"));
  if (json_) {
    PrintJson(resp);
    return OkStatus();
  }
  if (!resp.is_object() || !resp.contains("tokens") || !resp["tokens"].is_array()) {
    return Internal("token list: the server's answer has no 'tokens' list");
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : resp["tokens"]) {
    if (t.is_object()) {
      rows.push_back({SanitizeForDisplay(StringOr(t, "name")), SanitizeForDisplay(StringOr(t, "role")),
                      SanitizeForDisplay(StringOr(t, "created_at")),
                      SanitizeForDisplay(StringOr(t, "created_by"))});
    }
  }
  out_ << FormatTable({"NAME", "ROLE", "CREATED", "BY"}, rows);
  return OkStatus();
}

Status Commands::TokenRevoke(const std::string& name) {
  ASSIGN_OR_RETURN(Json resp, api_.Call("DELETE", "/api/v1/tokens/" + UrlEncode(name), nullptr,
                                        "token revoke " + name));
  if (json_) {
    PrintJson(resp);
    return OkStatus();
  }
  out_ << "revoked token " << name << "\n";
  return OkStatus();
}

Status Commands::Settings() {
  ASSIGN_OR_RETURN(Json body, api_.Call("GET", "/api/v1/settings", nullptr, "settings"));
  return PrintFormatted(body, FormatSettings, "settings");
}

Status Commands::PrintFormatted(const Json& body, Result<std::string> (*format)(const Json&),
                                const std::string& what) {
  if (json_) {
    PrintJson(body);
    return OkStatus();
  }
  Result<std::string> text = format(body);
  if (!text.has_value()) {
    return Internal(what + ": " + text.error().message);
  }
  out_ << *text;
  return OkStatus();
}

Status Commands::SetAutomationPaused(bool paused) {
  const std::string what = paused ? "pause" : "resume";
  const Json patch = {{"automation_paused", paused}};
  ASSIGN_OR_RETURN(Json body, api_.Call("PUT", "/api/v1/settings", &patch, what));
  Result<std::string> line = FormatAutomationState(body);
  if (!line.has_value()) {
    return Internal(what + ": " + line.error().message);
  }
  // A kill switch that did not switch must not exit 0.
  if (body["automation_paused"].get<bool>() != paused) {
    return Internal(what + ": the server answered automation_paused " +
                    (paused ? "false" : "true") + ", not " + (paused ? "true" : "false"));
  }
  if (json_) {
    PrintJson(body);
    return OkStatus();
  }
  out_ << *line;
  return OkStatus();
}

Result<Json> ParseChaosParams(const std::vector<std::string>& words) {
  Json params = Json::object();
  for (const std::string& w : words) {
    const size_t eq = w.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgument("chaos parameter '" + w + "' is not KEY=VALUE");
    }
    const std::string key = w.substr(0, eq);
    const std::string value = w.substr(eq + 1);
    double number = 0;
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (!value.empty() && ec == std::errc() && ptr == value.data() + value.size()) {
      params[key] = number;
      int64_t integer = 0;
      const auto [iptr, iec] = std::from_chars(value.data(), value.data() + value.size(), integer);
      if (iec == std::errc() && iptr == value.data() + value.size()) {
        params[key] = integer;
      }
    } else if (value == "true" || value == "false") {
      params[key] = value == "true";
    } else {
      params[key] = value;
    }
  }
  return params;
}

Status Commands::Autonomy() {
  ASSIGN_OR_RETURN(Json body, api_.Call("GET", "/api/v1/autonomy", nullptr, "autonomy"));
  return PrintFormatted(body, FormatAutonomy, "autonomy");
}

Status Commands::AutonomyPin(const std::string& alarm, const std::string& action,
                             const std::optional<std::string>& mode) {
  const std::string path = "/api/v1/autonomy/" + UrlEncode(alarm) + "/" + UrlEncode(action);
  const std::string what = (mode ? "autonomy pin " : "autonomy unpin ") + alarm + " " + action;
  const Json body{{"mode", mode.value_or("")}};
  ASSIGN_OR_RETURN(Json answer, api_.Call(mode ? "PUT" : "DELETE", path, mode ? &body : nullptr,
                                          what));
  if (json_) {
    PrintJson(answer);
    return OkStatus();
  }
  out_ << SanitizeForDisplay(alarm) << " x " << SanitizeForDisplay(action)
       << (mode ? " pinned to " + *mode : std::string(" unpinned: its record decides")) << "\n";
  return OkStatus();
}

Status Commands::Stats(const std::string& since) {
  const std::string path =
      since.empty() ? "/api/v1/stats" : "/api/v1/stats?since=" + UrlEncode(since);
  ASSIGN_OR_RETURN(Json body, api_.Call("GET", path, nullptr, "stats"));
  return PrintFormatted(body, FormatStats, "stats");
}

}  // namespace medic::cli
