#include "server/fleet/limits.h"

#include <yaml-cpp/yaml.h>

#include <set>

#include "core/yaml_util.h"

namespace medic::server {

namespace {

constexpr std::string_view kReasonNames[kLimitReasonCount] = {
    "metric_name",
    "metric_names_per_report",
    "samples_per_report",
    "check_name",
    "checks_per_report",
    "service_name",
    "services_per_host",
    "fact",
    "hosts",
    "metrics_per_host",
    "checks_per_host",
    "unknown_target_group",
};

// A name as it may appear in an error: at most 80 bytes, control characters as '?'.
std::string Shown(std::string_view name) {
  std::string out(name.substr(0, 80));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      c = '?';
    }
  }
  return name.size() > 80 ? out + "..." : out;
}

LimitViolation TooMany(LimitReason reason, const std::string& what, size_t n, size_t limit) {
  return {reason,
          ResourceExhausted(what + ": " + std::to_string(n) + " (at most " + std::to_string(limit) +
                            ", limits." + std::string(LimitReasonName(reason)) + ")")};
}

}  // namespace

std::string_view LimitReasonName(LimitReason reason) {
  return kReasonNames[static_cast<size_t>(reason)];
}

Status ParseLimitsYaml(const YAML::Node& node, const std::string& file, FleetLimits& limits) {
  if (node.IsNull()) {
    return OkStatus();
  }
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "limits must be a mapping");
  }
  constexpr char kKnown[] =
      "hosts, metrics_per_host, metric_names_per_report, samples_per_report, "
      "checks_per_report, checks_per_host, services_per_host";
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    size_t* field = key == "hosts"                     ? &limits.hosts
                    : key == "metrics_per_host"        ? &limits.metrics_per_host
                    : key == "metric_names_per_report" ? &limits.metric_names_per_report
                    : key == "samples_per_report"      ? &limits.samples_per_report
                    : key == "checks_per_report"       ? &limits.checks_per_report
                    : key == "checks_per_host"         ? &limits.checks_per_host
                    : key == "services_per_host"       ? &limits.services_per_host
                                                       : nullptr;
    if (field == nullptr) {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown limits key '" + key + "' (" +
                             kKnown + ")");
    }
    int64_t n = 0;
    try {
      n = kv.second.as<int64_t>();
    } catch (const YAML::Exception&) {
      n = 0;
    }
    if (n < 1 || n > 10'000'000) {
      return InvalidArgument(YamlWhere(file, kv.second) + "limits." + key +
                             " must be an integer from 1 to 10000000");
    }
    *field = static_cast<size_t>(n);
  }
  return OkStatus();
}

std::optional<LimitViolation> CheckReport(const protocol::Report& report,
                                          const FleetLimits& limits) {
  if (report.samples.size() > limits.samples_per_report) {
    return TooMany(LimitReason::kSamplesPerReport, "too many samples in one report",
                   report.samples.size(), limits.samples_per_report);
  }
  if (report.checks.size() > limits.checks_per_report) {
    return TooMany(LimitReason::kChecksPerReport, "too many check results in one report",
                   report.checks.size(), limits.checks_per_report);
  }
  // Names are checked once each; the count stops at the first name past the limit.
  std::set<std::string_view> names;
  for (const auto& s : report.samples) {
    for (const auto& [name, value] : s.metrics) {
      if (!names.insert(name).second) {
        continue;
      }
      if (names.size() > limits.metric_names_per_report) {
        return TooMany(LimitReason::kMetricNamesPerReport,
                       "too many distinct metric names in one report", names.size(),
                       limits.metric_names_per_report);
      }
      if (!protocol::IsValidMetricName(name)) {
        return LimitViolation{
            LimitReason::kMetricName,
            InvalidArgument("invalid metric name '" + Shown(name) + "' (1-" +
                            std::to_string(protocol::kMaxMetricNameBytes) +
                            " bytes: [A-Za-z_:][A-Za-z0-9_.:-]*, optionally with labels "
                            "{key=\"value\",...})")};
      }
    }
  }
  for (const auto& c : report.checks) {
    if (!protocol::IsValidHostName(c.name)) {
      return LimitViolation{LimitReason::kCheckName,
                            InvalidArgument("invalid check name '" + Shown(c.name) +
                                            "' (1-64 of [A-Za-z0-9._-], not starting with '.' "
                                            "or '-')")};
    }
  }
  return std::nullopt;
}

std::optional<LimitViolation> CheckRegistration(const protocol::RegisterRequest& request,
                                                const FleetLimits& limits) {
  if (request.services.size() > limits.services_per_host) {
    return TooMany(LimitReason::kServicesPerHost, "too many services", request.services.size(),
                   limits.services_per_host);
  }
  for (const auto& s : request.services) {
    if (!protocol::IsValidServiceName(s)) {
      return LimitViolation{LimitReason::kServiceName,
                            InvalidArgument("invalid service name '" + Shown(s) +
                                            "' (1-64 of [A-Za-z0-9@._-], not starting with '.' "
                                            "or '-')")};
    }
  }
  if (request.hostname.size() > kMaxHostnameBytes) {
    return LimitViolation{LimitReason::kFact,
                          InvalidArgument("field 'hostname' is longer than " +
                                          std::to_string(kMaxHostnameBytes) + " bytes")};
  }
  if (request.version.size() > kMaxVersionBytes) {
    return LimitViolation{LimitReason::kFact,
                          InvalidArgument("field 'version' is longer than " +
                                          std::to_string(kMaxVersionBytes) + " bytes")};
  }
  return std::nullopt;
}

std::string LimitMetricsText(const LimitCounters& counters, uint64_t hosts_refused_at_enrolment) {
  std::string text;
  auto family = [&](const char* name, const char* help,
                    std::initializer_list<LimitReason> reasons) {
    text += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
    for (LimitReason r : reasons) {
      text += std::string(name) + "{reason=\"" + std::string(LimitReasonName(r)) + "\"} " +
              std::to_string(counters.Get(r)) + "\n";
    }
  };
  family("medic_rejected_reports_total",
         "Agent reports refused whole by a limit (docs/PROTOCOL.md \"Limits\").",
         {LimitReason::kMetricName, LimitReason::kMetricNamesPerReport,
          LimitReason::kSamplesPerReport, LimitReason::kCheckName, LimitReason::kChecksPerReport});
  family("medic_rejected_registrations_total", "Agent registrations refused by a limit.",
         {LimitReason::kServiceName, LimitReason::kServicesPerHost, LimitReason::kFact,
          LimitReason::kHosts});
  family("medic_dropped_names_total",
         "New metric or check names dropped from accepted reports: the host has as many as "
         "it may keep.",
         {LimitReason::kMetricsPerHost, LimitReason::kChecksPerHost});
  text +=
      "# HELP medic_rejected_enrolments_total Enrolments refused by a limit.\n"
      "# TYPE medic_rejected_enrolments_total counter\n"
      "medic_rejected_enrolments_total{reason=\"hosts\"} " +
      std::to_string(hosts_refused_at_enrolment) + "\n";
  text +=
      "# HELP medic_ignored_targets_total Registered targets ignored: their target group is "
      "not in the server's config.\n# TYPE medic_ignored_targets_total counter\n"
      "medic_ignored_targets_total " +
      std::to_string(counters.Get(LimitReason::kUnknownTargetGroup)) + "\n";
  return text;
}

}  // namespace medic::server
