#include "transport/plain_http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>

#include "gtest/gtest.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/subprocess.h"

namespace medic {
namespace {

using test::CannedReply;
using test::FakeHttpServer;
using test::RecordedRequest;
using Then = CannedReply::Then;

// Bytes sent as they are: for answers a well-formed reply cannot give (chunked, HTTP/1.0,
// interim, garbage, cut short), then what the server does next.
CannedReply Raw(std::string bytes, Then then = Then::kStall) {
  return {.raw = std::move(bytes), .then = then};
}

HttpRequest Get(const std::string& url, int timeout_ms = 3000) {
  HttpRequest r;
  r.url = url;
  r.timeout = Millis(timeout_ms);
  r.connect_timeout = Millis(timeout_ms);
  return r;
}

std::string HeaderOf(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) {
      return v;
    }
  }
  return "<none>";
}

TEST(ParseHttpUrlTest, SplitsHostPortAndTarget) {
  auto u = ParseHttpUrl("http://127.0.0.1:8080/api/v1/x?a=b#frag");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->target, "/api/v1/x?a=b");
  EXPECT_EQ(u->host_header, "127.0.0.1:8080");

  u = ParseHttpUrl("HTTP://example.com");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->target, "/");
  EXPECT_EQ(u->host_header, "example.com");

  u = ParseHttpUrl("http://[::1]:9/health");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->host_header, "[::1]:9");

  u = ParseHttpUrl("http://h?q=1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->target, "/?q=1");
}

TEST(ParseHttpUrlTest, RejectsWhatItCannotHandle) {
  for (const char* bad :
       {"https://x/", "ftp://x", "http://", "http://:80/", "http://u:p@h/", "http://h:0/",
        "http://h:65536/", "http://h:12x/", "http://[::1/", "http://h/a b", "http://h/a\r\nX: y"}) {
    EXPECT_FALSE(ParseHttpUrl(bad)) << bad;
  }
}

TEST(PlainHttpClientTest, GetReturnsStatusHeadersAndBody) {
  FakeHttpServer server([](const RecordedRequest& req) {
    if (req.target == "/missing") {
      return CannedReply{404, R"({"error":"no"})"};
    }
    return CannedReply{200, "{\"host\":\"" + req.Header("host") + "\",\"ua\":\"" +
                                req.Header("user-agent") + "\"}"};
  });
  auto client = NewPlainHttpClient();
  HttpRequest req = Get(server.url() + "/health");
  req.headers.emplace_back("User-Agent", "medic-agent");
  auto resp = client->Do(req);
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->content_type, "application/json");
  EXPECT_EQ(HeaderOf(*resp, "Content-Type"), "application/json");
  EXPECT_EQ(resp->body, "{\"host\":\"127.0.0.1:" + std::to_string(server.port()) +
                            "\",\"ua\":\"medic-agent\"}");

  auto missing = client->Do(Get(server.url() + "/missing"));
  ASSERT_TRUE(missing) << "an HTTP error status is a response, not an error";
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, R"({"error":"no"})");
}

TEST(PlainHttpClientTest, PostAndPutSendTheBodyWithContentLength) {
  FakeHttpServer server([](const RecordedRequest& req) {
    return CannedReply{
        201, req.method + " " + req.target + " " + req.Header("content-type") + " " + req.body};
  });
  auto client = NewPlainHttpClient();
  for (const std::string method : {"POST", "PUT"}) {
    HttpRequest req = Get(server.url() + "/api/v1/reports");
    req.method = method;
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = std::string(100'000, 'x');  // more than one send
    auto resp = client->Do(req);
    ASSERT_TRUE(resp) << resp.error().message;
    EXPECT_EQ(resp->status, 201);
    EXPECT_EQ(resp->body, method + " /api/v1/reports application/json " + req.body);
  }
  HttpRequest empty = Get(server.url() + "/x");
  empty.method = "POST";
  auto resp = client->Do(empty);
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->body, "POST /x  ");
}

TEST(PlainHttpClientTest, ReusesOneKeepAliveConnection) {
  std::atomic<int> answered{0};
  FakeHttpServer server([&answered](const RecordedRequest&) {
    return CannedReply{200, "answer " + std::to_string(++answered)};
  });
  auto client = NewPlainHttpClient();
  for (int i = 1; i <= 5; ++i) {
    auto resp = client->Do(Get(server.url("/health")));
    ASSERT_TRUE(resp) << resp.error().message;
    EXPECT_EQ(resp->body, "answer " + std::to_string(i));
  }
  EXPECT_EQ(server.connections(), 1);
}

TEST(PlainHttpClientTest, ReadsChunkedBodiesWithExtensionsAndTrailers) {
  FakeHttpServer server([](const RecordedRequest&) {
    return Raw(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Test: yes\r\n\r\n"
        "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
        Then::kKeepAlive);
  });
  auto client = NewPlainHttpClient();
  for (int i = 0; i < 2; ++i) {  // the connection is still usable after a chunked body
    auto resp = client->Do(Get(server.url("/")));
    ASSERT_TRUE(resp) << resp.error().message;
    EXPECT_EQ(resp->body, "hello 0123456789");
    EXPECT_EQ(HeaderOf(*resp, "X-Test"), "yes");
  }
  EXPECT_EQ(server.connections(), 1);
}

TEST(PlainHttpClientTest, BodyUntilCloseAndConnectionCloseOpenANewConnectionNextTime) {
  FakeHttpServer server([](const RecordedRequest& req) {
    if (req.target == "/eof") {
      return Raw("HTTP/1.0 200 OK\r\n\r\nuntil the end", Then::kClose);
    }
    return CannedReply{.body = "ok", .headers = {{"Connection", "close"}}, .then = Then::kClose};
  });
  auto client = NewPlainHttpClient();
  auto a = client->Do(Get(server.url("/eof")));
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->body, "until the end");
  auto b = client->Do(Get(server.url("/close")));
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->body, "ok");
  auto c = client->Do(Get(server.url("/close")));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(server.connections(), 3);
}

TEST(PlainHttpClientTest, ServerClosingAnIdleConnectionIsNotAnError) {
  // Answers one request per connection, keep-alive advertised, then closes: the client finds
  // its idle connection dead and opens a new one.
  FakeHttpServer server(
      [](const RecordedRequest&) { return CannedReply{.body = "ok", .then = Then::kClose}; });
  auto client = NewPlainHttpClient();
  for (int i = 0; i < 3; ++i) {
    auto resp = client->Do(Get(server.url("/")));
    ASSERT_TRUE(resp) << i << ": " << resp.error().message;
    EXPECT_EQ(resp->body, "ok");
  }
  EXPECT_EQ(server.connections(), 3);
}

TEST(PlainHttpClientTest, ServerThatNeverAnswersTimesOutWithinTheDeadline) {
  FakeHttpServer server([](const RecordedRequest&) { return Raw(""); });
  auto client = NewPlainHttpClient();
  const auto start = std::chrono::steady_clock::now();
  auto resp = client->Do(Get(server.url("/"), 300));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, ErrorCode::kDeadlineExceeded) << resp.error().message;
  EXPECT_GE(took, std::chrono::milliseconds(290));
  EXPECT_LT(took, std::chrono::milliseconds(2000));
}

TEST(PlainHttpClientTest, ServerThatStallsInTheBodyTimesOut) {
  FakeHttpServer server([](const RecordedRequest&) {
    return Raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part");
  });
  auto client = NewPlainHttpClient();
  auto resp = client->Do(Get(server.url("/"), 300));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, ErrorCode::kDeadlineExceeded) << resp.error().message;
}

TEST(PlainHttpClientTest, ConnectionRefusedIsUnavailable) {
  // A port bound, never listening, for the whole test.
  const test::HeldPort closed;
  ASSERT_GT(closed.port(), 0);
  auto client = NewPlainHttpClient();
  auto resp = client->Do(Get("http://127.0.0.1:" + std::to_string(closed.port()) + "/health"));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(resp.error().message.find("Connection refused"), std::string::npos)
      << resp.error().message;
}

TEST(PlainHttpClientTest, EmptyReplyIsUnavailable) {
  FakeHttpServer server([](const RecordedRequest&) {
    return Raw("", Then::kClose);  // without a word
  });
  auto client = NewPlainHttpClient();
  auto resp = client->Do(Get(server.url("/")));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(resp.error().message.find("Empty reply"), std::string::npos) << resp.error().message;
}

TEST(PlainHttpClientTest, GarbageAndOversizedResponsesAreErrors) {
  FakeHttpServer server([](const RecordedRequest& req) {
    if (req.target == "/garbage") {
      return Raw("SSH-2.0-OpenSSH_9.2\r\n\r\n");
    }
    if (req.target == "/bad-length") {
      return Raw("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n");
    }
    if (req.target == "/bad-chunk") {
      return Raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    }
    if (req.target == "/huge-header") {
      return Raw("HTTP/1.1 200 OK\r\nX-Big: " + std::string(200'000, 'a') + "\r\n\r\n");
    }
    return Raw("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'b'));
  });
  PlainHttpOptions options;
  options.max_body_bytes = 4096;
  auto client = NewPlainHttpClient(options);
  for (const char* path : {"/garbage", "/bad-length", "/bad-chunk", "/huge-header", "/huge-body"}) {
    auto resp = client->Do(Get(server.url(path), 2000));
    ASSERT_FALSE(resp) << path;
    EXPECT_EQ(resp.error().code, ErrorCode::kUnavailable) << path << ": " << resp.error().message;
  }
}

TEST(PlainHttpClientTest, SkipsInterimAnswers) {
  FakeHttpServer server([](const RecordedRequest&) {
    return Raw("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n");
  });
  auto client = NewPlainHttpClient();
  HttpRequest req = Get(server.url("/"));
  req.method = "POST";
  req.body = "{}";
  auto resp = client->Do(req);
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 204);
  EXPECT_EQ(resp->body, "");
  EXPECT_EQ(HeaderOf(*resp, "X-A"), "b");
}

TEST(PlainHttpClientTest, RejectsHeaderInjection) {
  auto client = NewPlainHttpClient();
  HttpRequest req = Get("http://127.0.0.1:9/");
  req.headers.emplace_back("X-Evil", "a\r\nHost: other");
  auto resp = client->Do(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, ErrorCode::kInvalidArgument);
}

TEST(PlainHttpClientTest, WorksOverIpv6Loopback) {
  FakeHttpServer server(
      [](const RecordedRequest& req) {
        const bool host_ok = req.Header("Host").rfind("[::1]:", 0) == 0;
        return CannedReply{200, host_ok ? "v6" : "no"};
      },
      FakeHttpServer::Loopback::kIpv6);
  if (!server.listening()) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  auto client = NewPlainHttpClient();
  auto resp = client->Do(Get("http://[::1]:" + std::to_string(server.port()) + "/"));
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->body, "v6");
}

class FakeClient : public HttpClient {
 public:
  Result<HttpResponse> Do(const HttpRequest& req) override {
    HttpResponse r;
    r.status = 299;
    r.body = "fake " + req.url;
    return r;
  }
};

TEST(SchemeRoutingHttpClientTest, HttpsGoesToTheOtherClientCreatedOnFirstUse) {
  FakeHttpServer server([](const RecordedRequest&) { return CannedReply{200, "plain"}; });
  int created = 0;
  auto client = NewSchemeRoutingHttpClient(NewPlainHttpClient(), [&created] {
    ++created;
    return std::make_unique<FakeClient>();
  });
  auto plain = client->Do(Get(server.url() + "/"));
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->body, "plain");
  EXPECT_EQ(created, 0) << "no https:// yet: the other client is not created";
  for (int i = 0; i < 2; ++i) {
    auto tls = client->Do(Get("https://example.invalid/x"));
    ASSERT_TRUE(tls);
    EXPECT_EQ(tls->body, "fake https://example.invalid/x");
  }
  EXPECT_EQ(created, 1);
}

}  // namespace
}  // namespace medic
