#include "agent/health_check.h"

#include "core/log.h"

namespace medic::agent {

CheckOutcome ClassifyHttpCheck(const Result<HttpResponse>& response, Millis elapsed,
                               const CheckConfig& check) {
  CheckOutcome out;
  const std::string took = std::to_string(elapsed.count()) + " ms";
  if (response) {
    const int status = response->status;
    out.healthy = status >= check.status_min && status <= check.status_max;
    out.detail = "HTTP " + std::to_string(status) + " in " + took;
    if (!out.healthy) {
      out.detail += " (expected " + std::to_string(check.status_min) + "-" +
                    std::to_string(check.status_max) + ")";
    }
    return out;
  }
  const Error& e = response.error();
  if (e.code == ErrorCode::kDeadlineExceeded) {
    out.detail = "timeout after " + std::to_string(check.timeout.count()) + " ms";
  } else if (e.message.find("Couldn't connect") != std::string::npos ||
             e.message.find("Connection refused") != std::string::npos) {
    out.detail = "connection refused";
  } else if (e.message.find("Empty reply") != std::string::npos ||
             e.message.find("reset") != std::string::npos) {
    out.detail = "connection closed without a response";
  } else {
    out.detail = "error: " + e.message;
  }
  return out;
}

protocol::CheckResult ProbeHttp(HttpClient& http, Clock& clock, const CheckConfig& check) {
  HttpRequest req;
  req.method = "GET";
  req.url = check.url;
  req.timeout = check.timeout;
  req.connect_timeout = check.timeout;
  req.headers.emplace_back("User-Agent", "medic-agent");
  const SteadyTime start = clock.SteadyNow();
  auto resp = http.Do(req);
  const auto elapsed = std::chrono::duration_cast<Millis>(clock.SteadyNow() - start);
  const CheckOutcome outcome = ClassifyHttpCheck(resp, elapsed, check);
  protocol::CheckResult r;
  r.name = check.name;
  r.healthy = outcome.healthy;
  r.detail = outcome.detail;
  r.t = clock.Now();
  return r;
}

bool CheckStates::Update(const protocol::CheckResult& result) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = current_.find(result.name);
  const bool changed = it == current_.end() || it->second.healthy != result.healthy;
  current_[result.name] = result;
  if (changed) {
    pending_.push_back({next_seq_++, result});
    while (pending_.size() > max_pending_) {
      pending_.pop_front();
    }
  }
  return changed;
}

std::vector<protocol::CheckResult> CheckStates::ForReport(uint64_t* token) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<protocol::CheckResult> out;
  for (const auto& t : pending_) {
    out.push_back(t.result);
  }
  for (const auto& [name, r] : current_) {
    // The newest transition of a check may be its current state already: not twice.
    bool sent = false;
    for (const auto& t : pending_) {
      sent = sent || (t.result.name == name && t.result.t == r.t && t.result.healthy == r.healthy &&
                      t.result.detail == r.detail);
    }
    if (!sent) {
      out.push_back(r);
    }
  }
  *token = pending_.empty() ? 0 : pending_.back().seq;
  return out;
}

void CheckStates::MarkSent(uint64_t token) {
  std::lock_guard<std::mutex> lock(mu_);
  while (!pending_.empty() && pending_.front().seq <= token) {
    pending_.pop_front();
  }
}

bool CheckStates::has_pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !pending_.empty();
}

HealthChecker::HealthChecker(std::vector<CheckConfig> checks, CheckStates& states, Clock& clock,
                             std::function<void()> on_change)
    : states_(states), clock_(clock), on_change_(std::move(on_change)) {
  for (auto& c : checks) {
    checks_.push_back({std::move(c), SteadyTime{}});
  }
}

SteadyTime HealthChecker::RunOnce(HttpClient& http, SteadyTime now) {
  SteadyTime next = now + Millis(60'000);
  const bool all = run_now_.exchange(false);
  for (auto& e : checks_) {
    if (all || now >= e.next) {
      const protocol::CheckResult r = ProbeHttp(http, clock_, e.config);
      if (states_.Update(r)) {
        LogInfo("check " + r.name + " is now " + (r.healthy ? "healthy" : "unhealthy") + ": " +
                r.detail);
        if (on_change_) {
          on_change_();
        }
      }
      e.next = now + e.config.interval;
    }
    next = std::min(next, e.next);
  }
  return next;
}

}  // namespace medic::agent
