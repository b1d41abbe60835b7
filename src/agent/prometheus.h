#pragma once

// The optional local /metrics endpoint (--metrics-listen HOST:PORT): the latest sample and the
// check states in the Prometheus text exposition format (version 0.0.4), served by a tiny
// blocking HTTP/1.0 server on one thread. Read-only; nothing can be changed through it.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "host/metrics.h"
#include "core/result.h"
#include "protocol/wire.h"

namespace medic::agent {

// Pure. Every metric becomes the gauge `medic_<name>` (labels in the key, as in
// disk_used_percent{mount="/var/log"}, are kept); each family once, with HELP and TYPE, its
// samples together. Checks become medic_check_healthy{check="NAME"} 1|0; plus
// medic_agent_dropped_samples_total (counter) and medic_agent_up 1.
std::string FormatPrometheus(const host::Metrics& latest,
                             const std::vector<protocol::CheckResult>& checks,
                             uint64_t dropped_samples);

// "HOST:PORT" (port may be 0) into its parts; the host must be an IPv4 address.
Result<std::pair<std::string, int>> ParseListenAddress(const std::string& text);

class MetricsHttpServer {
 public:
  using Provider = std::function<std::string()>;
  explicit MetricsHttpServer(Provider provider) : provider_(std::move(provider)) {}
  ~MetricsHttpServer() { Stop(); }
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Binds and starts the serving thread. `listen` is "HOST:PORT".
  Status Start(const std::string& listen);
  void Stop();
  int port() const { return port_; }

 private:
  void Loop();
  void Serve(int fd);

  Provider provider_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace medic::agent
