#pragma once

// `medic mcp`: a Model Context Protocol server on standard input and output (docs/integrations/
// mcp.md). JSON-RPC 2.0, one message a line (the MCP stdio transport); the tools read incidents,
// hosts, alarms, metrics and reports through the operator API (ApiClient), and approve or reject
// only with --allow-approve and an operator or admin token.
//
// McpServer has no I/O of its own: HandleLine takes one line and returns the line to answer, so
// the protocol is a unit test; ServeMcp is the loop over a stream.

#include <cstddef>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/api.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"

namespace medic::cli {

// The longest message line read (bytes, without the newline); a longer one is answered with a
// parse error and skipped.
inline constexpr size_t kMcpMaxLineBytes = 1024 * 1024;

// The protocol revisions spoken, newest first; the first is the current revision of the MCP
// specification (and the reference SDK's LATEST_PROTOCOL_VERSION).
const std::vector<std::string>& McpProtocolVersions();

// JSON-RPC 2.0 error codes.
inline constexpr int kJsonRpcParseError = -32700;
inline constexpr int kJsonRpcInvalidRequest = -32600;
inline constexpr int kJsonRpcMethodNotFound = -32601;
inline constexpr int kJsonRpcInvalidParams = -32602;
inline constexpr int kJsonRpcInternalError = -32603;

struct McpOptions {
  // --allow-approve: offer approve_incident and reject_incident, if the token may use them.
  bool allow_approve = false;
  // serverInfo.version.
  std::string server_version = "dev";
};

// One MCP session. Not thread-safe: one line at a time. `api`, `clock` and `log` must outlive it;
// `log` gets the few lines worth telling an operator (standard error in the binary), never
// protocol.
class McpServer {
 public:
  McpServer(ApiClient& api, const Clock& clock, McpOptions options, std::ostream& log);

  // One message line (without its newline; a trailing '\r' is ignored). Returns the answer line
  // (one JSON text, no newline), or nullopt when there is none: a notification, a response, a
  // blank line, a batch of notifications.
  std::optional<std::string> HandleLine(std::string_view line);
  // The answer to a line longer than kMcpMaxLineBytes.
  std::string LineTooLong() const;

  // The negotiated revision ("" before initialize).
  const std::string& protocol_version() const { return version_; }

 private:
  struct ToolSpec;
  struct ToolOutput {
    std::string text;
    std::optional<Json> structured;  // an object
  };

  std::optional<Json> HandleMessage(const Json& message, bool in_batch);
  Result<Json> Dispatch(const std::string& method, const Json& params, bool in_batch);
  Result<Json> Initialize(const Json& params, bool in_batch);
  Result<Json> ListTools(const Json& params);
  Result<Json> CallTool(const Json& params);
  Json ToolDescription(const ToolSpec& tool) const;
  // Whether approve_incident and reject_incident are offered; asks the server for the token's
  // role the first time (and again until it answers). `why` says why not.
  bool ApprovalToolsEnabled(std::string* why);
  // The revision the answers follow: the negotiated one, else the newest.
  const std::string& EffectiveVersion() const;
  bool AtLeast(std::string_view version) const { return EffectiveVersion() >= version; }

  Result<ToolOutput> ListIncidents(const Json& args);
  Result<ToolOutput> ShowIncident(const Json& args);
  Result<ToolOutput> ListHosts(const Json& args);
  Result<ToolOutput> ListAlarms(const Json& args);
  Result<ToolOutput> HostMetrics(const Json& args);
  Result<ToolOutput> IncidentReport(const Json& args);
  Result<ToolOutput> ApproveIncident(const Json& args);
  Result<ToolOutput> RejectIncident(const Json& args);
  // GET path as JSON, the answer as the tool's output.
  Result<ToolOutput> JsonTool(const std::string& path, const std::string& what);

  static const std::vector<ToolSpec>& Tools();

  ApiClient& api_;
  const Clock& clock_;
  McpOptions options_;
  std::ostream& log_;
  std::string version_;
  bool initialized_ = false;         // the initialize request was answered
  std::optional<std::string> role_;  // the token's role, once the server said it
};

// Reads message lines from `in` until end of input and writes each answer to `out`, a line
// each, flushed. A line longer than kMcpMaxLineBytes is skipped to its end and answered with a
// parse error. Returns when `in` ends.
void ServeMcp(McpServer& server, std::istream& in, std::ostream& out);

}  // namespace medic::cli
