#pragma once

// The dashboard's files (web/ and uPlot from node_modules/), embedded in the binary at build
// time by cmake/embed_assets.cmake: the server needs no file, network or CDN to serve them.

#include <span>
#include <string_view>

namespace medic::server {

struct EmbeddedFile {
  std::string_view name;  // "index.html", "app.js", "uPlot.iife.min.js"
  std::string_view body;
};

// Every embedded file (generated source).
std::span<const EmbeddedFile> EmbeddedWebFiles();

struct WebAsset {
  std::string_view body;
  std::string_view content_type;
};

// The file served as /assets/NAME (or index.html for /), with its content type from the name's
// extension; nullptr for an unknown name. Names never contain '/'.
const WebAsset* FindWebAsset(std::string_view name);

// "text/javascript; charset=utf-8" for .js, and so on; "application/octet-stream" otherwise.
std::string_view ContentTypeFor(std::string_view name);

}  // namespace medic::server
