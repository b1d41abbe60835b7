// `medic mcp`'s input (src/cli/mcp.*): the bytes an MCP client writes on the server's standard
// input, read by ServeMcp line by line into McpServer, as the real command does. The first byte
// picks the session: with or without --allow-approve, and the token's role as the fake
// medic-server answers it; the fake server answers every API call (an incident with a proposal,
// lists, a 403 for approvals as a viewer, a transport failure for one path).
// Checked beyond "no crash": every answer is one line of JSON, an object or a non-empty array
// of objects, each a JSON-RPC 2.0 response with exactly one of result and error.

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "cli/api.h"
#include "cli/mcp.h"
#include "core/clock.h"
#include "core/json.h"
#include "tests/cli/fake_http_client.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using medic::HttpRequest;
using medic::HttpResponse;
using medic::Json;
using medic::Result;

Result<HttpResponse> FakeServer(const HttpRequest& r, const std::string& role) {
  auto json = [](int status, std::string body) {
    return Result<HttpResponse>(HttpResponse{status, std::move(body), "application/json"});
  };
  if (r.url.find("/api/v1/session") != std::string::npos) {
    return json(200, R"({"name":"fuzz","role":")" + role + R"("})");
  }
  if (r.method == "POST") {
    return role == "viewer" ? json(403, R"({"error":"viewer 'fuzz' may not"})")
                            : json(200, R"({"incident_id":"inc-1","status":"executing"})");
  }
  if (r.url.find("/metrics") != std::string::npos) {
    return medic::Unavailable("GET " + r.url + ": connection refused");
  }
  if (r.url.find("/report") != std::string::npos) {
    return json(200, "# Incident inc-1\n\xff\xfe not UTF-8\n");
  }
  return json(200, R"({"incident_id":"inc-1","status":"pending_approval","action_hash":")" +
                       std::string(64, 'a') + R"(","incidents":[],"hosts":[],"alarms":[]})");
}

bool IsResponse(const Json& j) {
  return j.is_object() && j.contains("jsonrpc") && j["jsonrpc"] == "2.0" && j.contains("id") &&
         (j.contains("result") != j.contains("error"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  static const char* const kRoles[] = {"viewer", "operator", "admin", "unknown"};
  const std::string role = kRoles[(data[0] >> 1) % 4];
  medic::cli::FakeHttpClient http;
  http.SetHandler([&role](const HttpRequest& r) { return FakeServer(r, role); });
  medic::cli::ApiClient api(http, "http://127.0.0.1:8080", "tok");
  static const medic::ManualClock* const clock =
      new medic::ManualClock(medic::ParseRfc3339("2026-12-07T01:30:00Z").value());
  std::ostringstream log;
  medic::cli::McpOptions options;
  options.allow_approve = (data[0] & 1) != 0;
  medic::cli::McpServer server(api, *clock, options, log);

  std::istringstream in(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  std::ostringstream out;
  medic::cli::ServeMcp(server, in, out);

  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) {
    Result<Json> j = medic::ParseJson(line);
    FUZZ_CHECK(j.has_value());
    if (j->is_array()) {
      FUZZ_CHECK(!j->empty());
      for (const Json& a : *j) {
        FUZZ_CHECK(IsResponse(a));
      }
    } else {
      FUZZ_CHECK(IsResponse(*j));
    }
  }
  FUZZ_CHECK(out.str().empty() || out.str().back() == '\n');
  return 0;
}
