#pragma once

// Injected time. Wall time (system_clock) stamps records; steady time measures intervals.

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

#include "core/result.h"

namespace medic {

using WallTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual WallTime Now() const = 0;
  virtual SteadyTime SteadyNow() const = 0;
};

class SystemClock : public Clock {
 public:
  WallTime Now() const override { return std::chrono::system_clock::now(); }
  SteadyTime SteadyNow() const override { return std::chrono::steady_clock::now(); }
};

// A clock tests move by hand. Thread-safe.
class ManualClock : public Clock {
 public:
  explicit ManualClock(WallTime start = WallTime(std::chrono::seconds(1'800'000'000)))
      : wall_(start) {}
  WallTime Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return wall_;
  }
  SteadyTime SteadyNow() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return steady_;
  }
  void Advance(std::chrono::nanoseconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    wall_ += std::chrono::duration_cast<WallTime::duration>(d);
    steady_ += std::chrono::duration_cast<SteadyTime::duration>(d);
  }

 private:
  mutable std::mutex mu_;
  WallTime wall_;       // Guarded by mu_.
  SteadyTime steady_{};  // Guarded by mu_.
};

// RFC 3339 in UTC with millisecond precision: 2026-11-29T21:13:16.123Z.
std::string FormatRfc3339(WallTime t);
// Accepts RFC 3339 with 'Z' or a numeric offset, with or without fractional seconds.
Result<WallTime> ParseRfc3339(std::string_view text);

int64_t ToUnixMillis(WallTime t);
WallTime FromUnixMillis(int64_t ms);

// Parses "250ms", "1s", "1.5s", "2m", "1h", or a bare number of seconds.
Result<Millis> ParseDuration(std::string_view text);

}  // namespace medic
