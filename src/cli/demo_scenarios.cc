#include "cli/demo_scenarios.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/api.h"
#include "cli/demo.h"
#include "cli/format.h"
#include "cli/net.h"

namespace medic::cli {

namespace {

constexpr Millis kProbeTimeout{5'000};
constexpr Millis kProbeConnectTimeout{2'000};

bool IsTerminal(const std::string& status) {
  return status == "completed" || status == "failed" || status == "timeout" || status == "rejected";
}

std::string Seconds(Millis d) { return std::to_string(d.count() / 1000) + " s"; }

// Seconds to 0.01 s, the same in the table and in JSON.
double Hundredths(double s) { return std::round(s * 100.0) / 100.0; }

std::string FormatSeconds(const std::optional<double>& s) {
  if (!s.has_value()) {
    return "-";
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", Hundredths(*s));
  return buf;
}

Json SecondsJson(const std::optional<double>& s) {
  if (!s.has_value()) {
    return nullptr;
  }
  return Hundredths(*s);
}

}  // namespace

const std::vector<ScenarioSpec>& DemoScenarios() {
  static const std::vector<ScenarioSpec> kScenarios = {
      {"nginx-crash", "nginx-crash", "Nginx-Down-ALB", Json::object(), false},
      // The agent's defaults: fill the host's log volume to 90 %.
      {"disk-fill", "disk-fill", "Disk-Critical-ASG", Json::object(), true},
      // 95 % of the host's memory cgroup, held at most 2 minutes should nothing stop it.
      {"oom", "oom", "Memory-Exhaustion-ASG", Json{{"percent", 95}, {"duration", "120s"}}, true},
  };
  return kScenarios;
}

std::string DemoScenarioChoices() {
  std::string out = "all";
  for (const ScenarioSpec& s : DemoScenarios()) {
    out += ", " + s.name;
  }
  return out;
}

Result<std::vector<ScenarioSpec>> SelectScenarios(std::string_view choice) {
  if (choice == "all") {
    return DemoScenarios();
  }
  for (const ScenarioSpec& s : DemoScenarios()) {
    if (s.name == choice) {
      return std::vector<ScenarioSpec>{s};
    }
  }
  return InvalidArgument("unknown scenario '" + std::string(choice) +
                         "' (valid: " + DemoScenarioChoices() + ")");
}

std::string ScenarioHost(std::string_view scenario, int hosts) {
  const std::vector<ScenarioSpec>& all = DemoScenarios();
  size_t place = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].name == scenario) {
      place = i;
    }
  }
  const int n = std::max(hosts, 1);
  return "web-" + std::to_string(static_cast<int>(place) % n + 1);
}

std::string DescribeProbes(const ProbeCounts& c) {
  if (c.total == 0) {
    return "-";
  }
  if (c.failed == 0) {
    return "200 x " + std::to_string(c.total);
  }
  return std::to_string(c.failed) + " of " + std::to_string(c.total) + " failed";
}

StepTimes StepTimesFromTimeline(const Json& incident, WallTime chaos_sent) {
  StepTimes t;
  if (!incident.is_object()) {
    return t;
  }
  const Json& timeline = FieldOrNull(incident, "timeline");
  if (!timeline.is_array()) {
    return t;
  }
  auto since = [&](const Json& entry) -> std::optional<double> {
    Result<WallTime> at = ParseRfc3339(StringOr(entry, "timestamp"));
    if (!at.has_value()) {
      return std::nullopt;
    }
    return std::chrono::duration<double>(*at - chaos_sent).count();
  };
  std::optional<double> completed;
  for (const Json& e : timeline) {
    if (!e.is_object()) {
      continue;
    }
    const std::string event = StringOr(e, "event");
    if (event == "created" && !t.detected) {
      t.detected = since(e);
    } else if ((event == "auto_approved" || event == "awaiting_approval") && !t.decided) {
      t.decided = since(e);
    } else if ((event == "executed" || event == "interrupted") && !t.fixed) {
      t.fixed = since(e);
    } else if (event == "verified" && !t.verified) {
      t.verified = since(e);
    } else if (event == "completed" && !completed) {
      completed = since(e);
    }
  }
  if (!t.verified && StringOr(incident, "status") == "completed") {
    t.verified = completed;
  }
  return t;
}

std::string FormatScenarioTable(const std::vector<ScenarioResult>& results) {
  std::vector<std::vector<std::string>> rows;
  for (const ScenarioResult& r : results) {
    rows.push_back({r.scenario, r.host, FormatSeconds(r.detected_s), FormatSeconds(r.decided_s),
                    FormatSeconds(r.fixed_s), FormatSeconds(r.verified_s), r.status,
                    DescribeProbes(r.lb)});
  }
  return FormatTable(
      {"SCENARIO", "HOST", "DETECTED", "DECIDED", "FIXED", "VERIFIED", "STATUS", "LB"}, rows);
}

Json ScenarioResultsJson(const std::vector<ScenarioResult>& results) {
  Json out = Json::array();
  for (const ScenarioResult& r : results) {
    out.push_back(Json{{"scenario", r.scenario},
                       {"host", r.host},
                       {"detected_s", SecondsJson(r.detected_s)},
                       {"decided_s", SecondsJson(r.decided_s)},
                       {"fixed_s", SecondsJson(r.fixed_s)},
                       {"verified_s", SecondsJson(r.verified_s)},
                       {"status", r.status},
                       {"lb_ok", r.lb_ok()},
                       {"incident_id", r.incident_id.empty() ? Json(nullptr) : Json(r.incident_id)},
                       {"lb_probes", r.lb.total},
                       {"lb_failed", r.lb.failed}});
  }
  return out;
}

int ScenarioExitStatus(const std::vector<ScenarioResult>& results) {
  if (results.empty()) {
    return 1;
  }
  for (const ScenarioResult& r : results) {
    if (r.status != "completed") {
      return 1;
    }
  }
  return 0;
}

ThreadLoadProbe::ThreadLoadProbe(std::unique_ptr<HttpClient> http, std::string url, Millis every)
    : http_(std::move(http)), url_(std::move(url)), every_(every) {}

ThreadLoadProbe::~ThreadLoadProbe() { Finish(); }

void ThreadLoadProbe::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void ThreadLoadProbe::RunOnce() {
  HttpRequest req;
  req.url = url_;
  req.timeout = kProbeTimeout;
  req.connect_timeout = kProbeConnectTimeout;
  req.max_body_bytes = 4096;
  Result<HttpResponse> r = http_->Do(req);
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_.total;
  if (!r.has_value()) {
    ++counts_.failed;
    counts_.last_failure = r.error().message;
  } else if (r->status != 200) {
    ++counts_.failed;
    counts_.last_failure = std::to_string(r->status);
  }
}

void ThreadLoadProbe::Loop() {
  for (;;) {
    RunOnce();
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, every_, [this] { return stop_; })) {
      return;
    }
  }
}

ProbeCounts ThreadLoadProbe::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  return counts();
}

ProbeCounts ThreadLoadProbe::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

ScenarioRunner::ScenarioRunner(ScenarioRunnerOptions options, ScenarioEnv& env, std::ostream& err)
    : options_(std::move(options)), env_(env), err_(err) {}

std::vector<ScenarioResult> ScenarioRunner::RunAll(const std::vector<ScenarioSpec>& scenarios) {
  std::vector<ScenarioResult> results;
  for (const ScenarioSpec& s : scenarios) {
    results.push_back(Run(s));
    if (interrupted_) {
      break;
    }
  }
  return results;
}

Status ScenarioRunner::WaitFor(Millis timeout, const std::string& what,
                               const std::function<bool(std::string& why_not)>& done) {
  const WallTime deadline = env_.Now() + timeout;
  std::string why_not;
  for (;;) {
    why_not.clear();
    if (done(why_not)) {
      return OkStatus();
    }
    if (env_.Now() >= deadline) {
      return DeadlineExceeded(what + " within " + Seconds(timeout) +
                              (why_not.empty() ? "" : " (" + why_not + ")"));
    }
    if (!env_.Sleep(options_.poll_interval)) {
      interrupted_ = true;
      return Unavailable("interrupted");
    }
  }
}

bool ScenarioRunner::HostReady(const std::string& host, const std::string& alarm,
                               std::string& why_not) {
  ApiClient api(env_.Http(), options_.server_url, options_.admin_token);
  Result<Json> hosts = api.Call("GET", "/api/v1/hosts", nullptr, "GET /api/v1/hosts");
  if (!hosts.has_value()) {
    why_not = hosts.error().message;
    return false;
  }
  if (std::vector<std::string> bad = HostsNotHealthy(*hosts, {host}); !bad.empty()) {
    why_not = bad.front();
    return false;
  }
  Result<Json> alarms =
      api.Call("GET", "/api/v1/alarms?host=" + UrlEncode(host), nullptr, "GET /api/v1/alarms");
  if (!alarms.has_value()) {
    why_not = alarms.error().message;
    return false;
  }
  const Json& list = FieldOrNull(*alarms, "alarms");
  bool alarm_ok = alarm.empty();
  if (list.is_array()) {
    for (const Json& a : list) {
      if (!a.is_object() || StringOr(a, "host") != host) {
        continue;
      }
      const std::string name = StringOr(a, "alarm_name");
      const std::string state = StringOr(a, "state");
      if (state == "ALARM") {
        why_not = name + " on " + host + " is in ALARM";
        return false;
      }
      if (name == alarm) {
        alarm_ok = state == "OK";
        if (!alarm_ok) {
          why_not = name + " on " + host + " is " + (state.empty() ? "unknown" : state);
        }
      }
    }
  }
  if (!alarm_ok && why_not.empty()) {
    why_not = alarm + " on " + host + " is not listed";
  }
  return alarm_ok;
}

Result<std::vector<std::string>> ScenarioRunner::IncidentIds(const std::string& alarm,
                                                             const std::string& host) {
  ApiClient api(env_.Http(), options_.server_url, options_.admin_token);
  ASSIGN_OR_RETURN(Json body, api.Call("GET",
                                       "/api/v1/incidents?alarm=" + UrlEncode(alarm) +
                                           "&host=" + UrlEncode(host) + "&limit=1000&view=summary",
                                       nullptr, "GET /api/v1/incidents"));
  std::vector<std::string> ids;
  const Json& list = FieldOrNull(body, "incidents");
  if (list.is_array()) {
    for (const Json& i : list) {
      if (i.is_object() && StringOr(i, "alarm_name") == alarm &&
          StringOr(i, "instance_id") == host) {
        ids.push_back(StringOr(i, "incident_id"));
      }
    }
  }
  return ids;
}

void ScenarioRunner::UndoChaos(const std::string& host) {
  ApiClient api(env_.Http(), options_.server_url, options_.admin_token);
  const Json body = {{"host", host}, {"mode", "stop"}, {"params", Json::object()}};
  if (Result<Json> r = api.Call("POST", "/api/v1/chaos", &body, "chaos stop on " + host);
      !r.has_value()) {
    err_ << "medic demo: " << r.error().message << std::endl;
  }
}

ScenarioResult ScenarioRunner::Run(const ScenarioSpec& spec) {
  ScenarioResult result;
  result.scenario = spec.name;
  result.host = ScenarioHost(spec.name, static_cast<int>(options_.hosts.size()));
  const std::string& host = result.host;
  const std::string prefix = "medic demo: " + spec.name + " on " + host + ": ";

  const auto fleet_host = std::find_if(options_.hosts.begin(), options_.hosts.end(),
                                       [&](const DemoFleetHost& h) { return h.name == host; });
  if (fleet_host == options_.hosts.end()) {
    result.status = "not run: no host " + host + " in the demo";
    return result;
  }
  if (spec.needs_isolation && !fleet_host->isolated) {
    result.status = "not run: " + host +
                    " has no tmpfs log volume and memory cgroup (medic demo makes them as root)";
    return result;
  }

  // The host must be healthy and the alarm OK, or the chaos would raise nothing new.
  if (Status ready = WaitFor(options_.ready_timeout, host + " did not become ready",
                             [&](std::string& why) { return HostReady(host, spec.alarm, why); });
      !ready.has_value()) {
    result.status = interrupted_ ? "interrupted" : "not run: " + ready.error().message;
    return result;
  }
  Result<std::vector<std::string>> before = IncidentIds(spec.alarm, host);
  if (!before.has_value()) {
    result.status = "not run: " + before.error().message;
    return result;
  }

  std::unique_ptr<LoadProbe> probe = env_.StartProbe(options_.lb_url + "/health");
  auto finish_probe = [&] {
    if (probe != nullptr) {
      result.lb = probe->Finish();
      probe.reset();
    }
  };

  ApiClient api(env_.Http(), options_.server_url, options_.admin_token);
  const Json chaos = {{"host", host}, {"mode", spec.mode}, {"params", spec.params}};
  const WallTime chaos_sent = env_.Now();
  if (Result<Json> sent = api.Call("POST", "/api/v1/chaos", &chaos, "chaos " + spec.mode);
      !sent.has_value()) {
    finish_probe();
    result.status = "not run: " + sent.error().message;
    return result;
  }
  err_ << prefix << "chaos sent; waiting for " << spec.alarm << std::endl;

  // The incident the chaos opened: a new id of this alarm on this host (the oldest new one, if
  // a failed fix was judged again meanwhile).
  std::string id;
  Status found = WaitFor(options_.incident_timeout, "no incident", [&](std::string& why) {
    Result<std::vector<std::string>> now = IncidentIds(spec.alarm, host);
    if (!now.has_value()) {
      why = now.error().message;
      return false;
    }
    for (const std::string& i : *now) {  // newest first
      if (std::find(before->begin(), before->end(), i) == before->end()) {
        id = i;
      }
    }
    return !id.empty();
  });
  if (!found.has_value()) {
    finish_probe();
    result.status = interrupted_ ? "interrupted" : found.error().message;
    UndoChaos(host);
    return result;
  }
  result.incident_id = id;
  err_ << prefix << "incident " << id << std::endl;

  // Its end. A proposal waiting for a human is bounded by approval_timeout; once it moves on,
  // the rest by end_timeout again.
  Json incident;
  std::string status;
  bool said_waiting = false;
  WallTime approval_deadline{};
  WallTime end_deadline = env_.Now() + options_.end_timeout;
  for (;;) {
    Result<Json> got = api.Call("GET", "/api/v1/incidents/" + UrlEncode(id), nullptr,
                                "GET /api/v1/incidents/" + id);
    if (got.has_value() && got->is_object()) {
      incident = *got;
      status = StringOr(incident, "status");
    }
    if (IsTerminal(status)) {
      break;
    }
    const WallTime now = env_.Now();
    if (status == "pending_approval") {
      if (!said_waiting) {
        said_waiting = true;
        approval_deadline = now + options_.approval_timeout;
        err_ << "waiting for approval: medic approve " << id << std::endl;
      }
      end_deadline = now + options_.end_timeout;
      if (now >= approval_deadline) {
        status = "still pending_approval after " + Seconds(options_.approval_timeout);
        break;
      }
    } else if (now >= end_deadline) {
      status = "still " + (status.empty() ? std::string("unknown") : status) + " after " +
               Seconds(options_.end_timeout);
      break;
    }
    if (!env_.Sleep(options_.poll_interval)) {
      interrupted_ = true;
      status = "interrupted";
      break;
    }
  }
  finish_probe();
  const StepTimes times = StepTimesFromTimeline(incident, chaos_sent);
  result.detected_s = times.detected;
  result.decided_s = times.decided;
  result.fixed_s = times.fixed;
  result.verified_s = times.verified;
  result.status = status;
  err_ << prefix << id << " " << status << std::endl;
  if (interrupted_) {
    return result;
  }
  if (status != "completed") {
    UndoChaos(host);
  }
  // Before the next scenario: the host healthy again and none of its alarms in ALARM.
  if (Status back = WaitFor(options_.ready_timeout, host + " did not recover",
                            [&](std::string& why) { return HostReady(host, "", why); });
      !back.has_value()) {
    if (interrupted_) {
      result.status = "interrupted";
    } else if (result.status == "completed") {
      result.status = "completed, but " + back.error().message;
    }
    err_ << prefix << back.error().message << std::endl;
  }
  return result;
}

}  // namespace medic::cli
