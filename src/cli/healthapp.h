#pragma once

// The demo health app: a tiny keep-alive HTTP/1.1 server (Boost.Beast) that nginx proxies to.
// GET /health -> 200 {"status":"ok","host":"<hostname>"}; anything else -> 404 JSON.

#include <ostream>
#include <string>
#include <string_view>

#include "core/result.h"

namespace medic::cli {

struct HealthResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// The whole request handling, with no socket in it.
HealthResponse HandleHealthRequest(std::string_view method, std::string_view target,
                                   std::string_view hostname);

// Serves on `listen` (HOST:PORT, port 0 picks one) until SIGTERM or SIGINT, then returns OK.
// Once bound, writes "healthapp listening on HOST:PORT" to `out` and flushes it.
Status RunHealthApp(const std::string& listen, std::ostream& out);

}  // namespace medic::cli
