#include "core/units.h"

#include <charconv>
#include <string>

namespace medic {

Result<uint64_t> ParseByteSize(std::string_view text) {
  uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr == text.data()) {
    return InvalidArgument("'" + std::string(text) + "' is not a byte size");
  }
  std::string_view unit = text.substr(static_cast<size_t>(ptr - text.data()));
  struct Unit {
    std::string_view name;
    int shift;
  };
  static constexpr Unit kUnits[] = {{"", 0},     {"B", 0},   {"K", 10},   {"KiB", 10}, {"M", 20},
                                    {"MiB", 20}, {"G", 30},  {"GiB", 30}, {"T", 40},   {"TiB", 40},
                                    {"KB", 10},  {"MB", 20}, {"GB", 30},  {"TB", 40}};
  for (const Unit& u : kUnits) {
    if (unit == u.name) {
      if (u.shift > 0 && value > (UINT64_MAX >> u.shift)) {
        return InvalidArgument("'" + std::string(text) + "' is too large");
      }
      return value << u.shift;
    }
  }
  return InvalidArgument("'" + std::string(text) +
                         "' has an unknown unit (use B, KiB, MiB, GiB, TiB)");
}

}  // namespace medic
