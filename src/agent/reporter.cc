#include "agent/reporter.h"

#include "core/display.h"
#include "core/log.h"

namespace medic::agent {

void SampleBuffer::Push(protocol::MetricSample sample) {
  samples_.push_back(std::move(sample));
  while (samples_.size() > capacity_) {
    samples_.pop_front();
    ++dropped_;
  }
}

std::vector<protocol::MetricSample> SampleBuffer::Front(size_t n) const {
  std::vector<protocol::MetricSample> out;
  for (size_t i = 0; i < n && i < samples_.size(); ++i) {
    out.push_back(samples_[i]);
  }
  return out;
}

void SampleBuffer::PopFront(size_t n) {
  for (size_t i = 0; i < n && !samples_.empty(); ++i) {
    samples_.pop_front();
  }
}

std::vector<std::string> DropInvalidMetricNames(host::Metrics& metrics) {
  std::vector<std::string> dropped;
  for (auto it = metrics.begin(); it != metrics.end();) {
    if (protocol::IsValidMetricName(it->first)) {
      ++it;
    } else {
      dropped.push_back(it->first);
      it = metrics.erase(it);
    }
  }
  return dropped;
}

Reporter::Reporter(ReporterOptions options, const ServerApi& api, Registration& registration,
                   host::MetricsSource& metrics, CheckStates& checks, Clock& clock)
    : options_(std::move(options)),
      api_(api),
      registration_(registration),
      metrics_(metrics),
      checks_(checks),
      clock_(clock),
      buffer_(options_.buffer_samples) {}

SteadyTime Reporter::RunOnce(HttpClient& http, SteadyTime now) {
  if (!started_) {
    started_ = true;
    next_sample_ = now;
  }
  auto gap_end = [&](const std::optional<SteadyTime>& end) {
    return end ? *end + options_.fast_min_gap : SteadyTime{};
  };
  // Each return names when the loop should run next; a fast report waiting for its gap may
  // want it sooner.
  auto wake = [&](SteadyTime t) {
    return fast_waiting_ ? std::min(t, gap_end(last_send_end_)) : t;
  };
  const bool requested = requested_.exchange(false);
  const bool due = now >= next_sample_;
  bool fast = fast_requested_.exchange(false) || fast_waiting_;
  fast_waiting_ = false;
  if (fast && now < gap_end(last_send_end_)) {
    fast_waiting_ = true;  // too soon after the last report: sampled and sent at the gap's end
    fast = false;
  }
  if (due || requested || fast) {
    protocol::MetricSample sample;
    sample.t = clock_.Now();
    sample.metrics = metrics_.Collect();
    if (auto dropped = DropInvalidMetricNames(sample.metrics);
        !dropped.empty() && !warned_invalid_names_) {
      warned_invalid_names_ = true;
      LogWarn("not reporting metric '" + SanitizeForLogLine(dropped.front().substr(0, 300)) + "'" +
              " (and any other name the server would refuse: docs/PROTOCOL.md \"Limits\")");
    }
    buffer_.Push(std::move(sample));
    if (buffer_.dropped() > 0) {
      buffer_.back().metrics["agent_dropped_samples"] = static_cast<double>(buffer_.dropped());
    }
  }
  if (due) {
    next_sample_ += options_.interval;
    if (next_sample_ <= now) {
      next_sample_ = now + options_.interval;  // fell behind: skip, do not burst
    }
  }
  if (!registration_.registered()) {
    if (!registration_.Due(now) || !registration_.Attempt(http, now)) {
      return wake(std::min(next_sample_, registration_.next_attempt()));
    }
    flush_ = true;  // registered just now: deliver what waited
  }
  const bool wants = due || requested || fast || flush_;
  flush_ = false;
  // After a fast report, the others keep the gap too (the sample waits in the buffer).
  if (const SteadyTime hold = gap_end(last_fast_send_end_); wants && !fast && now < hold) {
    flush_ = true;
    return wake(std::min(next_sample_, hold));
  }
  const bool want_send = wants && now >= next_send_;
  if (want_send && (buffer_.size() > 0 || checks_.has_pending())) {
    const bool sent = SendOne(http);
    last_send_end_ = clock_.SteadyNow();
    if (fast) {
      last_fast_send_end_ = last_send_end_;
    }
    if (sent) {
      fast_waiting_ = false;  // this report's sample is newer than the request
    }
    if (!registration_.registered()) {
      return now;  // the server forgot us: register again at once
    }
    if (!sent) {
      // Unreachable: retry with backoff rather than serialise the buffer every interval.
      const double jitter = std::uniform_real_distribution<>(0, 1)(rng_);
      next_send_ = now + BackoffDelay(send_failures_++, options_.interval,
                                      options_.send_backoff_cap, jitter);
      return wake(std::min(next_sample_, next_send_));
    }
    send_failures_ = 0;
    next_send_ = SteadyTime{};
    if (buffer_.size() > 0) {
      flush_ = true;  // a catch-up batch left more: send on at once
      return now;
    }
  }
  if (buffer_.size() > 0 && next_send_ > now) {
    flush_ = true;  // deliver the backlog as soon as the backoff allows
    return wake(std::min(next_sample_, next_send_));
  }
  return wake(next_sample_);
}

bool Reporter::SendOne(HttpClient& http) {
  protocol::Report report;
  report.host = options_.host;
  const size_t n = std::min(options_.max_batch, buffer_.size());
  report.samples = buffer_.Front(n);
  uint64_t token = 0;
  report.checks = checks_.ForReport(&token);
  const Status s = api_.SendReport(http, report);
  if (s) {
    buffer_.PopFront(n);
    checks_.MarkSent(token);
    return true;
  }
  if (NeedsRegistration(s.error())) {
    registration_.Invalidate();
  } else if (s.error().code == ErrorCode::kInvalidArgument) {
    // The server refuses this content; resending it would block everything after it.
    LogError("the server rejected a report; dropping its " + std::to_string(n) +
             " samples: " + s.error().message);
    buffer_.PopFront(n);
    checks_.MarkSent(token);
    return true;  // consumed, so the loop goes on
  } else {
    LogDebug("report not delivered, keeping " + std::to_string(buffer_.size()) +
             " samples: " + s.error().message);
  }
  return false;
}

}  // namespace medic::agent
