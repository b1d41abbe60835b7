#pragma once

// Byte sizes as configs write them.

#include <cstdint>
#include <string_view>

#include "core/result.h"

namespace medic {

// "4096", "512MiB", "1GiB", "2G", "64KiB" (K/M/G/T and KB/MB/GB/TB are binary too).
// InvalidArgument for anything else, and for sizes that overflow 64 bits.
Result<uint64_t> ParseByteSize(std::string_view text);

}  // namespace medic
