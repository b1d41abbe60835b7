#pragma once

// medic-agent's https:// client: the plain client's HTTP/1.1 (http1_client.h) over a TLS 1.2
// session of mbed TLS 2.28. About 0.5 MiB resident instead of libcurl's ~8 MiB with OpenSSL and
// its ~30 libraries (docs/BENCHMARKS.md, docs/ARCHITECTURE.md). The server, the CLI and the AI
// providers keep the libcurl client.
//
// It verifies the server as the libcurl client does for the same TlsOptions:
//   - ca_file: the certificate must chain to a CA of that PEM file and name the URL's host (a
//     DNS name as a DNS subject alternative name or, without any, as the common name; an IP
//     address as an IP subject alternative name);
//   - pin ("sha256//BASE64" of the DER SubjectPublicKeyInfo): the server's public key must hash
//     to it. Without ca_file the pin alone identifies the server (neither chain nor name is
//     checked); with ca_file both must hold;
//   - neither: the system's CAs (/etc/ssl/certs/ca-certificates.crt, loaded only then: some
//     hundred KiB) and the host name;
//   - cert_file and key_file (key_file empty: the key is in cert_file): a client certificate.
// Refusals are Unavailable errors that name the reason ("certificate does not chain to the CA
// file ...", "public key does not match the pin", "certificate does not match the host name
// ..."), and the handshake stops there: nothing is sent to a refused server. TLS 1.2 and later
// only, ECDHE key exchange with AES-GCM or ChaCha20-Poly1305, randomness from mbed TLS's
// CTR-DRBG seeded from getrandom(2).
//
// Files are read on the first request, and again on the next one while reading fails (so a CA
// file put in place later is found). Not thread-safe: one instance per thread.

#include <memory>

#include "transport/http1_client.h"
#include "transport/http_client.h"

namespace medic {

std::unique_ptr<HttpClient> NewMbedTlsHttpClient(const TlsOptions& tls,
                                                 const Http1Options& options = {});

}  // namespace medic
