#include "server/notify/notify_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/files.h"
#include "core/yaml_util.h"

namespace medic::server {

namespace {

constexpr std::string_view kEventNames[] = {"incident_opened", "approval_needed",
                                            "incident_completed", "incident_failed",
                                            "breaker_open"};

// Why `url` is not an absolute http(s) URL with a host; "" when it is.
std::string UrlProblem(std::string_view url) {
  std::string_view rest;
  if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    return "must start with https:// or http://";
  }
  const std::string_view host = rest.substr(0, rest.find_first_of("/?#"));
  if (host.empty() || host.find('@') != std::string_view::npos) {
    return "needs a host name (and no user:password@)";
  }
  for (const char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return "must not contain spaces or control characters";
    }
  }
  return "";
}

std::string Scalar(const YAML::Node& v, const std::string& file, const std::string& key,
                   Status& status) {
  if (!v.IsScalar()) {
    status = InvalidArgument(YamlWhere(file, v) + key + " must be a string");
    return "";
  }
  return v.Scalar();
}

// Reads a secret from `key` or `key_file` (exactly one of them may be set).
class SecretReader {
 public:
  SecretReader(const std::string& file, std::string channel)
      : file_(file), channel_(std::move(channel)) {}

  // True when `key` is `name` or `name_file`; reads it into `out`.
  bool Take(const std::string& key, const YAML::Node& v, const std::string& name,
            std::string& out, Status& status) {
    if (key != name && key != name + "_file") {
      return false;
    }
    if (seen_.count(name) != 0) {
      status = InvalidArgument(YamlWhere(file_, v) + std::string(channel_) + ": " + name +
                               " and " + name + "_file exclude each other");
      return true;
    }
    seen_.insert(name);
    const std::string text = Scalar(v, file_, std::string(channel_) + "." + key, status);
    if (!status) {
      return true;
    }
    if (key == name) {
      out = text;
    } else {
      // A secret is a short regular file (never a device or a FIFO, which could block or never
      // end).
      std::error_code ec;
      const auto status_of = std::filesystem::status(text, ec);
      if (!ec && (!std::filesystem::is_regular_file(status_of) ||
                  std::filesystem::file_size(text, ec) > 64 * 1024)) {
        status = InvalidArgument(YamlWhere(file_, v) + channel_ + "." + key + ": " + text +
                                 " is not a regular file of at most 64 KiB");
        return true;
      }
      Result<std::string> content = ReadFile(text);
      if (!content) {
        status = InvalidArgument(YamlWhere(file_, v) + std::string(channel_) + "." + key +
                                 ": cannot read " + text + ": " + content.error().message);
        return true;
      }
      out = std::string(Trim(*content));
    }
    if (out.empty()) {
      status = InvalidArgument(YamlWhere(file_, v) + std::string(channel_) + "." + key +
                               " is empty");
    }
    return true;
  }

 private:
  const std::string& file_;
  const std::string channel_;
  std::set<std::string> seen_;
};

Status ParseEvents(const YAML::Node& v, const std::string& file, std::string_view channel,
                   std::set<NotifyEvent>& out) {
  if (!v.IsSequence()) {
    return InvalidArgument(YamlWhere(file, v) + std::string(channel) +
                           ".events must be a list of event names");
  }
  out.clear();
  for (const auto& item : v) {
    const std::string name = item.IsScalar() ? item.Scalar() : "";
    auto e = ParseNotifyEvent(name);
    if (!e) {
      return InvalidArgument(YamlWhere(file, item) + std::string(channel) + ": unknown event '" +
                             name +
                             "' (incident_opened, approval_needed, incident_completed, "
                             "incident_failed, breaker_open)");
    }
    out.insert(*e);
  }
  return OkStatus();
}

Status ParseChannel(const YAML::Node& node, const std::string& file, ChannelKind kind,
                    ChannelConfig& c) {
  const std::string channel(ChannelName(kind));
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "notifications." + channel +
                           " must be a mapping");
  }
  c.kind = kind;
  if (kind == ChannelKind::kPagerDuty) {
    c.url = "https://events.pagerduty.com/v2/enqueue";
  }
  SecretReader secrets(file, "notifications." + channel);
  bool have_url = kind == ChannelKind::kPagerDuty;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    Status status = OkStatus();
    try {
      if (secrets.Take(key, v, "url", c.url, status)) {
        if (status) {
          if (std::string why = UrlProblem(c.url); !why.empty()) {
            return InvalidArgument(YamlWhere(file, v) + "notifications." + channel + "." + key +
                                   " " + why);
          }
          have_url = true;
        }
      } else if (kind == ChannelKind::kWebhook && secrets.Take(key, v, "secret", c.secret, status)) {
      } else if (kind == ChannelKind::kPagerDuty &&
                 secrets.Take(key, v, "routing_key", c.routing_key, status)) {
      } else if (kind == ChannelKind::kPagerDuty && key == "severity") {
        c.severity = v.as<std::string>();
        if (c.severity != "critical" && c.severity != "error" && c.severity != "warning" &&
            c.severity != "info") {
          return InvalidArgument(YamlWhere(file, v) + "notifications.pagerduty.severity must be "
                                 "critical, error, warning or info");
        }
      } else if (kind == ChannelKind::kSlack && key == "buttons") {
        c.buttons = v.as<bool>();
      } else if (key == "events") {
        status = ParseEvents(v, file, "notifications." + channel, c.events);
      } else if (key == "timeout") {
        auto d = ParseDuration(v.as<std::string>(""));
        if (!d || *d < std::chrono::seconds(1) || *d > std::chrono::minutes(2)) {
          return InvalidArgument(YamlWhere(file, v) + "notifications." + channel +
                                 ".timeout must be a duration from 1s to 2m");
        }
        c.timeout = *d;
      } else {
        std::string known = "url, url_file, events, timeout";
        known += kind == ChannelKind::kWebhook ? ", secret, secret_file"
                 : kind == ChannelKind::kSlack ? ", buttons"
                                               : ", routing_key, routing_key_file, severity";
        return InvalidArgument(YamlWhere(file, kv.first) + "unknown notifications." + channel +
                               " key '" + key + "' (" + known + ")");
      }
    } catch (const YAML::Exception&) {
      return InvalidArgument(YamlWhere(file, kv.first) + "wrong type for notifications." +
                             channel + "." + key);
    }
    RETURN_IF_ERROR(status);
  }
  if (!have_url) {
    return InvalidArgument(YamlWhere(file, node) + "notifications." + channel +
                           " needs url (or url_file)");
  }
  if (kind == ChannelKind::kWebhook && c.secret.empty()) {
    return InvalidArgument(YamlWhere(file, node) +
                           "notifications.webhook needs secret (or secret_file): receivers "
                           "verify the X-Medic-Signature with it");
  }
  if (kind == ChannelKind::kPagerDuty && c.routing_key.empty()) {
    return InvalidArgument(YamlWhere(file, node) +
                           "notifications.pagerduty needs routing_key (or routing_key_file)");
  }
  return OkStatus();
}

Status ParseRetry(const YAML::Node& node, const std::string& file, RetryPolicy& r) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "notifications.retry must be a mapping");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    try {
      if (key == "initial" || key == "max_delay" || key == "give_up_after") {
        auto d = ParseDuration(v.as<std::string>(""));
        if (!d || *d < Millis(100) || *d > std::chrono::hours(24 * 7)) {
          return InvalidArgument(YamlWhere(file, v) + "notifications.retry." + key +
                                 " must be a duration from 100ms to 168h");
        }
        (key == "initial" ? r.initial : key == "max_delay" ? r.max_delay : r.give_up_after) = *d;
      } else if (key == "max_attempts") {
        const int n = v.as<int>();
        if (n < 1 || n > 1000) {
          return InvalidArgument(YamlWhere(file, v) +
                                 "notifications.retry.max_attempts must be from 1 to 1000");
        }
        r.max_attempts = n;
      } else {
        return InvalidArgument(YamlWhere(file, kv.first) + "unknown notifications.retry key '" +
                               key + "' (initial, max_delay, max_attempts, give_up_after)");
      }
    } catch (const YAML::Exception&) {
      return InvalidArgument(YamlWhere(file, kv.first) +
                             "wrong type for notifications.retry." + key);
    }
  }
  if (r.max_delay < r.initial) {
    return InvalidArgument(YamlWhere(file, node) +
                           "notifications.retry.max_delay must not be less than initial");
  }
  return OkStatus();
}

}  // namespace

std::string_view NotifyEventName(NotifyEvent e) { return kEventNames[static_cast<int>(e)]; }

std::optional<NotifyEvent> ParseNotifyEvent(std::string_view name) {
  for (const NotifyEvent e : kAllNotifyEvents) {
    if (NotifyEventName(e) == name) {
      return e;
    }
  }
  return std::nullopt;
}

std::string_view ChannelName(ChannelKind k) {
  switch (k) {
    case ChannelKind::kWebhook:
      return "webhook";
    case ChannelKind::kSlack:
      return "slack";
    case ChannelKind::kPagerDuty:
      return "pagerduty";
  }
  return "webhook";
}

const ChannelConfig* NotificationsConfig::Find(ChannelKind kind) const {
  for (const ChannelConfig& c : channels) {
    if (c.kind == kind) {
      return &c;
    }
  }
  return nullptr;
}

Status ParseNotificationsYaml(const YAML::Node& node, const std::string& file,
                              NotificationsConfig& config) {
  if (node.IsNull()) {
    return OkStatus();
  }
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "notifications must be a mapping");
  }
  NotificationsConfig out;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    try {
      if (key == "dashboard_url") {
        out.dashboard_url = v.as<std::string>();
        if (std::string why = UrlProblem(out.dashboard_url); !why.empty()) {
          return InvalidArgument(YamlWhere(file, v) + "notifications.dashboard_url " + why);
        }
        while (!out.dashboard_url.empty() && out.dashboard_url.back() == '/') {
          out.dashboard_url.pop_back();
        }
      } else if (key == "retry") {
        RETURN_IF_ERROR(ParseRetry(v, file, out.retry));
      } else if (key == "webhook" || key == "slack" || key == "pagerduty") {
        const ChannelKind kind = key == "webhook" ? ChannelKind::kWebhook
                                 : key == "slack" ? ChannelKind::kSlack
                                                  : ChannelKind::kPagerDuty;
        if (out.Find(kind) != nullptr) {
          return InvalidArgument(YamlWhere(file, kv.first) + "notifications." + key +
                                 " appears twice");
        }
        ChannelConfig c;
        RETURN_IF_ERROR(ParseChannel(v, file, kind, c));
        out.channels.push_back(std::move(c));
      } else {
        return InvalidArgument(YamlWhere(file, kv.first) + "unknown notifications key '" + key +
                               "' (dashboard_url, retry, webhook, slack, pagerduty)");
      }
    } catch (const YAML::Exception&) {
      return InvalidArgument(YamlWhere(file, kv.first) + "wrong type for notifications." + key);
    }
  }
  std::sort(out.channels.begin(), out.channels.end(),
            [](const ChannelConfig& a, const ChannelConfig& b) { return a.kind < b.kind; });
  config = std::move(out);
  return OkStatus();
}

}  // namespace medic::server
