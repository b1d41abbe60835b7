// SHA-256 (FIPS 180-4) without OpenSSL: medic-agent hashes archived logs with it, and mapping
// libcrypto for that alone would cost the agent 1.4 MiB of resident memory (docs/BENCHMARKS.md).
// tests/core/sha256_test.cc checks it against the standard vectors and OpenSSL.
// On x86-64 processors with the SHA extensions (Intel since Goldmont/Ice Lake, AMD since Zen) the
// blocks go through the SHA-NI instructions (CompressBlocksShaNi, the sequence of Intel's
// "New Instructions Supporting the Secure Hash Algorithm on Intel Architecture Processors",
// 2013): about 2 GB/s against about 0.2 GB/s for the portable rounds, which made the hash the
// bottleneck of log.archive_truncate (docs/BENCHMARKS.md, "Archive"). The choice is made once,
// by CPUID; both paths are checked by the same tests (the test runs both where it can).
#include "core/sha256.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace medic {

namespace {

constexpr uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

struct State {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  unsigned char block[64];
  size_t used = 0;     // bytes in block
  uint64_t total = 0;  // bytes hashed
};

uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

void Compress(State& s, const unsigned char* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = (uint32_t{p[4 * i]} << 24) | (uint32_t{p[4 * i + 1]} << 16) |
           (uint32_t{p[4 * i + 2]} << 8) | uint32_t{p[4 * i + 3]};
  }
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s.h[0], b = s.h[1], c = s.h[2], d = s.h[3];
  uint32_t e = s.h[4], f = s.h[5], g = s.h[6], h = s.h[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 =
        h + (Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
    const uint32_t t2 = (Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s.h[0] += a;
  s.h[1] += b;
  s.h[2] += c;
  s.h[3] += d;
  s.h[4] += e;
  s.h[5] += f;
  s.h[6] += g;
  s.h[7] += h;
}

#if defined(__x86_64__)
// `n` 64-byte blocks at p through SHA-NI. Message words for rounds 4i..4i+3 are w[i & 3]; the
// state is kept as ABEF / CDGH, the layout _mm_sha256rnds2_epu32 takes.
__attribute__((target("sha,sse4.1,ssse3"))) void CompressBlocksShaNi(uint32_t h[8],
                                                                     const unsigned char* p,
                                                                     size_t n) {
  const __m128i kByteSwap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&h[0]));     // DCBA
  __m128i state1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&h[4]));  // HGFE
  tmp = _mm_shuffle_epi32(tmp, 0xB1);                                         // CDAB
  state1 = _mm_shuffle_epi32(state1, 0x1B);                                   // EFGH
  __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);                           // ABEF
  state1 = _mm_blend_epi16(state1, tmp, 0xF0);                                // CDGH
  for (; n > 0; --n, p += 64) {
    const __m128i abef = state0;
    const __m128i cdgh = state1;
    __m128i w[4];
    for (int i = 0; i < 16; ++i) {
      if (i < 4) {
        w[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i)),
                                kByteSwap);
      } else {
        // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16], four at a time.
        const __m128i t7 = _mm_alignr_epi8(w[(i - 1) & 3], w[(i - 2) & 3], 4);
        w[i & 3] = _mm_sha256msg2_epu32(
            _mm_add_epi32(_mm_sha256msg1_epu32(w[i & 3], w[(i - 3) & 3]), t7), w[(i - 1) & 3]);
      }
      __m128i msg =
          _mm_add_epi32(w[i & 3], _mm_loadu_si128(reinterpret_cast<const __m128i*>(&kK[4 * i])));
      state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
      msg = _mm_shuffle_epi32(msg, 0x0E);
      state0 = _mm_sha256rnds2_epu32(state0, state1, msg);
    }
    state0 = _mm_add_epi32(state0, abef);
    state1 = _mm_add_epi32(state1, cdgh);
  }
  tmp = _mm_shuffle_epi32(state0, 0x1B);        // FEBA
  state1 = _mm_shuffle_epi32(state1, 0xB1);     // DCHG
  state0 = _mm_blend_epi16(tmp, state1, 0xF0);  // DCBA
  state1 = _mm_alignr_epi8(state1, tmp, 8);     // HGFE
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&h[0]), state0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&h[4]), state1);
}

bool CpuHasShaNi() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) {
    return false;
  }
  const bool ssse3 = (c & (1u << 9)) != 0;
  const bool sse41 = (c & (1u << 19)) != 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) {
    return false;
  }
  return ssse3 && sse41 && (b & (1u << 29)) != 0;
}
#endif

// Which block function runs: SHA-NI where the processor has it, unless a test turned it off.
std::atomic<bool> use_sha_ni {
#if defined(__x86_64__)
  CpuHasShaNi()
#else
  false
#endif
};

void CompressBlocks(State& s, const unsigned char* p, size_t n) {
#if defined(__x86_64__)
  if (use_sha_ni.load(std::memory_order_relaxed)) {
    return CompressBlocksShaNi(s.h, p, n);
  }
#endif
  for (; n > 0; --n, p += 64) {
    Compress(s, p);
  }
}

void Update(State& s, std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  s.total += n;
  if (s.used > 0) {
    const size_t take = std::min(n, 64 - s.used);
    std::memcpy(s.block + s.used, p, take);
    s.used += take;
    p += take;
    n -= take;
    if (s.used < 64) {
      return;
    }
    CompressBlocks(s, s.block, 1);
    s.used = 0;
  }
  CompressBlocks(s, p, n / 64);
  p += n / 64 * 64;
  n %= 64;
  std::memcpy(s.block, p, n);
  s.used = n;
}

// The 32-byte digest of everything given so far; `s` must not be used afterwards.
std::string FinishRaw(State& s) {
  const uint64_t bits = s.total * 8;
  const unsigned char pad = 0x80;
  Update(s, std::string_view(reinterpret_cast<const char*>(&pad), 1));
  const unsigned char zero[64] = {};
  const size_t fill = s.used <= 56 ? 56 - s.used : 120 - s.used;
  Update(s, std::string_view(reinterpret_cast<const char*>(zero), fill));
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) {
    len[i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
  }
  Update(s, std::string_view(reinterpret_cast<const char*>(len), 8));
  std::string out;
  out.reserve(32);
  for (uint32_t word : s.h) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((word >> shift) & 0xff));
    }
  }
  return out;
}

std::string Hex(std::string_view raw) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Finish(State& s) { return Hex(FinishRaw(s)); }

}  // namespace

bool Sha256Accelerated() { return use_sha_ni.load(); }

bool SetSha256Accelerated(bool on) {
#if defined(__x86_64__)
  on = on && CpuHasShaNi();
#else
  on = false;
#endif
  return use_sha_ni.exchange(on);
}

std::string Sha256Hex(std::string_view data) {
  State s;
  Update(s, data);
  return Finish(s);
}

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  // RFC 2104: H((K ^ opad) || H((K ^ ipad) || data)), K padded to the 64-byte block.
  std::string k(key);
  if (k.size() > 64) {
    State ks;
    Update(ks, k);
    k = FinishRaw(ks);
  }
  k.resize(64, '\0');
  std::string ipad(64, '\0');
  std::string opad(64, '\0');
  for (size_t i = 0; i < 64; ++i) {
    ipad[i] = static_cast<char>(k[i] ^ 0x36);
    opad[i] = static_cast<char>(k[i] ^ 0x5c);
  }
  State inner;
  Update(inner, ipad);
  Update(inner, data);
  const std::string inner_digest = FinishRaw(inner);
  State outer;
  Update(outer, opad);
  Update(outer, inner_digest);
  return Finish(outer);
}

Sha256::Sha256() : ctx_(new State) {}

Sha256::~Sha256() { delete static_cast<State*>(ctx_); }

void Sha256::Update(std::string_view data) { medic::Update(*static_cast<State*>(ctx_), data); }

std::string Sha256::HexDigest() { return Finish(*static_cast<State*>(ctx_)); }

}  // namespace medic
