#pragma once

// The server's own TLS files, for a server started with --tls-self-signed: a small CA of its
// own and a server certificate signed by it, made once in DATA_DIR/tls/ and kept. Agents and the
// CLI then verify the server against ca.pem (--ca-file / tls.ca_file) or pin its public key
// (--pin / tls.pin, the `pin` printed at start). A certificate of the operator's own PKI needs
// none of this: --tls-cert and --tls-key.

#include <string>
#include <vector>

#include "core/result.h"

namespace medic::server {

struct TlsFiles {
  std::string ca_file;    // DIR/ca.pem (its key, DIR/ca.key, 0600, signs nothing else)
  std::string cert_file;  // DIR/server.pem: the server certificate, then the CA's
  std::string key_file;   // DIR/server.key, 0600
  bool created = false;   // made now (else found)
};

// Makes DIR (0700) and the files when they are missing; keeps them when present. The CA is a
// P-256 key valid 10 years; the server certificate, valid 2 years, names every entry of `names`
// (IP addresses as IP, anything else as DNS) as a subject alternative name.
Result<TlsFiles> EnsureSelfSignedTls(const std::string& dir, const std::vector<std::string>& names);

// "AB:CD:…" (SHA-256 of the DER certificate, the first in a PEM file), as `openssl x509
// -fingerprint -sha256` prints it.
Result<std::string> CertificateFingerprint(const std::string& pem_file);

// "sha256//BASE64": the SHA-256 of the first certificate's public key (SubjectPublicKeyInfo),
// the form curl's --pinnedpubkey, the agent's tls.pin and the CLI's --pin take.
Result<std::string> PublicKeyPin(const std::string& pem_file);

}  // namespace medic::server
