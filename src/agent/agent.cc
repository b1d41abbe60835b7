#include "agent/agent.h"

#include <unistd.h>

#include "agent/prometheus.h"
#include "core/log.h"

namespace medic::agent {

namespace {

pid_t SelfPid(const AgentTuning& t) { return t.self_pid != 0 ? t.self_pid : ::getpid(); }

// The fastest memory is assumed to be taken: well above what page faults allow on one host (a
// few GiB/s per core), so that a host far below its memory threshold is read a few times a
// second rather than every fast-watch period.
// How long a loop waits for `next`: rounded up to whole milliseconds (rounded down, the wait
// would end before `next`, and the loop would spin through the rest of that millisecond), at
// most an hour (SteadyTime::max(): until notified).
Millis WaitUntil(SteadyTime next, SteadyTime now) {
  constexpr Millis kLongest{3'600'000};
  if (next <= now) {
    return Millis(0);
  }
  return next - now >= kLongest ? kLongest : std::chrono::ceil<Millis>(next - now);
}

constexpr double kMaxMemoryRiseBytesPerSecond = 64.0 * (1ull << 30);

ExecutorOptions WithArchive(ExecutorOptions o, ArchiveSink* archive) {
  o.archive = archive;
  return o;
}

}  // namespace

protocol::RegisterRequest MakeRegisterRequest(const AgentConfig& config) {
  protocol::RegisterRequest r;
  r.name = config.name;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) {
    r.hostname = host;
  }
  r.version = std::string(kAgentVersion);
  for (const auto& s : config.services) {
    r.services.push_back(s.name);
  }
  r.chaos_allowed = config.chaos_allowed;
  r.log_dir = config.log_dir;
  for (const auto& t : config.targets) {
    r.targets.push_back({t.group, t.url});
  }
  return r;
}

EnrolmentOptions MakeEnrolmentOptions(const AgentConfig& config) {
  EnrolmentOptions o;
  o.name = config.name;
  o.state_dir = config.state_dir;
  o.enroll_code = config.enroll_code;
  o.bootstrap_token_file = config.token_file;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) {
    o.hostname = host;
  }
  return o;
}

ExecutorOptions MakeExecutorOptions(const AgentConfig& config, pid_t self_pid) {
  ExecutorOptions o;
  o.self_pid = self_pid;
  o.run_as = config.exec_run_as;
  o.working_dir = config.exec_working_dir;
  // disk-fill without a path fills the host's log directory (the policy still decides).
  o.chaos_default_dir = config.log_dir;
  o.changes = config.changes;
  for (const auto& s : config.services) {
    o.service_log_files[s.name] = s.log_files;
  }
  for (const auto& c : config.checks) {
    if (c.type == "http") {
      // scheme://authority/path?query -> /path
      const size_t scheme = c.url.find("://");
      const size_t slash = c.url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
      if (slash != std::string::npos) {
        o.health_check_paths.push_back(c.url.substr(slash, c.url.find_first_of("?#", slash) - slash));
      }
    }
  }
  return o;
}

Agent::Agent(const AgentConfig& config, std::string credential, AgentDeps deps,
             AgentTuning tuning)
    : deps_(std::move(deps)),
      policy_(PolicyRulesFromConfig(config, SelfPid(tuning))),
      api_(ServerUrls(config), credential),
      enrolment_(credential.empty() ? std::make_unique<Enrolment>(
                                          api_, MakeEnrolmentOptions(config), &verifier_)
                                    : nullptr),
      registration_(api_, MakeRegisterRequest(config), tuning.register_backoff_base,
                    tuning.register_backoff_cap, enrolment_.get()),
      metrics_(deps_.procfs, config.mounts, config.disk_primary_mount),
      recorded_metrics_(metrics_),
      reporter_(ReporterOptions{.host = config.name,
                                .interval = config.interval,
                                .buffer_samples = config.buffer_samples,
                                .fast_min_gap = config.fast_report_min_gap},
                api_, registration_, recorded_metrics_, checks_, deps_.clock),
      checker_(
          config.checks, checks_, deps_.clock,
          [this] {
            reporter_.RequestReport();
            report_waiter_.Notify();
          },
          &deps_.procfs),
      fast_watch_(
          FastWatchOptions{.period = tuning.fast_watch_period,
                           .max_rise_per_second =
                               [this](const std::string& series) {
                                 const double per_point = metrics_.MemoryBytesPerPercent();
                                 return series == "mem_used_percent" && per_point > 0
                                            ? kMaxMemoryRiseBytesPerSecond / per_point
                                            : 0.0;
                               }},
          [this] { return registration_.watch(); },
          [this](const std::vector<std::string>& series) {
            return metrics_.CollectSeries(series);
          },
          [this] {
            reporter_.RequestFastReport();
            report_waiter_.Notify();
          }),
      archive_sink_(api_, config.name, deps_.new_http_client),
      executor_(WithArchive(MakeExecutorOptions(config, SelfPid(tuning)), &archive_sink_), policy_,
                deps_.runner, deps_.services, deps_.procfs),
      processor_(config.name, policy_, executor_, deps_.clock),
      poller_(PollerOptions{config.name, tuning.poll_wait, 4, Millis(250), deps_.ledger}, api_,
              registration_, verifier_, processor_,
              [this](Millis d) { return poll_waiter_.WaitFor(d); }, deps_.clock) {
  registration_.SetListener([this] {
    poll_waiter_.Notify();
    watch_waiter_.Notify();  // the thresholds may have changed
  });
  // Moved to another server: register there (the reporter does, at once), then carry on; the
  // buffered samples stay in the reporter and go to the new server in order.
  api_.servers().SetMoveListener([this] {
    registration_.RegisterAgain();
    report_waiter_.Notify();
  });
  if (!deps_.command_key.empty()) {
    if (Status s = verifier_.SetKey(deps_.command_key); !s) {
      LogError("the server's command key is not usable (" + s.error().message +
               "): every command will be refused until the host is enrolled again");
    }
  }
}

Agent::~Agent() { Stop(Millis::max()); }

void Agent::Start() {
  if (started_) {
    return;
  }
  started_ = true;
  reporter_thread_ = std::thread([this] { ReporterLoop(); });
  if (!checker_.empty()) {
    checker_thread_ = std::thread([this] { CheckerLoop(); });
  }
  watch_thread_ = std::thread([this] { WatchLoop(); });
  poller_thread_ = std::thread([this] {
    PollerLoop();
    poller_done_.set_value();
  });
}

bool Agent::Stop(Millis grace) {
  if (!started_ || stopped_) {
    return true;
  }
  stopped_ = true;
  report_waiter_.Stop();
  check_waiter_.Stop();
  poll_waiter_.Stop();
  watch_waiter_.Stop();
  if (watch_thread_.joinable()) {
    watch_thread_.join();
  }
  if (reporter_thread_.joinable()) {
    reporter_thread_.join();
  }
  if (checker_thread_.joinable()) {
    checker_thread_.join();
  }
  auto done = poller_done_.get_future();
  if (grace == Millis::max()) {
    done.wait();
  } else if (done.wait_for(grace) != std::future_status::ready) {
    LogWarn("a long poll is still in flight; not waiting for it");
    poller_thread_.detach();
    return false;
  }
  poller_thread_.join();
  return true;
}

void Agent::ReporterLoop() {
  auto http = deps_.new_http_client();
  while (!report_waiter_.stopped()) {
    const SteadyTime next = reporter_.RunOnce(*http, deps_.clock.SteadyNow());
    report_waiter_.WaitFor(WaitUntil(next, deps_.clock.SteadyNow()));
  }
}

void Agent::WatchLoop() {
  while (!watch_waiter_.stopped()) {
    const SteadyTime next = fast_watch_.RunOnce(deps_.clock.SteadyNow());
    watch_waiter_.WaitFor(WaitUntil(next, deps_.clock.SteadyNow()));
  }
}

void Agent::CheckerLoop() {
  auto http = deps_.new_check_http_client ? deps_.new_check_http_client()
                                          : deps_.new_http_client();
  while (!check_waiter_.stopped()) {
    const SteadyTime next = checker_.RunOnce(*http, deps_.clock.SteadyNow());
    check_waiter_.WaitFor(WaitUntil(next, deps_.clock.SteadyNow()));
  }
}

std::string Agent::PrometheusText() const {
  return FormatPrometheus(recorded_metrics_.Latest(), checks_.Current(), reporter_.dropped());
}

void Agent::CheckNow() {
  checker_.RequestRunNow();
  check_waiter_.Notify();
}

void Agent::PollerLoop() {
  auto http = deps_.new_http_client();
  while (!poll_waiter_.stopped()) {
    const uint64_t executed = poller_.executed();
    const Millis delay = poller_.RunOnce(*http);
    if (poller_.executed() != executed) {
      CheckNow();
    }
    poll_waiter_.WaitFor(delay);
  }
}

}  // namespace medic::agent
