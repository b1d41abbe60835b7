#pragma once

// The demo fleet's network: a "hub" network namespace with a bridge on a private /24, one network
// namespace per demo host joined to the hub by a veth pair, and a TCP relay inside the `medic demo`
// process that joins the root namespace (where medic-server, the browser and the CLI are) to the
// hub. Nothing here touches the root namespace's links, addresses or routes.
//
//   root namespace            hub medic-demo-PID              host medic-demo-PID-web-N
//   127.0.0.1:LISTEN  <-relay- 10.77.0.1:R (bridge medic0) <-veth- 10.77.0.(10+N) eth0
//   127.0.0.1:LB      -relay-> 10.77.0.1:80 (the load balancer)   nginx :80, healthapp 127.0.0.1

#include <functional>
#include <memory>
#include <string>

#include "cli/net.h"
#include "core/result.h"

namespace medic::cli {

// The demo's private range: 10.77.0.0/24 (RFC 1918), only ever inside namespaces it creates.
inline constexpr char kDemoSubnetPrefix[] = "10.77.0.";
inline constexpr int kDemoSubnetBits = 24;
// Host N's address is .(kDemoFirstHostOctet + N); at most kDemoMaxNetHosts hosts.
inline constexpr int kDemoFirstHostOctet = 10;
inline constexpr int kDemoMaxNetHosts = 200;
// The bridge in the hub, and the port the load balancer listens on at the hub's address.
inline constexpr char kDemoBridge[] = "medic0";
inline constexpr int kDemoLbPort = 80;
// Inside a host namespace: nginx on :80 (its address and 127.0.0.1), the health app on loopback.
inline constexpr int kDemoNsNginxPort = 80;
inline constexpr int kDemoNsAppPort = 8000;

// "10.77.0.1"
std::string DemoHubAddress();
// "10.77.0.11" for index 1. REQUIRES: 1 <= index <= kDemoMaxNetHosts.
std::string DemoHostAddress(int index);
// "medic-demo-PID" and "medic-demo-PID-web-N" (the same names as the memory cgroups).
std::string DemoHubNamespace(int demo_pid);
std::string DemoHostNamespace(int demo_pid, const std::string& host);

// Creating and removing the demo's namespaces, starting processes and sockets inside them, and
// relaying TCP between namespaces. Namespace "" is the one this process runs in.
class DemoNetwork {
 public:
  virtual ~DemoNetwork() = default;
  // Creates namespace `hub` with loopback up and bridge kDemoBridge at DemoHubAddress()/24.
  virtual Status CreateHub(const std::string& hub) = 0;
  // Creates namespace `ns` with loopback up and a veth pair: `link` in `hub` (on the bridge),
  // eth0 in `ns` with `address`/24 and a default route via the hub.
  virtual Status CreateHost(const std::string& hub, const std::string& ns, const std::string& link,
                            const std::string& address) = 0;
  // SIGKILLs every process whose network namespace is `ns` (they are the demo's: nothing else
  // enters it) and deletes the namespace. OK when it does not exist.
  virtual Status DeleteNamespace(const std::string& ns) = 0;
  // Calls `start` with the calling thread inside namespace `ns`, so that the processes it forks
  // run there, and moves the thread back afterwards.
  virtual Result<int> StartIn(const std::string& ns, const std::function<Result<int>()>& start) = 0;
  // Relays every TCP connection accepted on `listen` (port 0: any free one) in namespace
  // `listen_ns` to `to` in namespace `to_ns`, both ways, until Stop. Returns the listening port.
  virtual Result<int> Forward(const std::string& listen_ns, const HostPort& listen,
                              const std::string& to_ns, const HostPort& to) = 0;
  // Stops every relay and closes its connections. Idempotent.
  virtual void StopForwarding() = 0;
};

// iproute2's `ip` for the namespaces and links, setns(2) for starting things inside them, and an
// in-process relay (one poll thread). Needs root.
std::unique_ptr<DemoNetwork> NewLinuxDemoNetwork();

}  // namespace medic::cli
