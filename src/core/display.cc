#include "core/display.h"

#include <cstdint>

namespace medic {

namespace {

constexpr char kHex[] = "0123456789abcdef";

void AppendEscapedByte(std::string& out, std::string_view prefix, unsigned v) {
  out += prefix;
  out += kHex[(v >> 4) & 0xf];
  out += kHex[v & 0xf];
}

}  // namespace

std::string SanitizeForDisplay(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') {
        // dropped: the \n follows
      } else if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f)) {
        out += static_cast<char>(c);
      } else {
        AppendEscapedByte(out, "\\x", c);
      }
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4, cp = c & 0x07, min = 0x10000;
    }
    bool valid = len != 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      valid = (cc & 0xc0) == 0x80;
      cp = (cp << 6) | (cc & 0x3f);
    }
    valid = valid && cp >= min && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
    if (!valid) {
      out += "\xef\xbf\xbd";
      ++i;
    } else if (cp <= 0x9f) {
      AppendEscapedByte(out, "\\u00", cp);
      i += len;
    } else if (cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
               (cp >= 0x2066 && cp <= 0x2069)) {
      // Direction marks and overrides reorder what follows ("Trojan Source"): shown, not obeyed.
      AppendEscapedByte(out, "\\u", cp >> 8);
      AppendEscapedByte(out, "", cp & 0xff);
      i += len;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

std::string SanitizeForLogLine(std::string_view s) {
  bool plain = true;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    plain = plain && c >= 0x20 && c < 0x7f;
  }
  if (plain) {
    return std::string(s);  // the common case: printable ASCII, nothing to do
  }
  std::string out;
  for (const char c : SanitizeForDisplay(s)) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace medic
