// `medic mcp`'s protocol without a process: McpServer::HandleLine and ServeMcp against a
// recording fake HttpClient. Framing, version negotiation, JSON-RPC errors on hostile lines, the
// tool list with and without --allow-approve, tool calls and their errors.

#include "cli/mcp.h"

#include <gtest/gtest.h>

#include <sstream>

#include "fake_http_client.h"

namespace medic::cli {
namespace {

constexpr char kServer[] = "http://127.0.0.1:8080";

HttpResponse JsonAnswer(int status, std::string body) {
  return HttpResponse{status, std::move(body), "application/json"};
}

class McpTest : public ::testing::Test {
 protected:
  // A fresh session with `options` (the fake HTTP client and clock are kept).
  void Start(McpOptions options = {}) {
    server_ = std::make_unique<McpServer>(api_, clock_, std::move(options), log_);
  }
  // The answer to `line`, parsed; null when there is none.
  Json Send(std::string_view line) {
    std::optional<std::string> a = server_->HandleLine(line);
    if (!a.has_value()) {
      return nullptr;
    }
    EXPECT_EQ(a->find('\n'), std::string::npos) << "one message a line: " << *a;
    Result<Json> j = ParseJson(*a);
    EXPECT_TRUE(j.has_value()) << *a;
    return j.value_or(Json("not JSON"));
  }
  Json Request(const std::string& method, const Json& params, int id = 1) {
    return Send(
        DumpJson(Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}));
  }
  Json Initialize(const std::string& version = "2025-11-25") {
    Json a = Request("initialize", {{"protocolVersion", version},
                                    {"capabilities", Json::object()},
                                    {"clientInfo", {{"name", "test"}, {"version", "1"}}}});
    EXPECT_EQ(Send(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"), nullptr);
    return a;
  }
  Json Call(const std::string& tool, const Json& args) {
    return Request("tools/call", {{"name", tool}, {"arguments", args}});
  }
  std::vector<std::string> ToolNames() {
    Json a = Request("tools/list", Json::object());
    std::vector<std::string> names;
    for (const Json& t : a["result"]["tools"]) {
      names.push_back(t["name"].get<std::string>());
    }
    return names;
  }
  static int ErrorCodeOf(const Json& a) {
    return a.contains("error") ? a["error"]["code"].get<int>() : 0;
  }
  static std::string ErrorMessageOf(const Json& a) {
    return a.contains("error") ? a["error"]["message"].get<std::string>() : "";
  }
  static std::string TextOf(const Json& a) {
    return a["result"]["content"][0]["text"].get<std::string>();
  }
  // The fake server answers GET /api/v1/session with this role.
  void TokenRole(const std::string& role) {
    http_.SetHandler([role, this](const HttpRequest& r) -> Result<HttpResponse> {
      if (r.method == "GET" && r.url == std::string(kServer) + "/api/v1/session") {
        return JsonAnswer(200, DumpJson(Json{{"name", "tok"}, {"role", role}}));
      }
      return route_(r);
    });
  }
  size_t Posts() const {
    size_t n = 0;
    for (const HttpRequest& r : http_.requests()) {
      n += r.method == "POST" ? 1 : 0;
    }
    return n;
  }

  FakeHttpClient http_;
  ApiClient api_{http_, kServer, "tok-123"};
  ManualClock clock_{ParseRfc3339("2026-12-07T01:30:00Z").value()};
  std::ostringstream log_;
  std::unique_ptr<McpServer> server_;
  // What the fake server answers besides /api/v1/session.
  std::function<Result<HttpResponse>(const HttpRequest&)> route_ = [](const HttpRequest&) {
    return Result<HttpResponse>(JsonAnswer(200, "{}"));
  };
};

TEST_F(McpTest, InitializeAnswersTheClientsRevisionIfSpokenElseTheNewest) {
  EXPECT_EQ(McpProtocolVersions().front(), "2025-11-25");
  struct Case {
    std::string asked;
    std::string answered;
  };
  for (const Case& c : std::vector<Case>{{"2025-11-25", "2025-11-25"},
                                         {"2025-06-18", "2025-06-18"},
                                         {"2025-03-26", "2025-03-26"},
                                         {"2024-11-05", "2024-11-05"},
                                         {"2099-01-01", "2025-11-25"},
                                         {"latest", "2025-11-25"}}) {
    SCOPED_TRACE(c.asked);
    Start();
    Json a = Initialize(c.asked);
    ASSERT_TRUE(a.contains("result")) << a;
    EXPECT_EQ(a["id"], 1);
    EXPECT_EQ(a["result"]["protocolVersion"], c.answered);
    EXPECT_EQ(a["result"]["serverInfo"]["name"], "medic");
    EXPECT_EQ(a["result"]["capabilities"], Json::parse(R"({"tools":{"listChanged":false}})"));
    EXPECT_EQ(server_->protocol_version(), c.answered);
  }
  // Once only; and protocolVersion is required.
  Json again = Request("initialize", {{"protocolVersion", "2025-11-25"}}, 2);
  EXPECT_EQ(ErrorCodeOf(again), kJsonRpcInvalidRequest) << again;
  Start();
  Json bad = Request("initialize", {{"protocolVersion", 20251125}});
  EXPECT_EQ(ErrorCodeOf(bad), kJsonRpcInvalidParams) << bad;
  EXPECT_EQ(server_->protocol_version(), "");
  EXPECT_TRUE(http_.requests().empty()) << "a read-only session asks the server nothing";
}

TEST_F(McpTest, HostileLinesGetJsonRpcErrorsAndNotificationsNoAnswer) {
  Start();
  Initialize();
  struct Case {
    std::string line;
    int code;           // 0: a result; -1: no answer at all
    Json id = nullptr;  // the id the answer carries
  };
  const std::vector<Case> cases = {
      {"not json", kJsonRpcParseError},
      {"{", kJsonRpcParseError},
      {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} trailing", kJsonRpcParseError},
      {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xff\xfe\"}", kJsonRpcParseError},
      {std::string(40, '[') + std::string(40, ']'), kJsonRpcParseError},
      {std::string("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\0", 41), kJsonRpcParseError},
      {"42", kJsonRpcInvalidRequest},
      {"\"ping\"", kJsonRpcInvalidRequest},
      {"null", kJsonRpcInvalidRequest},
      {"{}", kJsonRpcInvalidRequest},
      {R"({"jsonrpc":"1.0","id":3,"method":"ping"})", kJsonRpcInvalidRequest, 3},
      {R"({"id":3,"method":"ping"})", kJsonRpcInvalidRequest, 3},
      {R"({"jsonrpc":2.0,"id":"a","method":"ping"})", kJsonRpcInvalidRequest, "a"},
      {R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})", kJsonRpcInvalidRequest},
      {R"({"jsonrpc":"2.0","id":null,"method":"ping"})", kJsonRpcInvalidRequest},
      {R"({"jsonrpc":"2.0","id":{"x":1},"method":"ping"})", kJsonRpcInvalidRequest},
      {R"({"jsonrpc":"2.0","id":[1],"method":"ping"})", kJsonRpcInvalidRequest},
      {R"({"jsonrpc":"2.0","id":true,"method":"ping"})", kJsonRpcInvalidRequest},
      {R"({"jsonrpc":"2.0","id":4})", kJsonRpcInvalidRequest, 4},
      {R"({"jsonrpc":"2.0","id":4,"method":7})", kJsonRpcInvalidRequest, 4},
      {R"({"jsonrpc":"2.0","id":5,"method":"tools/list","params":[1]})", kJsonRpcInvalidParams, 5},
      {R"({"jsonrpc":"2.0","id":5,"method":"tools/list","params":"x"})", kJsonRpcInvalidParams, 5},
      {R"({"jsonrpc":"2.0","id":6,"method":"resources/list"})", kJsonRpcMethodNotFound, 6},
      {R"({"jsonrpc":"2.0","id":6,"method":""})", kJsonRpcMethodNotFound, 6},
      {R"({"jsonrpc":"2.0","id":7,"method":"tools/call"})", kJsonRpcInvalidParams, 7},
      {R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}})", kJsonRpcInvalidParams, 7},
      {R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":3}})",
       kJsonRpcInvalidParams, 7},
      {R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_hosts","arguments":[]}})",
       kJsonRpcInvalidParams, 7},
      {R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"rm_rf","arguments":{}}})",
       kJsonRpcInvalidParams, 7},
      {R"({"jsonrpc":"2.0","id":8,"method":"tools/list","params":{"cursor":"x"}})",
       kJsonRpcInvalidParams, 8},
      // Good ones: any string or integer id comes back as it was.
      {R"({"jsonrpc":"2.0","id":"abc","method":"ping"})", 0, "abc"},
      {R"({"jsonrpc":"2.0","id":-9007199254740993,"method":"ping"})", 0, -9007199254740993LL},
      {R"({"jsonrpc":"2.0","id":0,"method":"ping","params":{"_meta":{}}})", 0, 0},
      {"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}\r", 0, 9},
      // No answer: notifications (known, unknown, malformed params), answers, blank lines.
      {R"({"jsonrpc":"2.0","method":"notifications/initialized"})", -1},
      {R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}})", -1},
      {R"({"jsonrpc":"2.0","method":"no/such/thing","params":[1,2]})", -1},
      {R"({"jsonrpc":"2.0","method":"tools/call"})", -1},
      {R"({"jsonrpc":"2.0","id":12,"result":{}})", -1},
      {R"({"jsonrpc":"2.0","id":12,"error":{"code":1,"message":"x"}})", -1},
      {"", -1},
      {"   \t", -1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    const Json a = Send(c.line);
    if (c.code == -1) {
      EXPECT_EQ(a, nullptr);
      continue;
    }
    ASSERT_TRUE(a.is_object()) << a;
    EXPECT_EQ(a["jsonrpc"], "2.0");
    EXPECT_EQ(a["id"], c.id) << a;
    if (c.code == 0) {
      EXPECT_EQ(a["result"], Json::object()) << a;
    } else {
      EXPECT_EQ(ErrorCodeOf(a), c.code) << a;
      EXPECT_FALSE(ErrorMessageOf(a).empty());
    }
  }
  EXPECT_TRUE(http_.requests().empty());
}

TEST_F(McpTest, BatchesOnlyInTheRevisionThatHasThem) {
  const std::string batch =
      R"([{"jsonrpc":"2.0","id":1,"method":"ping"},)"
      R"({"jsonrpc":"2.0","method":"notifications/initialized"},)"
      R"({"jsonrpc":"2.0","id":2,"method":"nope"},)"
      R"({"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}])";
  for (const std::string version : {"2025-11-25", "2025-06-18", "2024-11-05"}) {
    SCOPED_TRACE(version);
    Start();
    Initialize(version);
    Json a = Send(batch);
    ASSERT_TRUE(a.is_object()) << a;
    EXPECT_EQ(ErrorCodeOf(a), kJsonRpcInvalidRequest);
    EXPECT_EQ(a["id"], nullptr);
  }
  Start();
  Json before = Send(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])");
  EXPECT_EQ(ErrorCodeOf(before), kJsonRpcInvalidRequest) << "no batch before initialize";

  Start();
  Initialize("2025-03-26");
  Json a = Send(batch);
  ASSERT_TRUE(a.is_array()) << a;
  ASSERT_EQ(a.size(), 3u) << "the notification gets no answer";
  EXPECT_EQ(a[0]["id"], 1);
  EXPECT_EQ(a[0]["result"], Json::object());
  EXPECT_EQ(a[1]["id"], 2);
  EXPECT_EQ(ErrorCodeOf(a[1]), kJsonRpcMethodNotFound);
  EXPECT_EQ(a[2]["id"], 3);
  EXPECT_EQ(ErrorCodeOf(a[2]), kJsonRpcInvalidRequest) << "initialize is never in a batch";
  EXPECT_EQ(ErrorCodeOf(Send("[]")), kJsonRpcInvalidRequest);
  EXPECT_EQ(Send(R"([{"jsonrpc":"2.0","method":"notifications/initialized"}])"), nullptr);
  Json hostile = Send(R"([1,{"jsonrpc":"2.0","id":4,"method":"ping"}])");
  ASSERT_TRUE(hostile.is_array()) << hostile;
  EXPECT_EQ(ErrorCodeOf(hostile[0]), kJsonRpcInvalidRequest);
  EXPECT_EQ(hostile[1]["id"], 4);
}

TEST_F(McpTest, WithoutTheFlagOnlyTheReadToolsAndApproveIsAnErrorNamingTheFlag) {
  Start();
  Initialize();
  Json list = Request("tools/list", Json::object());
  ASSERT_TRUE(list.contains("result")) << list;
  std::vector<std::string> names;
  for (const Json& t : list["result"]["tools"]) {
    names.push_back(t["name"]);
    EXPECT_EQ(t["inputSchema"]["type"], "object") << t;
    EXPECT_EQ(t["annotations"]["readOnlyHint"], true) << t;
    EXPECT_FALSE(t["description"].get<std::string>().empty());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"list_incidents", "show_incident", "list_hosts",
                                             "list_alarms", "host_metrics", "incident_report"}));
  for (const std::string tool : {"approve_incident", "reject_incident"}) {
    Json a = Call(tool, {{"id", "inc-1"}});
    EXPECT_EQ(ErrorCodeOf(a), kJsonRpcInvalidParams) << a;
    EXPECT_NE(ErrorMessageOf(a).find("--allow-approve"), std::string::npos) << a;
  }
  EXPECT_TRUE(http_.requests().empty()) << "nothing reached the server";
}

TEST_F(McpTest, WithTheFlagAViewerTokenGetsNoApproveTools) {
  TokenRole("viewer");
  Start({.allow_approve = true});
  Initialize();
  EXPECT_EQ(ToolNames().size(), 6u);
  Json a = Call("approve_incident", {{"id", "inc-1"}});
  EXPECT_EQ(ErrorCodeOf(a), kJsonRpcInvalidParams) << a;
  EXPECT_NE(ErrorMessageOf(a).find("operator or admin"), std::string::npos) << a;
  EXPECT_NE(ErrorMessageOf(a).find("viewer"), std::string::npos) << a;
  EXPECT_EQ(Posts(), 0u);
  EXPECT_EQ(http_.requests().size(), 1u) << "the role is asked once";
}

TEST_F(McpTest, WhenTheRoleCannotBeToldNoApproveToolsAndItIsAskedAgainLater) {
  http_.SetHandler([](const HttpRequest&) -> Result<HttpResponse> {
    return Unavailable("POST http://127.0.0.1:8080/api/v1/session: connection refused");
  });
  Start({.allow_approve = true});
  Initialize();
  EXPECT_EQ(ToolNames().size(), 6u);
  EXPECT_NE(ErrorMessageOf(Call("reject_incident", {{"id", "inc-1"}})).find("cannot tell"),
            std::string::npos);
  TokenRole("admin");
  EXPECT_EQ(ToolNames().size(), 8u) << "the server answered now";
}

TEST_F(McpTest, WithTheFlagAndAnOperatorTokenApproveSendsTheCurrentProposal) {
  const std::string hash(64, 'a');
  route_ = [hash](const HttpRequest& r) -> Result<HttpResponse> {
    if (r.method == "GET" && r.url == std::string(kServer) + "/api/v1/incidents/inc-1") {
      return JsonAnswer(200, DumpJson(Json{{"incident_id", "inc-1"},
                                           {"status", "pending_approval"},
                                           {"action_hash", hash},
                                           {"ai_suggestion", "service.restart service=nginx"}}));
    }
    if (r.method == "POST" && r.url == std::string(kServer) + "/api/v1/incidents/inc-1/approve") {
      return JsonAnswer(200, R"({"incident_id":"inc-1","status":"executing"})");
    }
    if (r.method == "POST" && r.url == std::string(kServer) + "/api/v1/incidents/inc-2/reject") {
      return JsonAnswer(200, R"({"incident_id":"inc-2","status":"rejected"})");
    }
    return JsonAnswer(404, R"({"error":"not here"})");
  };
  TokenRole("operator");
  Start({.allow_approve = true});
  Initialize();
  Json list = Request("tools/list", Json::object());
  ASSERT_EQ(list["result"]["tools"].size(), 8u) << list;
  const Json& approve = list["result"]["tools"][6];
  EXPECT_EQ(approve["name"], "approve_incident");
  EXPECT_EQ(approve["annotations"]["readOnlyHint"], false);
  EXPECT_EQ(approve["annotations"]["destructiveHint"], true);
  EXPECT_EQ(approve["inputSchema"]["required"], Json::array({"id"}));

  Json a = Call("approve_incident", {{"id", "inc-1"}, {"comment", "go"}});
  ASSERT_TRUE(a.contains("result")) << a;
  EXPECT_EQ(a["result"]["isError"], false) << a;
  EXPECT_EQ(a["result"]["structuredContent"]["status"], "executing");
  EXPECT_EQ(ParseJson(TextOf(a)).value_or(Json())["status"], "executing");
  const HttpRequest& post = http_.last();
  EXPECT_EQ(post.method, "POST");
  EXPECT_EQ(ParseJson(post.body).value_or(Json()),
            (Json{{"action_hash", hash}, {"comment", "go"}}));
  EXPECT_EQ(FakeHttpClient::Header(post, "Authorization"), "Bearer tok-123");

  Json bad_option = Call("approve_incident", {{"id", "inc-1"}, {"option", 2}});
  EXPECT_EQ(bad_option["result"]["isError"], true) << bad_option;
  Json r = Call("reject_incident", {{"id", "inc-2"}});
  EXPECT_EQ(r["result"]["isError"], false) << r;
  EXPECT_EQ(ParseJson(http_.last().body).value_or(Json()), Json::object());
  EXPECT_EQ(Posts(), 2u);
}

TEST_F(McpTest, TheServersRefusalAndAnUnreachableServerAreToolErrors) {
  route_ = [](const HttpRequest& r) -> Result<HttpResponse> {
    if (r.method == "POST") {
      return JsonAnswer(403, R"({"error":"operator 'op' may not POST this"})");
    }
    if (r.url.find("/api/v1/incidents/inc-1") != std::string::npos) {
      return JsonAnswer(200, DumpJson(Json{{"status", "pending_approval"},
                                           {"action_hash", std::string(64, 'b')}}));
    }
    if (r.url.find("/api/v1/incidents/inc-3") != std::string::npos) {
      return JsonAnswer(200, R"({"status":"completed"})");
    }
    return Unavailable("GET " + r.url + ": connection refused");
  };
  TokenRole("operator");
  Start({.allow_approve = true});
  Initialize();
  Json a = Call("approve_incident", {{"id", "inc-1"}});
  EXPECT_EQ(a["result"]["isError"], true) << a;
  EXPECT_NE(TextOf(a).find("403"), std::string::npos) << a;
  Json done = Call("approve_incident", {{"id", "inc-3"}});
  EXPECT_EQ(done["result"]["isError"], true) << done;
  EXPECT_NE(TextOf(done).find("no fix to approve"), std::string::npos) << done;
  Json down = Call("list_hosts", Json::object());
  EXPECT_EQ(down["result"]["isError"], true) << down;
  EXPECT_EQ(TextOf(down), "cannot reach http://127.0.0.1:8080: connection refused");
  EXPECT_FALSE(down["result"].contains("structuredContent"));
}

TEST_F(McpTest, ArgumentsAreCheckedAgainstTheSchemaAndBadOnesAreToolErrors) {
  Start();
  Initialize();
  struct Case {
    std::string tool;
    Json args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"show_incident", Json::object(), "missing required argument 'id'"},
      {"show_incident", {{"id", ""}}, "id must be a string of 1 to 128 bytes"},
      {"show_incident", {{"id", 42}}, "id must be a string"},
      {"show_incident", {{"id", "inc-1"}, {"verbose", true}}, "unknown argument 'verbose'"},
      {"list_incidents", {{"limit", "5"}}, "limit must be an integer from 1 to 1000"},
      {"list_incidents", {{"limit", 0}}, "limit must be an integer from 1 to 1000"},
      {"list_incidents", {{"limit", 2.5}}, "limit must be an integer"},
      {"list_incidents", {{"status", "open"}}, "status must be one of diagnosing"},
      {"list_alarms", {{"state", "FIRING"}}, "state must be one of OK, ALARM, INSUFFICIENT_DATA"},
      {"host_metrics", {{"host", "web-1"}}, "missing required argument 'metric'"},
      {"host_metrics",
       {{"host", "web-1"}, {"metric", "cpu_percent"}, {"since", "yesterday"}},
       "since must be RFC 3339"},
      {"incident_report", {{"id", "inc-1"}, {"format", "pdf"}}, "format must be one of md, html"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tool + " " + c.args.dump());
    Json a = Call(c.tool, c.args);
    ASSERT_TRUE(a.contains("result")) << a;
    EXPECT_EQ(a["result"]["isError"], true);
    EXPECT_NE(TextOf(a).find(c.says), std::string::npos) << TextOf(a);
  }
  EXPECT_TRUE(http_.requests().empty()) << "a bad argument reaches no server";
}

TEST_F(McpTest, ReadToolsAskTheApiAndAnswerItsJson) {
  route_ = [](const HttpRequest& r) -> Result<HttpResponse> {
    return JsonAnswer(200, DumpJson(Json{{"asked", r.url}, {"points", Json::array()}}));
  };
  http_.SetHandler(route_);
  Start();
  Initialize();
  struct Case {
    std::string tool;
    Json args;
    std::string path;
  };
  const std::vector<Case> cases = {
      {"list_incidents", Json::object(), "/api/v1/incidents?view=summary&limit=20"},
      {"list_incidents",
       {{"status", "pending_approval"}, {"limit", 5}},
       "/api/v1/incidents?view=summary&limit=5&status=pending_approval"},
      {"show_incident", {{"id", "inc 1/2"}}, "/api/v1/incidents/inc%201%2F2"},
      {"list_hosts",
       {{"status", "stale"}, {"prefix", "web"}, {"limit", 3}, {"after", "web-1"}},
       "/api/v1/hosts?limit=3&status=stale&prefix=web&after=web-1"},
      {"list_alarms",
       {{"state", "ALARM"}, {"host", "web-1"}},
       "/api/v1/alarms?limit=200&state=ALARM&host=web-1"},
      {"host_metrics",
       {{"host", "web-1"}, {"metric", "unhealthy:web"}, {"since", "15m"}},
       "/api/v1/hosts/web-1/metrics?metric=unhealthy%3Aweb&since=2026-12-07T01%3A15%3A00.000Z"
       "&max_points=120"},
      {"host_metrics",
       {{"host", "web-1"},
        {"metric", "cpu_percent"},
        {"since", "2026-12-07T02:00:00+01:00"},
        {"max_points", 7}},
       "/api/v1/hosts/web-1/metrics?metric=cpu_percent&since=2026-12-07T01%3A00%3A00.000Z"
       "&max_points=7"},
      {"incident_report", {{"id", "inc-1"}}, "/api/v1/incidents/inc-1/report?format=md"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tool + " " + c.args.dump());
    Json a = Call(c.tool, c.args);
    ASSERT_TRUE(a.contains("result")) << a;
    EXPECT_EQ(a["result"]["isError"], false) << a;
    EXPECT_EQ(http_.last().method, "GET");
    EXPECT_EQ(http_.last().url, kServer + c.path);
    EXPECT_EQ(a["result"]["content"][0]["type"], "text");
    Result<Json> text = ParseJson(TextOf(a));
    ASSERT_TRUE(text.has_value()) << TextOf(a);
    if (c.tool == "incident_report") {
      EXPECT_FALSE(a["result"].contains("structuredContent"));
    } else {
      EXPECT_EQ(a["result"]["structuredContent"], *text) << "the same data twice";
    }
  }
  // The 2024-11-05 revision has no structuredContent (nor annotations).
  Start();
  Initialize("2024-11-05");
  Json old = Call("list_hosts", Json::object());
  EXPECT_EQ(old["result"]["isError"], false) << old;
  EXPECT_FALSE(old["result"].contains("structuredContent"));
  EXPECT_FALSE(Request("tools/list", Json::object())["result"]["tools"][0].contains("annotations"));
}

TEST_F(McpTest, ServeMcpAnswersALineEachAndSkipsAnOverlongOne) {
  Start();
  std::string input =
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})"
      "\n"
      R"({"jsonrpc":"2.0","method":"notifications/initialized"})"
      "\n"
      "\n" +
      std::string(kMcpMaxLineBytes + 10, 'x') + "\n" +
      R"({"jsonrpc":"2.0","id":2,"method":"ping"})"
      "\n"
      R"({"jsonrpc":"2.0","id":3,"method":"ping"})";  // the last line has no newline
  std::istringstream in(input);
  std::ostringstream out;
  ServeMcp(*server_, in, out);
  std::vector<Json> answers;
  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) {
    Result<Json> j = ParseJson(line);
    ASSERT_TRUE(j.has_value()) << line;
    answers.push_back(*j);
  }
  ASSERT_EQ(answers.size(), 4u) << out.str().substr(0, 2000);
  EXPECT_EQ(answers[0]["result"]["protocolVersion"], "2025-11-25");
  EXPECT_EQ(ErrorCodeOf(answers[1]), kJsonRpcParseError);
  EXPECT_EQ(answers[1]["id"], nullptr);
  EXPECT_EQ(answers[2]["id"], 2);
  EXPECT_EQ(answers[3]["id"], 3);
  EXPECT_EQ(out.str().back(), '\n');
}

}  // namespace
}  // namespace medic::cli
