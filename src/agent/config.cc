#include "agent/config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "agent/policy.h"
#include "core/files.h"
#include "core/log.h"
#include "protocol/actions.h"
#include "protocol/wire.h"
#include "transport/http1_client.h"
#include "transport/http_client.h"

namespace medic::agent {

namespace {

using Keys = std::vector<std::string_view>;

bool IsHttpUrl(std::string_view url) {
  return (url.substr(0, 7) == "http://" && url.size() > 7) ||
         (url.substr(0, 8) == "https://" && url.size() > 8);
}

std::string JoinKeys(const Keys& keys) {
  std::string out;
  for (auto k : keys) {
    out += (out.empty() ? "" : ", ") + std::string(k);
  }
  return out;
}

// Turns YAML nodes into typed values; every error carries file:line:column.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  Error At(const YAML::Node& node, const std::string& message) const {
    return AtMark(node.Mark(), message);
  }
  Error AtMark(const YAML::Mark& m, const std::string& message) const {
    if (m.is_null()) {
      return InvalidArgument(source_ + ": " + message);
    }
    return InvalidArgument(source_ + ":" + std::to_string(m.line + 1) + ":" +
                           std::to_string(m.column + 1) + ": " + message);
  }

  Status RequireMap(const YAML::Node& n, std::string_view what) const {
    if (!n.IsMap()) {
      return At(n, std::string(what) + " must be a mapping of keys to values");
    }
    return OkStatus();
  }

  // Every key of map `n` must be in `known`.
  Status CheckKeys(const YAML::Node& n, std::string_view what, const Keys& known) const {
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
      bool ok = false;
      for (auto k : known) {
        ok = ok || k == key;
      }
      if (!ok) {
        return At(it->first, "unknown key '" + key + "' in " + std::string(what) +
                                 " (known keys: " + JoinKeys(known) + ")");
      }
    }
    return OkStatus();
  }

  Result<std::string> String(const YAML::Node& n, std::string_view what) const {
    if (!n.IsScalar()) {
      return At(n, std::string(what) + " must be a string");
    }
    return n.Scalar();
  }

  Result<std::string> NonEmptyString(const YAML::Node& n, std::string_view what) const {
    ASSIGN_OR_RETURN(std::string s, String(n, what));
    if (s.empty()) {
      return At(n, std::string(what) + " must not be empty");
    }
    return s;
  }

  Result<std::string> AbsPath(const YAML::Node& n, std::string_view what) const {
    ASSIGN_OR_RETURN(std::string s, NonEmptyString(n, what));
    if (s[0] != '/') {
      return At(n, std::string(what) + " must be an absolute path, got '" + s + "'");
    }
    return s;
  }

  Result<bool> Bool(const YAML::Node& n, std::string_view what) const {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (s == "true" || s == "yes" || s == "on") {
        return true;
      }
      if (s == "false" || s == "no" || s == "off") {
        return false;
      }
    }
    return At(n, std::string(what) + " must be true or false");
  }

  Result<Millis> Duration(const YAML::Node& n, std::string_view what) const {
    ASSIGN_OR_RETURN(std::string s, String(n, what));
    auto d = ParseDuration(s);
    if (!d) {
      return At(n, std::string(what) + ": " + d.error().message);
    }
    return *d;
  }

  Result<int64_t> Integer(const YAML::Node& n, std::string_view what, int64_t lo,
                          int64_t hi) const {
    ASSIGN_OR_RETURN(std::string s, String(n, what));
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || v < lo || v > hi) {
      return At(n, std::string(what) + " must be an integer from " + std::to_string(lo) + " to " +
                       std::to_string(hi) + ", got '" + s + "'");
    }
    return v;
  }

  Result<std::vector<std::string>> StringList(const YAML::Node& n, std::string_view what) const {
    if (!n.IsSequence()) {
      return At(n, std::string(what) + " must be a list of strings");
    }
    std::vector<std::string> out;
    for (const auto& item : n) {
      ASSIGN_OR_RETURN(std::string s, NonEmptyString(item, std::string(what) + " entry"));
      out.push_back(std::move(s));
    }
    return out;
  }

  Result<std::vector<std::string>> AbsPathList(const YAML::Node& n, std::string_view what) const {
    if (!n.IsSequence()) {
      return At(n, std::string(what) + " must be a list of absolute paths");
    }
    std::vector<std::string> out;
    for (const auto& item : n) {
      ASSIGN_OR_RETURN(std::string s, AbsPath(item, std::string(what) + " entry"));
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  std::string source_;
};

Result<ServiceConfig> ParseService(const Reader& r, const YAML::Node& key, const YAML::Node& n) {
  ServiceConfig s;
  ASSIGN_OR_RETURN(s.name, r.NonEmptyString(key, "service name"));
  if (!protocol::ValidateAction("service.status", Json{{"service", s.name}})) {
    return r.At(key, "'" + s.name + "' is not a valid service name ([A-Za-z0-9@._-], 1-64)");
  }
  const std::string what = "services." + s.name;
  RETURN_IF_ERROR(r.RequireMap(n, what));
  RETURN_IF_ERROR(r.CheckKeys(
      n, what,
      {"start", "stop_signal", "stop_timeout", "log", "log_files", "autostart", "env", "user"}));
  if (!n["start"]) {
    return r.At(n, what + ": 'start' (the command as a list) is required");
  }
  ASSIGN_OR_RETURN(s.start, r.StringList(n["start"], what + ".start"));
  if (s.start.empty()) {
    return r.At(n["start"], what + ".start must not be empty");
  }
  if (auto v = n["stop_signal"]) {
    ASSIGN_OR_RETURN(s.stop_signal, r.String(v, what + ".stop_signal"));
    if (protocol::SignalNumber(s.stop_signal) < 0) {
      return r.At(v, what + ".stop_signal must be one of TERM, KILL, HUP, INT, QUIT, USR1, USR2");
    }
  }
  if (auto v = n["stop_timeout"]) {
    ASSIGN_OR_RETURN(s.stop_timeout, r.Duration(v, what + ".stop_timeout"));
  }
  // Log files live in a directory of their own: the agent opens them beneath their directory
  // (host::OpenBeneath), and a log_files entry's directory becomes an allowed policy path, so a
  // file directly under / would make / one.
  auto in_a_directory = [&](const YAML::Node& node, const std::string& file,
                            const std::string& key) -> Status {
    const size_t slash = file.find_last_of('/');
    if (file.substr(0, slash).find_first_not_of('/') == std::string::npos ||
        file.find("/..") != std::string::npos ||
        file.find("/./") != std::string::npos || file.back() == '/' ||
        file.substr(file.size() - 2) == "/.") {
      return r.At(node, what + "." + key + ": '" + file +
                            "' must be a clean path to a file in a directory other than /");
    }
    return OkStatus();
  };
  if (auto v = n["log"]) {
    ASSIGN_OR_RETURN(s.log, r.AbsPath(v, what + ".log"));
    RETURN_IF_ERROR(in_a_directory(v, s.log, "log"));
  }
  if (auto v = n["log_files"]) {
    ASSIGN_OR_RETURN(s.log_files, r.AbsPathList(v, what + ".log_files"));
    for (size_t i = 0; i < s.log_files.size(); ++i) {
      RETURN_IF_ERROR(in_a_directory(v[i], s.log_files[i], "log_files"));
    }
  }
  if (auto v = n["user"]) {
    ASSIGN_OR_RETURN(s.user, r.NonEmptyString(v, what + ".user"));
  }
  if (auto v = n["autostart"]) {
    ASSIGN_OR_RETURN(s.autostart, r.Bool(v, what + ".autostart"));
  }
  if (auto v = n["env"]) {
    RETURN_IF_ERROR(r.RequireMap(v, what + ".env"));
    for (auto it = v.begin(); it != v.end(); ++it) {
      ASSIGN_OR_RETURN(std::string key, r.NonEmptyString(it->first, what + ".env key"));
      if (key.find('=') != std::string::npos || key == "PATH") {
        return r.At(it->first, what + ".env: '" + key + "' cannot be set");
      }
      ASSIGN_OR_RETURN(std::string value, r.String(it->second, what + ".env." + key));
      s.env[key] = value;
    }
  }
  return s;
}

Result<CheckConfig> ParseCheck(const Reader& r, const YAML::Node& n) {
  CheckConfig c;
  RETURN_IF_ERROR(r.RequireMap(n, "a check"));
  RETURN_IF_ERROR(r.CheckKeys(n, "a check",
                              {"name", "type", "url", "interval", "timeout", "expected_status",
                               "body_contains", "host", "port", "pidfile", "process", "exe"}));
  if (!n["name"]) {
    return r.At(n, "a check needs a 'name'");
  }
  ASSIGN_OR_RETURN(c.name, r.NonEmptyString(n["name"], "check name"));
  if (!protocol::IsValidHostName(c.name)) {
    return r.At(n["name"], "check name '" + c.name + "' must be 1-64 of [A-Za-z0-9._-]");
  }
  const std::string what = "check '" + c.name + "'";
  if (auto v = n["type"]) {
    ASSIGN_OR_RETURN(c.type, r.String(v, what + " type"));
    if (c.type != "http" && c.type != "tcp" && c.type != "process") {
      return r.At(v, what + ": type '" + c.type + "' is not supported (http, tcp, process)");
    }
  }
  // Keys that belong to another type are mistakes, not silently ignored.
  const std::map<std::string, std::vector<std::string>> kKeysOf = {
      {"http", {"url", "expected_status", "body_contains"}},
      {"tcp", {"host", "port"}},
      {"process", {"pidfile", "process", "exe"}}};
  for (const auto& [type, keys] : kKeysOf) {
    if (type == c.type) {
      continue;
    }
    for (const auto& key : keys) {
      if (n[key]) {
        return r.At(n[key], what + ": '" + key + "' does not apply to a " + c.type + " check");
      }
    }
  }
  if (c.type == "http") {
    if (!n["url"]) {
      return r.At(n, what + " needs a 'url'");
    }
    ASSIGN_OR_RETURN(c.url, r.String(n["url"], what + " url"));
    if (!IsHttpUrl(c.url)) {
      return r.At(n["url"], what + ": url must start with http:// or https://");
    }
    if (auto v = n["body_contains"]) {
      ASSIGN_OR_RETURN(c.body_contains, r.NonEmptyString(v, what + " body_contains"));
    }
  } else if (c.type == "tcp") {
    if (auto v = n["host"]) {
      ASSIGN_OR_RETURN(c.host, r.NonEmptyString(v, what + " host"));
    }
    if (!n["port"]) {
      return r.At(n, what + " needs a 'port'");
    }
    ASSIGN_OR_RETURN(int64_t port, r.Integer(n["port"], what + " port", 1, 65535));
    c.port = static_cast<int>(port);
  } else {
    int given = 0;
    if (auto v = n["pidfile"]) {
      ASSIGN_OR_RETURN(c.pidfile, r.NonEmptyString(v, what + " pidfile"));
      if (c.pidfile[0] != '/') {
        return r.At(v, what + ": pidfile must be an absolute path");
      }
      ++given;
    }
    if (auto v = n["process"]) {
      ASSIGN_OR_RETURN(c.process_name, r.NonEmptyString(v, what + " process"));
      if (c.process_name.size() > 15) {
        return r.At(v, what + ": process names are at most 15 characters (/proc/PID/comm)");
      }
      ++given;
    }
    if (auto v = n["exe"]) {
      ASSIGN_OR_RETURN(c.exe, r.NonEmptyString(v, what + " exe"));
      if (c.exe[0] != '/') {
        return r.At(v, what + ": exe must be an absolute path");
      }
      ++given;
    }
    if (given != 1) {
      return r.At(n, what + " needs exactly one of 'pidfile', 'process' or 'exe'");
    }
  }
  if (auto v = n["interval"]) {
    ASSIGN_OR_RETURN(c.interval, r.Duration(v, what + " interval"));
    if (c.interval < Millis(100)) {
      return r.At(v, what + ": interval must be at least 100ms");
    }
  }
  if (auto v = n["timeout"]) {
    ASSIGN_OR_RETURN(c.timeout, r.Duration(v, what + " timeout"));
    if (c.timeout < Millis(10) || c.timeout > Millis(60'000)) {
      return r.At(v, what + ": timeout must be between 10ms and 60s");
    }
  }
  if (auto v = n["expected_status"]) {
    ASSIGN_OR_RETURN(std::string s, r.String(v, what + " expected_status"));
    int lo = 0, hi = 0;
    const size_t dash = s.find('-');
    const std::string a = s.substr(0, dash);
    const std::string b = dash == std::string::npos ? a : s.substr(dash + 1);
    auto num = [](const std::string& t, int* out) {
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), *out);
      return ec == std::errc() && p == t.data() + t.size() && *out >= 100 && *out <= 599;
    };
    if (!num(a, &lo) || !num(b, &hi) || lo > hi) {
      return r.At(v, what + ": expected_status must be a code or a range like 200-399");
    }
    c.status_min = lo;
    c.status_max = hi;
  }
  return c;
}

Result<PolicySettings> ParsePolicy(const Reader& r, const YAML::Node& n) {
  PolicySettings p;
  RETURN_IF_ERROR(r.RequireMap(n, "policy"));
  RETURN_IF_ERROR(r.CheckKeys(n, "policy",
                              {"actions", "services", "paths", "shell", "process_scope",
                               "kill_names", "chaos_max_fill_bytes", "chaos_max_oom_bytes"}));
  if (auto v = n["actions"]) {
    ASSIGN_OR_RETURN(auto actions, r.StringList(v, "policy.actions"));
    for (size_t i = 0; i < actions.size(); ++i) {
      if (protocol::FindAction(actions[i]) == nullptr) {
        return r.At(v[i], "policy.actions: unknown action '" + actions[i] + "'");
      }
    }
    p.actions = std::move(actions);
  }
  if (auto v = n["services"]) {
    ASSIGN_OR_RETURN(auto services, r.StringList(v, "policy.services"));
    p.services = std::move(services);
  }
  if (auto v = n["paths"]) {
    ASSIGN_OR_RETURN(auto paths, r.AbsPathList(v, "policy.paths"));
    for (size_t i = 0; i < paths.size(); ++i) {
      if (paths[i].find("/..") != std::string::npos || paths[i].find("/./") != std::string::npos) {
        return r.At(v[i], "policy.paths entries must not contain '.' or '..' components");
      }
      if (paths[i].find_first_not_of('/') == std::string::npos) {
        return r.At(v[i], "policy.paths: / is never an allowed path (name the directories the "
                          "agent may touch, e.g. /var/log)");
      }
    }
    p.paths = std::move(paths);
  }
  if (auto v = n["kill_names"]) {
    ASSIGN_OR_RETURN(auto names, r.StringList(v, "policy.kill_names"));
    for (size_t i = 0; i < names.size(); ++i) {
      if (auto ok = protocol::ValidateParam("process.kill", "pattern", Json(names[i])); !ok) {
        return r.At(v[i], "policy.kill_names: '" + names[i] + "' is not a process name");
      }
    }
    p.kill_names = std::move(names);
  }
  if (auto v = n["shell"]) {
    ASSIGN_OR_RETURN(p.shell, r.Bool(v, "policy.shell"));
  }
  if (auto v = n["process_scope"]) {
    ASSIGN_OR_RETURN(p.process_scope, r.String(v, "policy.process_scope"));
    if (!ParseProcessScope(p.process_scope)) {
      return r.At(v, "policy.process_scope must be all or cgroup, got '" + p.process_scope + "'");
    }
  }
  for (const char* key : {"chaos_max_fill_bytes", "chaos_max_oom_bytes"}) {
    if (auto v = n[key]) {
      ASSIGN_OR_RETURN(std::string s, r.String(v, std::string("policy.") + key));
      auto bytes = ParseByteSize(s);
      if (!bytes || *bytes == 0) {
        return r.At(v, std::string("policy.") + key +
                           " must be a positive byte size like 1GiB or 512MiB, got '" + s + "'");
      }
      (std::string_view(key) == "chaos_max_fill_bytes" ? p.chaos_max_fill_bytes
                                                       : p.chaos_max_oom_bytes) = *bytes;
    }
  }
  return p;
}

// changes: {root: DIR, watch: [DIR...], max_files_hashed: N, max_hash_bytes: SIZE,
// max_entries: N, max_lines: N}
Result<ChangesOptions> ParseChanges(const Reader& r, const YAML::Node& n) {
  ChangesOptions o;
  RETURN_IF_ERROR(r.RequireMap(n, "changes"));
  RETURN_IF_ERROR(r.CheckKeys(n, "changes",
                              {"root", "watch", "max_files_hashed", "max_hash_bytes",
                               "max_entries", "max_lines"}));
  auto clean = [](const std::string& p) {
    return p.find("/..") == std::string::npos && p.find("/./") == std::string::npos &&
           p.find("//") == std::string::npos;
  };
  if (auto v = n["root"]) {
    ASSIGN_OR_RETURN(o.root, r.AbsPath(v, "changes.root"));
    if (!clean(o.root)) {
      return r.At(v, "changes.root must be a clean absolute directory, got '" + o.root + "'");
    }
  }
  if (auto v = n["watch"]) {
    ASSIGN_OR_RETURN(o.watch_paths, r.AbsPathList(v, "changes.watch"));
    for (size_t i = 0; i < o.watch_paths.size(); ++i) {
      if (!clean(o.watch_paths[i])) {
        return r.At(v[i], "changes.watch entries must be clean absolute directories, got '" +
                              o.watch_paths[i] + "'");
      }
    }
  }
  if (auto v = n["max_files_hashed"]) {
    ASSIGN_OR_RETURN(int64_t k, r.Integer(v, "changes.max_files_hashed", 0, 10'000));
    o.max_files_hashed = static_cast<size_t>(k);
  }
  if (auto v = n["max_entries"]) {
    ASSIGN_OR_RETURN(int64_t k, r.Integer(v, "changes.max_entries", 1, 1'000'000));
    o.max_entries_walked = static_cast<size_t>(k);
  }
  if (auto v = n["max_lines"]) {
    ASSIGN_OR_RETURN(int64_t k, r.Integer(v, "changes.max_lines", 1, 1'000));
    o.max_lines = static_cast<size_t>(k);
  }
  if (auto v = n["max_hash_bytes"]) {
    ASSIGN_OR_RETURN(std::string s, r.String(v, "changes.max_hash_bytes"));
    auto bytes = ParseByteSize(s);
    if (!bytes || *bytes == 0 || *bytes > (1ull << 30)) {
      return r.At(v, "changes.max_hash_bytes must be a byte size from 1B to 1GiB like 1MiB, "
                     "got '" + s + "'");
    }
    o.max_hash_bytes = *bytes;
  }
  return o;
}

// server: one URL, or a non-empty list of URLs (several servers on one store).
Result<std::vector<std::string>> ParseServerNode(const Reader& r, const YAML::Node& v) {
  std::vector<std::string> out;
  auto add = [&](const YAML::Node& n, const std::string& what) -> Status {
    ASSIGN_OR_RETURN(std::string url, r.String(n, what));
    auto checked = ValidateServerUrl(url);
    if (!checked) {
      return r.At(n, what + ": " + checked.error().message);
    }
    if (std::find(out.begin(), out.end(), *checked) != out.end()) {
      return r.At(n, what + ": " + *checked + " is listed twice");
    }
    out.push_back(*checked);
    return OkStatus();
  };
  if (v.IsSequence()) {
    if (v.size() == 0) {
      return r.At(v, "server must not be an empty list");
    }
    for (size_t i = 0; i < v.size(); ++i) {
      RETURN_IF_ERROR(add(v[i], "server[" + std::to_string(i) + "]"));
    }
  } else if (v.IsScalar()) {
    RETURN_IF_ERROR(add(v, "server"));
  } else {
    return r.At(v, "server must be a URL or a list of URLs");
  }
  return out;
}

Result<AgentConfig> ParseRoot(const Reader& r, const YAML::Node& root) {
  AgentConfig c;
  if (root.IsNull()) {
    return c;  // an empty file
  }
  RETURN_IF_ERROR(r.RequireMap(root, "the top level"));
  RETURN_IF_ERROR(r.CheckKeys(
      root, "the top level",
      {"server", "name", "token_file", "state_dir", "enroll_code", "interval", "log_level", "chaos", "mounts", "buffer_samples",
       "fast_report_min_gap", "services", "checks", "policy", "service_manager", "executor", "tls", "log_dir",
       "targets", "disk_primary_mount", "changes"}));
  if (auto v = root["server"]) {
    ASSIGN_OR_RETURN(c.servers, ParseServerNode(r, v));
    c.server = c.servers.front();
  }
  if (auto v = root["name"]) {
    ASSIGN_OR_RETURN(c.name, r.String(v, "name"));
    if (!protocol::IsValidHostName(c.name)) {
      return r.At(v, "name '" + c.name + "' must be 1-64 of [A-Za-z0-9._-]");
    }
  }
  if (auto v = root["token_file"]) {
    ASSIGN_OR_RETURN(c.token_file, r.NonEmptyString(v, "token_file"));
  }
  if (auto v = root["state_dir"]) {
    ASSIGN_OR_RETURN(c.state_dir, r.NonEmptyString(v, "state_dir"));
    if (c.state_dir[0] != '/') {
      return r.At(v, "state_dir must be an absolute path");
    }
  }
  if (auto v = root["enroll_code"]) {
    ASSIGN_OR_RETURN(c.enroll_code, r.NonEmptyString(v, "enroll_code"));
    if (c.enroll_code.size() > 256 ||
        c.enroll_code.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return r.At(v, "enroll_code must be the code `medic hosts enroll NAME` printed (hex)");
    }
  }
  if (auto v = root["interval"]) {
    ASSIGN_OR_RETURN(c.interval, r.Duration(v, "interval"));
    if (c.interval < Millis(100)) {
      return r.At(v, "interval must be at least 100ms");
    }
  }
  if (auto v = root["fast_report_min_gap"]) {
    ASSIGN_OR_RETURN(c.fast_report_min_gap, r.Duration(v, "fast_report_min_gap"));
    if (c.fast_report_min_gap < Millis(50) || c.fast_report_min_gap > Millis(60'000)) {
      return r.At(v, "fast_report_min_gap must be between 50ms and 60s");
    }
  }
  if (auto v = root["log_level"]) {
    ASSIGN_OR_RETURN(c.log_level, r.String(v, "log_level"));
    if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
        c.log_level != "error") {
      return r.At(v, "log_level must be debug, info, warn or error");
    }
  }
  if (auto v = root["chaos"]) {
    RETURN_IF_ERROR(r.RequireMap(v, "chaos"));
    RETURN_IF_ERROR(r.CheckKeys(v, "chaos", {"allowed"}));
    if (auto a = v["allowed"]) {
      ASSIGN_OR_RETURN(c.chaos_allowed, r.Bool(a, "chaos.allowed"));
    }
  }
  if (auto v = root["mounts"]) {
    ASSIGN_OR_RETURN(c.mounts, r.AbsPathList(v, "mounts"));
  }
  if (auto v = root["disk_primary_mount"]) {
    ASSIGN_OR_RETURN(c.disk_primary_mount, r.AbsPath(v, "disk_primary_mount"));
    while (c.disk_primary_mount.size() > 1 && c.disk_primary_mount.back() == '/') {
      c.disk_primary_mount.pop_back();
    }
  }
  if (auto v = root["log_dir"]) {
    ASSIGN_OR_RETURN(c.log_dir, r.AbsPath(v, "log_dir"));
    while (c.log_dir.size() > 1 && c.log_dir.back() == '/') {
      c.log_dir.pop_back();
    }
    if (c.log_dir == "/" || c.log_dir.find("/..") != std::string::npos ||
        c.log_dir.find("/./") != std::string::npos || c.log_dir.size() > 4096) {
      return r.At(v, "log_dir must be a clean absolute directory other than /, got '" +
                         c.log_dir + "'");
    }
  }
  if (auto v = root["targets"]) {
    if (!v.IsNull()) {
      if (!v.IsSequence()) {
        return r.At(v, "targets must be a list of {group, url}");
      }
      if (v.size() > 32) {
        return r.At(v, "targets: at most 32 entries");
      }
      for (const auto& item : v) {
        RETURN_IF_ERROR(r.RequireMap(item, "a target"));
        RETURN_IF_ERROR(r.CheckKeys(item, "a target", {"group", "url"}));
        if (!item["group"] || !item["url"]) {
          return r.At(item, "a target needs a 'group' and a 'url'");
        }
        AgentConfig::Target t;
        ASSIGN_OR_RETURN(t.group, r.NonEmptyString(item["group"], "target group"));
        if (!protocol::IsValidHostName(t.group)) {
          return r.At(item["group"],
                      "target group '" + t.group + "' must be 1-64 of [A-Za-z0-9._-]");
        }
        ASSIGN_OR_RETURN(t.url, r.String(item["url"], "target url"));
        if (!IsHttpUrl(t.url)) {
          return r.At(item["url"], "target url must start with http:// or https://");
        }
        c.targets.push_back(std::move(t));
      }
    }
  }
  if (auto v = root["tls"]) {
    RETURN_IF_ERROR(r.RequireMap(v, "tls"));
    RETURN_IF_ERROR(r.CheckKeys(v, "tls", {"ca_file", "cert_file", "key_file", "pin"}));
    if (auto a = v["pin"]) {
      c.tls_pin = a.as<std::string>("");
      if (!IsPublicKeyPin(c.tls_pin)) {
        return r.At(a, "tls.pin must be sha256//BASE64 of the server's public key (medic-server "
                       "prints it at start)");
      }
    }
    if (auto a = v["ca_file"]) {
      ASSIGN_OR_RETURN(c.tls_ca_file, r.AbsPath(a, "tls.ca_file"));
    }
    if (auto a = v["cert_file"]) {
      ASSIGN_OR_RETURN(c.tls_cert_file, r.AbsPath(a, "tls.cert_file"));
    }
    if (auto a = v["key_file"]) {
      ASSIGN_OR_RETURN(c.tls_key_file, r.AbsPath(a, "tls.key_file"));
    }
    if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
      return r.At(v, "tls: cert_file and key_file go together");
    }
  }
  if (auto v = root["executor"]) {
    RETURN_IF_ERROR(r.RequireMap(v, "executor"));
    RETURN_IF_ERROR(r.CheckKeys(v, "executor", {"run_as", "working_dir", "max_concurrent"}));
    if (auto a = v["run_as"]) {
      ASSIGN_OR_RETURN(c.exec_run_as, r.NonEmptyString(a, "executor.run_as"));
    }
    if (auto a = v["working_dir"]) {
      ASSIGN_OR_RETURN(c.exec_working_dir, r.AbsPath(a, "executor.working_dir"));
    }
    if (auto a = v["max_concurrent"]) {
      ASSIGN_OR_RETURN(int64_t n, r.Integer(a, "executor.max_concurrent", 1, 64));
      c.exec_max_concurrent = static_cast<int>(n);
    }
  }
  if (auto v = root["service_manager"]) {
    ASSIGN_OR_RETURN(c.service_manager, r.String(v, "service_manager"));
    if (c.service_manager != "auto" && c.service_manager != "supervisor" &&
        c.service_manager != "systemd") {
      return r.At(v, "service_manager must be auto, supervisor or systemd");
    }
  }
  if (auto v = root["buffer_samples"]) {
    ASSIGN_OR_RETURN(int64_t n, r.Integer(v, "buffer_samples", 1, 1'000'000));
    c.buffer_samples = static_cast<size_t>(n);
  }
  if (auto v = root["services"]) {
    if (!v.IsNull()) {
      RETURN_IF_ERROR(r.RequireMap(v, "services"));
      for (auto it = v.begin(); it != v.end(); ++it) {
        ASSIGN_OR_RETURN(ServiceConfig s, ParseService(r, it->first, it->second));
        if (c.FindService(s.name) != nullptr) {
          return r.At(it->first, "service '" + s.name + "' is defined twice");
        }
        c.services.push_back(std::move(s));
      }
    }
  }
  if (auto v = root["checks"]) {
    if (!v.IsNull()) {
      if (!v.IsSequence()) {
        return r.At(v, "checks must be a list");
      }
      std::set<std::string> names;
      for (const auto& item : v) {
        ASSIGN_OR_RETURN(CheckConfig check, ParseCheck(r, item));
        if (!names.insert(check.name).second) {
          return r.At(item, "check '" + check.name + "' is defined twice");
        }
        c.checks.push_back(std::move(check));
      }
    }
  }
  if (auto v = root["policy"]) {
    ASSIGN_OR_RETURN(c.policy, ParsePolicy(r, v));
  }
  if (auto v = root["changes"]) {
    ASSIGN_OR_RETURN(c.changes, ParseChanges(r, v));
  }
  return c;
}

std::string TrimTrailingSlashes(std::string s) {
  while (s.size() > 1 && s.back() == '/') {
    s.pop_back();
  }
  return s;
}

}  // namespace

Result<std::string> ValidateServerUrl(std::string_view url) {
  const std::string quoted = "'" + std::string(url.substr(0, 200)) + "'";
  const bool https = url.substr(0, 8) == "https://";
  if (!https && url.substr(0, 7) != "http://") {
    return InvalidArgument(quoted + " is not a URL starting with http:// or https://");
  }
  if (url.find_first_of("?#") != std::string_view::npos) {
    return InvalidArgument(quoted + " must not have a query or fragment (it is the server's "
                           "base URL)");
  }
  auto parsed = ParseUrl(url, https ? UrlScheme::kHttps : UrlScheme::kHttp);
  if (!parsed) {
    return InvalidArgument(quoted + " is not a valid server URL: " + parsed.error().message);
  }
  return TrimTrailingSlashes(std::string(url));
}

Result<std::vector<std::string>> ParseServerUrls(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& value : values) {
    std::string_view rest = value;
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view one = Trim(rest.substr(0, comma));
      if (one.empty()) {
        return InvalidArgument("--server '" + value + "' has an empty URL in its list");
      }
      auto checked = ValidateServerUrl(one);
      if (!checked) {
        return InvalidArgument("--server: " + checked.error().message);
      }
      if (std::find(out.begin(), out.end(), *checked) != out.end()) {
        return InvalidArgument("--server: " + *checked + " is given twice");
      }
      out.push_back(*checked);
      if (comma == std::string_view::npos) {
        break;
      }
      rest = rest.substr(comma + 1);
    }
  }
  if (out.empty()) {
    return InvalidArgument("--server needs a URL");
  }
  return out;
}

std::vector<std::string> ServerUrls(const AgentConfig& config) {
  return config.servers.empty() ? std::vector<std::string>{config.server} : config.servers;
}

const ServiceConfig* AgentConfig::FindService(std::string_view service) const {
  for (const auto& s : services) {
    if (s.name == service) {
      return &s;
    }
  }
  return nullptr;
}

Result<AgentConfig> ParseAgentConfig(std::string_view yaml, std::string_view source) {
  const Reader reader{std::string(source)};
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return reader.AtMark(e.mark, "invalid YAML: " + e.msg);
  }
  try {
    ASSIGN_OR_RETURN(AgentConfig c, ParseRoot(reader, root));
    c.source = std::string(source);
    return c;
  } catch (const YAML::Exception& e) {
    return reader.AtMark(e.mark, e.msg);
  }
}

Result<AgentConfig> LoadAgentConfigFile(const std::string& path) {
  auto text = ReadFile(path);
  if (!text) {
    return InvalidArgument("cannot read config: " + text.error().message);
  }
  return ParseAgentConfig(*text, path);
}

Status FinalizeAgentConfig(const ConfigOverrides& o, AgentConfig* c) {
  const std::string where = c->source.empty() ? "command line" : c->source;
  if (o.server) {
    ASSIGN_OR_RETURN(c->servers, ParseServerUrls(*o.server));
    c->server = c->servers.front();
  }
  if (o.name) {
    if (!protocol::IsValidHostName(*o.name)) {
      return InvalidArgument("--name '" + *o.name + "' must be 1-64 of [A-Za-z0-9._-]");
    }
    c->name = *o.name;
  }
  if (o.token_file) {
    if (o.token_file->empty()) {
      return InvalidArgument("--token-file must not be empty");
    }
    c->token_file = *o.token_file;
  }
  if (o.ca_file) {
    if (o.ca_file->empty() || (*o.ca_file)[0] != '/') {
      return InvalidArgument("--ca-file must be an absolute path");
    }
    c->tls_ca_file = *o.ca_file;
  }
  if (o.pin) {
    if (!IsPublicKeyPin(*o.pin)) {
      return InvalidArgument("--pin must be sha256//BASE64 of the server's public key "
                             "(medic-server prints it at start)");
    }
    c->tls_pin = *o.pin;
  }
  if (o.state_dir) {
    if (o.state_dir->empty() || (*o.state_dir)[0] != '/') {
      return InvalidArgument("--state-dir must be an absolute path");
    }
    c->state_dir = *o.state_dir;
  }
  if (o.enroll_code) {
    if (o.enroll_code->empty() || o.enroll_code->size() > 256 ||
        o.enroll_code->find_first_not_of("0123456789abcdef") != std::string::npos) {
      return InvalidArgument("--enroll-code must be the code `medic hosts enroll NAME` printed");
    }
    c->enroll_code = *o.enroll_code;
  }
  if (o.interval) {
    auto d = ParseDuration(*o.interval);
    if (!d) {
      return InvalidArgument("--interval: " + d.error().message);
    }
    if (*d < Millis(100)) {
      return InvalidArgument("--interval must be at least 100ms");
    }
    c->interval = *d;
  }
  if (c->server.empty()) {
    return InvalidArgument(where + ": 'server' is required (in the file or as --server)");
  }
  if (c->name.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0 || !protocol::IsValidHostName(host)) {
      return InvalidArgument(where + ": the hostname '" + std::string(host) +
                             "' is not a valid medic host name; set 'name' or --name");
    }
    c->name = host;
  }
  if (c->policy.services) {
    for (const auto& s : *c->policy.services) {
      if (c->FindService(s) == nullptr) {
        return InvalidArgument(where + ": policy.services names '" + s +
                               "', which is not a configured service");
      }
    }
  }
  return OkStatus();
}

Result<AgentConfig> LoadAgentConfig(const std::string& config_file,
                                    const ConfigOverrides& overrides) {
  AgentConfig c;
  if (!config_file.empty()) {
    ASSIGN_OR_RETURN(c, LoadAgentConfigFile(config_file));
  }
  RETURN_IF_ERROR(FinalizeAgentConfig(overrides, &c));
  return c;
}

Result<std::string> ReadToken(const std::string& token_file) {
  auto text = ReadFile(token_file);
  if (!text) {
    return Unauthenticated("cannot read the token file: " + text.error().message);
  }
  const std::string token(Trim(*text));
  if (token.empty()) {
    return Unauthenticated("the token file " + token_file + " is empty");
  }
  return token;
}

}  // namespace medic::agent
