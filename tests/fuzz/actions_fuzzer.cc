// Action validation (src/protocol/actions.*): the input is an action name, a newline, and the
// params as JSON text. ValidateAction must never throw, and what it accepts must render and
// validate again unchanged (the server validates, the agent validates the same params again).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/json.h"
#include "protocol/actions.h"
#include "tests/fuzz/fuzz_check.h"

namespace protocol = medic::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const size_t nl = text.find('\n');
  const std::string_view name = text.substr(0, nl);
  const std::string_view params_text =
      nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  (void)protocol::FindAction(name);
  (void)protocol::SignalNumber(name);
  (void)protocol::ChaosModeParams(name);
  auto params = medic::ParseJson(params_text);
  if (!params.has_value()) {
    return 0;
  }
  auto action = protocol::ValidateAction(name, *params);
  if (!action.has_value()) {
    return 0;
  }
  FUZZ_CHECK(action->name == name);
  FUZZ_CHECK(action->params.is_object());
  (void)protocol::RenderCommandLine(*action);
  const std::string dumped = medic::DumpJson(action->params);
  // The agent receives the params as JSON text and validates them once more.
  auto reparsed = medic::ParseJson(dumped);
  FUZZ_CHECK(reparsed.has_value());
  auto again = protocol::ValidateAction(action->name, *reparsed);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(medic::DumpJson(again->params) == dumped);
  return 0;
}
