#include "agent/proc_parsers.h"

#include <charconv>
#include <cstdlib>
#include <vector>

#include "core/files.h"

namespace medic::agent {

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
  std::optional<uint64_t> total, available, free, buffers, cached;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = text.size();
    }
    const std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
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
  return m;
}

double MemUsedPercent(const MemInfo& m) {
  if (m.total_kb == 0) {
    return 0;
  }
  return static_cast<double>(m.total_kb - m.available_kb) * 100.0 / static_cast<double>(m.total_kb);
}

Result<CpuTimes> ParseProcStatCpu(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = text.size();
    }
    const std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
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

std::string_view ParseComm(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace medic::agent
