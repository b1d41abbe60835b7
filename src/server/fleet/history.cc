#include "server/fleet/history.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/yaml_util.h"

namespace medic::server {

namespace {

constexpr int64_t kMinuteMs = 60'000;
// A full point's time is base + dt (uint32 ms, 49 days): the base sits this far before the
// first point, so a point a little late still fits.
constexpr int64_t kBaseSlackMs = 3'600'000;

// 12 bytes, 4-byte aligned: the double is kept as two words (memcpy, no packed struct).
struct FullPoint {
  uint32_t dt_ms;
  uint32_t v[2];
  double value() const {
    double d;
    std::memcpy(&d, v, sizeof d);
    return d;
  }
};
static_assert(sizeof(FullPoint) == MetricHistory::kFullPointBytes);

// One minute: its lowest and highest value, each with its offset in the minute.
struct Minute {
  int32_t minute;  // since the epoch
  uint16_t min_off_ms;
  uint16_t max_off_ms;
  float min;
  float max;
};
static_assert(sizeof(Minute) == MetricHistory::kMinuteBytes);

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// A ring buffer of T with a capacity that is changed only by Reallocate.
template <typename T>
class Ring {
 public:
  size_t size() const { return count_; }
  size_t capacity() const { return cap_; }
  bool full() const { return count_ == cap_; }
  bool empty() const { return count_ == 0; }
  // 0 is the oldest.
  T& at(size_t i) { return buf_[(head_ + i) % cap_]; }
  const T& at(size_t i) const { return buf_[(head_ + i) % cap_]; }
  T& back() { return at(count_ - 1); }
  // REQUIRES: !full().
  void PushBack(const T& x) {
    buf_[(head_ + count_) % cap_] = x;
    ++count_;
  }
  T PopFront() {
    T x = buf_[head_];
    head_ = (head_ + 1) % cap_;
    --count_;
    return x;
  }
  // At logical position `pos` (0..size()), later ones move up. REQUIRES: !full().
  void Insert(size_t pos, const T& x) {
    ++count_;
    for (size_t i = count_ - 1; i > pos; --i) {
      at(i) = at(i - 1);
    }
    at(pos) = x;
  }
  // REQUIRES: capacity >= size().
  void Reallocate(size_t capacity) {
    std::unique_ptr<T[]> next = capacity > 0 ? std::make_unique<T[]>(capacity) : nullptr;
    for (size_t i = 0; i < count_; ++i) {
      next[i] = at(i);
    }
    buf_ = std::move(next);
    cap_ = capacity;
    head_ = 0;
  }

 private:
  std::unique_ptr<T[]> buf_;
  size_t cap_ = 0;
  size_t head_ = 0;
  size_t count_ = 0;
};

// The first position in `r` whose key is greater than `key` (upper bound).
template <typename T, typename Key>
size_t UpperBound(const Ring<T>& r, int64_t key, Key key_of) {
  size_t lo = 0;
  size_t hi = r.size();
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (key_of(r.at(mid)) <= key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace

class MetricHistory::Series {
 public:
  size_t index = 0;  // in all_
  int64_t base_ms = 0;
  Ring<FullPoint> full;
  Ring<Minute> minutes;
  int64_t TimeOf(const FullPoint& p) const { return base_ms + p.dt_ms; }
};

Status ParseHistoryYaml(const YAML::Node& node, const std::string& file, HistoryOptions& out) {
  if (node.IsNull()) {
    return OkStatus();
  }
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) +
                           "history must be a mapping (budget_mb, full_resolution, downsampled)");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const std::string text = kv.second.IsScalar() ? kv.second.as<std::string>("") : "";
    auto where = [&] { return YamlWhere(file, kv.second) + "history." + key + " "; };
    if (key == "budget_mb") {
      int64_t n = 0;
      try {
        n = kv.second.as<int64_t>();
      } catch (const YAML::Exception&) {
        n = 0;
      }
      if (n < 1 || n > 1'048'576) {
        return InvalidArgument(where() + "must be an integer number of MiB from 1 to 1048576");
      }
      out.budget_bytes = static_cast<uint64_t>(n) << 20;
    } else if (key == "full_resolution") {
      auto d = ParseDuration(text);
      if (!d || *d < std::chrono::minutes(1) || *d > std::chrono::hours(1)) {
        return InvalidArgument(where() + "must be a duration from 1m to 1h, not '" + text + "'");
      }
      out.full_resolution = *d;
    } else if (key == "downsampled") {
      Result<Millis> d = InvalidArgument("");
      if (text.size() >= 2 && text.size() <= 4 && text.back() == 'd' &&
          text.find_first_not_of("0123456789") == text.size() - 1) {
        d = Millis(std::stoll(text.substr(0, text.size() - 1)) * 24 * 3'600'000);
      } else {
        d = ParseDuration(text);
      }
      if (!d || (d->count() != 0 && (*d < std::chrono::minutes(1) ||
                                      *d > std::chrono::hours(24 * 30)))) {
        return InvalidArgument(where() + "must be 0 or a duration from 1m to 720h (30d), not '" +
                               text + "'");
      }
      out.downsampled = *d;
    } else {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown history key '" + key +
                             "' (budget_mb, full_resolution, downsampled)");
    }
  }
  return OkStatus();
}

MetricHistory::MetricHistory(HistoryOptions options)
    : options_(options),
      full_max_(static_cast<size_t>(std::max<int64_t>(1, options.full_resolution.count() / 1000))),
      minutes_max_(static_cast<size_t>(options.downsampled.count() / kMinuteMs)),
      full_allowed_(full_max_),
      minutes_allowed_(minutes_max_) {}

MetricHistory::~MetricHistory() = default;

void MetricHistory::Recompute() {
  const uint64_t share = options_.budget_bytes / std::max<size_t>(1, all_.size());
  const uint64_t room = share > kSeriesOverheadBytes ? share - kSeriesOverheadBytes : 0;
  const uint64_t full_bytes = uint64_t{full_max_} * kFullPointBytes;
  if (room >= full_bytes) {
    full_allowed_ = full_max_;
    minutes_allowed_ =
        static_cast<size_t>(std::min<uint64_t>(minutes_max_, (room - full_bytes) / kMinuteBytes));
  } else {
    full_allowed_ = static_cast<size_t>(room / kFullPointBytes);
    minutes_allowed_ = 0;
  }
}

MetricHistory::Series* MetricHistory::Add() {
  auto s = std::make_unique<Series>();
  s->index = all_.size();
  Series* out = s.get();
  all_.push_back(std::move(s));
  bytes_ += kSeriesOverheadBytes;
  Recompute();
  return out;
}

void MetricHistory::Drop(Series* s) {
  bytes_ -= kSeriesOverheadBytes + s->full.capacity() * kFullPointBytes +
            s->minutes.capacity() * kMinuteBytes;
  const size_t i = s->index;
  if (i + 1 != all_.size()) {
    all_[i] = std::move(all_.back());
    all_[i]->index = i;
  }
  all_.pop_back();
  Recompute();
}

void MetricHistory::Resize(Series& s, bool full, size_t capacity) {
  if (full) {
    bytes_ -= s.full.capacity() * kFullPointBytes;
    s.full.Reallocate(capacity);
    bytes_ += capacity * kFullPointBytes;
  } else {
    bytes_ -= s.minutes.capacity() * kMinuteBytes;
    s.minutes.Reallocate(capacity);
    bytes_ += capacity * kMinuteBytes;
  }
}

void MetricHistory::Trim(Series& s) {
  if (s.full.capacity() > full_allowed_) {
    while (s.full.size() > full_allowed_) {
      const FullPoint p = s.full.PopFront();
      ToMinute(s, s.TimeOf(p), p.value());
    }
    Resize(s, true, full_allowed_);
  }
  if (s.minutes.capacity() > minutes_allowed_) {
    while (s.minutes.size() > minutes_allowed_) {
      s.minutes.PopFront();
    }
    Resize(s, false, minutes_allowed_);
  }
}

void MetricHistory::ToMinute(Series& s, int64_t t_ms, double v) {
  const int64_t minute = FloorDiv(t_ms, kMinuteMs);
  if (minute < std::numeric_limits<int32_t>::min() || minute > std::numeric_limits<int32_t>::max()) {
    return;
  }
  const auto off = static_cast<uint16_t>(t_ms - minute * kMinuteMs);
  const auto f = static_cast<float>(v);
  const Minute fresh{static_cast<int32_t>(minute), off, off, f, f};
  auto minute_of = [](const Minute& m) { return int64_t{m.minute}; };
  size_t pos = UpperBound(s.minutes, minute, minute_of);
  if (pos > 0 && s.minutes.at(pos - 1).minute == minute) {
    Minute& m = s.minutes.at(pos - 1);
    // The first of equals stays (KeepExtremes' rule).
    if (f > m.max || (f == m.max && off < m.max_off_ms)) {
      m.max = f;
      m.max_off_ms = off;
    }
    if (f < m.min || (f == m.min && off < m.min_off_ms)) {
      m.min = f;
      m.min_off_ms = off;
    }
    return;
  }
  if (s.minutes.full()) {
    const size_t grown = std::min(minutes_allowed_, std::max<size_t>(4, s.minutes.capacity() * 2));
    if (grown > s.minutes.capacity()) {
      Resize(s, false, grown);
    } else if (pos == 0) {
      return;  // older than every minute kept, and no room
    } else {
      s.minutes.PopFront();
      --pos;
    }
  }
  if (s.minutes.capacity() == 0) {
    return;
  }
  s.minutes.Insert(pos, fresh);
}

void MetricHistory::Append(Series& s, WallTime t, double v) {
  // The sweep: one other series is cut to its share with each point.
  if (!all_.empty()) {
    sweep_ = (sweep_ + 1) % all_.size();
    Trim(*all_[sweep_]);
  }
  Trim(s);
  const int64_t t_ms = ToUnixMillis(t);
  if (s.full.empty()) {
    s.base_ms = t_ms - kBaseSlackMs;
  }
  if (t_ms < s.base_ms) {
    return ToMinute(s, t_ms, v);  // far older than every full point
  }
  if (t_ms - s.base_ms > int64_t{std::numeric_limits<uint32_t>::max()}) {
    // 49 days after the base: the points go to their minutes and the base starts again.
    while (!s.full.empty()) {
      const FullPoint p = s.full.PopFront();
      ToMinute(s, s.TimeOf(p), p.value());
    }
    s.base_ms = t_ms - kBaseSlackMs;
  }
  // What is older than full_resolution behind the newest goes to its minute.
  const int64_t newest = std::max(t_ms, s.full.empty() ? t_ms : s.TimeOf(s.full.back()));
  while (!s.full.empty() && s.TimeOf(s.full.at(0)) < newest - options_.full_resolution.count()) {
    const FullPoint p = s.full.PopFront();
    ToMinute(s, s.TimeOf(p), p.value());
  }
  if (t_ms < newest - options_.full_resolution.count()) {
    return ToMinute(s, t_ms, v);
  }
  auto time_of = [&s](const FullPoint& p) { return s.TimeOf(p); };
  size_t pos = UpperBound(s.full, t_ms, time_of);
  if (s.full.full()) {
    const size_t grown = std::min(full_allowed_, std::max<size_t>(8, s.full.capacity() * 2));
    if (grown > s.full.capacity()) {
      Resize(s, true, grown);
    } else if (pos == 0) {
      return ToMinute(s, t_ms, v);  // older than every point kept, and no room
    } else {
      const FullPoint p = s.full.PopFront();
      ToMinute(s, s.TimeOf(p), p.value());
      --pos;
    }
  }
  if (s.full.capacity() == 0) {
    return ToMinute(s, t_ms, v);
  }
  FullPoint p{static_cast<uint32_t>(t_ms - s.base_ms), {0, 0}};
  std::memcpy(p.v, &v, sizeof v);
  s.full.Insert(pos, p);
}

std::vector<MetricHistory::Point> MetricHistory::Since(const Series& s, WallTime since) const {
  const int64_t since_ms = ToUnixMillis(since);
  std::vector<Point> out;
  for (size_t i = 0; i < s.minutes.size(); ++i) {
    const Minute& m = s.minutes.at(i);
    const int64_t start = int64_t{m.minute} * kMinuteMs;
    Point lo{FromUnixMillis(start + m.min_off_ms), m.min};
    Point hi{FromUnixMillis(start + m.max_off_ms), m.max};
    if (hi.t < lo.t) {
      std::swap(lo, hi);
    }
    if (lo.t >= since) {
      out.push_back(lo);
    }
    if (hi.t >= since && !(m.min_off_ms == m.max_off_ms && m.min == m.max)) {
      out.push_back(hi);
    }
  }
  for (size_t i = 0; i < s.full.size(); ++i) {
    const FullPoint& p = s.full.at(i);
    if (s.TimeOf(p) >= since_ms) {
      out.push_back(Point{FromUnixMillis(s.TimeOf(p)), p.value()});
    }
  }
  // A point that arrived late, after its minute's newer points had left the full tier, is
  // already in order within its tier; the tiers meet in order but for such a point.
  std::stable_sort(out.begin(), out.end(),
                   [](const Point& a, const Point& b) { return a.t < b.t; });
  return out;
}

}  // namespace medic::server
