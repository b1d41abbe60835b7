#include "agent/fast_watch.h"

#include <algorithm>

namespace medic::agent {

void CrossingDetector::SetThresholds(std::vector<protocol::WatchedThreshold> thresholds) {
  thresholds_ = std::move(thresholds);
  series_.clear();
  for (const auto& t : thresholds_) {
    series_.push_back(t.metric);
  }
  std::sort(series_.begin(), series_.end());
  series_.erase(std::unique(series_.begin(), series_.end()), series_.end());
  breaching_.clear();
}

std::vector<protocol::WatchedThreshold> CrossingDetector::Observe(const host::Metrics& reading) {
  std::vector<protocol::WatchedThreshold> crossed;
  for (size_t i = 0; i < thresholds_.size(); ++i) {
    auto it = reading.find(thresholds_[i].metric);
    if (it == reading.end()) {
      continue;
    }
    const bool breaching = thresholds_[i].Breaches(it->second);
    auto [side, first] = breaching_.try_emplace(i, breaching);
    if (!first && side->second != breaching) {
      crossed.push_back(thresholds_[i]);
    }
    side->second = breaching;
  }
  return crossed;
}

FastWatch::FastWatch(FastWatchOptions options,
                     std::function<std::vector<protocol::WatchedThreshold>()> thresholds,
                     ReadSeries read, std::function<void()> on_crossing)
    : options_(options),
      thresholds_(std::move(thresholds)),
      read_(std::move(read)),
      on_crossing_(std::move(on_crossing)) {}

SteadyTime FastWatch::NextRead(const std::string& series, double value, SteadyTime now) const {
  const double rate = options_.max_rise_per_second ? options_.max_rise_per_second(series) : 0;
  if (!(rate > 0)) {
    return now + options_.period;
  }
  double distance = -1;  // to the nearest > / >= threshold above the value
  for (const auto& t : detector_.thresholds()) {
    if (t.metric != series) {
      continue;
    }
    if ((t.comparison != ">" && t.comparison != ">=") || t.Breaches(value)) {
      return now + options_.period;  // it may fall at once, or the threshold is a low one
    }
    distance = distance < 0 ? t.threshold - value : std::min(distance, t.threshold - value);
  }
  const auto could_reach = std::chrono::duration<double>(distance / rate);
  const Millis delay = std::chrono::duration_cast<Millis>(could_reach);
  return now + std::clamp(delay, options_.period, std::max(options_.period, options_.max_delay));
}

SteadyTime FastWatch::RunOnce(SteadyTime now) {
  if (auto current = thresholds_(); current != detector_.thresholds()) {
    detector_.SetThresholds(std::move(current));
    next_read_.clear();
    for (const auto& series : detector_.series()) {
      next_read_[series] = now;
    }
  }
  if (detector_.series().empty()) {
    return SteadyTime::max();
  }
  std::vector<std::string> due;
  for (const auto& [series, at] : next_read_) {
    if (at <= now) {
      due.push_back(series);
    }
  }
  if (!due.empty()) {
    const host::Metrics reading = read_(due);
    for (const auto& series : due) {
      auto it = reading.find(series);
      next_read_[series] =
          it == reading.end() ? now + options_.period : NextRead(series, it->second, now);
    }
    if (!detector_.Observe(reading).empty()) {
      ++crossings_;
      on_crossing_();
    }
  }
  SteadyTime next = SteadyTime::max();
  for (const auto& [series, at] : next_read_) {
    next = std::min(next, at);
  }
  return next;
}

}  // namespace medic::agent
