#pragma once

// FUZZ_CHECK: an invariant a harness asserts about the code under test. A violation prints the
// condition and aborts, which libFuzzer reports as a crash (and keeps the input).

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)
