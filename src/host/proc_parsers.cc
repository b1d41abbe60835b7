#include "host/proc_parsers.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <set>
#include <vector>

#include "host/text.h"
#include "core/files.h"

namespace medic::host {

namespace {

bool ParseU64(std::string_view s, uint64_t* out) {
  s = Trim(s);
  if (s.empty()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool ParseInt(std::string_view s, int* out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

std::vector<std::string_view> SplitWords(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) {
      ++i;
    }
    const size_t b = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') {
      ++i;
    }
    if (i > b) {
      out.push_back(s.substr(b, i - b));
    }
  }
  return out;
}

}  // namespace

Result<MemInfo> ParseMeminfo(std::string_view text) {
  std::optional<uint64_t> total, available, free, buffers, cached, swap_total, swap_free;
  LineReader lines(text);
  while (const std::optional<std::string_view> next = lines.Next()) {
    const std::string_view line = *next;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    const std::string_view key = line.substr(0, colon);
    std::string_view value = Trim(line.substr(colon + 1));
    if (value.size() >= 3 && value.substr(value.size() - 3) == " kB") {
      value.remove_suffix(3);
    }
    uint64_t v = 0;
    if (!ParseU64(value, &v)) {
      continue;
    }
    if (key == "MemTotal") {
      total = v;
    } else if (key == "MemAvailable") {
      available = v;
    } else if (key == "MemFree") {
      free = v;
    } else if (key == "Buffers") {
      buffers = v;
    } else if (key == "Cached") {
      cached = v;
    } else if (key == "SwapTotal") {
      swap_total = v;
    } else if (key == "SwapFree") {
      swap_free = v;
    }
  }
  if (!total || *total == 0) {
    return InvalidArgument("meminfo: no MemTotal");
  }
  MemInfo m;
  m.total_kb = *total;
  if (available) {
    m.available_kb = *available;
  } else if (free) {
    m.available_kb = *free + buffers.value_or(0) + cached.value_or(0);
  } else {
    return InvalidArgument("meminfo: neither MemAvailable nor MemFree");
  }
  if (m.available_kb > m.total_kb) {
    m.available_kb = m.total_kb;
  }
  m.swap_total_kb = swap_total.value_or(0);
  m.swap_free_kb = std::min(swap_free.value_or(0), m.swap_total_kb);
  return m;
}

double MemUsedPercent(const MemInfo& m) {
  if (m.total_kb == 0) {
    return 0;
  }
  return static_cast<double>(m.total_kb - m.available_kb) * 100.0 / static_cast<double>(m.total_kb);
}

Result<CpuTimes> ParseProcStatCpu(std::string_view text) {
  LineReader lines(text);
  while (const std::optional<std::string_view> next = lines.Next()) {
    const std::string_view line = *next;
    if (line.substr(0, 4) != "cpu ") {
      continue;
    }
    const auto words = SplitWords(line.substr(4));
    if (words.size() < 4) {
      return InvalidArgument("/proc/stat: short cpu line");
    }
    uint64_t v[8] = {};
    for (size_t i = 0; i < 8 && i < words.size(); ++i) {
      if (!ParseU64(words[i], &v[i])) {
        return InvalidArgument("/proc/stat: bad number in cpu line");
      }
    }
    CpuTimes t;
    for (uint64_t x : v) {
      t.total += x;
    }
    const uint64_t idle = v[3] + v[4];
    t.busy = t.total - idle;
    return t;
  }
  return InvalidArgument("/proc/stat: no cpu line");
}

std::optional<double> CpuPercent(const CpuTimes& before, const CpuTimes& after) {
  if (after.total <= before.total || after.busy < before.busy) {
    return std::nullopt;
  }
  const double total = static_cast<double>(after.total - before.total);
  const double busy = static_cast<double>(after.busy - before.busy);
  const double p = busy * 100.0 / total;
  return p > 100.0 ? 100.0 : p;
}

Result<double> ParseLoadavg1(std::string_view text) {
  const auto words = SplitWords(Trim(text));
  if (words.empty()) {
    return InvalidArgument("/proc/loadavg: empty");
  }
  const std::string first(words[0]);
  char* end = nullptr;
  const double v = std::strtod(first.c_str(), &end);
  if (end == first.c_str() || *end != '\0' || v < 0) {
    return InvalidArgument("/proc/loadavg: bad load '" + first + "'");
  }
  return v;
}

Result<LoadAvg> ParseLoadavg(std::string_view text) {
  const auto words = SplitWords(Trim(text));
  if (words.size() < 3) {
    return InvalidArgument("/proc/loadavg: fewer than three loads");
  }
  double v[3] = {};
  for (int i = 0; i < 3; ++i) {
    const std::string w(words[i]);
    char* end = nullptr;
    v[i] = std::strtod(w.c_str(), &end);
    if (end == w.c_str() || *end != '\0' || v[i] < 0) {
      return InvalidArgument("/proc/loadavg: bad load '" + w + "'");
    }
  }
  return LoadAvg{v[0], v[1], v[2]};
}

std::optional<double> DiskUsedPercent(const FsStats& s) {
  if (s.blocks == 0 || s.bfree > s.blocks) {
    return std::nullopt;
  }
  const uint64_t used = s.blocks - s.bfree;
  const uint64_t denom = used + s.bavail;
  if (denom == 0) {
    return std::nullopt;
  }
  return static_cast<double>(used) * 100.0 / static_cast<double>(denom);
}

std::optional<double> InodeUsedPercent(const FsStats& s) {
  if (s.files == 0 || s.ffree > s.files) {
    return std::nullopt;
  }
  return static_cast<double>(s.files - s.ffree) * 100.0 / static_cast<double>(s.files);
}

Result<PidStat> ParsePidStat(std::string_view text) {
  // "PID (COMM) S PPID PGRP SESSION ..."; COMM may hold spaces and parentheses, so the
  // name ends at the LAST ')'.
  const size_t open = text.find('(');
  const size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return InvalidArgument("/proc/PID/stat: no (comm)");
  }
  PidStat st;
  if (!ParseInt(Trim(text.substr(0, open)), &st.pid)) {
    return InvalidArgument("/proc/PID/stat: bad pid");
  }
  st.comm = std::string(text.substr(open + 1, close - open - 1));
  const auto words = SplitWords(Trim(text.substr(close + 1)));
  if (words.size() < 4 || words[0].size() != 1) {
    return InvalidArgument("/proc/PID/stat: too few fields");
  }
  st.state = words[0][0];
  if (!ParseInt(words[1], &st.ppid) || !ParseInt(words[2], &st.pgrp) ||
      !ParseInt(words[3], &st.session)) {
    return InvalidArgument("/proc/PID/stat: bad ppid/pgrp/session");
  }
  return st;
}

bool IsLive(const PidStat& st) { return st.state != 'Z' && st.state != 'X'; }

std::optional<int> ParsePidFile(std::string_view text) {
  int pid = 0;
  if (!ParseInt(Trim(text), &pid) || pid <= 0) {
    return std::nullopt;
  }
  return pid;
}

std::string_view ParseComm(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace medic::host

namespace medic::host {

namespace {

// The value of `key` in a "key value" per line file (memory.stat).
std::optional<uint64_t> StatValue(std::string_view text, std::string_view key) {
  LineReader lines(text);
  while (const std::optional<std::string_view> next = lines.Next()) {
    const std::string_view line = *next;
    const auto words = SplitWords(line);
    uint64_t v = 0;
    if (words.size() == 2 && words[0] == key && ParseU64(words[1], &v)) {
      return v;
    }
  }
  return std::nullopt;
}

std::optional<CgroupMemory> MakeCgroupMemory(uint64_t limit, uint64_t usage,
                                             std::optional<uint64_t> inactive,
                                             uint64_t host_total_bytes) {
  if (limit == 0 || (host_total_bytes > 0 && limit >= host_total_bytes)) {
    return std::nullopt;  // not limited below the host's memory
  }
  CgroupMemory m;
  m.limit_bytes = limit;
  const uint64_t cache = inactive.value_or(0);
  m.used_bytes = usage > cache ? usage - cache : 0;
  return m;
}

std::string DecodeOctalEscapes(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool UnderPseudoTree(const std::string& mount) {
  for (const char* prefix : {"/proc", "/sys", "/dev", "/run/credentials"}) {
    const std::string p(prefix);
    if (mount == p || mount.rfind(p + "/", 0) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::optional<double> SwapUsedPercent(const MemInfo& m) {
  if (m.swap_total_kb == 0) {
    return std::nullopt;
  }
  return static_cast<double>(m.swap_total_kb - m.swap_free_kb) * 100.0 /
         static_cast<double>(m.swap_total_kb);
}

std::optional<CgroupMemory> CgroupMemoryV1(std::string_view limit, std::string_view usage,
                                           std::string_view stat, uint64_t host_total_bytes) {
  uint64_t l = 0, u = 0;
  if (!ParseU64(limit, &l) || !ParseU64(usage, &u)) {
    return std::nullopt;
  }
  auto inactive = StatValue(stat, "total_inactive_file");
  if (!inactive) {
    inactive = StatValue(stat, "inactive_file");
  }
  return MakeCgroupMemory(l, u, inactive, host_total_bytes);
}

std::optional<CgroupMemory> CgroupMemoryV2(std::string_view max, std::string_view current,
                                           std::string_view stat, uint64_t host_total_bytes) {
  uint64_t l = 0, u = 0;
  if (Trim(max) == "max" || !ParseU64(max, &l) || !ParseU64(current, &u)) {
    return std::nullopt;
  }
  return MakeCgroupMemory(l, u, StatValue(stat, "inactive_file"), host_total_bytes);
}

double CgroupMemUsedPercent(const CgroupMemory& m) {
  if (m.limit_bytes == 0) {
    return 0;
  }
  return std::min(100.0,
                  static_cast<double>(m.used_bytes) * 100.0 / static_cast<double>(m.limit_bytes));
}

std::optional<std::string> ParseProcCgroup(std::string_view text, std::string_view controller) {
  LineReader lines(text);
  while (const std::optional<std::string_view> next = lines.Next()) {
    const std::string_view line = *next;
    const size_t a = line.find(':');
    const size_t b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) {
      continue;
    }
    const std::string_view id = line.substr(0, a);
    const std::string_view controllers = line.substr(a + 1, b - a - 1);
    const std::string_view path = line.substr(b + 1);
    if (controller.empty()) {
      if (id == "0" && controllers.empty()) {
        return std::string(path);
      }
      continue;
    }
    size_t c = 0;
    while (c <= controllers.size()) {
      size_t comma = controllers.find(',', c);
      if (comma == std::string_view::npos) {
        comma = controllers.size();
      }
      if (controllers.substr(c, comma - c) == controller) {
        return std::string(path);
      }
      c = comma + 1;
    }
  }
  return std::nullopt;
}

std::optional<std::string> CgroupDir(std::string_view proc_cgroup, std::string_view controller,
                                     std::string_view hierarchy) {
  std::optional<std::string> path = ParseProcCgroup(proc_cgroup, controller);
  if (!path.has_value()) {
    return std::nullopt;
  }
  while (!path->empty() && path->back() == '/') {
    path->pop_back();
  }
  return std::string(hierarchy) + *path;
}

std::vector<MountEntry> ParseMounts(std::string_view text) {
  std::vector<MountEntry> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = text.size();
    }
    const auto words = SplitWords(text.substr(pos, nl - pos));
    pos = nl + 1;
    if (words.size() < 3) {
      continue;
    }
    out.push_back(MountEntry{DecodeOctalEscapes(words[0]), DecodeOctalEscapes(words[1]),
                             std::string(words[2])});
  }
  return out;
}

std::vector<std::string> RealMountPoints(std::string_view mounts_text) {
  static const std::set<std::string, std::less<>> kPseudo = {
      "autofs",   "binfmt_misc", "bpf",      "cgroup",  "cgroup2",    "configfs",   "debugfs",
      "devpts",   "devtmpfs",    "efivarfs", "fusectl", "hugetlbfs",  "mqueue",     "nsfs",
      "overlay",  "proc",        "pstore",   "ramfs",   "rpc_pipefs", "securityfs", "selinuxfs",
      "squashfs", "sysfs",       "tmpfs",    "tracefs", "iso9660",    "fuse.lxcfs"};
  std::set<std::string> points = {"/"};
  for (const auto& m : ParseMounts(mounts_text)) {
    if (m.mount_point.empty() || m.mount_point[0] != '/' || kPseudo.count(m.fs_type) > 0 ||
        UnderPseudoTree(m.mount_point)) {
      continue;
    }
    points.insert(m.mount_point);
  }
  return {points.begin(), points.end()};
}

std::string MountMetricKey(std::string_view name, std::string_view mount) {
  std::string key(name);
  if (mount == "/") {
    return key;
  }
  key += "{mount=\"";
  for (char c : mount) {
    if (c == '"' || c == '\\') {
      key.push_back('\\');
    }
    key.push_back(c == '\n' ? ' ' : c);
  }
  key += "\"}";
  return key;
}

}  // namespace medic::host
