#pragma once

// The `cluster:` section of the server config: how this server drives incidents together with
// the other servers on one store (docs/DEPLOY.md). Without a shared store it changes nothing.
//
//   cluster: {server_id: web-a, lease: 6s, renew: 2s, forward_timeout: 5s}
//
// server_id: unique among the servers on the store ([A-Za-z0-9._:-]{1,64}); default: this
// machine's host name and the listen port ("host-1:8080"). lease: how long a server that stops
// renewing keeps its incidents (2s..60s, default 6s); a dead server's incidents are taken over
// within lease + 0.5 s (every server looks for expired leases every 0.5 s). renew: how often
// leases are renewed (default lease/3; at most lease/2). forward_timeout: how long an operator's decision sent to
// another server than the incident's driver waits for it (1s..60s, default 5s).

#include <string>

#include "core/clock.h"
#include "core/result.h"

namespace YAML {
class Node;
}

namespace medic::server {

struct ClusterConfig {
  std::string server_id;  // "" until resolved: DefaultServerId(listen)
  Millis lease{6'000};
  Millis renew{2'000};
  Millis forward_timeout{5'000};
};

// Parses the section into `out`. Unknown keys, wrong types and values out of range are errors
// naming the file and line.
Status ParseClusterYaml(const YAML::Node& node, const std::string& file, ClusterConfig& out);

// "<host name>:<port of listen>" (listen is HOST:PORT), for a server_id left out.
std::string DefaultServerId(const std::string& listen);

// Whether `id` may be a server id: 1..64 of [A-Za-z0-9._:-].
bool IsValidServerId(const std::string& id);

}  // namespace medic::server
