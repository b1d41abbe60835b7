// medic-server over HTTPS: its own CA and certificate (--tls-self-signed), an operator's
// certificate (--tls-cert/--tls-key), and the clients' two ways to know it is the right server:
// a CA file, or the pin of its public key. A server that is not the one they know is refused.

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "core/files.h"
#include "server/app/server_app.h"
#include "server/app/tls_files.h"
#include "tests/fakes/temp_dir.h"
#include "transport/http_client.h"
#include "transport/mbedtls_http_client.h"

namespace medic::server {
namespace {

int ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<int>(st.st_mode & 0777);
}

TEST(TlsFilesTest, MadeOnceKeptAfterKeysPrivate) {
  test::TempDir dir;
  auto made = EnsureSelfSignedTls(dir.File("tls"), {"127.0.0.1", "medic.example"});
  ASSERT_TRUE(made.has_value()) << made.error().ToString();
  EXPECT_TRUE(made->created);
  EXPECT_EQ(ModeOf(dir.File("tls")), 0700);
  EXPECT_EQ(ModeOf(dir.File("tls/ca.key")), 0600);
  EXPECT_EQ(ModeOf(made->key_file), 0600);
  auto fingerprint = CertificateFingerprint(made->ca_file);
  auto pin = PublicKeyPin(made->cert_file);
  ASSERT_TRUE(fingerprint.has_value() && pin.has_value());
  EXPECT_EQ(fingerprint->size(), 32u * 3 - 1);  // "AB:…" for 32 bytes
  EXPECT_EQ(pin->rfind("sha256//", 0), 0u);
  EXPECT_EQ(pin->size(), 8u + 44);

  auto again = EnsureSelfSignedTls(dir.File("tls"), {"127.0.0.1"});
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(CertificateFingerprint(again->ca_file).value(), *fingerprint);
  EXPECT_EQ(PublicKeyPin(again->cert_file).value(), *pin);

  EXPECT_FALSE(CertificateFingerprint(dir.File("nope.pem")).has_value());
  ASSERT_TRUE(WriteFileAtomic(dir.File("junk.pem"), "not a certificate").has_value());
  EXPECT_FALSE(PublicKeyPin(dir.File("junk.pem")).has_value());
}

class TlsServerTest : public ::testing::Test {
 protected:
  Status Start(ServerConfig config) {
    config.listen = "127.0.0.1:0";
    config.data_dir = dir_.File("data");
    auto deps = MakeRealServerDeps(config, clock_);
    if (!deps.has_value()) {
      return deps.error();
    }
    auto app = ServerApp::Create(config, std::move(*deps));
    if (!app.has_value()) {
      return app.error();
    }
    app_ = std::move(*app);
    RETURN_IF_ERROR(app_->Start());
    url_ = "https://127.0.0.1:" + std::to_string(app_->port());
    return OkStatus();
  }
  void TearDown() override {
    if (app_) {
      app_->Stop();
    }
  }
  Result<HttpResponse> Get(const TlsOptions& tls, const std::string& path = "/healthz") {
    HttpRequest req;
    req.url = url_ + path;
    return NewCurlHttpClient(tls)->Do(req);
  }

  test::TempDir dir_;
  SystemClock clock_;
  std::unique_ptr<ServerApp> app_;
  std::string url_;
};

TEST_F(TlsServerTest, SelfSignedServesHttpsThatTheCaOrThePinVerifies) {
  ServerConfig config;
  config.tls_self_signed = true;
  ASSERT_TRUE(Start(config).has_value());
  const std::string ca = dir_.File("data/tls/ca.pem");
  const std::string pin = PublicKeyPin(dir_.File("data/tls/server.pem")).value();

  auto by_ca = Get({.ca_file = ca});
  ASSERT_TRUE(by_ca.has_value()) << by_ca.error().ToString();
  EXPECT_EQ(by_ca->status, 200);
  auto by_pin = Get({.pin = pin});
  ASSERT_TRUE(by_pin.has_value()) << by_pin.error().ToString();
  EXPECT_EQ(by_pin->status, 200);
  auto both = Get({.ca_file = ca, .pin = pin});
  ASSERT_TRUE(both.has_value()) << both.error().ToString();

  // Not the server they know: another CA, the system's CAs, another key's pin.
  test::TempDir other;
  auto other_tls = EnsureSelfSignedTls(other.File("tls"), {"127.0.0.1"});
  ASSERT_TRUE(other_tls.has_value());
  auto other_ca = Get({.ca_file = other_tls->ca_file});
  ASSERT_FALSE(other_ca.has_value());
  // Why, in curl's words, not only "SSL peer certificate … was not OK".
  EXPECT_NE(other_ca.error().message.find("(SSL certificate problem: "), std::string::npos)
      << other_ca.error().ToString();
  EXPECT_FALSE(Get({}).has_value()) << "the system's CAs do not know medic's own CA";
  auto wrong_pin = Get({.pin = PublicKeyPin(other_tls->cert_file).value()});
  ASSERT_FALSE(wrong_pin.has_value());
  EXPECT_NE(wrong_pin.error().message.find("pinned"), std::string::npos)
      << wrong_pin.error().ToString();
  // The right CA does not excuse a wrong pin.
  EXPECT_FALSE(Get({.ca_file = ca, .pin = PublicKeyPin(other_tls->cert_file).value()}).has_value());

  // Plain HTTP to the TLS port gets no API answer.
  HttpRequest plain;
  plain.url = "http://127.0.0.1:" + std::to_string(app_->port()) + "/healthz";
  plain.timeout = Millis(3000);
  auto p = NewCurlHttpClient()->Do(plain);
  EXPECT_TRUE(!p.has_value() || p->status != 200);

  // Over TLS, the dashboard's session cookie is Secure without being told.
  const std::string admin(Trim(ReadFile(dir_.File("data/admin.token")).value()));
  HttpRequest sign_in;
  sign_in.method = "POST";
  sign_in.url = url_ + "/api/v1/session";
  sign_in.headers = {{"Content-Type", "application/json"}};
  sign_in.body = R"({"token":")" + admin + R"("})";
  auto session = NewCurlHttpClient({.ca_file = ca})->Do(sign_in);
  ASSERT_TRUE(session.has_value()) << session.error().ToString();
  ASSERT_EQ(session->status, 200) << session->body;
  bool secure = false;
  for (const auto& [k, v] : session->headers) {
    secure = secure || (k == "Set-Cookie" && v.find("; Secure") != std::string::npos);
  }
  EXPECT_TRUE(secure);
}

// medic-agent's own https:// client (mbed TLS 2.28) against this server (Beast on OpenSSL 3,
// its P-256 key): the same answers as libcurl's above, on one kept-alive connection.
TEST_F(TlsServerTest, TheAgentsMbedTlsClientVerifiesTheServerAsLibcurlDoes) {
  ServerConfig config;
  config.tls_self_signed = true;
  ASSERT_TRUE(Start(config).has_value());
  const std::string ca = dir_.File("data/tls/ca.pem");
  const std::string pin = PublicKeyPin(dir_.File("data/tls/server.pem")).value();
  test::TempDir other;
  auto other_tls = EnsureSelfSignedTls(other.File("tls"), {"127.0.0.1"});
  ASSERT_TRUE(other_tls.has_value());
  const std::string other_pin = PublicKeyPin(other_tls->cert_file).value();
  auto get = [&](HttpClient& client) {
    HttpRequest req;
    req.url = url_ + "/healthz";
    return client.Do(req);
  };

  for (const TlsOptions& good : {TlsOptions{.ca_file = ca}, TlsOptions{.pin = pin},
                                 TlsOptions{.ca_file = ca, .pin = pin}}) {
    SCOPED_TRACE(good.ca_file + " " + good.pin);
    auto client = NewMbedTlsHttpClient(good);
    for (int i = 0; i < 3; ++i) {
      auto r = get(*client);
      ASSERT_TRUE(r.has_value()) << r.error().ToString();
      EXPECT_EQ(r->status, 200);
    }
  }
  struct Refused {
    TlsOptions tls;
    std::string why;
  };
  for (const Refused& bad : std::vector<Refused>{
           {{.ca_file = other_tls->ca_file}, "does not chain to the CA file"},
           {{}, "does not chain to the system's CAs"},
           {{.pin = other_pin}, "public key does not match the pin"},
           {{.ca_file = ca, .pin = other_pin}, "public key does not match the pin"}}) {
    SCOPED_TRACE(bad.why);
    auto r = get(*NewMbedTlsHttpClient(bad.tls));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
    EXPECT_NE(r.error().message.find(bad.why), std::string::npos) << r.error().ToString();
  }
}

TEST_F(TlsServerTest, TheOperatorsCertificateIsUsedAndBadFilesAreClearErrors) {
  test::TempDir pki;
  auto mine = EnsureSelfSignedTls(pki.File("tls"), {"127.0.0.1"});
  ASSERT_TRUE(mine.has_value());
  ServerConfig config;
  config.tls_cert = mine->cert_file;
  config.tls_key = mine->key_file;
  ASSERT_TRUE(Start(config).has_value());
  auto r = Get({.ca_file = mine->ca_file});
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  app_->Stop();
  app_.reset();

  test::TempDir other;
  auto theirs = EnsureSelfSignedTls(other.File("tls"), {"127.0.0.1"});
  ASSERT_TRUE(theirs.has_value());
  struct Case {
    std::string cert, key, error;
  };
  for (const Case& c : std::vector<Case>{
           {mine->cert_file, theirs->key_file, "key values mismatch"},
           {pki.File("nope.pem"), mine->key_file, "cannot load the TLS certificate"},
           {mine->cert_file, pki.File("nope.key"), "cannot load the TLS key"},
           {mine->cert_file, "", "TLS needs both tls_cert and tls_key"}}) {
    ServerConfig bad;
    bad.tls_cert = c.cert;
    bad.tls_key = c.key;
    Status s = Start(bad);
    ASSERT_FALSE(s.has_value()) << c.error;
    EXPECT_NE(s.error().message.find(c.error), std::string::npos) << s.error().ToString();
    if (app_) {
      app_->Stop();
      app_.reset();
    }
  }
  ServerConfig both;
  both.tls_self_signed = true;
  both.tls_cert = mine->cert_file;
  both.tls_key = mine->key_file;
  Status s = Start(both);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("exclude each other"), std::string::npos);
}

}  // namespace
}  // namespace medic::server
