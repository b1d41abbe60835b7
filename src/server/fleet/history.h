#pragma once

// The metric history of every host, in a fixed memory budget (issue 13; docs/ARCHITECTURE.md,
// "Metric history"). Each series keeps two tiers in compact ring buffers:
//   - full resolution: every point of the last `full_resolution` (12 bytes a point: the time
//     as milliseconds from a per-series base, the value as a double);
//   - downsampled: one bucket per minute for `downsampled`, holding the minute's lowest and
//     highest value with their times (16 bytes a minute; values as 32-bit floats), so a spike
//     or a dip is never averaged away.
// Points leave the full tier for their minute's bucket when older than `full_resolution`
// behind the series' newest point, or when the tier holds its share of points.
//
// The budget: every series may use budget / (number of series) bytes, its share. When the
// series do not fit at their full length, the oldest tier gives way first: the downsampled
// minutes are cut (the oldest minutes go), and only when no minute is left does the full
// tier shrink. A series over its share (the share fell as series were added) is cut at its
// next point or by the sweep that each point also does on one other series, so bytes() <=
// budget once every series was visited since the last growth of the fleet.
//
// Not thread-safe: HostRegistry guards it with its mutex.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace YAML {
class Node;
}

namespace medic::server {

struct HistoryOptions {
  // What all series of all hosts may use together (`budget_mb`, 1..1048576 MiB).
  uint64_t budget_bytes = uint64_t{512} << 20;
  // How long a series keeps every point (at most one point a second is assumed: a faster
  // series keeps this many points, and older ones go to their minute).
  Millis full_resolution{5 * 60'000};
  // How long a series keeps one-minute buckets (min and max) after that.
  Millis downsampled{24 * 3'600'000};
};

// Applies the `history:` mapping ({budget_mb: 512, full_resolution: 5m, downsampled: 24h}).
// budget_mb 1..1048576; full_resolution 1m..1h; downsampled 0 (none) or 1m..720h (a number of
// hours or "30d" style days are accepted). Errors name file, line and key.
Status ParseHistoryYaml(const YAML::Node& node, const std::string& file, HistoryOptions& out);

class MetricHistory {
 public:
  struct Point {
    WallTime t;
    double v;
  };
  class Series;

  explicit MetricHistory(HistoryOptions options = {});
  ~MetricHistory();
  MetricHistory(const MetricHistory&) = delete;
  MetricHistory& operator=(const MetricHistory&) = delete;

  // A new, empty series. It stays valid until Drop.
  Series* Add();
  void Drop(Series* s);
  // Adds a point, in time order (a late point finds its place).
  void Append(Series& s, WallTime t, double v);
  // Points at or after `since`, oldest first: the downsampled minutes (each as its lowest and
  // highest point, one point when they are the same) and then the full-resolution points.
  std::vector<Point> Since(const Series& s, WallTime since) const;

  // What the series use now, by the same count the budget is checked with: each series'
  // fixed part (kSeriesOverheadBytes) plus its ring buffers' capacity.
  uint64_t bytes() const { return bytes_; }
  uint64_t budget() const { return options_.budget_bytes; }
  size_t series_count() const { return all_.size(); }
  // The points one series may keep now in each tier (its share of the budget).
  size_t full_points_allowed() const { return full_allowed_; }
  size_t minutes_allowed() const { return minutes_allowed_; }

  // Bytes a series costs besides its points: the series itself and its entry in its host's map
  // of series (an estimate for the map node and a short name).
  static constexpr size_t kSeriesOverheadBytes = 160;
  static constexpr size_t kFullPointBytes = 12;
  static constexpr size_t kMinuteBytes = 16;

 private:
  void Recompute();
  // Cuts `s` to the points allowed now (the oldest go; full points to their minute).
  void Trim(Series& s);
  void ToMinute(Series& s, int64_t t_ms, double v);
  void Resize(Series& s, bool full, size_t capacity);

  const HistoryOptions options_;
  const size_t full_max_;     // full_resolution / 1 s
  const size_t minutes_max_;  // downsampled / 1 min
  std::vector<std::unique_ptr<Series>> all_;
  size_t sweep_ = 0;  // the next series the sweep visits
  uint64_t bytes_ = 0;
  size_t full_allowed_;
  size_t minutes_allowed_;
};

}  // namespace medic::server
