#include "server/ingest/alertmanager.h"

#include <algorithm>

#include "core/json.h"
#include "core/sha256.h"

namespace medic::server {

namespace {

Result<Labels> ReadLabels(const Json& obj, std::string_view key, const std::string& where) {
  Labels out;
  const Json& v = FieldOrNull(obj, key);
  if (v.is_null()) {
    return out;
  }
  if (!v.is_object()) {
    return InvalidArgument(where + std::string(key) + " must be an object of strings");
  }
  for (const auto& [k, value] : v.items()) {
    if (!value.is_string()) {
      return InvalidArgument(where + std::string(key) + "." + k + " must be a string");
    }
    out[k] = value.get<std::string>();
  }
  return out;
}

Result<std::string> ReadString(const Json& obj, std::string_view key, const std::string& where) {
  auto s = OptionalString(obj, key);
  if (!s) {
    return InvalidArgument(where + s.error().message);
  }
  return s->value_or("");
}

// Alertmanager writes Go's zero time for "not set".
Result<std::optional<WallTime>> ReadTime(const Json& obj, std::string_view key,
                                         const std::string& where) {
  ASSIGN_OR_RETURN(std::string text, ReadString(obj, key, where));
  if (text.empty() || text.rfind("0001-01-01T", 0) == 0) {
    return std::optional<WallTime>();
  }
  auto t = ParseRfc3339(text);
  if (!t) {
    return InvalidArgument(where + std::string(key) + ": " + t.error().message);
  }
  return std::optional<WallTime>(*t);
}

std::string Summary(const Labels& labels) {
  std::string out;
  for (const char* key : {"alertname", "host", "instance"}) {
    if (auto it = labels.find(key); it != labels.end()) {
      out += (out.empty() ? "" : " ") + std::string(key) + "=" + it->second.substr(0, 200);
    }
  }
  if (out.empty()) {
    out = "(" + std::to_string(labels.size()) + " labels, none of alertname, host, instance)";
  }
  return out;
}

// Alertmanager's fingerprint when given; else a hash of the sorted labels (the same alert has
// the same labels).
std::string KeyOf(const AlertmanagerAlert& a) {
  if (!a.fingerprint.empty()) {
    return a.fingerprint;
  }
  std::string text;
  for (const auto& [k, v] : a.labels) {
    text += k + '\0' + v + '\0';
  }
  return "labels:" + Sha256Hex(text).substr(0, 16);
}

}  // namespace

std::string StripPort(std::string_view s) {
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close != std::string_view::npos) {
      return std::string(s.substr(1, close - 1));
    }
    return std::string(s);
  }
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || s.find(':') != colon) {
    return std::string(s);  // no port, or a bare IPv6 address
  }
  const std::string_view port = s.substr(colon + 1);
  if (port.empty() || !std::all_of(port.begin(), port.end(),
                                   [](char c) { return c >= '0' && c <= '9'; })) {
    return std::string(s);
  }
  return std::string(s.substr(0, colon));
}

Result<AlertmanagerWebhook> ParseAlertmanagerWebhook(std::string_view body, size_t max_alerts) {
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(body));
  AlertmanagerWebhook w;
  const std::string top;
  ASSIGN_OR_RETURN(w.version, ReadString(j, "version", top));
  if (w.version != "4") {
    return InvalidArgument("version must be \"4\" (Alertmanager's webhook), not '" +
                           w.version.substr(0, 20) + "'");
  }
  ASSIGN_OR_RETURN(w.group_key, ReadString(j, "groupKey", top));
  ASSIGN_OR_RETURN(w.status, ReadString(j, "status", top));
  ASSIGN_OR_RETURN(w.receiver, ReadString(j, "receiver", top));
  ASSIGN_OR_RETURN(w.external_url, ReadString(j, "externalURL", top));
  ASSIGN_OR_RETURN(w.group_labels, ReadLabels(j, "groupLabels", top));
  ASSIGN_OR_RETURN(w.common_labels, ReadLabels(j, "commonLabels", top));
  ASSIGN_OR_RETURN(w.common_annotations, ReadLabels(j, "commonAnnotations", top));
  const Json& alerts = FieldOrNull(j, "alerts");
  if (!alerts.is_array()) {
    return InvalidArgument("alerts must be a list");
  }
  if (alerts.size() > max_alerts) {
    return InvalidArgument("too many alerts in one body: " + std::to_string(alerts.size()) +
                           " (at most " + std::to_string(max_alerts) +
                           ", ingest.alertmanager.max_alerts)");
  }
  for (size_t i = 0; i < alerts.size(); ++i) {
    const Json& a = alerts[i];
    const std::string where = "alerts[" + std::to_string(i) + "].";
    if (!a.is_object()) {
      return InvalidArgument("alerts[" + std::to_string(i) + "] must be an object");
    }
    AlertmanagerAlert out;
    ASSIGN_OR_RETURN(out.status, ReadString(a, "status", where));
    if (out.status != "firing" && out.status != "resolved") {
      return InvalidArgument(where + "status must be firing or resolved, not '" +
                             out.status.substr(0, 20) + "'");
    }
    ASSIGN_OR_RETURN(out.labels, ReadLabels(a, "labels", where));
    ASSIGN_OR_RETURN(out.annotations, ReadLabels(a, "annotations", where));
    ASSIGN_OR_RETURN(out.starts_at, ReadTime(a, "startsAt", where));
    ASSIGN_OR_RETURN(out.ends_at, ReadTime(a, "endsAt", where));
    ASSIGN_OR_RETURN(out.generator_url, ReadString(a, "generatorURL", where));
    ASSIGN_OR_RETURN(out.fingerprint, ReadString(a, "fingerprint", where));
    if (out.status == "firing" && !out.starts_at) {
      return InvalidArgument(where + "startsAt is required for a firing alert");
    }
    if (out.status == "resolved" && !out.ends_at) {
      return InvalidArgument(where + "endsAt is required for a resolved alert");
    }
    w.alerts.push_back(std::move(out));
  }
  return w;
}

MappedAlert MapAlertmanagerAlert(const AlertmanagerAlert& a, const AlertmanagerConfig& config) {
  MappedAlert out;
  out.summary = Summary(a.labels);
  const AlertmanagerRule* rule = nullptr;
  for (const auto& r : config.rules) {
    if (std::all_of(r.match.begin(), r.match.end(), [&](const auto& m) {
          auto it = a.labels.find(m.first);
          return it != a.labels.end() && it->second == m.second;
        })) {
      rule = &r;
      break;
    }
  }
  static const AlertmanagerRule kDefaults;
  if (rule == nullptr) {
    if (!config.defaults) {
      out.why = "no ingest.alertmanager rule matches its labels";
      return out;
    }
    rule = &kDefaults;
  }
  auto label = [&](const std::string& name) {
    auto it = a.labels.find(name);
    return it != a.labels.end() ? it->second : std::string();
  };
  std::string alarm = rule->alarm;
  if (alarm.empty()) {
    alarm = label(rule->alarm_label);
    if (alarm.empty()) {
      out.why = "no alarm name: label '" + rule->alarm_label + "' is missing or empty";
      return out;
    }
  }
  std::string host;
  std::string host_from = rule->host_label;
  if (host_from.empty()) {
    host_from = label("host").empty() ? "instance" : "host";
  }
  host = label(host_from);
  if (rule->strip_port) {
    host = StripPort(host);
  }
  if (host.empty()) {
    out.why = rule->host_label.empty()
                  ? "no host: neither label 'host' nor 'instance' is set"
                  : "no host: label '" + rule->host_label + "' is missing or empty";
    return out;
  }
  ExternalAlert e;
  e.source = "alertmanager";
  e.alarm = std::move(alarm);
  e.host = std::move(host);
  e.firing = a.status == "firing";
  e.at = e.firing ? *a.starts_at : *a.ends_at;
  auto note = [&](const char* key) {
    auto it = a.annotations.find(key);
    return it != a.annotations.end() ? it->second : std::string();
  };
  const std::string summary = note("summary");
  e.reason = "Alertmanager: " + label("alertname") + " " + a.status +
             (summary.empty() ? "" : ": " + summary.substr(0, 300));
  e.description = note("description").substr(0, 2000);
  e.key = KeyOf(a);
  e.labels = a.labels;
  out.alert = std::move(e);
  return out;
}

}  // namespace medic::server
