#include "core/clock.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace medic {

std::string FormatRfc3339(WallTime t) {
  const int64_t ms = ToUnixMillis(t);
  int64_t secs = ms / 1000;
  int64_t frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    secs -= 1;
  }
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(frac));
  return buf;
}

namespace {

bool ReadInt(std::string_view s, size_t pos, size_t len, int* out) {
  if (pos + len > s.size()) {
    return false;
  }
  int v = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// The unix milliseconds a WallTime (nanoseconds in int64) can hold: years 1677..2262.
constexpr int64_t kMinUnixMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(WallTime::duration::min()).count();
constexpr int64_t kMaxUnixMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(WallTime::duration::max()).count();

}  // namespace

Result<WallTime> ParseRfc3339(std::string_view s) {
  auto bad = [&] { return InvalidArgument("not an RFC 3339 time: '" + std::string(s) + "'"); };
  int year, mon, day, hour, min, sec;
  if (s.size() < 20 || !ReadInt(s, 0, 4, &year) || s[4] != '-' || !ReadInt(s, 5, 2, &mon) ||
      s[7] != '-' || !ReadInt(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !ReadInt(s, 11, 2, &hour) || s[13] != ':' || !ReadInt(s, 14, 2, &min) || s[16] != ':' ||
      !ReadInt(s, 17, 2, &sec)) {
    return bad();
  }
  if (mon < 1 || mon > 12 || day < 1 || day > DaysInMonth(year, mon) || hour > 23 || min > 59 ||
      sec > 60) {
    return bad();
  }
  size_t pos = 19;
  int64_t frac_ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    int64_t scale = 100;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (digits < 3) {
        frac_ms += (s[pos] - '0') * scale;
        scale /= 10;
      }
      ++digits;
      ++pos;
    }
    if (digits == 0) {
      return bad();
    }
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) {
    offset_s = 0;
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
    int oh, om;
    if (!ReadInt(s, pos + 1, 2, &oh) || !ReadInt(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return bad();
    }
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
  } else {
    return bad();
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  const int64_t secs = static_cast<int64_t>(timegm(&tm)) - offset_s;
  const int64_t ms = secs * 1000 + frac_ms;
  if (ms < kMinUnixMillis || ms > kMaxUnixMillis) {
    return bad();
  }
  return FromUnixMillis(ms);
}

int64_t ToUnixMillis(WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

WallTime FromUnixMillis(int64_t ms) {
  // Saturate: converting a larger count to nanoseconds would overflow int64 (undefined).
  ms = std::clamp(ms, kMinUnixMillis, kMaxUnixMillis);
  return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::milliseconds(ms)));
}

Result<Millis> ParseDuration(std::string_view text) {
  std::string s(text);
  auto bad = [&] {
    return InvalidArgument("not a duration: '" + s + "' (use e.g. 500ms, 1s, 2m, 1h)");
  };
  if (s.empty()) {
    return bad();
  }
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) {
    ++i;
  }
  if (i == 0) {
    return bad();
  }
  double value = 0;
  try {
    size_t used = 0;
    value = std::stod(s.substr(0, i), &used);
    if (used != i) {
      return bad();
    }
  } catch (...) {
    return bad();
  }
  const std::string unit = s.substr(i);
  double ms;
  if (unit == "ms") {
    ms = value;
  } else if (unit == "s" || unit.empty()) {
    ms = value * 1000;
  } else if (unit == "m") {
    ms = value * 60'000;
  } else if (unit == "h") {
    ms = value * 3'600'000;
  } else {
    return bad();
  }
  if (!std::isfinite(ms) || ms < 0 || ms > 1e12) {
    return bad();
  }
  return Millis(static_cast<int64_t>(std::llround(ms)));
}

}  // namespace medic
