#include "cli/mcp.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "cli/net.h"
#include "core/display.h"

namespace medic::cli {

namespace {

// Revisions that changed what this server sends: JSON-RPC batches existed only in 2025-03-26;
// tool annotations arrived in 2025-03-26; structuredContent and a tool's title in 2025-06-18.
constexpr std::string_view kBatchRevision = "2025-03-26";
constexpr std::string_view kAnnotationsSince = "2025-03-26";
constexpr std::string_view kStructuredSince = "2025-06-18";

constexpr int64_t kDefaultIncidentLimit = 20;
constexpr int64_t kDefaultHostLimit = 100;
constexpr int64_t kDefaultAlarmLimit = 200;
constexpr int64_t kDefaultMaxPoints = 120;

constexpr std::string_view kApproveHint =
    "start medic mcp with --allow-approve and an operator or admin token";

enum class ArgType { kString, kInteger };

// One argument of a tool: what the inputSchema says and ValidateArguments checks.
struct ArgSpec {
  std::string_view name;
  ArgType type = ArgType::kString;
  bool required = false;
  std::string_view description;
  std::vector<std::string_view> choices = {};  // strings: the allowed values
  int64_t min = 1;                             // integers: the range; strings: the length
  int64_t max = 256;
};

Json Schema(const std::vector<ArgSpec>& args) {
  Json properties = Json::object();
  Json required = Json::array();
  for (const ArgSpec& a : args) {
    Json p{{"description", a.description}};
    if (a.type == ArgType::kString) {
      p["type"] = "string";
      if (!a.choices.empty()) {
        p["enum"] = Json::array();
        for (std::string_view c : a.choices) {
          p["enum"].push_back(c);
        }
      } else {
        p["minLength"] = a.min;
        p["maxLength"] = a.max;
      }
    } else {
      p["type"] = "integer";
      p["minimum"] = a.min;
      p["maximum"] = a.max;
    }
    properties[std::string(a.name)] = std::move(p);
    if (a.required) {
      required.push_back(a.name);
    }
  }
  Json schema{
      {"type", "object"}, {"properties", std::move(properties)}, {"additionalProperties", false}};
  if (!required.empty()) {
    schema["required"] = std::move(required);
  }
  return schema;
}

// The arguments against the tool's ArgSpecs: every one known, of its type and in its range, the
// required ones present. REQUIRES: args is an object.
Status ValidateArguments(const std::vector<ArgSpec>& specs, const Json& args) {
  for (auto it = args.begin(); it != args.end(); ++it) {
    const std::string& key = it.key();  // not a structured binding: clang 14 cannot capture one
    const Json& value = it.value();
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&key](const ArgSpec& a) { return a.name == key; });
    if (spec == specs.end()) {
      std::string known;
      for (const ArgSpec& a : specs) {
        known += (known.empty() ? "" : ", ") + std::string(a.name);
      }
      return InvalidArgument("unknown argument '" + key +
                             "' (known: " + (known.empty() ? "none" : known) + ")");
    }
    const std::string name(spec->name);
    if (spec->type == ArgType::kString) {
      if (!value.is_string()) {
        return InvalidArgument(name + " must be a string");
      }
      const std::string& s = value.get_ref<const std::string&>();
      if (!spec->choices.empty()) {
        if (std::find(spec->choices.begin(), spec->choices.end(), s) == spec->choices.end()) {
          std::string allowed;
          for (std::string_view c : spec->choices) {
            allowed += (allowed.empty() ? "" : ", ") + std::string(c);
          }
          return InvalidArgument(name + " must be one of " + allowed);
        }
      } else if (static_cast<int64_t>(s.size()) < spec->min ||
                 static_cast<int64_t>(s.size()) > spec->max) {
        return InvalidArgument(name + " must be a string of " + std::to_string(spec->min) + " to " +
                               std::to_string(spec->max) + " bytes");
      }
    } else {
      const std::optional<int64_t> n = AsInt64(value);
      if (!n.has_value() || *n < spec->min || *n > spec->max) {
        return InvalidArgument(name + " must be an integer from " + std::to_string(spec->min) +
                               " to " + std::to_string(spec->max));
      }
    }
  }
  for (const ArgSpec& a : specs) {
    if (a.required && !args.contains(std::string(a.name))) {
      return InvalidArgument("missing required argument '" + std::string(a.name) + "'");
    }
  }
  return OkStatus();
}

// "&key=value" for a present string argument.
std::string QueryPart(const Json& args, const char* arg, const char* key) {
  const std::string v = StringOr(args, arg);
  return v.empty() ? "" : std::string("&") + key + "=" + UrlEncode(v);
}

// A JSON-RPC error code for an Error from the dispatching code.
int RpcCode(const Error& e) {
  switch (e.code) {
    case ErrorCode::kInvalidArgument:
      return kJsonRpcInvalidParams;
    case ErrorCode::kNotFound:
      return kJsonRpcMethodNotFound;
    case ErrorCode::kFailedPrecondition:
      return kJsonRpcInvalidRequest;
    default:
      return kJsonRpcInternalError;
  }
}

Json ErrorAnswer(const Json& id, int code, std::string message) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

// A JSON-RPC id as MCP allows it: a string or an integer (not null, not a fraction).
bool ValidId(const Json& id) { return id.is_string() || id.is_number_integer(); }

}  // namespace

struct McpServer::ToolSpec {
  enum class Kind { kRead, kApprove, kReject };
  std::string_view name;
  std::string_view title;
  std::string_view description;
  std::vector<ArgSpec> args;
  Kind kind = Kind::kRead;
  Result<ToolOutput> (McpServer::*run)(const Json& args) = nullptr;
};

const std::vector<std::string>& McpProtocolVersions() {
  static const std::vector<std::string> versions = {"2025-11-25", "2025-06-18", "2025-03-26",
                                                    "2024-11-05"};
  return versions;
}

const std::vector<McpServer::ToolSpec>& McpServer::Tools() {
  using Kind = ToolSpec::Kind;
  const std::vector<std::string_view> statuses = {
      "diagnosing", "pending_approval", "executing", "completed", "failed", "timeout", "rejected"};
  const ArgSpec incident_id{
      "id", ArgType::kString, true, "the incident id, as list_incidents shows it (inc-…)", {}, 1,
      128};
  static const std::vector<ToolSpec> tools = {
      {"list_incidents",
       "List incidents",
       "medic's incidents, newest first, without the long texts (diagnostics, reasoning, "
       "output, timeline: show_incident has them).",
       {{"status", ArgType::kString, false, "only incidents in this status", statuses},
        {"limit", ArgType::kInteger, false, "at most this many (default 20)", {}, 1, 1000}},
       Kind::kRead,
       &McpServer::ListIncidents},
      {"show_incident",
       "Show an incident",
       "One incident in full: alarm, host, status, diagnostics from the host, the proposed fix "
       "(ai_suggestion, action, risk), the fix's output and the timeline.",
       {incident_id},
       Kind::kRead,
       &McpServer::ShowIncident},
      {"list_hosts",
       "List hosts",
       "The fleet's hosts in name order with status (healthy, unhealthy, stale), last report, "
       "latest metrics and health checks; counts by status; `next` names the page's last host "
       "when more match (pass it as `after`).",
       {{"status",
         ArgType::kString,
         false,
         "only hosts in this status",
         {"healthy", "unhealthy", "stale"}},
        {"prefix", ArgType::kString, false, "only hosts whose name starts with this", {}, 1, 253},
        {"limit", ArgType::kInteger, false, "at most this many (default 100)", {}, 1, 10000},
        {"after", ArgType::kString, false, "the previous page's `next`", {}, 1, 253}},
       Kind::kRead,
       &McpServer::ListHosts},
      {"list_alarms",
       "List alarms",
       "The state (OK, ALARM, INSUFFICIENT_DATA) of every alarm on every host, with its last "
       "value and reason, and the configured alarm rules; `next` pages as in list_hosts.",
       {{"state",
         ArgType::kString,
         false,
         "only alarms in this state",
         {"OK", "ALARM", "INSUFFICIENT_DATA"}},
        {"host", ArgType::kString, false, "only the alarms of this host", {}, 1, 253},
        {"limit", ArgType::kInteger, false, "at most this many (default 200)", {}, 1, 10000},
        {"after", ArgType::kString, false, "the previous page's `next`", {}, 1, 512}},
       Kind::kRead,
       &McpServer::ListAlarms},
      {"host_metrics",
       "A host's metric history",
       "The points {t: RFC 3339, v} of one metric of a host, oldest first (the server keeps "
       "every point of the last 5 minutes, then each minute's lowest and highest).",
       {{"host", ArgType::kString, true, "the host name", {}, 1, 253},
        {"metric",
         ArgType::kString,
         true,
         "the metric, e.g. disk_used_percent, mem_used_percent, cpu_percent, unhealthy:web",
         {},
         1,
         256},
        {"since",
         ArgType::kString,
         false,
         "from when: RFC 3339 (2026-12-07T01:00:00Z) or a duration ago (15m, 2h); default 1h",
         {},
         1,
         64},
        {"max_points",
         ArgType::kInteger,
         false,
         "at most this many points, the highest of each run kept (default 120)",
         {},
         1,
         3600}},
       Kind::kRead,
       &McpServer::HostMetrics},
      {"incident_report",
       "An incident's report",
       "The incident's postmortem: times to detect, decide and recover, the alarm's metric, the "
       "fix, diagnostics and timeline.",
       {incident_id, {"format", ArgType::kString, false, "md (default) or html", {"md", "html"}}},
       Kind::kRead,
       &McpServer::IncidentReport},
      {"approve_incident",
       "Approve an incident's fix",
       "Approves the fix an incident in pending_approval proposes (its current proposal, as "
       "show_incident shows it): the fix then runs on the host. Confirm with the user first.",
       {incident_id,
        {"comment",
         ArgType::kString,
         false,
         "recorded in the timeline and the audit log",
         {},
         1,
         4096},
        {"option",
         ArgType::kInteger,
         false,
         "which proposed fix, 1-based; this server proposes one (default 1)",
         {},
         1,
         1}},
       Kind::kApprove,
       &McpServer::ApproveIncident},
      {"reject_incident",
       "Reject an incident's fix",
       "Rejects the fix an incident in pending_approval proposes: nothing runs and the incident "
       "ends rejected.",
       {incident_id,
        {"comment",
         ArgType::kString,
         false,
         "recorded in the timeline and the audit log",
         {},
         1,
         4096}},
       Kind::kReject,
       &McpServer::RejectIncident},
  };
  return tools;
}

McpServer::McpServer(ApiClient& api, const Clock& clock, McpOptions options, std::ostream& log)
    : api_(api), clock_(clock), options_(std::move(options)), log_(log) {}

const std::string& McpServer::EffectiveVersion() const {
  return version_.empty() ? McpProtocolVersions().front() : version_;
}

std::string McpServer::LineTooLong() const {
  return DumpJson(ErrorAnswer(nullptr, kJsonRpcParseError,
                              "Parse error: a message longer than " +
                                  std::to_string(kMcpMaxLineBytes) + " bytes was skipped"));
}

std::optional<std::string> McpServer::HandleLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  if (line.find_first_not_of(" \t") == std::string_view::npos) {
    return std::nullopt;
  }
  try {
    if (line.size() > kMcpMaxLineBytes) {
      return LineTooLong();
    }
    Result<Json> message = ParseJson(line, JsonLimits{kMaxJsonDepth, kMcpMaxLineBytes});
    if (!message.has_value()) {
      return DumpJson(
          ErrorAnswer(nullptr, kJsonRpcParseError, "Parse error: " + message.error().message));
    }
    if (message->is_array()) {
      if (!initialized_ || version_ != kBatchRevision) {
        return DumpJson(ErrorAnswer(
            nullptr, kJsonRpcInvalidRequest,
            "Invalid Request: JSON-RPC batches are not supported in protocol revision " +
                EffectiveVersion() + " (only " + std::string(kBatchRevision) + " has them)"));
      }
      if (message->empty()) {
        return DumpJson(
            ErrorAnswer(nullptr, kJsonRpcInvalidRequest, "Invalid Request: an empty batch"));
      }
      Json answers = Json::array();
      for (const Json& m : *message) {
        if (std::optional<Json> a = HandleMessage(m, true)) {
          answers.push_back(std::move(*a));
        }
      }
      if (answers.empty()) {
        return std::nullopt;
      }
      return DumpJson(answers);
    }
    std::optional<Json> answer = HandleMessage(*message, false);
    if (!answer.has_value()) {
      return std::nullopt;
    }
    return DumpJson(*answer);
  } catch (const std::exception& e) {  // a bug of ours; the session goes on
    log_ << "medic mcp: internal error: " << e.what() << std::endl;
    return DumpJson(ErrorAnswer(nullptr, kJsonRpcInternalError, "Internal error"));
  }
}

std::optional<Json> McpServer::HandleMessage(const Json& m, bool in_batch) {
  if (!m.is_object()) {
    return ErrorAnswer(nullptr, kJsonRpcInvalidRequest,
                       "Invalid Request: a message must be a JSON object");
  }
  const auto id_it = m.find("id");
  const bool has_id = id_it != m.end();
  if (has_id && !ValidId(*id_it)) {
    return ErrorAnswer(nullptr, kJsonRpcInvalidRequest,
                       "Invalid Request: id must be a string or an integer");
  }
  const Json id = has_id ? *id_it : Json(nullptr);
  const auto jsonrpc = m.find("jsonrpc");
  if (jsonrpc == m.end() || !jsonrpc->is_string() || *jsonrpc != "2.0") {
    return ErrorAnswer(id, kJsonRpcInvalidRequest, "Invalid Request: jsonrpc must be \"2.0\"");
  }
  const auto method = m.find("method");
  if (method == m.end()) {
    if (has_id && (m.contains("result") || m.contains("error"))) {
      return std::nullopt;  // an answer to a request: this server sends none
    }
    return ErrorAnswer(id, kJsonRpcInvalidRequest, "Invalid Request: no method");
  }
  if (!method->is_string()) {
    return ErrorAnswer(id, kJsonRpcInvalidRequest, "Invalid Request: method must be a string");
  }
  const std::string& name = method->get_ref<const std::string&>();
  const auto params_it = m.find("params");
  const Json params = params_it == m.end() ? Json::object() : *params_it;
  if (!has_id) {
    // A notification is never answered, not even when it is wrong or unknown.
    if (name == "notifications/initialized" && initialized_) {
      log_ << "medic mcp: the client is ready (protocol " << version_ << ")" << std::endl;
    }
    return std::nullopt;
  }
  if (!params.is_object()) {
    return ErrorAnswer(id, kJsonRpcInvalidParams, "Invalid params: params must be an object");
  }
  Result<Json> result = Dispatch(name, params, in_batch);
  if (!result.has_value()) {
    return ErrorAnswer(id, RpcCode(result.error()), result.error().message);
  }
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(*result)}};
}

Result<Json> McpServer::Dispatch(const std::string& method, const Json& params, bool in_batch) {
  if (method == "initialize") {
    return Initialize(params, in_batch);
  }
  if (method == "ping") {
    return Json::object();
  }
  if (method == "tools/list") {
    return ListTools(params);
  }
  if (method == "tools/call") {
    return CallTool(params);
  }
  return NotFound("Method not found: " + method);
}

Result<Json> McpServer::Initialize(const Json& params, bool in_batch) {
  if (in_batch) {
    return FailedPrecondition("Invalid Request: initialize must not be part of a batch");
  }
  if (initialized_) {
    return FailedPrecondition("Invalid Request: the session is already initialized (protocol " +
                              version_ + ")");
  }
  const auto requested = params.find("protocolVersion");
  if (requested == params.end() || !requested->is_string()) {
    return InvalidArgument("Invalid params: initialize needs params.protocolVersion, a string");
  }
  // The client's revision if we speak it, else our newest: the client then decides.
  const auto& versions = McpProtocolVersions();
  const std::string& want = requested->get_ref<const std::string&>();
  version_ =
      std::find(versions.begin(), versions.end(), want) != versions.end() ? want : versions.front();
  initialized_ = true;
  Json info{{"name", "medic"}, {"version", options_.server_version}};
  if (AtLeast(kStructuredSince)) {
    info["title"] = "medic";
  }
  std::string instructions =
      "medic is a self-healing infrastructure platform: its agents report hosts' metrics and "
      "health, alarms open incidents, medic diagnoses them and proposes a fix. These tools read "
      "incidents, hosts, alarms, metrics and incident reports.";
  instructions += options_.allow_approve
                      ? " approve_incident and reject_incident decide on a proposed fix when the "
                        "token allows it: confirm with the user before approving."
                      : " Approving or rejecting a fix is not offered in this session.";
  log_ << "medic mcp: initialize (client asked for " << SanitizeForDisplay(want) << ", speaking "
       << version_ << ")" << std::endl;
  return Json{{"protocolVersion", version_},
              {"capabilities", {{"tools", {{"listChanged", false}}}}},
              {"serverInfo", std::move(info)},
              {"instructions", std::move(instructions)}};
}

bool McpServer::ApprovalToolsEnabled(std::string* why) {
  if (!options_.allow_approve) {
    *why = "not offered in this session: " + std::string(kApproveHint);
    return false;
  }
  if (!role_.has_value()) {
    Result<Json> who = api_.Call("GET", "/api/v1/session", nullptr, "who is this token");
    if (!who.has_value()) {
      *why = "not offered: cannot tell this token's role (" + who.error().message + ")";
      log_ << "medic mcp: approve_incident and reject_incident " << SanitizeForDisplay(*why)
           << std::endl;
      return false;
    }
    role_ = StringOr(*who, "role", "unknown");
    const bool may = *role_ == "operator" || *role_ == "admin";
    log_ << "medic mcp: the token is " << SanitizeForDisplay(*role_) << " '"
         << SanitizeForDisplay(StringOr(*who, "name")) << "': "
         << (may ? "approve_incident and reject_incident offered"
                 : "approve_incident and reject_incident not offered (need operator or admin)")
         << std::endl;
  }
  if (*role_ != "operator" && *role_ != "admin") {
    *why = "not offered: it needs an operator or admin token, and this token's role is " + *role_;
    return false;
  }
  return true;
}

Json McpServer::ToolDescription(const ToolSpec& tool) const {
  Json t{
      {"name", tool.name}, {"description", tool.description}, {"inputSchema", Schema(tool.args)}};
  if (AtLeast(kStructuredSince)) {
    t["title"] = tool.title;
  }
  if (AtLeast(kAnnotationsSince)) {
    const bool read = tool.kind == ToolSpec::Kind::kRead;
    t["annotations"] =
        Json{{"title", tool.title}, {"readOnlyHint", read}, {"openWorldHint", false}};
    if (!read) {
      t["annotations"]["destructiveHint"] = tool.kind == ToolSpec::Kind::kApprove;
      t["annotations"]["idempotentHint"] = tool.kind == ToolSpec::Kind::kReject;
    }
  }
  return t;
}

Result<Json> McpServer::ListTools(const Json& params) {
  if (params.contains("cursor")) {
    return InvalidArgument("Invalid params: unknown cursor (this server lists every tool at once)");
  }
  std::string why;
  const bool approval = ApprovalToolsEnabled(&why);
  Json tools = Json::array();
  for (const ToolSpec& tool : Tools()) {
    if (tool.kind == ToolSpec::Kind::kRead || approval) {
      tools.push_back(ToolDescription(tool));
    }
  }
  return Json{{"tools", std::move(tools)}};
}

Result<Json> McpServer::CallTool(const Json& params) {
  const auto name_it = params.find("name");
  if (name_it == params.end() || !name_it->is_string()) {
    return InvalidArgument("Invalid params: tools/call needs params.name, a string");
  }
  const std::string& name = name_it->get_ref<const std::string&>();
  const auto args_it = params.find("arguments");
  const Json args = args_it == params.end() || args_it->is_null() ? Json::object() : *args_it;
  if (!args.is_object()) {
    return InvalidArgument("Invalid params: arguments must be an object");
  }
  const auto& tools = Tools();
  const auto tool = std::find_if(tools.begin(), tools.end(),
                                 [&name](const ToolSpec& t) { return t.name == name; });
  if (tool == tools.end()) {
    return InvalidArgument("Invalid params: unknown tool '" + name + "'");
  }
  if (tool->kind != ToolSpec::Kind::kRead) {
    std::string why;
    if (!ApprovalToolsEnabled(&why)) {
      return InvalidArgument("Invalid params: tool '" + name + "' is " + why);
    }
  }
  // From here on a failure is the tool's (isError), for the model to read and correct.
  auto failed = [](const std::string& text) {
    return Json{{"content", Json::array({Json{{"type", "text"}, {"text", text}}})},
                {"isError", true}};
  };
  if (Status s = ValidateArguments(tool->args, args); !s.has_value()) {
    return failed(name + ": " + s.error().message);
  }
  Result<ToolOutput> out = (this->*(tool->run))(args);
  if (!out.has_value()) {
    return failed(out.error().message);
  }
  Json result{{"content", Json::array({Json{{"type", "text"}, {"text", std::move(out->text)}}})},
              {"isError", false}};
  if (out->structured.has_value() && AtLeast(kStructuredSince)) {
    result["structuredContent"] = std::move(*out->structured);
  }
  return result;
}

Result<McpServer::ToolOutput> McpServer::JsonTool(const std::string& path,
                                                  const std::string& what) {
  ASSIGN_OR_RETURN(Json body, api_.Call("GET", path, nullptr, what));
  ToolOutput out;
  out.text = DumpJson(body);
  if (body.is_object()) {
    out.structured = std::move(body);
  }
  return out;
}

Result<McpServer::ToolOutput> McpServer::ListIncidents(const Json& args) {
  return JsonTool("/api/v1/incidents?view=summary&limit=" +
                      std::to_string(IntOr(args, "limit", kDefaultIncidentLimit)) +
                      QueryPart(args, "status", "status"),
                  "list_incidents");
}

Result<McpServer::ToolOutput> McpServer::ShowIncident(const Json& args) {
  const std::string id = StringOr(args, "id");
  return JsonTool("/api/v1/incidents/" + UrlEncode(id), "show_incident " + id);
}

Result<McpServer::ToolOutput> McpServer::ListHosts(const Json& args) {
  return JsonTool("/api/v1/hosts?limit=" + std::to_string(IntOr(args, "limit", kDefaultHostLimit)) +
                      QueryPart(args, "status", "status") + QueryPart(args, "prefix", "prefix") +
                      QueryPart(args, "after", "after"),
                  "list_hosts");
}

Result<McpServer::ToolOutput> McpServer::ListAlarms(const Json& args) {
  return JsonTool(
      "/api/v1/alarms?limit=" + std::to_string(IntOr(args, "limit", kDefaultAlarmLimit)) +
          QueryPart(args, "state", "state") + QueryPart(args, "host", "host") +
          QueryPart(args, "after", "after"),
      "list_alarms");
}

Result<McpServer::ToolOutput> McpServer::HostMetrics(const Json& args) {
  const std::string host = StringOr(args, "host");
  const std::string metric = StringOr(args, "metric");
  const std::string what = "host_metrics " + host + " " + metric;
  std::string since = StringOr(args, "since", "1h");
  if (Result<Millis> ago = ParseDuration(since); ago.has_value() && ago->count() >= 0) {
    since = FormatRfc3339(clock_.Now() - *ago);
  } else if (Result<WallTime> t = ParseRfc3339(since); t.has_value()) {
    since = FormatRfc3339(*t);
  } else {
    return InvalidArgument(what +
                           ": since must be RFC 3339 (2026-12-07T01:00:00Z) or a "
                           "duration ago (15m, 2h), not '" +
                           since + "'");
  }
  const std::string path =
      "/api/v1/hosts/" + UrlEncode(host) + "/metrics?metric=" + UrlEncode(metric) +
      "&since=" + UrlEncode(since) +
      "&max_points=" + std::to_string(IntOr(args, "max_points", kDefaultMaxPoints));
  ASSIGN_OR_RETURN(Json body, api_.Call("GET", path, nullptr, what));
  Json out{{"host", host},
           {"metric", metric},
           {"since", since},
           {"points", FieldOrNull(body, "points")}};
  return ToolOutput{DumpJson(out), out};
}

Result<McpServer::ToolOutput> McpServer::IncidentReport(const Json& args) {
  const std::string id = StringOr(args, "id");
  const std::string format = StringOr(args, "format", "md");
  ASSIGN_OR_RETURN(
      HttpResponse resp,
      api_.Send("GET", "/api/v1/incidents/" + UrlEncode(id) + "/report?format=" + format, nullptr,
                "incident_report " + id));
  return ToolOutput{resp.body, std::nullopt};
}

Result<McpServer::ToolOutput> McpServer::ApproveIncident(const Json& args) {
  const std::string id = StringOr(args, "id");
  const std::string what = "approve_incident " + id;
  // Approve the proposal as it is now, named by its hash, as `medic approve` does: the server
  // refuses (409) if it changed in between.
  ASSIGN_OR_RETURN(Json inc, api_.Call("GET", "/api/v1/incidents/" + UrlEncode(id), nullptr, what));
  const std::string hash = StringOr(inc, "action_hash");
  if (hash.empty()) {
    return FailedPrecondition(what + ": the incident proposes no fix to approve (status " +
                              StringOr(inc, "status", "unknown") + ")");
  }
  Json body{{"action_hash", hash}};
  if (args.contains("comment")) {
    body["comment"] = args["comment"];
  }
  ASSIGN_OR_RETURN(Json after, api_.Call("POST", "/api/v1/incidents/" + UrlEncode(id) + "/approve",
                                         &body, what));
  log_ << "medic mcp: approved " << SanitizeForDisplay(id) << " ("
       << SanitizeForDisplay(StringOr(inc, "ai_suggestion")) << ")" << std::endl;
  return ToolOutput{DumpJson(after), after.is_object() ? std::optional<Json>(after) : std::nullopt};
}

Result<McpServer::ToolOutput> McpServer::RejectIncident(const Json& args) {
  const std::string id = StringOr(args, "id");
  Json body = Json::object();
  if (args.contains("comment")) {
    body["comment"] = args["comment"];
  }
  ASSIGN_OR_RETURN(Json after, api_.Call("POST", "/api/v1/incidents/" + UrlEncode(id) + "/reject",
                                         &body, "reject_incident " + id));
  log_ << "medic mcp: rejected " << SanitizeForDisplay(id) << std::endl;
  return ToolOutput{DumpJson(after), after.is_object() ? std::optional<Json>(after) : std::nullopt};
}

void ServeMcp(McpServer& server, std::istream& in, std::ostream& out) {
  std::streambuf* buf = in.rdbuf();
  std::string line;
  bool too_long = false;
  auto answer = [&] {
    const std::optional<std::string> a =
        too_long ? std::optional<std::string>(server.LineTooLong()) : server.HandleLine(line);
    if (a.has_value()) {
      out << *a << '\n';
      out.flush();
    }
    line.clear();
    too_long = false;
  };
  if (buf == nullptr) {
    return;
  }
  for (;;) {
    const int c = buf->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      if (!line.empty() || too_long) {
        answer();  // the last line had no newline
      }
      return;
    }
    if (c == '\n') {
      answer();
    } else if (!too_long) {
      if (line.size() >= kMcpMaxLineBytes) {
        too_long = true;
        line.clear();
        line.shrink_to_fit();
      } else {
        line.push_back(static_cast<char>(c));
      }
    }
  }
}

}  // namespace medic::cli
