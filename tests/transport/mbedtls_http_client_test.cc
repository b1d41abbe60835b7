// The agent's https:// client (mbed TLS) against a real loopback TLS server: OpenSSL, as in
// medic-server, in front of the plain FakeHttpServer (tests/fakes/tls_frontend.h), with the
// certificates medic-server makes for itself (EnsureSelfSignedTls: a P-256 CA and server key).
// The same verification as the libcurl client: the CA file, the pin, both, the host name, the
// system's CAs; and the plain client's HTTP/1.1 (chunked, keep-alive, deadlines) over TLS.

#include "transport/mbedtls_http_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/files.h"
#include "gtest/gtest.h"
#include "server/app/tls_files.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/temp_dir.h"
#include "tests/fakes/tls_frontend.h"

namespace medic {
namespace {

using server::EnsureSelfSignedTls;
using server::PublicKeyPin;
using server::TlsFiles;
using test::CannedReply;
using test::FakeHttpServer;
using test::RecordedRequest;
using test::TempDir;
using test::TlsFrontend;
using Then = CannedReply::Then;

HttpRequest Get(const std::string& url, int timeout_ms = 5000) {
  HttpRequest r;
  r.url = url;
  r.timeout = Millis(timeout_ms);
  r.connect_timeout = Millis(timeout_ms);
  return r;
}

bool Contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// A FakeHttpServer behind a TlsFrontend that presents the certificate of `tls`.
struct TlsServer {
  TlsServer(const TlsFiles& tls, FakeHttpServer::Handler handler)
      : http(std::move(handler)), front(http.port(), {tls.cert_file, tls.key_file}) {}
  FakeHttpServer http;
  TlsFrontend front;
};

class MbedTlsHttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // What medic-server --tls-self-signed makes: names 127.0.0.1, ::1 and localhost.
    auto made = EnsureSelfSignedTls(dir_.File("tls"), {"127.0.0.1", "::1", "localhost"});
    ASSERT_TRUE(made.has_value()) << made.error().ToString();
    tls_ = *made;
    auto other = EnsureSelfSignedTls(dir_.File("other"), {"127.0.0.1"});
    ASSERT_TRUE(other.has_value()) << other.error().ToString();
    other_ = *other;
    pin_ = PublicKeyPin(tls_.cert_file).value();
    other_pin_ = PublicKeyPin(other_.cert_file).value();
  }

  TempDir dir_;
  TlsFiles tls_;
  TlsFiles other_;  // another CA and key
  std::string pin_;
  std::string other_pin_;
};

CannedReply Hello(const RecordedRequest& req) {
  return CannedReply{
      200, req.method + " " + req.target + " " + req.body, {{"X-Seen-Host", req.Header("Host")}}};
}

TEST(ParseUrlTest, HttpsUrlsDefaultToPort443) {
  auto u = ParseUrl("https://medic.example/api?x=1", UrlScheme::kHttps);
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->host, "medic.example");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/api?x=1");
  EXPECT_EQ(u->host_header, "medic.example");
  u = ParseUrl("HTTPS://[::1]:8443", UrlScheme::kHttps);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->host_header, "[::1]:8443");
  EXPECT_FALSE(ParseUrl("http://medic.example/", UrlScheme::kHttps));
  EXPECT_FALSE(ParseUrl("https://medic.example/", UrlScheme::kHttp));
}

TEST_F(MbedTlsHttpClientTest, TheCaFileVerifiesTheServerAndItsAddress) {
  TlsServer server(tls_, Hello);
  ASSERT_TRUE(server.front.listening());
  auto client = NewMbedTlsHttpClient({.ca_file = tls_.ca_file});
  auto get = client->Do(Get(server.front.url("/healthz")));
  ASSERT_TRUE(get) << get.error().ToString();
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "GET /healthz ");

  HttpRequest post = Get(server.front.url("/api/v1/samples"));
  post.method = "POST";
  post.body = std::string(100'000, 'x');  // several TLS records
  auto posted = client->Do(post);
  ASSERT_TRUE(posted) << posted.error().ToString();
  EXPECT_EQ(posted->body.size(), std::string("POST /api/v1/samples ").size() + 100'000);

  // A DNS name the certificate lists: sent as SNI and matched by mbed TLS.
  auto by_name = NewMbedTlsHttpClient({.ca_file = tls_.ca_file})
                     ->Do(Get("https://localhost:" + std::to_string(server.front.port()) + "/"));
  ASSERT_TRUE(by_name) << by_name.error().ToString();
  EXPECT_EQ(by_name->status, 200);
}

TEST_F(MbedTlsHttpClientTest, ThePinAloneIdentifiesTheServer) {
  // The pin is the whole check: another CA signed the certificate, and it names another host.
  auto foreign = EnsureSelfSignedTls(dir_.File("foreign"), {"medic.example"});
  ASSERT_TRUE(foreign.has_value());
  TlsServer server(*foreign, Hello);
  auto resp = NewMbedTlsHttpClient({.pin = PublicKeyPin(foreign->cert_file).value()})
                  ->Do(Get(server.front.url("/x")));
  ASSERT_TRUE(resp) << resp.error().ToString();
  EXPECT_EQ(resp->body, "GET /x ");
}

TEST_F(MbedTlsHttpClientTest, WithCaFileAndPinBothMustHold) {
  TlsServer server(tls_, Hello);
  auto both =
      NewMbedTlsHttpClient({.ca_file = tls_.ca_file, .pin = pin_})->Do(Get(server.front.url("/")));
  ASSERT_TRUE(both) << both.error().ToString();

  auto wrong_pin = NewMbedTlsHttpClient({.ca_file = tls_.ca_file, .pin = other_pin_})
                       ->Do(Get(server.front.url("/")));
  ASSERT_FALSE(wrong_pin);
  EXPECT_TRUE(Contains(wrong_pin.error().message, "public key does not match the pin"))
      << wrong_pin.error().message;

  auto wrong_ca = NewMbedTlsHttpClient({.ca_file = other_.ca_file, .pin = pin_})
                      ->Do(Get(server.front.url("/")));
  ASSERT_FALSE(wrong_ca);
  EXPECT_TRUE(Contains(wrong_ca.error().message, "does not chain")) << wrong_ca.error().message;
  EXPECT_EQ(server.http.requests().size(), 1u) << "a refused server never sees a request";
}

TEST_F(MbedTlsHttpClientTest, RefusesAServerOfAnotherCa) {
  TlsServer server(tls_, Hello);
  auto resp =
      NewMbedTlsHttpClient({.ca_file = other_.ca_file})->Do(Get(server.front.url("/secret")));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(
      Contains(resp.error().message, "certificate does not chain to the CA file " + other_.ca_file))
      << resp.error().message;
  EXPECT_TRUE(server.http.requests().empty());
}

TEST_F(MbedTlsHttpClientTest, RefusesAWrongPin) {
  TlsServer server(tls_, Hello);
  auto resp = NewMbedTlsHttpClient({.pin = other_pin_})->Do(Get(server.front.url("/secret")));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(Contains(resp.error().message, "public key does not match the pin"))
      << resp.error().message;
  EXPECT_TRUE(server.http.requests().empty());
}

TEST_F(MbedTlsHttpClientTest, RefusesACertificateForAnotherHost) {
  // Signed by the trusted CA, but for medic.example only: neither 127.0.0.1 (an IP address
  // name) nor localhost (a DNS name) matches.
  auto elsewhere = EnsureSelfSignedTls(dir_.File("elsewhere"), {"medic.example", "10.1.2.3"});
  ASSERT_TRUE(elsewhere.has_value());
  TlsServer server(*elsewhere, Hello);
  const std::string port = std::to_string(server.front.port());
  for (const std::string& url : {"https://127.0.0.1:" + port + "/", "https://localhost:" + port}) {
    SCOPED_TRACE(url);
    auto resp = NewMbedTlsHttpClient({.ca_file = elsewhere->ca_file})->Do(Get(url));
    ASSERT_FALSE(resp);
    EXPECT_EQ(resp.error().code, ErrorCode::kUnavailable);
    EXPECT_TRUE(Contains(resp.error().message, "certificate does not match the host name"))
        << resp.error().message;
  }
  EXPECT_TRUE(server.http.requests().empty());
}

TEST_F(MbedTlsHttpClientTest, WithoutCaFileOrPinTheSystemsCasDecide) {
  TlsServer server(tls_, Hello);
  auto resp = NewMbedTlsHttpClient({})->Do(Get(server.front.url("/")));
  ASSERT_FALSE(resp);
  EXPECT_TRUE(Contains(resp.error().message, "does not chain to the system's CAs"))
      << resp.error().message;
}

TEST_F(MbedTlsHttpClientTest, AMissingCaFileIsAClearErrorAndIsReadAgainLater) {
  TlsServer server(tls_, Hello);
  const std::string later = dir_.File("later-ca.pem");
  auto client = NewMbedTlsHttpClient({.ca_file = later});
  auto missing = client->Do(Get(server.front.url("/")));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(Contains(missing.error().message, "cannot read the CA file " + later))
      << missing.error().message;
  ASSERT_TRUE(WriteFileAtomic(later, ReadFile(tls_.ca_file).value()).has_value());
  auto found = client->Do(Get(server.front.url("/")));
  ASSERT_TRUE(found) << found.error().ToString();
}

TEST_F(MbedTlsHttpClientTest, ChunkedBodiesOnOneKeptAliveConnection) {
  TlsServer server(tls_, [](const RecordedRequest&) {
    return CannedReply{
        .raw =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
        .then = Then::kKeepAlive};
  });
  auto client = NewMbedTlsHttpClient({.pin = pin_});
  for (int i = 0; i < 3; ++i) {
    auto resp = client->Do(Get(server.front.url("/")));
    ASSERT_TRUE(resp) << i << ": " << resp.error().ToString();
    EXPECT_EQ(resp->body, "hello 0123456789");
  }
  EXPECT_EQ(server.front.handshakes(), 1);
  EXPECT_EQ(server.http.connections(), 1);
}

TEST_F(MbedTlsHttpClientTest, ServerClosingConnectionsIsNotAnError) {
  // One answer per connection, the second until the end of the stream (close_notify).
  TlsServer server(tls_, [](const RecordedRequest& req) {
    if (req.target == "/eof") {
      return CannedReply{.raw = "HTTP/1.0 200 OK\r\n\r\nuntil the end", .then = Then::kClose};
    }
    return CannedReply{.body = "ok", .then = Then::kClose};
  });
  auto client = NewMbedTlsHttpClient({.ca_file = tls_.ca_file});
  for (const char* path : {"/", "/eof", "/", "/"}) {
    SCOPED_TRACE(path);
    auto resp = client->Do(Get(server.front.url(path)));
    ASSERT_TRUE(resp) << resp.error().ToString();
    EXPECT_EQ(resp->body, std::string(path) == "/eof" ? "until the end" : "ok");
  }
  EXPECT_EQ(server.front.handshakes(), 4);
}

TEST_F(MbedTlsHttpClientTest, AServerThatStallsTimesOut) {
  TlsServer server(tls_, [](const RecordedRequest&) {
    return CannedReply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part",
                       .then = Then::kStall};
  });
  auto resp = NewMbedTlsHttpClient({.pin = pin_})->Do(Get(server.front.url("/"), 300));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, ErrorCode::kDeadlineExceeded) << resp.error().message;
}

TEST_F(MbedTlsHttpClientTest, APeerThatNeverHandshakesTimesOut) {
  // Listens (the kernel completes TCP connections) but never accepts, never speaks TLS.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto resp = NewMbedTlsHttpClient({.pin = pin_})
                  ->Do(Get("https://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), 300));
  ::close(fd);
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, ErrorCode::kDeadlineExceeded) << resp.error().message;
  EXPECT_TRUE(Contains(resp.error().message, "TLS handshake")) << resp.error().message;
}

TEST_F(MbedTlsHttpClientTest, APlainHttpServerIsAnErrorNotAnAnswer) {
  FakeHttpServer plain(Hello);
  auto resp = NewMbedTlsHttpClient({.pin = pin_})
                  ->Do(Get("https://127.0.0.1:" + std::to_string(plain.port()) + "/"));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, ErrorCode::kUnavailable) << resp.error().message;
}

}  // namespace
}  // namespace medic
