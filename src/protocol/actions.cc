#include "protocol/actions.h"

#include <csignal>
#include <cstdint>
#include <limits>
#include <optional>

#include "core/clock.h"
#include "protocol/wire.h"

namespace medic::protocol {

namespace {

constexpr int64_t kMaxDurationDays = 11'574;
constexpr int64_t kMaxChaosSeconds = 3'600;

bool HasControlChars(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return true;
    }
  }
  return false;
}

bool HasShellMeta(std::string_view s) {
  return s.find_first_of(";|&$`<>(){}[]!*?~\\\"'#\n\r\t") != std::string_view::npos;
}

Status CheckString(const ParamSpec& spec, const Json& v) {
  if (!v.is_string()) {
    return InvalidArgument("parameter '" + spec.name + "' must be a string");
  }
  const std::string s = v.get<std::string>();
  auto bad = [&](std::string why) {
    return InvalidArgument("parameter '" + spec.name + "' " + why);
  };
  if (s.empty()) {
    return bad("must not be empty");
  }
  if (s.size() > 4096) {
    return bad("is too long");
  }
  if (spec.kind != ParamKind::kShellCommand && HasControlChars(s)) {
    return bad("contains control characters");
  }
  switch (spec.kind) {
    case ParamKind::kServiceName:
      if (!IsValidServiceName(s)) {
        return bad("is not a service name");
      }
      return OkStatus();
    case ParamKind::kAbsPath: {
      if (s[0] != '/') {
        return bad("must be an absolute path");
      }
      if (HasShellMeta(s) || s.find(' ') != std::string::npos) {
        return bad("contains characters not allowed in a path");
      }
      size_t pos = 0;
      while (pos <= s.size()) {
        size_t next = s.find('/', pos);
        if (next == std::string::npos) {
          next = s.size();
        }
        const std::string_view part = std::string_view(s).substr(pos, next - pos);
        if (part == ".." || part == ".") {
          return bad("must not contain '.' or '..' components");
        }
        pos = next + 1;
      }
      return OkStatus();
    }
    case ParamKind::kSignal:
      if (SignalNumber(s) < 0) {
        return bad("is not an allowed signal (TERM, KILL, HUP, INT, QUIT, USR1, USR2)");
      }
      return OkStatus();
    case ParamKind::kPattern:
      if (s[0] == '-' || HasShellMeta(s) || s.size() > 256) {
        return bad("is not a safe process pattern");
      }
      return OkStatus();
    case ParamKind::kDuration: {
      std::string d = s;
      if (!d.empty() && d.back() == 'd') {
        d.pop_back();
        if (d.empty() || d.size() > 6 || d.find_first_not_of("0123456789") != std::string::npos) {
          return bad("is not a duration");
        }
        // The same ceiling as ParseDuration (1e12 ms, about 31 years): 11574 days.
        int64_t days = 0;
        for (char c : d) {
          days = days * 10 + (c - '0');
        }
        if (days > kMaxDurationDays) {
          return bad("is not a duration");
        }
        return OkStatus();
      }
      if (!ParseDuration(d)) {
        return bad("is not a duration");
      }
      return OkStatus();
    }
    case ParamKind::kChaosMode:
      if (s != "disk-fill" && s != "oom" && s != "nginx-crash") {
        return bad("must be one of disk-fill, oom, nginx-crash");
      }
      return OkStatus();
    case ParamKind::kChaosDuration: {
      auto ms = ParseDuration(s);
      if (!ms) {
        return bad("must be a duration like \"600s\" or whole seconds");
      }
      // Whole seconds, rounded up, as the host counts them.
      const int64_t seconds = (ms->count() + 999) / 1000;
      if (seconds < 1 || seconds > kMaxChaosSeconds) {
        return bad("must be from 1s to " + std::to_string(kMaxChaosSeconds) + "s");
      }
      return OkStatus();
    }
    case ParamKind::kShellCommand:
      return OkStatus();
    case ParamKind::kArchiveName:
      if (!IsArchiveName(s)) {
        return bad("is not an archived file's name");
      }
      return OkStatus();
    case ParamKind::kSha256:
      if (s.size() != 64 || s.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return bad("must be 64 lowercase hexadecimal characters");
      }
      return OkStatus();
    default:
      return bad("has an unexpected type");
  }
}

Status CheckParams(const std::vector<ParamSpec>& specs, const Json& params,
                   std::string_view owner);

Status CheckParam(const ParamSpec& spec, const Json& v) {
  switch (spec.kind) {
    case ParamKind::kPid:
    case ParamKind::kCount: {
      const std::optional<int64_t> n = AsInt64(v);
      if (!v.is_number_integer()) {
        return InvalidArgument("parameter '" + spec.name + "' must be an integer");
      }
      const int64_t lo = spec.kind == ParamKind::kPid ? 2 : 1;
      const int64_t hi = spec.kind == ParamKind::kPid ? 4'194'304 : 100'000;
      if (!n || *n < lo || *n > hi) {
        return InvalidArgument("parameter '" + spec.name + "' is out of range");
      }
      return OkStatus();
    }
    case ParamKind::kByteCount: {
      const std::optional<int64_t> n = AsInt64(v);
      if (!v.is_number_integer() || !n || *n < 0 || *n > (int64_t{1} << 53)) {
        return InvalidArgument("parameter '" + spec.name + "' must be a byte count");
      }
      return OkStatus();
    }
    case ParamKind::kPercent: {
      if (!v.is_number()) {
        return InvalidArgument("parameter '" + spec.name + "' must be a number");
      }
      const double p = v.get<double>();
      if (!(p >= 1 && p <= 99)) {
        return InvalidArgument("parameter '" + spec.name + "' must be between 1 and 99");
      }
      return OkStatus();
    }
    case ParamKind::kChaosDuration: {
      if (v.is_string()) {
        return CheckString(spec, v);
      }
      if (!v.is_number_integer()) {
        return InvalidArgument("parameter '" + spec.name +
                               "' must be a duration like \"600s\" or whole seconds");
      }
      const std::optional<int64_t> n = AsInt64(v);
      if (!n || *n < 1 || *n > kMaxChaosSeconds) {
        return InvalidArgument("parameter '" + spec.name + "' must be from 1 to " +
                               std::to_string(kMaxChaosSeconds) + " seconds");
      }
      return OkStatus();
    }
    case ParamKind::kChaosParams:
      if (!v.is_object()) {
        return InvalidArgument("parameter '" + spec.name + "' must be an object");
      }
      return OkStatus();  // the keys depend on the mode: ValidateAction checks them
    default:
      return CheckString(spec, v);
  }
}

// Every key of `params` (an object) is one of `specs` and passes its check.
Status CheckParams(const std::vector<ParamSpec>& specs, const Json& params,
                   std::string_view owner) {
  for (const auto& [key, value] : params.items()) {
    const ParamSpec* ps = nullptr;
    for (const auto& p : specs) {
      if (p.name == key) {
        ps = &p;
      }
    }
    if (ps == nullptr) {
      std::string known;
      for (const auto& p : specs) {
        known += (known.empty() ? "" : ", ") + p.name;
      }
      return InvalidArgument(std::string(owner) + " has no parameter '" + key + "'" +
                             (known.empty() ? " (it takes none)" : " (known: " + known + ")"));
    }
    if (Status s = CheckParam(*ps, value); !s) {
      return InvalidArgument(std::string(owner) + ": " + s.error().message);
    }
  }
  return OkStatus();
}

std::string Quote(const std::string& s) {
  bool plain = !s.empty();
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '/' || c == '.' || c == '_' || c == '-' || c == '@' || c == ':' ||
                    c == '%' || c == '+' || c == '=' || c == ',';
    if (!ok) {
      plain = false;
      break;
    }
  }
  if (plain) {
    return s;
  }
  // Control characters (C0, DEL, and C1 as UTF-8) are shown escaped: the line is what an
  // operator approves, and a raw CR or escape sequence could hide part of it on screen.
  static const char* kHex = "0123456789abcdef";
  auto hex = [&](unsigned char c) {
    return std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
  };
  std::string out = "'";
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\'') {
      out += "'\\''";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      out += hex(c);
    } else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      out += hex(c) + hex(static_cast<unsigned char>(s[i + 1]));
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += "'";
  return out;
}

}  // namespace

std::string_view RiskName(Risk r) {
  switch (r) {
    case Risk::kNone: return "none";
    case Risk::kLow: return "low";
    case Risk::kMedium: return "medium";
    case Risk::kHigh: return "high";
  }
  return "unknown";
}

const std::vector<ActionSpec>& ActionCatalog() {
  static const std::vector<ActionSpec> kCatalog = {
      {"service.status", {{"service", ParamKind::kServiceName, true}}, Risk::kNone, true,
       "report whether a service runs, and its pid"},
      {"service.start", {{"service", ParamKind::kServiceName, true}}, Risk::kLow, false,
       "start a service"},
      {"service.stop", {{"service", ParamKind::kServiceName, true}}, Risk::kMedium, false,
       "stop a service"},
      {"service.restart", {{"service", ParamKind::kServiceName, true}}, Risk::kLow, false,
       "stop a service (and anything left of it) and start it again"},
      {"service.logs",
       {{"service", ParamKind::kServiceName, true}, {"lines", ParamKind::kCount, false}},
       Risk::kNone, true, "the last lines of the log files a host configures for a service"},
      {"log.tail",
       {{"path", ParamKind::kAbsPath, true}, {"lines", ParamKind::kCount, false}},
       Risk::kNone, true, "the last lines of a log file"},
      {"disk.usage", {}, Risk::kNone, true, "usage of every mounted file system (df -h)"},
      {"memory.usage", {}, Risk::kNone, true, "memory usage (free -m)"},
      {"process.top", {{"lines", ParamKind::kCount, false}}, Risk::kNone, true,
       "processes by resident memory (ps aux)"},
      {"dir.list", {{"path", ParamKind::kAbsPath, true}}, Risk::kNone, true,
       "files of a directory, largest first (ls -lS)"},
      {"host.changes", {{"window", ParamKind::kDuration, false}}, Risk::kNone, true,
       "what changed on the host within a window: packages, services, config files, reboots"},
      {"process.kill",
       {{"pattern", ParamKind::kPattern, false},
        {"pid", ParamKind::kPid, false},
        {"signal", ParamKind::kSignal, false}},
       Risk::kMedium, false, "send a signal to processes matching a name pattern, or to a pid"},
      {"file.truncate", {{"path", ParamKind::kAbsPath, true}}, Risk::kMedium, false,
       "truncate a file to zero bytes"},
      {"log.archive_truncate", {{"path", ParamKind::kAbsPath, true}}, Risk::kLow, false,
       "copy a log file to the archive, verify its checksum, then truncate it"},
      {"log.restore",
       {{"path", ParamKind::kAbsPath, true},
        {"archive", ParamKind::kArchiveName, true},
        {"sha256", ParamKind::kSha256, true},
        {"bytes", ParamKind::kByteCount, true}},
       Risk::kLow, false,
       "put an archived copy of a log file back in front of what the file holds now (the "
       "undo of log.archive_truncate)",
       /*undo_only=*/true},
      {"disk.cleanup",
       {{"path", ParamKind::kAbsPath, true}, {"older_than", ParamKind::kDuration, true}},
       Risk::kMedium, false, "delete files under a directory older than a duration"},
      {"chaos.start",
       {{"mode", ParamKind::kChaosMode, true}, {"params", ParamKind::kChaosParams, false}},
       Risk::kHigh, false, "start a chaos experiment on this host"},
      {"chaos.stop", {}, Risk::kLow, false, "undo every chaos experiment on this host"},
      {"shell", {{"command", ParamKind::kShellCommand, true}}, Risk::kHigh, false,
       "run a shell command as the agent's user (off unless the host allows it)"},
  };
  return kCatalog;
}

bool IsArchiveName(std::string_view name) {
  if (name.empty() || name.size() > 200 || name[0] == '-' || name[0] == '.' ||
      name.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '+' || c == '@' || c == '=' ||
                    c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

const ActionSpec* FindAction(std::string_view name) {
  for (const auto& spec : ActionCatalog()) {
    if (spec.name == name) {
      return &spec;
    }
  }
  return nullptr;
}

const std::vector<ParamSpec>* ChaosModeParams(std::string_view mode) {
  static const std::vector<std::pair<std::string_view, std::vector<ParamSpec>>> kModes = {
      {"disk-fill", {{"path", ParamKind::kAbsPath, false}, {"percent", ParamKind::kPercent, false}}},
      {"oom",
       {{"percent", ParamKind::kPercent, false}, {"duration", ParamKind::kChaosDuration, false}}},
      {"nginx-crash", {}},
  };
  for (const auto& [name, params] : kModes) {
    if (name == mode) {
      return &params;
    }
  }
  return nullptr;
}

Result<Action> ValidateAction(std::string_view name, const Json& params) {
  const ActionSpec* spec = FindAction(name);
  if (spec == nullptr) {
    return InvalidArgument("unknown action '" + std::string(name) + "'");
  }
  if (!params.is_null() && !params.is_object()) {
    return InvalidArgument("parameters of " + spec->name + " must be an object");
  }
  Action out{spec->name, Json::object()};
  if (params.is_object()) {
    RETURN_IF_ERROR(CheckParams(spec->params, params, spec->name));
    out.params = params;
  }
  if (auto nested = out.params.find("params"); spec->name == "chaos.start" &&
                                               nested != out.params.end()) {
    // "mode" passed kChaosMode, so the mode is known; without it the check below refuses.
    const std::string mode = StringOr(out.params, "mode");
    if (const std::vector<ParamSpec>* mode_params = ChaosModeParams(mode)) {
      RETURN_IF_ERROR(CheckParams(*mode_params, *nested, "chaos mode " + mode));
    }
  }
  for (const auto& p : spec->params) {
    if (p.required && !out.params.contains(p.name)) {
      return InvalidArgument(spec->name + " needs parameter '" + p.name + "'");
    }
  }
  if (spec->name == "process.kill" &&
      (out.params.contains("pattern") == out.params.contains("pid"))) {
    return InvalidArgument("process.kill needs exactly one of 'pattern' or 'pid'");
  }
  return out;
}

std::string RenderCommandLine(const Action& action) {
  std::string line = action.name;
  const ActionSpec* spec = FindAction(action.name);
  if (spec == nullptr) {
    return line;
  }
  for (const auto& p : spec->params) {
    auto it = action.params.find(p.name);
    if (it == action.params.end()) {
      continue;
    }
    line += " " + p.name + "=";
    if (it->is_string()) {
      line += Quote(it->get<std::string>());
    } else {
      line += Quote(DumpJson(*it));
    }
  }
  return line;
}

Status ValidateParam(std::string_view action, std::string_view param, const Json& value) {
  const ActionSpec* spec = FindAction(action);
  if (spec == nullptr) {
    return InvalidArgument("unknown action '" + std::string(action) + "'");
  }
  for (const auto& p : spec->params) {
    if (p.name == param) {
      if (Status s = CheckParam(p, value); !s) {
        return InvalidArgument(spec->name + ": " + s.error().message);
      }
      return OkStatus();
    }
  }
  std::string known;
  for (const auto& p : spec->params) {
    known += (known.empty() ? "" : ", ") + p.name;
  }
  return InvalidArgument(spec->name + " has no parameter '" + std::string(param) + "'" +
                         (known.empty() ? " (it takes none)" : " (known: " + known + ")"));
}

std::string_view CommName(std::string_view name) { return name.substr(0, kCommLength); }

bool CommAllowed(std::string_view name, const std::vector<std::string>& allowlist) {
  if (name.empty()) {
    return false;
  }
  for (const auto& allowed : allowlist) {
    if (!allowed.empty() && CommName(allowed) == CommName(name)) {
      return true;
    }
  }
  return false;
}

int SignalNumber(std::string_view name) {
  if (name.substr(0, 3) == "SIG") {
    name.remove_prefix(3);
  }
  if (name == "TERM") return SIGTERM;
  if (name == "KILL") return SIGKILL;
  if (name == "HUP") return SIGHUP;
  if (name == "INT") return SIGINT;
  if (name == "QUIT") return SIGQUIT;
  if (name == "USR1") return SIGUSR1;
  if (name == "USR2") return SIGUSR2;
  return -1;
}

}  // namespace medic::protocol
