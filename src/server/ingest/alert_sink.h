#pragma once

// What an ingest route hands on once it has authenticated and parsed a delivery from outside
// (Alertmanager, SNS/CloudWatch): one alert, already mapped to a medic alarm name and host, or a
// record of why it could not be. The sink (server/ingest/, wired in app/) turns firing and
// resolved alerts into alarm transitions on that host, so an external alarm opens, verifies and
// closes incidents exactly as an agent's does; it also keeps what could not be mapped, visible to
// operators, never dropped silently.
//
// The routes never touch the alarm engine or the incident manager themselves: parsing and
// authentication (each source's own) stay apart from what an alert does.

#include <map>
#include <string>

#include "core/clock.h"

namespace medic::server {

struct ExternalAlert {
  std::string source;       // "alertmanager" | "sns"
  std::string alarm;        // the medic alarm name, after the source's mapping
  std::string host;         // the medic host name, after the source's mapping
  bool firing = false;      // true: the alarm is in ALARM; false: resolved (back to OK)
  std::string reason;       // one line for the incident ("CloudWatch: Threshold Crossed: …")
  std::string description;  // longer text (annotations, AlarmDescription); may be empty
  WallTime at{};            // when the source says this state began (startsAt, StateChangeTime)
  // The source's identity of this alert (an Alertmanager fingerprint, a CloudWatch alarm ARN),
  // so repeats and out-of-order deliveries of one alert are recognised.
  std::string key;
  std::map<std::string, std::string> labels;  // as received (labels, dimensions), for the record
};

// What became of one alert.
enum class IngestResult {
  kApplied,      // it changed the alarm's state (a transition was published)
  kUnchanged,    // a repeat: the alarm already was in that state
  kStale,        // older than what is already known for this alert (out of order): ignored
  kUnknownHost,  // mapped to a host medic does not know: recorded, nothing else
  kUnmapped,     // no rule maps it to an alarm or host: recorded, nothing else
};

const char* IngestResultName(IngestResult r);

class AlertSink {
 public:
  virtual ~AlertSink() = default;
  // Applies a mapped alert. Thread-safe; called from the routes' worker threads.
  virtual IngestResult Submit(const ExternalAlert& alert) = 0;
  // Records an alert the route could not map (no alarm name, no host): `summary` says what it
  // was ("alertname=DiskFull instance=10.0.0.5:9100"), `why` what was missing. Thread-safe.
  virtual void RecordUnmapped(const std::string& source, const std::string& summary,
                              const std::string& why) = 0;
};

}  // namespace medic::server
