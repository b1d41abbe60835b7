#include "agent/health_check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/files.h"
#include "core/log.h"
#include "protocol/actions.h"

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
    } else if (!check.body_contains.empty() &&
               response->body.find(check.body_contains) == std::string::npos) {
      out.healthy = false;
      out.detail += ", body lacks \"" + check.body_contains + "\"";
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
                             std::function<void()> on_change, host::ProcFs* procfs)
    : states_(states), clock_(clock), on_change_(std::move(on_change)), procfs_(procfs) {
  if (procfs_ == nullptr) {
    own_procfs_ = std::make_unique<host::LinuxProcFs>();
    procfs_ = own_procfs_.get();
  }
  for (auto& c : checks) {
    checks_.push_back({std::move(c), SteadyTime{}});
  }
}

SteadyTime HealthChecker::RunOnce(HttpClient& http, SteadyTime now) {
  SteadyTime next = now + Millis(60'000);
  const bool all = run_now_.exchange(false);
  for (auto& e : checks_) {
    if (all || now >= e.next) {
      const protocol::CheckResult r = ProbeCheck(http, *procfs_, clock_, e.config, &e.scan);
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

namespace medic::agent {

std::vector<protocol::CheckResult> CheckStates::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<protocol::CheckResult> out;
  for (const auto& [name, result] : current_) {
    out.push_back(result);
  }
  return out;
}

}  // namespace medic::agent

namespace medic::agent {

namespace {

std::string Plural(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// True while `pid` runs (not a zombie); its comm then goes to *comm.
bool Alive(host::ProcFs& procfs, int pid, std::string* comm) {
  std::optional<host::PidStat> st = host::LiveProcess(procfs, pid);
  if (!st) {
    return false;
  }
  *comm = st->comm;
  return true;
}

}  // namespace

CheckOutcome ProbeTcp(const CheckConfig& check) {
  CheckOutcome out;
  const auto start = std::chrono::steady_clock::now();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(check.port);
  if (const int rc = ::getaddrinfo(check.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    out.detail = "cannot resolve " + check.host + ": " + ::gai_strerror(rc);
    return out;
  }
  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(res);
    out.detail = std::string("socket: ") + std::strerror(errno);
    return out;
  }
  int err = 0;
  if (::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    err = errno;
  }
  ::freeaddrinfo(res);
  if (err == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(check.timeout.count()));
    if (rc == 0) {
      ::close(fd);
      out.detail = "timeout after " + std::to_string(check.timeout.count()) + " ms";
      return out;
    }
    socklen_t len = sizeof(err);
    err = 0;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  }
  ::close(fd);
  const auto took = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start);
  if (err == 0) {
    out.healthy = true;
    out.detail = "connected in " + std::to_string(took.count()) + " ms";
  } else if (err == ECONNREFUSED) {
    out.detail = "connection refused";
  } else {
    out.detail = std::string("connect: ") + std::strerror(err);
  }
  return out;
}

CheckOutcome ProbeProcess(host::ProcFs& procfs, const CheckConfig& check) {
  return ProbeProcess(procfs, check, nullptr);
}

CheckOutcome ProbeProcess(host::ProcFs& procfs, const CheckConfig& check, ProcessScanCache* cache) {
  CheckOutcome out;
  if (!check.pidfile.empty()) {
    auto text = procfs.Read(check.pidfile);
    if (!text) {
      out.detail = "cannot read " + check.pidfile;
      return out;
    }
    const std::optional<int> parsed = host::ParsePidFile(*text);
    if (!parsed) {
      out.detail = check.pidfile + " holds no pid";
      return out;
    }
    const int pid = *parsed;
    std::string comm;
    out.healthy = Alive(procfs, pid, &comm);
    out.detail = out.healthy
                     ? "pid " + std::to_string(pid) + " (" + comm + ") is running"
                     : "pid " + std::to_string(pid) + " from " + check.pidfile + " is not running";
    return out;
  }
  std::vector<int> pids = procfs.ListPids().value_or(std::vector<int>{});
  std::sort(pids.begin(), pids.end());
  const auto matches = [&](int pid) {
    std::string comm;
    if (!Alive(procfs, pid, &comm)) {
      return false;
    }
    if (!check.process_name.empty()) {
      // The comm of /proc/PID/stat is /proc/PID/comm: at most 15 bytes of the name.
      return comm == protocol::CommName(check.process_name);
    }
    auto exe = procfs.ReadLink(std::to_string(pid) + "/exe");
    return exe && *exe == check.exe;
  };
  const auto scan = [&](bool full, std::vector<int>* matched) {
    for (int pid : pids) {
      if (!full && std::binary_search(cache->seen.begin(), cache->seen.end(), pid) &&
          !std::binary_search(cache->matched.begin(), cache->matched.end(), pid)) {
        continue;  // known last time and did not match
      }
      if (matches(pid)) {
        matched->push_back(pid);
      }
    }
  };
  std::vector<int> matched;
  bool full = cache == nullptr || cache->runs_since_full >= ProcessScanCache::kFullScanEvery;
  scan(full, &matched);
  if (matched.empty() && !full) {
    full = true;  // before calling it unhealthy, look at every process
    scan(true, &matched);
  }
  if (cache != nullptr) {
    cache->seen = pids;
    cache->matched = matched;
    cache->runs_since_full = full ? 0 : cache->runs_since_full + 1;
  }
  const size_t n = matched.size();
  out.healthy = n > 0;
  if (!check.process_name.empty()) {
    out.detail = n > 0 ? Plural(n, "process", "processes") + " named " + check.process_name
                       : "no process named " + check.process_name;
  } else {
    out.detail = n > 0 ? Plural(n, "process runs", "processes run") + " " + check.exe
                       : "no process runs " + check.exe;
  }
  return out;
}

protocol::CheckResult ProbeCheck(HttpClient& http, host::ProcFs& procfs, Clock& clock,
                                 const CheckConfig& check, ProcessScanCache* cache) {
  if (check.type == "http") {
    return ProbeHttp(http, clock, check);
  }
  const CheckOutcome o = check.type == "tcp" ? ProbeTcp(check) : ProbeProcess(procfs, check, cache);
  protocol::CheckResult r;
  r.name = check.name;
  r.healthy = o.healthy;
  r.detail = o.detail;
  r.t = clock.Now();
  return r;
}

}  // namespace medic::agent
