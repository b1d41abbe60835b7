#pragma once

// What one host may make the server keep (issue 12; docs/PROTOCOL.md "Limits"): the `limits:`
// section of the server config, the pure checks of a report and a registration against it, and
// the counters of what was refused, dropped or ignored (shown in /metrics).
//
//   limits: {hosts: 20000, metrics_per_host: 1000, metric_names_per_report: 1000,
//            samples_per_report: 1000, checks_per_report: 256, checks_per_host: 64,
//            services_per_host: 128}
//
// A report or registration over a limit is refused whole (InvalidArgument for a malformed name,
// ResourceExhausted for too many), before anything is kept. A host that reaches its
// metrics_per_host or checks_per_host keeps the names it has: new ones are dropped (counted)
// and the rest of its reports still count.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "protocol/wire.h"

namespace YAML {
class Node;
}

namespace medic::server {

struct FleetLimits {
  // Hosts with a credential (enrolment) and hosts in the fleet (registration), each. Issue 13
  // aims at 10,000 agents: twice that by default.
  size_t hosts = 20'000;
  // Distinct metric names one host may have; its new names beyond are dropped.
  size_t metrics_per_host = 1'000;
  // Distinct metric names in one report (all its samples together); more: 413.
  size_t metric_names_per_report = 1'000;
  // Samples in one report (the agent sends at most 300 while catching up); more: 413.
  size_t samples_per_report = 1'000;
  // Check results in one report (the agent sends every check's state and up to 100 changes
  // since its last report); more: 413.
  size_t checks_per_report = 256;
  // Distinct check names one host may have; its new ones beyond are dropped.
  size_t checks_per_host = 64;
  // Entries of a registration's `services`; more: 413.
  size_t services_per_host = 128;
};

// The longest registration `hostname` and `version` (bytes; longer: 400). Text shown to
// operators, not names: 1 KiB leaves room for what a dashboard test shows hostile.
inline constexpr size_t kMaxHostnameBytes = 1024;
inline constexpr size_t kMaxVersionBytes = 1024;
// A check's `detail` is informational: the server keeps its first 1 KiB.
inline constexpr size_t kMaxCheckDetailBytes = 1024;

// Applies the `limits:` mapping to `limits` (each key 1..10,000,000). Errors name file, line
// and key.
Status ParseLimitsYaml(const YAML::Node& node, const std::string& file, FleetLimits& limits);

// Why a request was refused, dropped in part or ignored in part: the `reason` label of the
// counters in /metrics. A fixed set, so the counters' cardinality is too.
enum class LimitReason {
  kMetricName,            // report: a malformed or too long metric name
  kMetricNamesPerReport,  // report: too many distinct metric names
  kSamplesPerReport,      // report: too many samples
  kCheckName,             // report: a malformed check name
  kChecksPerReport,       // report: too many checks
  kServiceName,           // registration: a malformed service name
  kServicesPerHost,       // registration: too many services
  kFact,                  // registration: a too long hostname or version
  kHosts,                 // enrolment or registration of a new host past `hosts`
  kMetricsPerHost,        // a new metric name dropped: the host has metrics_per_host
  kChecksPerHost,         // a new check name dropped: the host has checks_per_host
  kUnknownTargetGroup,    // a registered target of a group not in the server's config, ignored
};
inline constexpr size_t kLimitReasonCount =
    static_cast<size_t>(LimitReason::kUnknownTargetGroup) + 1;
std::string_view LimitReasonName(LimitReason reason);  // "metric_name", "hosts", ...

// A refusal: the error for the caller (its message names the limit) and its reason.
struct LimitViolation {
  LimitReason reason;
  Error error;
};

// The checks of a report that need nothing but the report: names and counts.
std::optional<LimitViolation> CheckReport(const protocol::Report& report,
                                          const FleetLimits& limits);
// The same for a registration's facts: services, hostname, version.
std::optional<LimitViolation> CheckRegistration(const protocol::RegisterRequest& request,
                                                const FleetLimits& limits);

// Counts per LimitReason. Thread-safe.
class LimitCounters {
 public:
  void Add(LimitReason reason, uint64_t n = 1) {
    counts_[static_cast<size_t>(reason)].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t Get(LimitReason reason) const {
    return counts_[static_cast<size_t>(reason)].load(std::memory_order_relaxed);
  }

 private:
  std::array<std::atomic<uint64_t>, kLimitReasonCount> counts_{};
};

// The Prometheus text of `counters`: medic_rejected_reports_total{reason},
// medic_rejected_registrations_total{reason}, medic_dropped_names_total{reason},
// medic_ignored_targets_total, and medic_rejected_enrolments_total{reason="hosts"} with
// `hosts_refused_at_enrolment` (HostIdentities counts those). Every reason is listed, 0 too.
std::string LimitMetricsText(const LimitCounters& counters, uint64_t hosts_refused_at_enrolment);

}  // namespace medic::server
