#include "protocol/wire.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

namespace medic::protocol {

namespace {

// The latest unix millisecond a WallTime (int64 nanoseconds) holds: 2262-04-11.
constexpr int64_t kMaxUnixMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(WallTime::duration::max()).count();

Result<WallTime> TimeField(const Json& j, std::string_view key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) {
    return InvalidArgument("field '" + std::string(key) + "' must be unix milliseconds");
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> ms, OptionalInt(j, key));
  if (!ms.has_value() || *ms < 0 || *ms > kMaxUnixMillis) {
    return InvalidArgument("field '" + std::string(key) + "' is out of range");
  }
  return FromUnixMillis(*ms);
}

Result<int> IntFieldOr(const Json& j, std::string_view key, int fallback) {
  ASSIGN_OR_RETURN(std::optional<int64_t> v, OptionalInt(j, key));
  if (!v.has_value()) {
    return fallback;
  }
  // Truncating would turn e.g. exit code 2^32 into 0, a success.
  if (*v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max()) {
    return InvalidArgument("field '" + std::string(key) + "' is out of range");
  }
  return static_cast<int>(*v);
}

Result<bool> BoolOr(const Json& j, std::string_view key, bool fallback) {
  ASSIGN_OR_RETURN(auto v, OptionalBool(j, key));
  return v.value_or(fallback);
}

Result<int64_t> IntOr(const Json& j, std::string_view key, int64_t fallback) {
  ASSIGN_OR_RETURN(auto v, OptionalInt(j, key));
  return v.value_or(fallback);
}

Result<std::string> StringOr(const Json& j, std::string_view key, std::string fallback) {
  ASSIGN_OR_RETURN(auto v, OptionalString(j, key));
  return v.value_or(std::move(fallback));
}

Status RequireObject(const Json& j, std::string_view what) {
  if (!j.is_object()) {
    return InvalidArgument(std::string(what) + " must be a JSON object");
  }
  return OkStatus();
}

}  // namespace

bool IsValidHostName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.' || name[0] == '-') {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool IsValidServiceName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.' || name[0] == '-') {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '@' || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

namespace {

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty() || name.size() > kMaxMetricNameBytes) {
    return false;
  }
  size_t i = 0;
  if (!IsNameStart(name[0]) && name[0] != ':') {
    return false;
  }
  for (; i < name.size() && name[i] != '{'; ++i) {
    const char c = name[i];
    if (!IsNameStart(c) && !IsDigit(c) && c != ':' && c != '.' && c != '-') {
      return false;
    }
  }
  if (i == name.size()) {
    return true;
  }
  // Labels: {key="value"(,key="value")*}
  if (name.back() != '}') {
    return false;
  }
  const size_t end = name.size() - 1;
  ++i;  // past '{'
  if (i == end) {
    return false;  // "{}"
  }
  while (i < end) {
    const size_t key_start = i;
    while (i < end && (IsNameStart(name[i]) || (i > key_start && IsDigit(name[i])))) {
      ++i;
    }
    if (i == key_start || i + 1 >= end || name[i] != '=' || name[i + 1] != '"') {
      return false;
    }
    i += 2;
    for (; i < end && name[i] != '"'; ++i) {
      const unsigned char c = static_cast<unsigned char>(name[i]);
      if (c < 0x20 || c == 0x7f) {
        return false;
      }
      if (c == '\\') {
        if (i + 1 >= end || (name[i + 1] != '"' && name[i + 1] != '\\')) {
          return false;
        }
        ++i;
      }
    }
    if (i >= end) {
      return false;  // unterminated value
    }
    ++i;  // past the closing '"'
    if (i < end) {
      if (name[i] != ',' || i + 1 == end) {
        return false;
      }
      ++i;
    }
  }
  return true;
}

Json ToJson(const RegisterRequest& r) {
  Json j{{"name", r.name},
              {"hostname", r.hostname},
              {"version", r.version},
              {"services", r.services},
              {"chaos_allowed", r.chaos_allowed}};
  if (!r.log_dir.empty()) {
    j["log_dir"] = r.log_dir;
  }
  if (!r.targets.empty()) {
    Json targets = Json::array();
    for (const auto& t : r.targets) {
      targets.push_back({{"group", t.group}, {"url", t.url}});
    }
    j["targets"] = std::move(targets);
  }
  return j;
}

Result<RegisterRequest> RegisterRequestFromJson(const Json& j) {
  RETURN_IF_ERROR(RequireObject(j, "register request"));
  RegisterRequest r;
  ASSIGN_OR_RETURN(r.name, RequireString(j, "name"));
  if (!IsValidHostName(r.name)) {
    return InvalidArgument("invalid host name '" + r.name + "'");
  }
  ASSIGN_OR_RETURN(r.hostname, StringOr(j, "hostname", ""));
  ASSIGN_OR_RETURN(r.version, StringOr(j, "version", ""));
  ASSIGN_OR_RETURN(r.chaos_allowed, BoolOr(j, "chaos_allowed", false));
  if (auto it = j.find("services"); it != j.end()) {
    if (!it->is_array()) {
      return InvalidArgument("field 'services' must be a list of strings");
    }
    for (const auto& s : *it) {
      if (!s.is_string()) {
        return InvalidArgument("field 'services' must be a list of strings");
      }
      r.services.push_back(s.get<std::string>());
    }
  }
  ASSIGN_OR_RETURN(r.log_dir, StringOr(j, "log_dir", ""));
  if (!r.log_dir.empty() && (r.log_dir[0] != '/' || r.log_dir.size() > 4096)) {
    return InvalidArgument("field 'log_dir' must be an absolute path");
  }
  if (auto it = j.find("targets"); it != j.end()) {
    if (!it->is_array() || it->size() > 32) {
      return InvalidArgument("field 'targets' must be a list of at most 32 {group, url}");
    }
    for (const auto& t : *it) {
      RETURN_IF_ERROR(RequireObject(t, "target"));
      RegisterRequest::Target target;
      ASSIGN_OR_RETURN(target.group, RequireString(t, "group"));
      ASSIGN_OR_RETURN(target.url, RequireString(t, "url"));
      if (!IsValidHostName(target.group)) {
        return InvalidArgument("invalid target group name '" + target.group + "'");
      }
      if (target.url.rfind("http://", 0) != 0 && target.url.rfind("https://", 0) != 0) {
        return InvalidArgument("target url must start with http:// or https://");
      }
      r.targets.push_back(std::move(target));
    }
  }
  return r;
}

bool WatchedThreshold::Breaches(double v) const {
  if (comparison == ">=") {
    return v >= threshold;
  }
  if (comparison == "<") {
    return v < threshold;
  }
  if (comparison == "<=") {
    return v <= threshold;
  }
  return v > threshold;
}

Json ToJson(const RegisterResponse& r) {
  Json j{{"interval_ms", r.interval_ms}};
  if (!r.watch.empty()) {
    Json watch = Json::array();
    for (const auto& w : r.watch) {
      watch.push_back(
          Json{{"metric", w.metric}, {"comparison", w.comparison}, {"threshold", w.threshold}});
    }
    j["watch"] = std::move(watch);
  }
  if (!r.ignored_target_groups.empty()) {
    j["ignored_target_groups"] = r.ignored_target_groups;
  }
  return j;
}

Result<RegisterResponse> RegisterResponseFromJson(const Json& j) {
  RETURN_IF_ERROR(RequireObject(j, "register response"));
  RegisterResponse r;
  ASSIGN_OR_RETURN(r.interval_ms, IntOr(j, "interval_ms", 1000));
  if (r.interval_ms < 100 || r.interval_ms > 3'600'000) {
    return InvalidArgument("interval_ms must be between 100 and 3600000");
  }
  if (auto it = j.find("ignored_target_groups"); it != j.end()) {
    if (!it->is_array() || it->size() > 32) {
      return InvalidArgument("field 'ignored_target_groups' must be a list of at most 32 names");
    }
    for (const auto& g : *it) {
      if (!g.is_string() || !IsValidHostName(g.get<std::string>())) {
        return InvalidArgument("field 'ignored_target_groups' must hold target group names");
      }
      r.ignored_target_groups.push_back(g.get<std::string>());
    }
  }
  if (auto it = j.find("watch"); it != j.end()) {
    if (!it->is_array() || it->size() > kMaxWatchedThresholds) {
      return InvalidArgument("field 'watch' must be a list of at most " +
                             std::to_string(kMaxWatchedThresholds) + " thresholds");
    }
    for (const auto& w : *it) {
      RETURN_IF_ERROR(RequireObject(w, "watch entry"));
      WatchedThreshold t;
      ASSIGN_OR_RETURN(t.metric, RequireString(w, "metric"));
      if (!IsValidMetricName(t.metric)) {
        return InvalidArgument("watch entry: invalid metric name");
      }
      ASSIGN_OR_RETURN(t.comparison, StringOr(w, "comparison", ">"));
      if (t.comparison != ">" && t.comparison != ">=" && t.comparison != "<" &&
          t.comparison != "<=") {
        return InvalidArgument("watch entry: comparison must be >, >=, < or <=");
      }
      auto th = w.find("threshold");
      if (th == w.end() || !th->is_number() || !std::isfinite(th->get<double>())) {
        return InvalidArgument("watch entry: field 'threshold' must be a number");
      }
      t.threshold = th->get<double>();
      r.watch.push_back(std::move(t));
    }
  }
  return r;
}

Json ToJson(const Report& r) {
  Json samples = Json::array();
  for (const auto& s : r.samples) {
    samples.push_back(Json{{"t", ToUnixMillis(s.t)}, {"metrics", s.metrics}});
  }
  Json checks = Json::array();
  for (const auto& c : r.checks) {
    checks.push_back(Json{{"name", c.name},
                          {"healthy", c.healthy},
                          {"detail", c.detail},
                          {"t", ToUnixMillis(c.t)}});
  }
  return Json{{"host", r.host}, {"samples", samples}, {"checks", checks}};
}

Result<Report> ReportFromJson(const Json& j) {
  RETURN_IF_ERROR(RequireObject(j, "report"));
  Report r;
  ASSIGN_OR_RETURN(r.host, RequireString(j, "host"));
  if (!IsValidHostName(r.host)) {
    return InvalidArgument("invalid host name '" + r.host + "'");
  }
  if (auto it = j.find("samples"); it != j.end()) {
    if (!it->is_array()) {
      return InvalidArgument("field 'samples' must be a list");
    }
    for (const auto& s : *it) {
      RETURN_IF_ERROR(RequireObject(s, "sample"));
      MetricSample m;
      ASSIGN_OR_RETURN(m.t, TimeField(s, "t"));
      auto mit = s.find("metrics");
      if (mit == s.end() || !mit->is_object()) {
        return InvalidArgument("sample field 'metrics' must be an object");
      }
      for (const auto& [k, v] : mit->items()) {
        if (!v.is_number()) {
          return InvalidArgument("metric '" + k + "' must be a number");
        }
        m.metrics[k] = v.get<double>();
      }
      r.samples.push_back(std::move(m));
    }
  }
  if (auto it = j.find("checks"); it != j.end()) {
    if (!it->is_array()) {
      return InvalidArgument("field 'checks' must be a list");
    }
    for (const auto& c : *it) {
      RETURN_IF_ERROR(RequireObject(c, "check"));
      CheckResult cr;
      ASSIGN_OR_RETURN(cr.name, RequireString(c, "name"));
      auto h = c.find("healthy");
      if (h == c.end() || !h->is_boolean()) {
        return InvalidArgument("check field 'healthy' must be true or false");
      }
      cr.healthy = h->get<bool>();
      ASSIGN_OR_RETURN(cr.detail, StringOr(c, "detail", ""));
      ASSIGN_OR_RETURN(cr.t, TimeField(c, "t"));
      r.checks.push_back(std::move(cr));
    }
  }
  return r;
}

Json ToJson(const Command& c) {
  Json j{{"id", c.id},
         {"action", c.action},
         {"params", c.params},
         {"timeout_ms", c.timeout_ms},
         {"expires_at", ToUnixMillis(c.expires_at)}};
  if (!c.envelope.empty()) {
    j["envelope"] = c.envelope;
    j["signature"] = c.signature;
  }
  return j;
}

namespace {

Status ParseCommandBody(const Json& j, Command& c) {
  ASSIGN_OR_RETURN(c.action, RequireString(j, "action"));
  if (auto it = j.find("params"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return InvalidArgument("command field 'params' must be an object");
    }
    c.params = *it;
  }
  ASSIGN_OR_RETURN(c.timeout_ms, IntOr(j, "timeout_ms", 30'000));
  if (c.timeout_ms <= 0 || c.timeout_ms > 3'600'000) {
    return InvalidArgument("command timeout_ms out of range");
  }
  return OkStatus();
}

}  // namespace

Result<Command> CommandFromJson(const Json& j) {
  RETURN_IF_ERROR(RequireObject(j, "command"));
  Command c;
  ASSIGN_OR_RETURN(c.id, RequireString(j, "id"));
  RETURN_IF_ERROR(ParseCommandBody(j, c));
  ASSIGN_OR_RETURN(c.expires_at, TimeField(j, "expires_at"));
  ASSIGN_OR_RETURN(c.envelope, StringOr(j, "envelope", ""));
  ASSIGN_OR_RETURN(c.signature, StringOr(j, "signature", ""));
  if (c.envelope.size() > 64 * 1024 || c.signature.size() > 1024) {
    return InvalidArgument("command envelope or signature too long");
  }
  return c;
}

std::string EnvelopeOf(const Command& c) {
  // nlohmann's default object keeps its keys sorted, so the dump is canonical for one input.
  const Json j{{"v", 1},
               {"id", c.id},
               {"host", c.host},
               {"action", c.action},
               {"params", c.params},
               {"timeout_ms", c.timeout_ms},
               {"not_after", ToUnixMillis(c.expires_at)},
               {"incident", c.incident},
               {"approved_by", c.approved_by},
               {"nonce", c.nonce}};
  return DumpJson(j);
}

Result<Command> CommandFromEnvelope(std::string_view envelope) {
  auto j = ParseJson(envelope);
  if (!j) {
    return InvalidArgument("the command envelope is not JSON: " + j.error().message);
  }
  RETURN_IF_ERROR(RequireObject(*j, "command envelope"));
  ASSIGN_OR_RETURN(int64_t version, IntOr(*j, "v", 0));
  if (version != 1) {
    return InvalidArgument("unknown command envelope version " + std::to_string(version));
  }
  Command c;
  ASSIGN_OR_RETURN(c.id, RequireString(*j, "id"));
  ASSIGN_OR_RETURN(c.host, RequireString(*j, "host"));
  RETURN_IF_ERROR(ParseCommandBody(*j, c));
  ASSIGN_OR_RETURN(c.expires_at, TimeField(*j, "not_after"));
  ASSIGN_OR_RETURN(c.incident, StringOr(*j, "incident", ""));
  ASSIGN_OR_RETURN(c.approved_by, StringOr(*j, "approved_by", ""));
  ASSIGN_OR_RETURN(c.nonce, RequireString(*j, "nonce"));
  if (c.id.empty() || c.nonce.empty()) {
    return InvalidArgument("the command envelope has an empty id or nonce");
  }
  return c;
}

Json ToJson(const CommandBatch& b) {
  Json cmds = Json::array();
  for (const auto& c : b.commands) {
    cmds.push_back(ToJson(c));
  }
  return Json{{"commands", cmds}};
}

Result<CommandBatch> CommandBatchFromJson(const Json& j) {
  RETURN_IF_ERROR(RequireObject(j, "command batch"));
  CommandBatch b;
  auto it = j.find("commands");
  if (it == j.end() || !it->is_array()) {
    return InvalidArgument("field 'commands' must be a list");
  }
  for (const auto& c : *it) {
    ASSIGN_OR_RETURN(Command cmd, CommandFromJson(c));
    b.commands.push_back(std::move(cmd));
  }
  return b;
}

Json ToJson(const CommandResult& r) {
  return Json{{"id", r.id},
              {"host", r.host},
              {"ran", r.ran},
              {"exit_code", r.exit_code},
              {"signal", r.signal},
              {"timed_out", r.timed_out},
              {"output", r.output},
              {"truncated", r.truncated},
              {"error", r.error},
              {"duration_ms", r.duration_ms}};
}

Result<CommandResult> CommandResultFromJson(const Json& j) {
  RETURN_IF_ERROR(RequireObject(j, "command result"));
  CommandResult r;
  ASSIGN_OR_RETURN(r.id, RequireString(j, "id"));
  ASSIGN_OR_RETURN(r.host, RequireString(j, "host"));
  if (!IsValidHostName(r.host)) {
    return InvalidArgument("invalid host name '" + r.host + "'");
  }
  ASSIGN_OR_RETURN(r.ran, BoolOr(j, "ran", false));
  ASSIGN_OR_RETURN(r.exit_code, IntFieldOr(j, "exit_code", -1));
  ASSIGN_OR_RETURN(r.signal, IntFieldOr(j, "signal", 0));
  ASSIGN_OR_RETURN(r.timed_out, BoolOr(j, "timed_out", false));
  ASSIGN_OR_RETURN(r.output, StringOr(j, "output", ""));
  ASSIGN_OR_RETURN(r.truncated, BoolOr(j, "truncated", false));
  ASSIGN_OR_RETURN(r.error, StringOr(j, "error", ""));
  ASSIGN_OR_RETURN(r.duration_ms, IntOr(j, "duration_ms", 0));
  return r;
}

}  // namespace medic::protocol
