// The HTTP request path of medic-server: bytes through Beast's request parser (with the
// server's header and body limits), into an ApiRequest built as HttpSession::OnHeader and
// OnBody build it, through Router::Admit on the headers alone (its refusal, or the route's body
// limit: 413, as the server does), then through the app's route table (authentication,
// authorization, the handler) — the whole ServerApp of the tests, on an in-memory store, a
// manual clock and no socket.
//
// Input: one or more pipelined HTTP/1.1 requests (at most 4 are served). Secrets and random ids
// cannot be guessed, so in the request target, the Authorization and Cookie headers and the body
// these placeholders become the real values: @ADMIN@, @OPERATOR@, @VIEWER@, @AGENT@ (host web-1's
// own credential), @BOOTSTRAP@ (the enrolment token), and @UPLOAD@ and @CODE@ (the last
// upload_id and code the server answered with). Each new app has a log.archive_truncate of
// /var/log/big.log outstanding for web-1, so uploads to the archive can start.
//
// The app keeps its state from input to input (that is where stateful bugs are) and is rebuilt
// on a fresh data directory every kInputsPerApp inputs, which bounds what accumulates (hosts,
// tokens, archive files) and keeps a crashing input reproducible with few predecessors.

// Asio 1.74's headers use std::exchange without including <utility>.
#include <utility>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unistd.h>

#include "ai/brain.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "protocol/wire.h"
#include "server/app/server_app.h"
#include "server/http/http_types.h"
#include "tests/fakes/memory_store.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using namespace medic;
using server::ApiRequest;
using server::ApiResponse;

constexpr int kInputsPerApp = 2000;
constexpr int kMaxRequestsPerInput = 4;

struct Answer {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<ApiResponse> response;  // Guarded by mu.
};

struct Rig {
  std::string dir;  // the data directory's parent
  ManualClock clock;
  std::unique_ptr<server::ServerApp> app;
  std::string admin, operator_token, viewer, agent, bootstrap;
  std::string upload, code;  // the last upload_id and code answered
  int inputs = 0;
  bool verbose = false;  // MEDIC_FUZZ_VERBOSE=1: each request and its answer on stderr
};

Rig* rig = nullptr;

// Serves one request through the route table; waits for handlers that answer later (long
// polls: the clock moves past their deadline and the app ticks). Every request is answered.
ApiResponse Serve(ApiRequest req) {
  // First the decision on the headers alone, as HttpServer takes it before reading a body: a
  // refusal is the answer, a body over the route's limit is a 413.
  ApiRequest head = req;
  head.body.clear();
  const server::Admission admitted = rig->app->router().Admit(std::move(head));
  if (admitted.refusal.has_value()) {
    FUZZ_CHECK(admitted.refusal->status >= 400 && admitted.refusal->status < 500);
    return *admitted.refusal;
  }
  FUZZ_CHECK(admitted.max_body_bytes > 0);
  if (req.body.size() > admitted.max_body_bytes) {
    return server::ErrorResponse(413, "request body over the route's limit");
  }
  auto answer = std::make_shared<Answer>();
  rig->app->router().Handle(std::move(req), [answer](ApiResponse r) {
    std::lock_guard<std::mutex> lock(answer->mu);
    FUZZ_CHECK(!answer->response.has_value());  // exactly once
    answer->response = std::move(r);
    answer->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(answer->mu);
  for (int round = 0; round < 20 && !answer->response.has_value(); ++round) {
    lock.unlock();
    rig->clock.Advance(std::chrono::seconds(61));
    rig->app->RunOnce();
    lock.lock();
    answer->cv.wait_for(lock, std::chrono::milliseconds(500),
                        [&] { return answer->response.has_value(); });
  }
  FUZZ_CHECK(answer->response.has_value());
  return std::move(*answer->response);
}

ApiResponse Call(const std::string& method, const std::string& path, const std::string& token,
                 const std::string& body = "") {
  ApiRequest req;
  req.method = method;
  req.target = path;
  req.path = path;
  req.authorization = token.empty() ? "" : "Bearer " + token;
  req.body = body;
  return Serve(std::move(req));
}

std::string ReadToken(const std::string& path) {
  auto t = ReadFile(path);
  FUZZ_CHECK(t.has_value());
  return std::string(Trim(*t));
}

std::string NewToken(const std::string& name, const std::string& role) {
  ApiResponse r = Call("POST", "/api/v1/tokens", rig->admin,
                       DumpJson(Json{{"name", name}, {"role", role}}));
  FUZZ_CHECK(r.status == 201);
  return ParseJsonObject(r.body).value()["token"].get<std::string>();
}

// A new app on an empty data directory, with host web-1 enrolled and one token per role.
void NewApp() {
  if (rig->app) {
    rig->app->Stop();
    rig->app.reset();
  }
  const std::string data = rig->dir + "/data";
  std::filesystem::remove_all(data);
  server::ServerConfig config;
  config.listen = "127.0.0.1:0";
  config.data_dir = data;
  auto app = server::ServerApp::Create(
      config, server::ServerDeps{&rig->clock, std::make_unique<test::MemoryStore>(),
                                 std::make_unique<ai::RunbookBrain>()});
  FUZZ_CHECK(app.has_value());
  rig->app = std::move(*app);
  rig->admin = ReadToken(data + "/admin.token");
  rig->bootstrap = ReadToken(data + "/agent.token");
  rig->operator_token = NewToken("fuzz-operator", "operator");
  rig->viewer = NewToken("fuzz-viewer", "viewer");
  ApiResponse code = Call("POST", "/api/v1/hosts/web-1/enroll", rig->admin);
  FUZZ_CHECK(code.status == 201);
  ApiResponse cred =
      Call("POST", "/agent/v1/enroll", "",
           DumpJson(Json{{"name", "web-1"},
                         {"code", ParseJsonObject(code.body).value()["code"]}}));
  FUZZ_CHECK(cred.status == 201);
  rig->agent = ParseJsonObject(cred.body).value()["credential"].get<std::string>();
  protocol::Command archive;
  archive.id = "cmd-fuzz-archive";
  archive.action = "log.archive_truncate";
  archive.params = Json{{"path", "/var/log/big.log"}};
  archive.expires_at = rig->clock.Now() + std::chrono::hours(24 * 365 * 10);
  rig->app->commands().Send("web-1", archive);
  rig->upload.clear();
  rig->code.clear();
}

void RemoveDir() {
  if (rig != nullptr) {
    if (rig->app) {
      rig->app->Stop();
    }
    std::filesystem::remove_all(rig->dir);
  }
}

void Substitute(std::string& s, std::string_view placeholder, const std::string& value) {
  for (size_t at = s.find(placeholder); at != std::string::npos;
       at = s.find(placeholder, at + value.size())) {
    s.replace(at, placeholder.size(), value);
  }
}

void SubstituteAll(std::string& s) {
  Substitute(s, "@ADMIN@", rig->admin);
  Substitute(s, "@OPERATOR@", rig->operator_token);
  Substitute(s, "@VIEWER@", rig->viewer);
  Substitute(s, "@AGENT@", rig->agent);
  Substitute(s, "@BOOTSTRAP@", rig->bootstrap);
  Substitute(s, "@UPLOAD@", rig->upload);
  Substitute(s, "@CODE@", rig->code);
}

// As HttpSession::OnHeader and OnBody do (src/server/http/http_server.cc), after the substitutions.
ApiRequest ToApiRequest(http::request<http::string_body>& req) {
  ApiRequest api;
  api.method = std::string(req.method_string());
  api.target = std::string(req.target());
  SubstituteAll(api.target);
  const size_t q = api.target.find('?');
  api.path = server::UrlDecode(std::string_view(api.target).substr(0, q));
  if (q != std::string::npos) {
    api.query = server::ParseQuery(std::string_view(api.target).substr(q + 1));
  }
  api.authorization = std::string(req[http::field::authorization]);
  api.cookie = std::string(req[http::field::cookie]);
  api.csrf_token = std::string(req["X-CSRF-Token"]);
  api.slack_signature = std::string(req["X-Slack-Signature"]);
  api.slack_timestamp = std::string(req["X-Slack-Request-Timestamp"]);
  api.content_type = std::string(req[http::field::content_type]);
  api.body = std::move(req.body());
  api.peer = "127.0.0.1:40000";
  SubstituteAll(api.authorization);
  SubstituteAll(api.cookie);
  SubstituteAll(api.body);
  return api;
}

// Remembers the ids the next requests may refer to.
void Remember(const ApiResponse& r) {
  if (r.content_type != "application/json") {
    return;
  }
  auto j = ParseJsonObject(r.body);
  if (!j.has_value()) {
    return;
  }
  if (auto it = j->find("upload_id"); it != j->end() && it->is_string()) {
    rig->upload = it->get<std::string>();
  }
  if (auto it = j->find("code"); it != j->end() && it->is_string()) {
    rig->code = it->get<std::string>();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  SetLogLevel(LogLevel::kError);
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                      "/medic-http-fuzzer-XXXXXX";
  FUZZ_CHECK(mkdtemp(templ.data()) != nullptr);
  rig = new Rig;
  rig->dir = templ;
  const char* verbose = std::getenv("MEDIC_FUZZ_VERBOSE");
  rig->verbose = verbose != nullptr && std::string_view(verbose) == "1";
  std::atexit(RemoveDir);
  NewApp();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (++rig->inputs % kInputsPerApp == 0) {
    NewApp();
  }
  const server::HttpServerOptions options;
  const char* at = reinterpret_cast<const char*>(data);
  size_t left = size;
  for (int n = 0; n < kMaxRequestsPerInput; ++n) {
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(options.body_limit);
    parser.header_limit(16 * 1024);
    beast::error_code ec;
    while (!parser.is_done()) {
      const size_t used = parser.put(boost::asio::const_buffer(at, left), ec);
      FUZZ_CHECK(used <= left);
      at += used;
      left -= used;
      if (ec == http::error::need_more) {
        ec = {};
        if (used > 0 && left > 0) {
          continue;
        }
      } else if (ec) {
        return 0;  // 400, 413 or 431 from the session, and the connection closes
      } else if (used > 0) {
        continue;
      }
      // No progress: the connection ends here (the server would wait, then time out). Without
      // a byte of this request, that is the end of the stream (put_eof requires got_some).
      if (!parser.got_some()) {
        return 0;
      }
      parser.put_eof(ec);
      if (ec || !parser.is_done()) {
        return 0;
      }
    }
    auto& req = parser.get();
    const bool keep_alive = req.keep_alive();
    ApiRequest api = ToApiRequest(req);
    const std::string line = api.method + " " + api.target;
    ApiResponse r = Serve(std::move(api));
    FUZZ_CHECK(r.status >= 100 && r.status <= 599);
    Remember(r);
    if (rig->verbose) {
      std::fprintf(stderr, "%s -> %d %.200s\n", line.c_str(), r.status, r.body.c_str());
    }
    if (!keep_alive || left == 0) {
      return 0;
    }
  }
  return 0;
}
