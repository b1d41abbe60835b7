#include "transport/mbedtls_http_client.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <mbedtls/asn1.h>
#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>  // MBEDTLS_ERR_ENTROPY_SOURCE_FAILED
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>  // the MBEDTLS_ERR_NET_* codes only
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace medic {

namespace {

constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

// ECDHE only (forward secrecy), AEAD only; ECDSA first: medic-server's own keys are P-256.
const int kCipherSuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    0,
};

// Key exchange and certificate curves. P-256 first: medic-server's keys are P-256, so the key
// exchange then runs the same code as the signature check and X25519's is never paged in
// (mbed TLS's own default starts with P-521, several times slower; the server takes the
// client's order).
const mbedtls_ecp_group_id kCurves[] = {
    MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_SECP521R1, MBEDTLS_ECP_DP_NONE,
};

// The DRBG's entropy: the kernel's, straight from getrandom(2) (mbed TLS's entropy collector
// would only hash the same bytes once more through SHA-512).
int GetRandom(void*, unsigned char* out, size_t len) {
  while (len > 0) {
    const ssize_t n = ::getrandom(out, len, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
    }
    out += n;
    len -= static_cast<size_t>(n);
  }
  return 0;
}

std::string MbedError(int rc) {
  char buf[160];
  mbedtls_strerror(rc, buf, sizeof(buf));
  return std::string(buf);
}

// "sha256//BASE64" of the certificate's DER SubjectPublicKeyInfo (curl's pin form).
std::string PinOf(const mbedtls_x509_crt& crt) {
  unsigned char digest[32];
  if (mbedtls_sha256_ret(crt.pk_raw.p, crt.pk_raw.len, digest, 0) != 0) {
    return "";
  }
  unsigned char b64[64];
  size_t len = 0;
  if (mbedtls_base64_encode(b64, sizeof(b64), &len, digest, sizeof(digest)) != 0) {
    return "";
  }
  return "sha256//" + std::string(reinterpret_cast<char*>(b64), len);
}

// Whether the certificate lists `ip` (4 or 16 bytes) as an iPAddress subject alternative name.
// mbed TLS 2.28 keeps only DNS names in subject_alt_names, so this reads the extension itself.
bool NamesIpAddress(const mbedtls_x509_crt& crt, const unsigned char* ip, size_t ip_len) {
  unsigned char* p = crt.v3_ext.p;
  if (p == nullptr) {
    return false;
  }
  const unsigned char* end = p + crt.v3_ext.len;
  size_t len = 0;
  // v3_ext holds "Extensions ::= SEQUENCE OF Extension" (its [3] wrapper already taken off).
  if (p < end && *p == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 3) &&
      mbedtls_asn1_get_tag(&p, end, &len, *p) != 0) {
    return false;
  }
  if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) {
    return false;
  }
  end = p + len;
  while (p < end) {
    // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) !=
        0) {
      return false;
    }
    const unsigned char* ext_end = p + len;
    mbedtls_x509_buf oid{MBEDTLS_ASN1_OID, 0, nullptr};
    if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID) != 0) {
      return false;
    }
    oid.p = p;
    p += oid.len;
    int critical = 0;
    (void)mbedtls_asn1_get_bool(&p, ext_end, &critical);  // optional: p stays when absent
    if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0) {
      return false;
    }
    if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_ALT_NAME, &oid) != 0) {
      p += len;
      continue;
    }
    // GeneralNames ::= SEQUENCE OF GeneralName; iPAddress is [7] IMPLICIT OCTET STRING.
    const unsigned char* value_end = p + len;
    if (mbedtls_asn1_get_tag(&p, value_end, &len,
                             MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) {
      return false;
    }
    const unsigned char* names_end = p + len;
    while (p < names_end) {
      const unsigned char tag = *p++;
      if (mbedtls_asn1_get_len(&p, names_end, &len) != 0) {
        return false;
      }
      if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && len == ip_len &&
          std::memcmp(p, ip, ip_len) == 0) {
        return true;
      }
      p += len;
    }
    return false;
  }
  return false;
}

// What every connection of one client shares. Owned by the client; immovable (mbed TLS keeps
// pointers into it).
struct TlsConfig {
  TlsConfig() {
    mbedtls_ssl_config_init(&conf);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&own_cert);
    mbedtls_pk_init(&own_key);
  }
  ~TlsConfig() {
    mbedtls_pk_free(&own_key);
    mbedtls_x509_crt_free(&own_cert);
    mbedtls_x509_crt_free(&ca);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_ssl_config_free(&conf);
  }
  TlsConfig(const TlsConfig&) = delete;
  TlsConfig& operator=(const TlsConfig&) = delete;

  mbedtls_ssl_config conf;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_x509_crt ca;
  mbedtls_x509_crt own_cert;
  mbedtls_pk_context own_key;
  bool check_chain = false;  // chain and host name; false with a pin and no CA file
  std::string trusted;       // "the CA file /x.pem", "the system's CAs (...)"
};

Result<std::unique_ptr<TlsConfig>> LoadTlsConfig(const TlsOptions& tls) {
  auto c = std::make_unique<TlsConfig>();
  static const unsigned char kPersonal[] = "medic-agent tls";
  if (int rc =
          mbedtls_ctr_drbg_seed(&c->drbg, GetRandom, nullptr, kPersonal, sizeof(kPersonal) - 1);
      rc != 0) {
    return Internal("cannot seed the random generator: " + MbedError(rc));
  }
  if (int rc =
          mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT);
      rc != 0) {
    return Internal("mbedtls_ssl_config_defaults: " + MbedError(rc));
  }
  mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                               MBEDTLS_SSL_MINOR_VERSION_3);  // TLS 1.2
  mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
  mbedtls_ssl_conf_ciphersuites(&c->conf, kCipherSuites);
  mbedtls_ssl_conf_curves(&c->conf, kCurves);
  // Not REQUIRED: with a pin and no CA file nothing must chain. TlsStream's verify callback
  // decides instead (chain, host name, pin) and stops the handshake when it refuses.
  mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);

  c->check_chain = !tls.ca_file.empty() || tls.pin.empty();
  if (c->check_chain) {
    const std::string bundle = tls.ca_file.empty() ? kSystemCaBundle : tls.ca_file;
    c->trusted =
        tls.ca_file.empty() ? "the system's CAs (" + bundle + ")" : "the CA file " + bundle;
    const int rc = mbedtls_x509_crt_parse_file(&c->ca, bundle.c_str());
    // A positive rc counts certificates that did not parse: fine in a bundle with others.
    if (rc < 0 || c->ca.version == 0) {
      return Unavailable("cannot read " + c->trusted + ": " +
                         (rc < 0 ? MbedError(rc) : "no certificate in it"));
    }
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, nullptr);
  }
  if (!tls.cert_file.empty() || !tls.key_file.empty()) {
    if (tls.cert_file.empty()) {
      return Unavailable("a client key (" + tls.key_file + ") without a client certificate");
    }
    if (int rc = mbedtls_x509_crt_parse_file(&c->own_cert, tls.cert_file.c_str()); rc != 0) {
      return Unavailable("cannot read the client certificate " + tls.cert_file + ": " +
                         (rc < 0 ? MbedError(rc) : "a certificate in it does not parse"));
    }
    const std::string key_file = tls.key_file.empty() ? tls.cert_file : tls.key_file;
    if (int rc = mbedtls_pk_parse_keyfile(&c->own_key, key_file.c_str(), nullptr); rc != 0) {
      return Unavailable("cannot read the client key " + key_file + ": " + MbedError(rc));
    }
    if (int rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->own_cert, &c->own_key); rc != 0) {
      return Unavailable("cannot use the client certificate " + tls.cert_file + ": " +
                         MbedError(rc));
    }
  }
  return c;
}

// One TLS session over a connected non-blocking socket; owns the socket.
class TlsStream : public ByteStream {
 public:
  explicit TlsStream(int fd) : fd_(fd) { mbedtls_ssl_init(&ssl_); }
  ~TlsStream() override {
    if (established_) {
      (void)mbedtls_ssl_close_notify(&ssl_);  // best effort, never waits
    }
    mbedtls_ssl_free(&ssl_);
    ::close(fd_);
  }
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // The handshake and the checks of TlsOptions, before `deadline`. REQUIRES: config and tls
  // outlive the call.
  Status Handshake(const TlsConfig& config, const TlsOptions& tls, const HttpUrl& url,
                   Deadline deadline) {
    if (int rc = mbedtls_ssl_setup(&ssl_, &config.conf); rc != 0) {
      return Internal("mbedtls_ssl_setup: " + MbedError(rc));
    }
    config_ = &config;
    tls_ = &tls;
    host_ = url.host;
    // An IP address is neither sent as SNI (RFC 6066) nor matched by mbed TLS 2.28, which knows
    // DNS names only: NamesIpAddress checks it.
    if (::inet_pton(AF_INET, url.host.c_str(), ip_) == 1) {
      ip_len_ = 4;
    } else if (::inet_pton(AF_INET6, url.host.c_str(), ip_) == 1) {
      ip_len_ = 16;
    } else if (int rc = mbedtls_ssl_set_hostname(&ssl_, url.host.c_str()); rc != 0) {
      return Unavailable("bad host name " + url.host + ": " + MbedError(rc));
    }
    mbedtls_ssl_set_verify(&ssl_, &TlsStream::VerifyCallback, this);
    mbedtls_ssl_set_bio(&ssl_, this, &TlsStream::SendCallback, &TlsStream::RecvCallback, nullptr);
    for (;;) {
      const int rc = mbedtls_ssl_handshake(&ssl_);
      if (rc == 0) {
        break;
      }
      if (!refusal_.empty()) {  // VerifyCallback stopped the handshake
        return Unavailable(refusal_);
      }
      RETURN_IF_ERROR(Wait(rc, deadline, "in the TLS handshake", "TLS handshake failed"));
    }
    established_ = true;
    if (!verified_) {
      return Unavailable("the server's certificate was not verified");
    }
    // What mbed TLS checks after the chain: the key's curve, the key usage extensions.
    const uint32_t after = mbedtls_ssl_get_verify_result(&ssl_) & ~chain_flags_;
    if (config.check_chain && after != 0) {
      return Unavailable("certificate verification failed: " + VerifyInfo(after));
    }
    return OkStatus();
  }

  Status Write(std::string_view data, Deadline deadline) override {
    size_t sent = 0;
    while (sent < data.size()) {
      const int rc = mbedtls_ssl_write(
          &ssl_, reinterpret_cast<const unsigned char*>(data.data()) + sent, data.size() - sent);
      if (rc > 0) {
        sent += static_cast<size_t>(rc);
        continue;
      }
      RETURN_IF_ERROR(Wait(rc, deadline, "sending the request", "send"));
    }
    return OkStatus();
  }

  Result<size_t> Read(char* buf, size_t size, Deadline deadline) override {
    for (;;) {
      const int rc = mbedtls_ssl_read(&ssl_, reinterpret_cast<unsigned char*>(buf), size);
      if (rc > 0) {
        return static_cast<size_t>(rc);
      }
      if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == MBEDTLS_ERR_SSL_CONN_EOF) {
        return size_t{0};
      }
      RETURN_IF_ERROR(Wait(rc, deadline, "waiting for the response", "receive"));
    }
  }

  bool IdleAndOpen() override {
    if (mbedtls_ssl_get_bytes_avail(&ssl_) > 0) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;  // readable: closed by the server, an alert, or stray bytes
  }

 private:
  // For rc, an mbed TLS result that is not success: waits for the socket when mbed TLS wants
  // it to be readable or writable, else the error, `what` first.
  Status Wait(int rc, Deadline deadline, const char* waiting, const char* what) {
    if (rc == MBEDTLS_ERR_SSL_WANT_READ) {
      return WaitForFd(fd_, POLLIN, deadline, waiting);
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
      return WaitForFd(fd_, POLLOUT, deadline, waiting);
    }
    if (socket_errno_ != 0) {
      return Unavailable(std::string(what) + ": " + std::strerror(socket_errno_));
    }
    if (rc == MBEDTLS_ERR_SSL_CONN_EOF) {
      return Unavailable(std::string(what) + ": connection closed by the server");
    }
    return Unavailable(std::string(what) + ": " + MbedError(rc));
  }

  // Called by mbed TLS for each certificate of the server's chain, the root first and the
  // server's own (depth 0) last, while the handshake reads them: so a refused server is
  // refused before this client sends anything (its certificate included).
  static int VerifyCallback(void* ctx, mbedtls_x509_crt* crt, int depth, uint32_t* flags) {
    auto* self = static_cast<TlsStream*>(ctx);
    self->chain_flags_ |= *flags;
    if (depth != 0) {
      return 0;
    }
    self->verified_ = true;
    self->refusal_ = self->Refusal(*crt);
    return self->refusal_.empty() ? 0 : MBEDTLS_ERR_X509_FATAL_ERROR;
  }

  // Why the server with this certificate (and chain_flags_) is not the one TlsOptions name, or
  // "" when it is.
  std::string Refusal(const mbedtls_x509_crt& peer) const {
    if (config_->check_chain) {
      uint32_t flags = chain_flags_;
      const bool name_ok = ip_len_ > 0 ? NamesIpAddress(peer, ip_, ip_len_)
                                       : (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) == 0;
      flags &= ~static_cast<uint32_t>(MBEDTLS_X509_BADCERT_CN_MISMATCH);
      if ((flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) != 0) {
        return "certificate does not chain to " + config_->trusted;
      }
      if (flags != 0) {
        return "certificate verification failed: " + VerifyInfo(flags);
      }
      if (!name_ok) {
        return "certificate does not match the host name " + host_;
      }
    }
    if (!tls_->pin.empty() && PinOf(peer) != tls_->pin) {
      return "the server's public key does not match the pin " + tls_->pin;
    }
    return "";
  }

  static std::string VerifyInfo(uint32_t flags) {
    char buf[512];
    const int n = mbedtls_x509_crt_verify_info(buf, sizeof(buf), "", flags);
    std::string out(buf, n > 0 ? static_cast<size_t>(n) : 0);
    while (!out.empty() && out.back() == '\n') {
      out.pop_back();
    }
    for (char& ch : out) {
      ch = ch == '\n' ? ';' : ch;
    }
    return out;
  }

  static int SendCallback(void* ctx, const unsigned char* buf, size_t len) {
    auto* self = static_cast<TlsStream*>(ctx);
    const ssize_t n = ::send(self->fd_, buf, len, MSG_NOSIGNAL);
    if (n >= 0) {
      return static_cast<int>(n);
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      return MBEDTLS_ERR_SSL_WANT_WRITE;
    }
    self->socket_errno_ = errno;
    return errno == EPIPE || errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET
                                                 : MBEDTLS_ERR_NET_SEND_FAILED;
  }

  static int RecvCallback(void* ctx, unsigned char* buf, size_t len) {
    auto* self = static_cast<TlsStream*>(ctx);
    const ssize_t n = ::recv(self->fd_, buf, len, 0);
    if (n >= 0) {
      return static_cast<int>(n);  // 0: end of stream, MBEDTLS_ERR_SSL_CONN_EOF to the caller
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      return MBEDTLS_ERR_SSL_WANT_READ;
    }
    self->socket_errno_ = errno;
    return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
  }

  int fd_;
  mbedtls_ssl_context ssl_;
  bool established_ = false;
  int socket_errno_ = 0;  // the socket's error behind the last failed send or receive
  // Set by Handshake for VerifyCallback.
  const TlsConfig* config_ = nullptr;
  const TlsOptions* tls_ = nullptr;
  std::string host_;
  unsigned char ip_[16] = {};
  size_t ip_len_ = 0;  // 4 or 16 when host_ is an IP address
  // What VerifyCallback found.
  uint32_t chain_flags_ = 0;  // of every certificate of the chain
  bool verified_ = false;
  std::string refusal_;
};

// The connector's state: the options, and their files once read.
struct TlsConnector {
  TlsOptions tls;
  std::unique_ptr<TlsConfig> config;  // null until the files were read

  Result<std::unique_ptr<ByteStream>> Connect(const HttpUrl& url, Deadline connect_deadline,
                                              Millis connect_timeout) {
    if (config == nullptr) {
      ASSIGN_OR_RETURN(config, LoadTlsConfig(tls));
    }
    ASSIGN_OR_RETURN(int fd, ConnectTcp(url, connect_deadline, connect_timeout));
    auto stream = std::make_unique<TlsStream>(fd);
    Status shaken = stream->Handshake(*config, tls, url, connect_deadline);
    // The handshake's temporaries (ECDHE and ECDSA arithmetic, the server's chain as parsed,
    // about 100 KiB) are freed now, but glibc would keep those pages in this thread's arena:
    // give them back. Handshakes are rare (connections are kept alive), so this costs little.
    ::malloc_trim(0);
    RETURN_IF_ERROR(shaken);
    return std::unique_ptr<ByteStream>(std::move(stream));
  }
};

}  // namespace

std::unique_ptr<HttpClient> NewMbedTlsHttpClient(const TlsOptions& tls,
                                                 const Http1Options& options) {
  auto state = std::make_shared<TlsConnector>();
  state->tls = tls;
  return NewHttp1Client(
      UrlScheme::kHttps,
      [state](const HttpUrl& url, Deadline connect_deadline, Millis connect_timeout) {
        return state->Connect(url, connect_deadline, connect_timeout);
      },
      options);
}

}  // namespace medic
