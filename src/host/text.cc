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

namespace {

// The quoted fields of a log line, in order ("" for an unterminated last one).
std::vector<std::string_view> QuotedFields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while ((pos = line.find('"', pos)) != std::string_view::npos) {
    size_t end = pos + 1;
    while (end < line.size() && line[end] != '"') {
      end += line[end] == '\\' && end + 1 < line.size() ? 2 : 1;
    }
    if (end >= line.size()) {
      break;
    }
    out.push_back(line.substr(pos + 1, end - pos - 1));
    pos = end + 1;
  }
  return out;
}

}  // namespace

bool IsHealthCheckLine(std::string_view line, const std::vector<std::string>& check_paths) {
  const std::vector<std::string_view> fields = QuotedFields(line);
  if (fields.empty()) {
    return false;
  }
  const std::string_view agent = fields.back();
  if (fields.size() >= 2 &&
      (agent == "medic-agent" || agent == "medic-target-check" ||
       agent.starts_with("ELB-HealthChecker/") || agent.starts_with("kube-probe/"))) {
    return true;
  }
  // The request: "METHOD PATH PROTOCOL".
  const std::string_view request = fields.front();
  const size_t sp = request.find(' ');
  if (sp == std::string_view::npos) {
    return false;
  }
  const std::string_view method = request.substr(0, sp);
  std::string_view path = request.substr(sp + 1);
  path = path.substr(0, path.find(' '));
  path = path.substr(0, path.find('?'));
  if (method != "GET" && method != "HEAD") {
    return false;
  }
  for (const std::string& p : check_paths) {
    if (p != "/" && !p.empty() && path == p) {
      return true;
    }
  }
  return false;
}

HealthFilteredTail TailLinesWithoutHealthChecks(std::string_view text, size_t n,
                                                const std::vector<std::string>& check_paths) {
  std::vector<std::string_view> lines;
  LineReader reader(text);
  while (auto line = reader.Next()) {
    lines.push_back(*line);
  }
  HealthFilteredTail out;
  std::vector<std::string_view> kept;
  for (size_t i = lines.size(); i-- > 0 && kept.size() < n;) {
    if (IsHealthCheckLine(lines[i], check_paths)) {
      ++out.omitted;
    } else {
      kept.push_back(lines[i]);
    }
  }
  if (n == 0) {
    return out;
  }
  for (size_t i = kept.size(); i-- > 0;) {
    out.text.append(kept[i]);
    out.text.push_back('\n');
  }
  return out;
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
