#include "server/app/tls_files.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <boost/asio/ip/address.hpp>
#include <functional>
#include <memory>

#include "core/files.h"

namespace medic::server {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

std::string OpenSslError(const std::string& what) {
  const unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e != 0) {
    ERR_error_string_n(e, buf, sizeof(buf));
  }
  ERR_clear_error();
  return what + ": " + buf;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

bool AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    return false;
  }
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A certificate for `key`, signed by `signer` (issued by `issuer`, or self-issued when null).
Result<Cert> MakeCertificate(EVP_PKEY* key, const std::string& common_name, long days,
                             X509* issuer, EVP_PKEY* signer,
                             const std::vector<std::pair<int, std::string>>& extensions) {
  Cert cert(X509_new());
  unsigned char serial[16];
  if (!cert || RAND_bytes(serial, sizeof(serial)) != 1) {
    return Internal(OpenSslError("cannot make a certificate"));
  }
  serial[0] &= 0x7f;  // a positive serial number
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  const bool serial_ok =
      bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(bn);
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!serial_ok || X509_set_version(cert.get(), 2) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * 24 * 3600) == nullptr ||
      X509_set_pubkey(cert.get(), key) != 1 ||
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("medic"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(),
                           issuer != nullptr ? X509_get_subject_name(issuer) : name) != 1) {
    return Internal(OpenSslError("cannot fill the certificate for " + common_name));
  }
  X509* issuer_cert = issuer != nullptr ? issuer : cert.get();
  for (const auto& [nid, value] : extensions) {
    if (!AddExtension(cert.get(), issuer_cert, nid, value)) {
      return Internal(OpenSslError("cannot add the extension " + value));
    }
  }
  if (X509_sign(cert.get(), signer, EVP_sha256()) == 0) {
    return Internal(OpenSslError("cannot sign the certificate for " + common_name));
  }
  return cert;
}

// What `write` puts into a memory BIO, as text.
Result<std::string> ToPem(const std::function<int(BIO*)>& write, const char* what) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) {
    return Internal(OpenSslError(std::string("cannot write ") + what));
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

Result<std::string> ToPem(X509* cert) {
  return ToPem([cert](BIO* b) { return PEM_write_bio_X509(b, cert); }, "a certificate");
}

Result<std::string> ToPem(EVP_PKEY* key) {
  return ToPem(
      [key](BIO* b) {
        return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
      },
      "a key");
}

Result<Cert> ReadFirstCertificate(const std::string& pem_file) {
  ASSIGN_OR_RETURN(std::string pem, ReadFile(pem_file));
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    return InvalidArgument(OpenSslError("no PEM certificate in " + pem_file));
  }
  return cert;
}

std::string SanList(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (n.empty() || n.find_first_of(",\n\r") != std::string::npos) {
      continue;
    }
    boost::system::error_code ec;
    boost::asio::ip::make_address(n, ec);
    out += (out.empty() ? "" : ",") + std::string(ec ? "DNS:" : "IP:") + n;
  }
  return out.empty() ? "IP:127.0.0.1" : out;
}

}  // namespace

Result<TlsFiles> EnsureSelfSignedTls(const std::string& dir,
                                     const std::vector<std::string>& names) {
  TlsFiles f{dir + "/ca.pem", dir + "/server.pem", dir + "/server.key", false};
  const std::string ca_key_file = dir + "/ca.key";
  if (Exists(f.ca_file) && Exists(f.cert_file) && Exists(f.key_file)) {
    return f;
  }
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  PKey ca_key(EVP_EC_gen("P-256"));
  PKey server_key(EVP_EC_gen("P-256"));
  if (!ca_key || !server_key) {
    return Internal(OpenSslError("cannot make a P-256 key"));
  }
  ASSIGN_OR_RETURN(Cert ca, MakeCertificate(ca_key.get(), "medic CA", 3650, nullptr, ca_key.get(),
                                            {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                                             {NID_key_usage, "critical,keyCertSign,cRLSign"},
                                             {NID_subject_key_identifier, "hash"}}));
  ASSIGN_OR_RETURN(
      Cert server,
      MakeCertificate(server_key.get(), "medic-server", 730, ca.get(), ca_key.get(),
                      {{NID_basic_constraints, "critical,CA:FALSE"},
                       {NID_key_usage, "critical,digitalSignature"},
                       {NID_ext_key_usage, "serverAuth"},
                       {NID_subject_key_identifier, "hash"},
                       {NID_authority_key_identifier, "keyid"},
                       {NID_subject_alt_name, SanList(names)}}));
  ASSIGN_OR_RETURN(std::string ca_pem, ToPem(ca.get()));
  ASSIGN_OR_RETURN(std::string ca_key_pem, ToPem(ca_key.get()));
  ASSIGN_OR_RETURN(std::string server_pem, ToPem(server.get()));
  ASSIGN_OR_RETURN(std::string server_key_pem, ToPem(server_key.get()));
  // Keys first: a certificate is never on disk without its key.
  RETURN_IF_ERROR(WriteFileAtomic(ca_key_file, ca_key_pem, 0600));
  RETURN_IF_ERROR(WriteFileAtomic(f.key_file, server_key_pem, 0600));
  RETURN_IF_ERROR(WriteFileAtomic(f.ca_file, ca_pem, 0644));
  RETURN_IF_ERROR(WriteFileAtomic(f.cert_file, server_pem + ca_pem, 0644));
  f.created = true;
  return f;
}

Result<std::string> CertificateFingerprint(const std::string& pem_file) {
  ASSIGN_OR_RETURN(Cert cert, ReadFirstCertificate(pem_file));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &len) != 1) {
    return Internal(OpenSslError("cannot hash " + pem_file));
  }
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += (i ? ":" : "");
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

Result<std::string> PublicKeyPin(const std::string& pem_file) {
  ASSIGN_OR_RETURN(Cert cert, ReadFirstCertificate(pem_file));
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(X509_get0_pubkey(cert.get()), &der);
  if (len <= 0) {
    return Internal(OpenSslError("cannot encode the public key of " + pem_file));
  }
  unsigned char md[32];
  unsigned int md_len = 0;
  const bool ok = EVP_Digest(der, static_cast<size_t>(len), md, &md_len, EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  if (!ok) {
    return Internal(OpenSslError("cannot hash the public key of " + pem_file));
  }
  unsigned char b64[64];
  const int b64_len = EVP_EncodeBlock(b64, md, static_cast<int>(md_len));
  return "sha256//" + std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(b64_len));
}

}  // namespace medic::server
