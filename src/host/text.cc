#include "host/text.h"

namespace medic::host {

std::string TailLines(std::string_view text, size_t n) {
  if (n == 0 || text.empty()) {
    return "";
  }
  size_t end = text.size();
  if (text[end - 1] == '\n') {
    --end;
  }
  size_t pos = end;
  size_t lines = 0;
  while (pos > 0) {
    if (text[pos - 1] == '\n') {
      ++lines;
      if (lines == n) {
        break;
      }
    }
    --pos;
  }
  return std::string(text.substr(pos));
}

std::string HeadLines(std::string_view text, size_t n) {
  size_t pos = 0;
  for (size_t i = 0; i < n && pos < text.size(); ++i) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      return std::string(text);
    }
    pos = nl + 1;
  }
  return std::string(text.substr(0, pos));
}

bool CapText(std::string* text, size_t cap, bool keep_tail) {
  if (text->size() <= cap) {
    return false;
  }
  if (keep_tail) {
    text->erase(0, text->size() - cap);
  } else {
    text->resize(cap);
  }
  return true;
}

}  // namespace medic::host
