#pragma once

#include <string>
#include <string_view>

namespace medic {

// Lowercase hex SHA-256 of data.
std::string Sha256Hex(std::string_view data);

// Lowercase hex HMAC-SHA256 (RFC 2104) of data under key (any length, any bytes).
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// True when SHA-256 runs on the processor's SHA instructions (x86-64 with SHA-NI, chosen at
// start by CPUID). SetSha256Accelerated(false) selects the portable code (tests check both);
// true selects the instructions only where the processor has them. Returns the previous setting.
bool Sha256Accelerated();
bool SetSha256Accelerated(bool on);

// Incremental SHA-256 for data that arrives in pieces (files streamed in chunks).
// Not thread-safe; one object per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data);
  // Lowercase hex digest of everything given so far; the object must not be used afterwards.
  std::string HexDigest();

 private:
  void* ctx_;  // the hash state (sha256.cc)
};

}  // namespace medic
