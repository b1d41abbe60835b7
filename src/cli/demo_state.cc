#include "cli/demo_state.h"

#include <charconv>

namespace medic::cli {

namespace {

Json Strings(const std::vector<std::string>& items) {
  Json out = Json::array();
  for (const std::string& s : items) {
    out.push_back(s);
  }
  return out;
}

Result<std::vector<std::string>> ParseStrings(const Json& obj, std::string_view key) {
  std::vector<std::string> out;
  const Json& list = FieldOrNull(obj, key);
  if (list.is_null()) {
    return out;
  }
  if (!list.is_array()) {
    return InvalidArgument("demo state: " + std::string(key) + " is not a list");
  }
  for (const Json& s : list) {
    if (!s.is_string() || s.get<std::string>().empty()) {
      return InvalidArgument("demo state: " + std::string(key) + " holds a non-string");
    }
    out.push_back(s.get<std::string>());
  }
  return out;
}

Result<uint64_t> ParseStartTimeField(const Json& obj) {
  const std::optional<int64_t> v = AsInt64(FieldOrNull(obj, "start_time"));
  if (!v.has_value() || *v < 0) {
    return InvalidArgument("demo state: bad start_time");
  }
  return static_cast<uint64_t>(*v);
}

}  // namespace

Json DemoStateToJson(const DemoState& s) {
  Json procs = Json::array();
  for (const DemoProcessRecord& p : s.processes) {
    procs.push_back({{"pid", p.pid}, {"start_time", p.start_time}, {"what", p.what}});
  }
  return Json{{"pid", s.pid},
              {"start_time", s.start_time},
              {"processes", procs},
              {"cgroups", Strings(s.cgroups)},
              {"namespaces", Strings(s.namespaces)},
              {"mounts", Strings(s.mounts)}};
}

Result<DemoState> ParseDemoState(std::string_view text) {
  ASSIGN_OR_RETURN(const Json j, ParseJsonObject(text));
  DemoState s;
  const std::optional<int64_t> pid = AsInt64(FieldOrNull(j, "pid"));
  if (!pid.has_value() || *pid <= 1 || *pid > INT32_MAX) {
    return InvalidArgument("demo state: bad pid");
  }
  s.pid = static_cast<int>(*pid);
  ASSIGN_OR_RETURN(s.start_time, ParseStartTimeField(j));
  const Json& procs = FieldOrNull(j, "processes");
  if (!procs.is_null() && !procs.is_array()) {
    return InvalidArgument("demo state: processes is not a list");
  }
  for (const Json& p : procs.is_array() ? procs : Json::array()) {
    const std::optional<int64_t> ppid =
        p.is_object() ? AsInt64(FieldOrNull(p, "pid")) : std::nullopt;
    if (!ppid.has_value() || *ppid <= 1 || *ppid > INT32_MAX) {
      return InvalidArgument("demo state: a process has a bad pid");
    }
    DemoProcessRecord r;
    r.pid = static_cast<int>(*ppid);
    ASSIGN_OR_RETURN(r.start_time, ParseStartTimeField(p));
    r.what = StringOr(p, "what");
    s.processes.push_back(std::move(r));
  }
  ASSIGN_OR_RETURN(s.cgroups, ParseStrings(j, "cgroups"));
  ASSIGN_OR_RETURN(s.namespaces, ParseStrings(j, "namespaces"));
  ASSIGN_OR_RETURN(s.mounts, ParseStrings(j, "mounts"));
  return s;
}

Status ValidateDemoState(const DemoState& s, const std::string& data_dir) {
  const std::string own = "medic-demo-" + std::to_string(s.pid);
  auto bad = [](const std::string& what, const std::string& name) {
    return InvalidArgument("demo state: " + what + " " + name + " is not one a demo creates");
  };
  for (const std::string& ns : s.namespaces) {
    if (ns != own && ns.rfind(own + "-", 0) != 0) {
      return bad("network namespace", ns);
    }
    if (ns.find('/') != std::string::npos || ns.find("..") != std::string::npos) {
      return bad("network namespace", ns);
    }
  }
  for (const std::string& cg : s.cgroups) {
    const size_t slash = cg.rfind('/');
    const std::string base = slash == std::string::npos ? cg : cg.substr(slash + 1);
    if (cg.rfind("/sys/fs/cgroup/memory/", 0) != 0 || base.rfind(own + "-", 0) != 0 ||
        base.size() == own.size() + 1 || cg.find("/../") != std::string::npos) {
      return bad("cgroup", cg);
    }
  }
  const std::string hosts = data_dir + "/hosts/";
  for (const std::string& m : s.mounts) {
    if (m.rfind(hosts, 0) != 0 || m.size() == hosts.size() || m.find("/..") != std::string::npos) {
      return bad("mount", m);
    }
  }
  return OkStatus();
}

std::optional<uint64_t> ParseStartTime(std::string_view text) {
  // "PID (COMM) S f4 f5 ...": COMM may hold spaces and ')', so count from the last ')'.
  const size_t close = text.rfind(')');
  if (close == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view rest = text.substr(close + 1);
  // After ") " come fields 3, 4, ...: starttime is field 22, the 20th of them.
  for (int field = 3;; ++field) {
    const size_t begin = rest.find_first_not_of(" \n");
    if (begin == std::string_view::npos) {
      return std::nullopt;
    }
    rest.remove_prefix(begin);
    const size_t end = std::min(rest.find_first_of(" \n"), rest.size());
    if (field == 22) {
      uint64_t v = 0;
      const auto [p, ec] = std::from_chars(rest.data(), rest.data() + end, v);
      if (ec != std::errc() || p != rest.data() + end) {
        return std::nullopt;
      }
      return v;
    }
    rest.remove_prefix(end);
  }
}

LeftoverDemo JudgeLeftover(const DemoState& state, std::optional<uint64_t> start_time_now) {
  if (start_time_now.has_value() && *start_time_now == state.start_time) {
    return LeftoverDemo::kRunning;
  }
  return LeftoverDemo::kCrashed;
}

}  // namespace medic::cli
