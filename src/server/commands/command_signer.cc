#include "server/commands/command_signer.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "core/files.h"
#include "core/log.h"

namespace medic::server {
namespace {

struct PKeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free_all(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, PKeyFree>;
using Bio = std::unique_ptr<BIO, BioFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string OpenSslError(const std::string& what) {
  const unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e != 0) {
    ERR_error_string_n(e, buf, sizeof(buf));
  }
  ERR_clear_error();
  return what + ": " + buf;
}

std::string Base64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                                static_cast<int>(len));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool IsP256(EVP_PKEY* key) {
  char group[64] = "";
  size_t len = 0;
  return EVP_PKEY_is_a(key, "EC") &&
         EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &len) == 1 &&
         std::string(group, len) == "prime256v1";
}

class OpenSslCommandSigner : public CommandSigner {
 public:
  OpenSslCommandSigner(PKey key, std::string public_key)
      : key_(std::move(key)), public_key_(std::move(public_key)) {}

  const std::string& public_key() const override { return public_key_; }

  Result<std::string> Sign(const std::string& envelope) const override {
    const std::string message = protocol::kEnvelopeContext + envelope;
    MdCtx ctx(EVP_MD_CTX_new());
    size_t len = 0;
    if (!ctx ||
        EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len,
                       reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1) {
      return Internal(OpenSslError("cannot sign a command"));
    }
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1) {
      return Internal(OpenSslError("cannot sign a command"));
    }
    return Base64(reinterpret_cast<const unsigned char*>(sig.data()), len);
  }

 private:
  PKey key_;  // EVP_DigestSign on one key from several threads is safe: each has its own ctx
  std::string public_key_;
};

Result<PKey> ReadKey(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Unavailable("cannot read the command-signing key " + path + ": " +
                       std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    return FailedPrecondition("the command-signing key " + path +
                              " is readable by others (mode " +
                              std::to_string(st.st_mode & 0777) +
                              " in decimal); chmod 600 it and start again");
  }
  ASSIGN_OR_RETURN(std::string pem, ReadFile(path));
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PKey key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key || !IsP256(key.get())) {
    ERR_clear_error();
    return FailedPrecondition(path + " is not a P-256 private key (PEM); move it away to have "
                                     "medic-server make a new one, then enrol every agent again");
  }
  return key;
}

Result<PKey> MakeKey(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), 0700));
  }
  PKey key(EVP_EC_gen("P-256"));
  Bio bio(BIO_new(BIO_s_mem()));
  if (!key || !bio ||
      PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal(OpenSslError("cannot make the command-signing key"));
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  RETURN_IF_ERROR(WriteFileAtomic(path, std::string_view(data, static_cast<size_t>(len)), 0600));
  LogInfo("made the command-signing key " + path);
  return key;
}

}  // namespace

Result<std::unique_ptr<CommandSigner>> LoadOrCreateCommandSigner(const std::string& path) {
  struct stat st {};
  Result<PKey> key = ::stat(path.c_str(), &st) == 0 ? ReadKey(path) : MakeKey(path);
  if (!key) {
    return key.error();
  }
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key->get(), &der);
  if (len <= 0) {
    return Internal(OpenSslError("cannot encode the command-signing public key"));
  }
  std::string public_key = Base64(der, static_cast<size_t>(len));
  OPENSSL_free(der);
  return std::unique_ptr<CommandSigner>(
      std::make_unique<OpenSslCommandSigner>(std::move(*key), std::move(public_key)));
}

void SigningCommandSink::Send(const std::string& host, protocol::Command command) {
  command.host = host;
  command.nonce = RandomHex(16);
  command.envelope = protocol::EnvelopeOf(command);
  Result<std::string> signature = signer_.Sign(command.envelope);
  if (!signature) {
    LogError("command " + command.id + " for " + host + " is not sent: " +
             signature.error().message);
    return;
  }
  command.signature = std::move(*signature);
  next_.Send(host, std::move(command));
}

}  // namespace medic::server
