#pragma once

// Small pure text helpers for command output.

#include <cstddef>
#include <string>
#include <string_view>

namespace medic::agent {

// The last n lines of text (a trailing newline does not count as an empty line).
std::string TailLines(std::string_view text, size_t n);
// The first n lines of text.
std::string HeadLines(std::string_view text, size_t n);
// Shortens *text to at most cap bytes, keeping its head (or its tail when keep_tail).
// Returns true when something was cut.
bool CapText(std::string* text, size_t cap, bool keep_tail);

}  // namespace medic::agent
