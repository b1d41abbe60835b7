#pragma once

// Text from hosts, models or a server, made safe to show on a terminal or in a page: valid
// UTF-8 without control characters. C0 controls other than \n and \t, and DEL, become "\xNN";
// C1 controls (which terminals also obey) "\u00NN"; bidirectional marks and overrides, which
// reorder the text around them, "\uNNNN"; invalid bytes U+FFFD; CR LF becomes LF.
// Printable text, including multi-byte UTF-8, is unchanged.

#include <string>
#include <string_view>

namespace medic {

std::string SanitizeForDisplay(std::string_view s);

// The same, for one line of a log: newlines and tabs too become "\n" and "\t", so text from a
// host cannot start a forged line in the server's log (or send escapes to whoever tails it).
std::string SanitizeForLogLine(std::string_view s);

}  // namespace medic
