#include "ai/answer.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/clock.h"
#include "core/files.h"

namespace medic::ai {

namespace {

constexpr size_t kMaxReasoning = 2'000;
// Longer answers are refused before any search (the providers' clients cap theirs at 16 KiB).
constexpr size_t kMaxAnswerBytes = 64 * 1024;
// Candidate objects tried in prose: bounds the work on text full of braces.
constexpr int kMaxCandidates = 64;

// s cut to at most `n` bytes without splitting a UTF-8 sequence.
std::string CutUtf8(const std::string& s, size_t n) {
  if (s.size() <= n) {
    return s;
  }
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) {
    --n;
  }
  return s.substr(0, n);
}

// The first balanced {...} starting at `start`, honouring JSON strings; npos when unbalanced.
size_t MatchBrace(std::string_view s, size_t start) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = start; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}') {
      if (--depth == 0) {
        return i;
      }
    }
  }
  return std::string_view::npos;
}

Result<Json> FindJsonObject(std::string_view text) {
  text = Trim(text);
  if (auto whole = ParseJsonObject(text)) {
    return std::move(*whole);
  }
  // Fenced block: ```json ... ```
  if (size_t fence = text.find("```"); fence != std::string_view::npos) {
    size_t body = text.find('\n', fence);
    const size_t close = body == std::string_view::npos ? body : text.find("```", body);
    if (close != std::string_view::npos) {
      if (auto j = ParseJsonObject(Trim(text.substr(body + 1, close - body - 1)))) {
        return std::move(*j);
      }
    }
  }
  // Prose around it: try each '{' in turn.
  int tried = 0;
  for (size_t pos = text.find('{'); pos != std::string_view::npos && tried < kMaxCandidates;
       pos = text.find('{', pos + 1), ++tried) {
    const size_t end = MatchBrace(text, pos);
    if (end == std::string_view::npos) {
      break;
    }
    if (auto j = ParseJsonObject(text.substr(pos, end - pos + 1))) {
      if (j->contains("action")) {
        return std::move(*j);
      }
    }
  }
  return InvalidArgument("no JSON object found in the answer");
}

std::string StringField(const Json& j, const char* key) {
  if (j.contains(key) && j[key].is_string()) {
    return j[key].get<std::string>();
  }
  return "";
}

bool UnderPrefix(const std::string& path, const std::string& prefix) {
  if (prefix.empty()) {
    return false;
  }
  std::string p = prefix;
  if (p.back() != '/') {
    p += '/';
  }
  return path.rfind(p, 0) == 0 || path + "/" == p;
}

std::string Dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash + 1);
}

const std::set<std::string>& ProtectedProcesses() {
  static const std::set<std::string> kNames = {"init",     "systemd",     "sshd",
                                               "ssh",      "medic-agent", "medic-server",
                                               "medic",    "dbus-daemon", "systemd-journald",
                                               "journald", "kthreadd",    "containerd",
                                               "dockerd",  "kubelet",     "bash",
                                               "sh",       "login",       "agetty",
                                               "cron",     "rsyslogd",    "sudo"};
  return kNames;
}

}  // namespace

Result<ModelAnswer> ParseModelAnswer(std::string_view text) {
  if (text.size() > kMaxAnswerBytes) {
    return InvalidArgument("the answer is " + std::to_string(text.size()) +
                           " bytes, more than " + std::to_string(kMaxAnswerBytes));
  }
  ASSIGN_OR_RETURN(Json j, FindJsonObject(text));
  ModelAnswer a;
  if (!j.contains("action") || !j["action"].is_string() ||
      Trim(j["action"].get<std::string>()).empty()) {
    return InvalidArgument("the answer names no action");
  }
  a.action = j["action"].get<std::string>();
  if (j.contains("params") && !j["params"].is_null()) {
    if (!j["params"].is_object()) {
      return InvalidArgument("the answer's params are not an object");
    }
    for (const auto& [k, v] : j["params"].items()) {
      if (!v.is_null()) {
        a.params[k] = v;
      }
    }
  }
  a.command = StringField(j, "command");
  a.reasoning = std::string(Trim(StringField(j, "reasoning")));
  if (a.reasoning.size() > kMaxReasoning) {
    a.reasoning = CutUtf8(a.reasoning, kMaxReasoning) + "...";
  }
  a.risk = StringField(j, "risk");
  if (j.contains("confidence") && j["confidence"].is_number()) {
    const double c = j["confidence"].get<double>();
    if (std::isfinite(c)) {
      a.confidence = c;
    }
  }
  return a;
}

PolicyVerdict CheckPolicy(const protocol::Action& action, const ModelAnswer& answer,
                          const Runbook& runbook, const AiConfig& policy) {
  auto deny = [](std::string why) { return PolicyVerdict{PolicyVerdict::kDeny, std::move(why)}; };
  const protocol::ActionSpec* spec = protocol::FindAction(action.name);
  if (spec == nullptr) {
    return deny("unknown action " + action.name);
  }
  if (spec->read_only) {
    return deny(action.name + " is a read-only diagnostic, not a fix");
  }
  if (action.name.rfind("chaos.", 0) == 0) {
    return deny("chaos actions are never taken on the AI's word");
  }
  if (action.name == "shell") {
    if (!policy.allow_shell) {
      return deny("raw shell actions are disabled (ai.allow_shell is off)");
    }
    return {PolicyVerdict::kNeedsApproval, "a raw shell action always needs approval"};
  }
  // Services: the configured allowlist plus the runbook's own.
  if (action.params.contains("service")) {
    std::set<std::string> allowed(policy.allowed_services.begin(), policy.allowed_services.end());
    auto add = [&](const protocol::Action& a) {
      if (a.params.contains("service") && a.params["service"].is_string()) {
        allowed.insert(a.params["service"].get<std::string>());
      }
    };
    add(runbook.fix);
    for (const auto& d : runbook.diagnostics) {
      add(d);
    }
    const std::string svc = action.params["service"].get<std::string>();
    if (allowed.count(svc) == 0) {
      return deny("service '" + svc + "' is not on the allowlist");
    }
  }
  if (action.params.contains("path")) {
    const std::string path = action.params["path"].get<std::string>();
    std::vector<std::string> prefixes = policy.allowed_path_prefixes;
    auto add = [&](const protocol::Action& a) {
      if (a.params.contains("path") && a.params["path"].is_string()) {
        const std::string p = a.params["path"].get<std::string>();
        prefixes.push_back(a.name == "disk.cleanup" || a.name == "dir.list" ? p : Dir(p));
      }
    };
    add(runbook.fix);
    for (const auto& d : runbook.diagnostics) {
      add(d);
    }
    bool ok = false;
    for (const auto& p : prefixes) {
      if (p != "/" && UnderPrefix(path, p)) {
        ok = true;
      }
    }
    if (!ok) {
      return deny("path '" + path + "' is outside the allowed prefixes");
    }
  }
  if (action.name == "process.kill") {
    if (action.params.contains("pid")) {
      return deny("the AI may target processes by name only, not by pid");
    }
    const std::string pattern = action.params["pattern"].get<std::string>();
    if (ProtectedProcesses().count(pattern) != 0 || pattern.size() < 3) {
      return deny("process '" + pattern + "' is protected");
    }
  }
  if (action.name == "disk.cleanup") {
    const std::string d = action.params["older_than"].get<std::string>();
    bool at_least_a_day = false;
    if (!d.empty() && d.back() == 'd') {
      at_least_a_day = d != "0d" && d.find_first_not_of('0') != d.size() - 1;
    } else if (auto ms = ParseDuration(d)) {
      at_least_a_day = *ms >= std::chrono::hours(24);
    }
    if (!at_least_a_day) {
      return deny("disk.cleanup of files younger than a day");
    }
  }
  if (action.name == "service.stop") {
    return {PolicyVerdict::kNeedsApproval, "stopping a service needs approval"};
  }
  if (spec->risk == protocol::Risk::kHigh) {
    return {PolicyVerdict::kNeedsApproval,
            action.name + " is a high-risk action and needs approval"};
  }
  if (answer.risk == "high") {
    return {PolicyVerdict::kNeedsApproval, "the model rates its own action high-risk"};
  }
  return {};
}

}  // namespace medic::ai
