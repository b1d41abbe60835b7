#include "core/sha256.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <random>

namespace medic {
namespace {

// Every test runs on both block functions: the portable rounds and, where the processor has
// them, the SHA-NI instructions (on a processor without them both runs are portable).
class Sha256Test : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { previous_ = SetSha256Accelerated(GetParam()); }
  void TearDown() override { SetSha256Accelerated(previous_); }
  bool previous_ = false;
};
INSTANTIATE_TEST_SUITE_P(BothPaths, Sha256Test, ::testing::Values(false, true),
                         [](const auto& info) {
                           return std::string(info.param ? "ShaNiWhereAvailable" : "Portable");
                         });
using HmacSha256Test = Sha256Test;
INSTANTIATE_TEST_SUITE_P(BothPaths, HmacSha256Test, ::testing::Values(false, true),
                         [](const auto& info) {
                           return std::string(info.param ? "ShaNiWhereAvailable" : "Portable");
                         });

// FIPS 180-4 / NIST CAVP examples.
TEST_P(Sha256Test, StandardVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1'000'000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// RFC 4231 test cases 1, 2 and 6 (a key longer than the block is hashed first).
TEST_P(HmacSha256Test, Rfc4231Vectors) {
  EXPECT_EQ(HmacSha256Hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(HmacSha256Hex(std::string(131, '\xaa'),
                          "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_NE(HmacSha256Hex("Jefe", "a"), HmacSha256Hex("Jeff", "a"));
}

std::string OpenSslHex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

// Every length around the 64-byte block and the 56-byte padding edge, whole and in pieces.
TEST_P(Sha256Test, MatchesOpenSslWholeAndIncremental) {
  std::mt19937 rng(42);
  for (size_t len = 0; len < 300; ++len) {
    std::string data(len, '\0');
    for (char& c : data) {
      c = static_cast<char>(rng());
    }
    const std::string want = OpenSslHex(data);
    ASSERT_EQ(Sha256Hex(data), want) << "length " << len;
    Sha256 h;
    size_t pos = 0;
    while (pos < data.size()) {
      const size_t n = std::min<size_t>(1 + rng() % 70, data.size() - pos);
      h.Update(std::string_view(data).substr(pos, n));
      pos += n;
    }
    ASSERT_EQ(h.HexDigest(), want) << "length " << len << " in pieces";
  }
}

// Long inputs in uneven pieces (many blocks per call, as the archive hashes 4 MiB chunks) give
// OpenSSL's digest, and the setting is what the processor allows.
TEST_P(Sha256Test, LongInputsInUnevenPiecesMatchOpenSsl) {
  std::mt19937 rng(7);
  std::string data(3'000'001, '\0');
  for (char& c : data) {
    c = static_cast<char>(rng());
  }
  Sha256 h;
  for (size_t pos = 0; pos < data.size();) {
    const size_t n = std::min<size_t>(1 + rng() % 700'000, data.size() - pos);
    h.Update(std::string_view(data).substr(pos, n));
    pos += n;
  }
  EXPECT_EQ(h.HexDigest(), OpenSslHex(data));
  EXPECT_EQ(Sha256Hex(data), OpenSslHex(data));
  if (!GetParam()) {
    EXPECT_FALSE(Sha256Accelerated());
  }
}

}  // namespace
}  // namespace medic
