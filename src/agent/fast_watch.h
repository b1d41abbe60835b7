#pragma once

// The fast watch: between samples, the agent reads the few series the server's alarm rules
// watch (RegisterResponse::watch: statvfs of a mount, memory available) at a short period, and
// asks for a report at once when one of them moves to the other side of a threshold, in either
// direction, as a health-check change does. The reporter spaces the reports it causes
// (ReporterOptions::fast_min_gap). docs/AGENT.md, "Fast watch".

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "host/metrics.h"
#include "protocol/wire.h"

namespace medic::agent {

// Pure: remembers on which side of each threshold its series was at the last reading. Not
// thread-safe.
class CrossingDetector {
 public:
  // Replaces the thresholds; every side is forgotten (the next reading only records).
  void SetThresholds(std::vector<protocol::WatchedThreshold> thresholds);
  const std::vector<protocol::WatchedThreshold>& thresholds() const { return thresholds_; }
  // The distinct series the thresholds are on, in name order.
  const std::vector<std::string>& series() const { return series_; }

  // Feeds one reading; returns the thresholds whose side changed since the previous reading of
  // their series. A series missing from `reading` keeps its last side; its first reading only
  // records the side.
  std::vector<protocol::WatchedThreshold> Observe(const host::Metrics& reading);

 private:
  std::vector<protocol::WatchedThreshold> thresholds_;
  std::vector<std::string> series_;
  std::map<size_t, bool> breaching_;  // threshold index -> side at the last reading
};

struct FastWatchOptions {
  Millis period{50};  // between two readings while some threshold is watched
  // How fast a series can rise at most, in its own units per second (0: unknown, read it every
  // period). Below its `>`/`>=` thresholds such a series is read again only when it could have
  // reached the nearest one (but at least every period and at most every max_delay): memory,
  // which rises no faster than pages can be allocated, is read a few times a second on a host
  // far from its threshold instead of 40. Disk is always read every period (fallocate is
  // instant), and so is a series on the breaching side (memory is freed at once).
  std::function<double(const std::string& series)> max_rise_per_second;
  Millis max_delay{1'000};
};

// Driven by one thread through RunOnce. `thresholds` answers the current thresholds (the last
// registration's; thread-safe on its side); `read` reads the given series
// (ProcMetricsCollector::CollectSeries); `on_crossing` runs on the watching thread.
class FastWatch {
 public:
  using ReadSeries = std::function<host::Metrics(const std::vector<std::string>&)>;
  FastWatch(FastWatchOptions options,
            std::function<std::vector<protocol::WatchedThreshold>()> thresholds, ReadSeries read,
            std::function<void()> on_crossing);

  // Reads the watched series that are due (if any) and calls on_crossing when a threshold was
  // crossed. Returns when it wants to run next: when the next series is due, or
  // SteadyTime::max() when nothing is watched (the agent wakes it after each registration).
  SteadyTime RunOnce(SteadyTime now);

  uint64_t crossings() const { return crossings_; }

 private:
  const FastWatchOptions options_;
  std::function<std::vector<protocol::WatchedThreshold>()> thresholds_;
  ReadSeries read_;
  std::function<void()> on_crossing_;
  // When each series is due to be read next. REQUIRES: the keys are detector_.series().
  SteadyTime NextRead(const std::string& series, double value, SteadyTime now) const;

  CrossingDetector detector_;
  std::map<std::string, SteadyTime> next_read_;
  uint64_t crossings_ = 0;
};

}  // namespace medic::agent
