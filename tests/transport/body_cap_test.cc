// HttpRequest::max_body_bytes, honoured by both clients (libcurl and plain sockets): an endless
// or oversized body is cut at the cap, the status and headers come back with body_truncated, and
// the client stays usable. Against the loopback fake, which streams a body until the client
// hangs up (FakeHttpServer's Then::kStream).

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/fakes/http_server.h"
#include "transport/http_client.h"
#include "transport/plain_http_client.h"

namespace medic {
namespace {

using test::CannedReply;
using test::FakeHttpServer;
using Then = CannedReply::Then;

constexpr size_t kCap = 4096;

struct Client {
  const char* name;
  std::function<std::unique_ptr<HttpClient>()> make;
};

std::vector<Client> Clients() {
  return {{"curl", [] { return NewCurlHttpClient(); }},
          {"plain", [] { return NewPlainHttpClient(); }}};
}

HttpRequest Get(const std::string& url, size_t cap) {
  HttpRequest r;
  r.url = url;
  // Generous: the cap, not a deadline, must end these transfers (no timed assertion).
  r.timeout = Millis(60'000);
  r.max_body_bytes = cap;
  return r;
}

// Endless bodies in the three framings a client must handle.
struct Framing {
  const char* name;
  std::string head;    // status line, header fields and the body's first bytes, {"ok":
  std::string stream;  // sent over and over after the head
};

std::vector<Framing> EndlessBodies() {
  const std::string block(16 * 1024, 'x');
  char chunk_size[16];
  std::snprintf(chunk_size, sizeof(chunk_size), "%zx", block.size());
  return {
      {"content-length 1 GiB",
       "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n{\"ok\":", block},
      {"chunked, no end",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{\"ok\":\r\n",
       std::string(chunk_size) + "\r\n" + block + "\r\n"},
      {"until close, never closed",
       "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"ok\":", block},
  };
}

TEST(BodyCapTest, AnEndlessBodyIsCutAtTheCapAndTheStatusComesBack) {
  for (const Client& client : Clients()) {
    for (const Framing& f : EndlessBodies()) {
      SCOPED_TRACE(std::string(client.name) + ", " + f.name);
      FakeHttpServer server;
      server.Reply({.raw = f.head, .then = Then::kStream, .stream = f.stream});
      auto http = client.make();
      auto r = http->Do(Get(server.url("/health"), kCap));
      ASSERT_TRUE(r.has_value()) << r.error().ToString();
      EXPECT_EQ(r->status, 200);
      EXPECT_TRUE(r->body_truncated);
      EXPECT_EQ(r->body.size(), kCap);
      EXPECT_EQ(r->body.substr(0, 6), "{\"ok\":");
    }
  }
}

TEST(BodyCapTest, AStatusOtherThan200IsKeptWhenTheBodyIsCut) {
  for (const Client& client : Clients()) {
    SCOPED_TRACE(client.name);
    FakeHttpServer server;
    server.Reply({.raw = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n",
                  .then = Then::kStream,
                  .stream = std::string(8192, 'e')});
    auto r = client.make()->Do(Get(server.url("/"), kCap));
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    EXPECT_EQ(r->status, 503);
    EXPECT_TRUE(r->body_truncated);
    EXPECT_LE(r->body.size(), kCap);
  }
}

TEST(BodyCapTest, ABodyWithinTheCapIsWholeAndTheClientGoesOnServing) {
  for (const Client& client : Clients()) {
    SCOPED_TRACE(client.name);
    FakeHttpServer big;
    big.Reply({.raw = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
               .then = Then::kStream,
               .stream = std::string(1000, 'b')});
    FakeHttpServer small;
    small.ReplyJson(200, std::string(kCap - 2, ' ') + "{}");  // exactly the cap
    auto http = client.make();
    for (int round = 0; round < 2; ++round) {
      SCOPED_TRACE(round);
      auto cut = http->Do(Get(big.url("/"), kCap));
      ASSERT_TRUE(cut.has_value()) << cut.error().ToString();
      EXPECT_TRUE(cut->body_truncated);
      EXPECT_EQ(cut->body.size(), kCap);
      auto whole = http->Do(Get(small.url("/"), kCap));
      ASSERT_TRUE(whole.has_value()) << whole.error().ToString();
      EXPECT_EQ(whole->status, 200);
      EXPECT_FALSE(whole->body_truncated);
      EXPECT_EQ(whole->body.size(), kCap);
      EXPECT_EQ(whole->content_type, "application/json");
    }
    // The truncated exchanges closed their connections: each one needed a new one.
    EXPECT_EQ(big.connections(), 2);
  }
}

// Without a cap the client's own limit stands: a body over it fails the request (here the
// plain client's, set low).
TEST(BodyCapTest, WithoutACapTheClientLimitStillFailsTheRequest) {
  FakeHttpServer server;
  server.Reply({.raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                .then = Then::kStream,
                .stream = "400\r\n" + std::string(0x400, 'z') + "\r\n"});
  PlainHttpOptions options;
  options.max_body_bytes = 64 * 1024;
  auto r = NewPlainHttpClient(options)->Do(Get(server.url("/"), 0));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("response body larger than 65536 bytes"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace medic
