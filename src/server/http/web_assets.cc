#include "server/http/web_assets.h"

#include <map>
#include <string>

namespace medic::server {

std::string_view ContentTypeFor(std::string_view name) {
  static const std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".json", "application/json"},
      {".ico", "image/x-icon"},
  };
  for (const auto& [ext, type] : kTypes) {
    if (name.size() > ext.size() && name.ends_with(ext)) {
      return type;
    }
  }
  return "application/octet-stream";
}

const WebAsset* FindWebAsset(std::string_view name) {
  static const auto* const kByName = [] {
    auto* m = new std::map<std::string, WebAsset, std::less<>>;
    for (const EmbeddedFile& f : EmbeddedWebFiles()) {
      (*m)[std::string(f.name)] = WebAsset{f.body, ContentTypeFor(f.name)};
    }
    return m;
  }();
  auto it = kByName->find(name);
  return it == kByName->end() ? nullptr : &it->second;
}

}  // namespace medic::server
