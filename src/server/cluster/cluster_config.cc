#include "server/cluster/cluster_config.h"

#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include "core/yaml_util.h"

namespace medic::server {

bool IsValidServerId(const std::string& id) {
  if (id.empty() || id.size() > 64) {
    return false;
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string DefaultServerId(const std::string& listen) {
  char name[256] = {};
  std::string host = gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0'
                         ? std::string(name)
                         : std::string("medic-server");
  const size_t colon = listen.rfind(':');
  const std::string port = colon == std::string::npos ? listen : listen.substr(colon + 1);
  std::string id = host + ":" + port;
  if (id.size() > 64) {
    id = id.substr(id.size() - 64);
  }
  for (char& c : id) {
    if (!IsValidServerId(std::string(1, c))) {
      c = '-';
    }
  }
  return id;
}

Status ParseClusterYaml(const YAML::Node& node, const std::string& file, ClusterConfig& out) {
  if (node.IsNull()) {
    return OkStatus();
  }
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) +
                           "cluster must be a mapping (server_id, lease, renew, forward_timeout)");
  }
  bool renew_given = false;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    auto where = [&] { return YamlWhere(file, kv.first) + "cluster." + key + ": "; };
    std::string text;
    try {
      text = kv.second.as<std::string>();
    } catch (const YAML::Exception&) {
      return InvalidArgument(where() + "must be a scalar");
    }
    if (key == "server_id") {
      if (!IsValidServerId(text)) {
        return InvalidArgument(where() + "'" + text +
                               "' is not a server id (1 to 64 of A-Z a-z 0-9 . _ : -)");
      }
      out.server_id = text;
      continue;
    }
    Millis* field = key == "lease"             ? &out.lease
                    : key == "renew"           ? &out.renew
                    : key == "forward_timeout" ? &out.forward_timeout
                                               : nullptr;
    if (field == nullptr) {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown cluster key '" + key +
                             "' (server_id, lease, renew, forward_timeout)");
    }
    Result<Millis> d = ParseDuration(text);
    if (!d) {
      return InvalidArgument(where() + d.error().message);
    }
    if (key == "lease" && (*d < Millis(2'000) || *d > Millis(60'000))) {
      return InvalidArgument(where() + "must be a duration from 2s to 60s");
    }
    if (key == "forward_timeout" && (*d < Millis(1'000) || *d > Millis(60'000))) {
      return InvalidArgument(where() + "must be a duration from 1s to 60s");
    }
    if (key == "renew") {
      renew_given = true;
    }
    *field = *d;
  }
  if (!renew_given) {
    out.renew = out.lease / 3;
  }
  if (out.renew < Millis(100) || out.renew * 2 > out.lease) {
    return InvalidArgument(YamlWhere(file, node) + "cluster.renew must be from 100ms to half the "
                           "lease (" + std::to_string(out.lease.count()) + " ms): a lease must "
                           "survive a missed renewal");
  }
  return OkStatus();
}

}  // namespace medic::server
