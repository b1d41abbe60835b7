// The HTTP server against unauthenticated and slow clients (issue 12): a request's headers have
// a deadline; the route and the caller are decided on the headers alone, so a refused request
// (401, 403, 404, 413) is answered before any body byte is read; connections are capped per
// client address and in total, the oldest still waiting for headers giving way; /metrics needs a
// viewer token unless configured public. A real server on loopback (port 0), raw TCP clients
// bound to addresses of 127.0.0.0/8.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/server/server_fixture.h"

namespace medic::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

// A TCP connection to 127.0.0.1:port from `source` (an address of 127.0.0.0/8); closed with
// the object.
class RawConnection {
 public:
  RawConnection(uint16_t port, const char* source = "127.0.0.1") {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, source, &local.sin_addr);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0) << source;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ~RawConnection() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  void Send(const std::string& text) {
    EXPECT_EQ(send(fd_, text.data(), text.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(text.size()));
  }
  // Reads until the server closes the connection (true: EOF or a reset) or the deadline
  // (false). What was read is appended to `got`.
  bool ReadToClose(std::string* got, milliseconds timeout) {
    const auto deadline = steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
      if (left.count() <= 0) {
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      char buf[65536];
      const ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) {
        return true;
      }
      got->append(buf, static_cast<size_t>(n));
    }
  }
  // Reads one whole response (headers and a Content-Length body) within `timeout`; the
  // connection stays open. Empty when it did not come.
  std::string ReadResponse(milliseconds timeout) {
    const auto deadline = steady_clock::now() + timeout;
    std::string got;
    for (;;) {
      const size_t end = got.find("\r\n\r\n");
      if (end != std::string::npos) {
        const size_t cl = got.find("Content-Length: ");
        const size_t length = cl == std::string::npos ? 0 : std::stoul(got.substr(cl + 16));
        if (got.size() >= end + 4 + length) {
          return got;
        }
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        return "";
      }
      char buf[65536];
      const ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) {
        return "";
      }
      got.append(buf, static_cast<size_t>(n));
    }
  }
  // True when the server has closed the connection (EOF or a reset) without sending anything,
  // within `timeout`.
  bool ClosedWithin(milliseconds timeout) {
    std::string got;
    return ReadToClose(&got, timeout) && got.empty();
  }

 private:
  int fd_ = -1;
};

class HttpLimitsTest : public test::ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
  void Configure(ServerConfig& config) override {
    config.http.header_timeout_seconds = 1;
    config.http.max_connections = max_connections_;
    config.http.max_connections_per_address = max_per_address_;
    config.metrics_public = metrics_public_;
  }

  std::string CreateToken(const std::string& name, const std::string& role) {
    const HttpResponse r = Call("POST", "/api/v1/tokens", admin_,
                                R"({"name":")" + name + R"(","role":")" + role + R"("})");
    EXPECT_EQ(r.status, 201) << r.body;
    return ParseJson(r.body).value_or(Json::object()).value("token", "");
  }

  // The value of one line of GET /metrics ("name{labels}"), read with the admin token, or -1.
  double Metric(const std::string& name) {
    const HttpResponse r = Call("GET", "/metrics", admin_);
    const std::string needle = "\n" + name + " ";
    const size_t at = r.body.find(needle);
    if (at == std::string::npos) {
      return -1;
    }
    return std::stod(r.body.substr(at + needle.size()));
  }

  size_t max_connections_ = 4096;
  size_t max_per_address_ = 256;
  bool metrics_public_ = false;
};

// A client that sends part of its headers and then nothing, or trickles them a byte at a time,
// is closed at the header deadline (1 s here): not before it, and long before the old 120 s.
TEST_F(HttpLimitsTest, SlowHeadersLoseTheConnectionAtTheHeaderDeadline) {
  {
    SCOPED_TRACE("part of the headers, then nothing");
    RawConnection c(app_->port());
    const auto start = steady_clock::now();
    c.Send("GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\n");
    EXPECT_TRUE(c.ClosedWithin(seconds(8)));
    EXPECT_GE(steady_clock::now() - start, milliseconds(900));
  }
  {
    SCOPED_TRACE("one byte every 200 ms");
    RawConnection c(app_->port());
    const auto start = steady_clock::now();
    const std::string head = "GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    bool closed = false;
    for (int i = 0; i < 40 && !closed; ++i) {
      c.Send(std::string(1, head[static_cast<size_t>(i) % head.size()]));
      std::string got;
      closed = c.ReadToClose(&got, milliseconds(200));
    }
    EXPECT_TRUE(closed) << "still open after 8 s of trickled headers";
    EXPECT_GE(steady_clock::now() - start, milliseconds(900));
  }
  EXPECT_GE(Metric("medic_http_timeouts_total{phase=\"header\"}"), 2);
}

// A request announcing a 1 MiB body that the route refuses on its headers gets its answer
// before a single body byte is sent, and the connection is closed (the body is never read).
TEST_F(HttpLimitsTest, RefusedRequestIsAnsweredBeforeItsBodyIsRead) {
  const std::string viewer = CreateToken("viewer-1", "viewer");
  struct Case {
    std::string name;
    std::string request_line;
    std::string authorization;  // "" for none
    std::string want_status;
  };
  const std::vector<Case> cases = {
      {"no token", "POST /api/v1/tokens HTTP/1.1", "", "401"},
      {"an unknown token", "POST /api/v1/tokens HTTP/1.1", "Bearer not-a-token", "401"},
      {"a viewer on an admin route", "POST /api/v1/tokens HTTP/1.1", "Bearer " + viewer, "403"},
      {"an agent route without a credential", "POST /agent/v1/report HTTP/1.1", "", "401"},
      {"no such route", "POST /api/v1/nothing-here HTTP/1.1", "", "404"},
      {"an admin token, a body beyond the route's limit", "PUT /api/v1/settings HTTP/1.1",
       "Bearer " + admin_, "413"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawConnection conn(app_->port());
    std::string head = c.request_line + "\r\nHost: x\r\nContent-Type: application/json\r\n" +
                       "Content-Length: 1048576\r\n";
    if (!c.authorization.empty()) {
      head += "Authorization: " + c.authorization + "\r\n";
    }
    conn.Send(head + "\r\n");
    std::string got;
    EXPECT_TRUE(conn.ReadToClose(&got, seconds(5))) << "no answer (and no close) in 5 s: " << got;
    EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 " + c.want_status) << got;
    EXPECT_NE(got.find("\"error\""), std::string::npos) << got;
  }
}

// An authenticated JSON route takes 64 KiB: more is 413, naming the limit, whether the size is
// announced (Content-Length) or found while reading (chunked).
TEST_F(HttpLimitsTest, TooLargeBodyOnAnAuthenticatedJsonRouteIs413) {
  {
    SCOPED_TRACE("announced");
    const HttpResponse r =
        Call("PUT", "/api/v1/settings", admin_, "{\"x\":\"" + std::string(200'000, 'a') + "\"}");
    EXPECT_EQ(r.status, 413) << r.body;
    EXPECT_NE(r.body.find("65536"), std::string::npos) << r.body;
  }
  {
    SCOPED_TRACE("chunked");
    RawConnection conn(app_->port());
    std::string req = "PUT /api/v1/settings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                      admin_ + "\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string chunk(32 * 1024, 'a');
    for (int i = 0; i < 3; ++i) {
      req += "8000\r\n" + chunk + "\r\n";
    }
    conn.Send(req);
    std::string got;
    EXPECT_TRUE(conn.ReadToClose(&got, seconds(5))) << got;
    EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 413") << got;
  }
  {
    SCOPED_TRACE("within the limit");
    const HttpResponse r = Call("PUT", "/api/v1/settings", admin_, R"({"approval_mode":true})");
    EXPECT_EQ(r.status, 200) << r.body;
  }
}

// Issue 18: an archive chunk may be up to 8 MiB, but only for the host that started the upload
// and never beyond what its announced size (reserved within its quota) still leaves; every
// other route keeps its limit (1 MiB on agent routes, 64 KiB on the others). All decided on the
// headers: each refusal comes before a byte of the body was sent.
TEST_F(HttpLimitsTest, ArchiveChunksTakeMoreOnlyWithinTheirUploadAndOthersKeepTheirLimits) {
  const std::string log = "/var/log/app.log";
  protocol::Command c;
  c.id = "cmd-archive-1";
  c.action = "log.archive_truncate";
  c.params = Json{{"path", log}};
  c.expires_at = SystemClock().Now() + std::chrono::minutes(1);
  app_->commands().Send("web-1", c);
  const int64_t announced = 12 << 20;
  HttpResponse r = Call("POST", "/agent/v1/archive", agent_,
                        DumpJson(Json{{"host", "web-1"}, {"path", log}, {"size", announced}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string id = ParseJson(r.body).value_or(Json::object()).value("upload_id", "");
  const std::string web2 = Enroll("web-2");
  struct Case {
    std::string name;
    std::string request_line;
    std::string token;  // "" for none
    size_t length;
    std::string want_status;
  };
  const std::string chunk = "PUT /agent/v1/archive/" + id + "?offset=0 HTTP/1.1";
  const std::vector<Case> cases = {
      {"a chunk over 8 MiB", chunk, agent_, (8u << 20) + 1, "413"},
      {"a chunk without a credential", chunk, "", 4u << 20, "401"},
      {"a chunk to another host's upload", chunk, web2, 4u << 20, "403"},
      {"a chunk to no upload", "PUT /agent/v1/archive/0123abcd?offset=0 HTTP/1.1", agent_,
       4u << 20, "404"},
      {"another agent route over 1 MiB", "POST /agent/v1/results HTTP/1.1", agent_,
       (1u << 20) + 1, "413"},
      {"an operator route over 64 KiB", "PUT /api/v1/settings HTTP/1.1", admin_, (64u << 10) + 1,
       "413"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    RawConnection conn(app_->port());
    std::string head = k.request_line + "\r\nHost: x\r\nContent-Type: application/octet-stream" +
                       "\r\nContent-Length: " + std::to_string(k.length) + "\r\n";
    if (!k.token.empty()) {
      head += "Authorization: Bearer " + k.token + "\r\n";
    }
    conn.Send(head + "\r\n");
    std::string got;
    EXPECT_TRUE(conn.ReadToClose(&got, seconds(5))) << "no answer (and no close) in 5 s: " << got;
    EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 " + k.want_status) << got;
  }
  // The owner may send 8 MiB at once; then only the 4 MiB the announced size leaves.
  r = Call("PUT", "/agent/v1/archive/" + id + "?offset=0", agent_, std::string(8u << 20, 'a'));
  ASSERT_EQ(r.status, 200) << r.body;
  {
    SCOPED_TRACE("a chunk beyond the announced size");
    RawConnection conn(app_->port());
    conn.Send("PUT /agent/v1/archive/" + id + "?offset=" + std::to_string(8u << 20) +
              " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + agent_ +
              "\r\nContent-Length: " + std::to_string((4u << 20) + 1) + "\r\n\r\n");
    std::string got;
    EXPECT_TRUE(conn.ReadToClose(&got, seconds(5))) << got;
    EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 413") << got;
    EXPECT_NE(got.find(std::to_string(4u << 20)), std::string::npos) << got;  // names the limit
  }
  r = Call("PUT", "/agent/v1/archive/" + id + "?offset=" + std::to_string(8u << 20), agent_,
           std::string(4u << 20, 'b'));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ParseJson(r.body).value_or(Json::object()).value("received", int64_t{0}), announced);
}

TEST_F(HttpLimitsTest, MetricsNeedAViewerToken) {
  const std::string viewer = CreateToken("scraper", "viewer");
  EXPECT_EQ(Call("GET", "/metrics", "").status, 401);
  EXPECT_EQ(Call("GET", "/metrics", "not-a-token").status, 401);
  EXPECT_EQ(Call("GET", "/metrics", agent_).status, 403);  // a host's credential
  const HttpResponse r = Call("GET", "/metrics", viewer);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("medic_hosts{status=\"healthy\"}"), std::string::npos) << r.body;
  EXPECT_EQ(Call("GET", "/metrics", admin_).status, 200);
}

class PublicMetricsTest : public HttpLimitsTest {
 protected:
  void SetUp() override {
    metrics_public_ = true;
    StartServer();
  }
};

TEST_F(PublicMetricsTest, MetricsArePublicWhenConfigured) {
  const HttpResponse r = Call("GET", "/metrics", "");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("medic_hosts{status=\"healthy\"}"), std::string::npos) << r.body;
}

class ConnectionCapsTest : public HttpLimitsTest {
 protected:
  void SetUp() override {
    max_connections_ = 12;
    max_per_address_ = 4;
    StartServer();
  }
};

// One address may hold 4 connections here: a 5th from it is closed at once, while another
// address is served.
TEST_F(ConnectionCapsTest, ExtraConnectionsFromOneAddressAreClosedAtOnce) {
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<RawConnection>(app_->port(), "127.0.0.2"));
    held.back()->Send("GET / HTTP/1.1\r\n");
  }
  RawConnection extra(app_->port(), "127.0.0.2");
  EXPECT_TRUE(extra.ClosedWithin(seconds(5)));
  EXPECT_EQ(Call("GET", "/api/v1/hosts", admin_).status, 200);
  EXPECT_GE(Metric("medic_http_connections_rejected_total{reason=\"per_address\"}"), 1);
}

// A fleet behind one address: kept-alive connections on which a client was authenticated do not
// count against the address's cap while they idle between requests (an agent's report
// connection idles most of each second). Connections that only ever reached a public route
// still do.
TEST_F(ConnectionCapsTest, AuthenticatedIdleConnectionsDoNotCountAgainstTheirAddress) {
  std::vector<std::unique_ptr<RawConnection>> agents;
  for (int i = 0; i < 8; ++i) {  // twice the address's cap of 4
    agents.push_back(std::make_unique<RawConnection>(app_->port(), "127.0.0.6"));
    agents.back()->Send("GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                        admin_ + "\r\n\r\n");
    const std::string answer = agents.back()->ReadResponse(seconds(10));
    ASSERT_NE(answer.find("HTTP/1.1 200"), std::string::npos) << i << ": " << answer;
  }
  // All 8 idle now, and each still serves its next request.
  for (auto& agent : agents) {
    agent->Send("GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin_ +
                "\r\n\r\n");
    EXPECT_NE(agent->ReadResponse(seconds(10)).find("HTTP/1.1 200"), std::string::npos);
  }
  EXPECT_EQ(Metric("medic_http_connections_rejected_total{reason=\"per_address\"}"), 0);

  // A public route authenticates nobody: those idle connections count, a 5th is closed.
  std::vector<std::unique_ptr<RawConnection>> anonymous;
  for (int i = 0; i < 4; ++i) {
    anonymous.push_back(std::make_unique<RawConnection>(app_->port(), "127.0.0.7"));
    anonymous.back()->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_NE(anonymous.back()->ReadResponse(seconds(10)).find("HTTP/1.1 200"),
              std::string::npos);
  }
  RawConnection extra(app_->port(), "127.0.0.7");
  EXPECT_TRUE(extra.ClosedWithin(seconds(5)));
}

// With the total cap reached by connections that never finish their headers, a new one evicts
// the oldest of them, and an authenticated request is answered.
TEST_F(ConnectionCapsTest, AtTheTotalCapTheOldestHalfOpenConnectionGivesWay) {
  std::vector<std::unique_ptr<RawConnection>> held;
  const char* sources[] = {"127.0.0.3", "127.0.0.4", "127.0.0.5"};
  for (const char* source : sources) {
    for (int i = 0; i < 4; ++i) {
      held.push_back(std::make_unique<RawConnection>(app_->port(), source));
      held.back()->Send("GET / HTTP/1.1\r\n");
    }
  }
  // 12 held: the cap. The admin's request evicts the oldest one still waiting for headers.
  const HttpResponse r = Call("GET", "/api/v1/hosts", admin_);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(held.front()->ClosedWithin(seconds(5)));
  EXPECT_GE(Metric("medic_http_connections_evicted_total"), 1);
}

}  // namespace
}  // namespace medic::server
