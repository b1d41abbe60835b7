#pragma once

// Small helpers for the server config's YAML sections: where a node is ("FILE:LINE: ") and a
// positive duration read from a node, both for error messages that name the file and the line.

#include <yaml-cpp/yaml.h>

#include <string>

#include "core/clock.h"
#include "core/result.h"

namespace medic {

inline std::string YamlWhere(const std::string& file, const YAML::Node& node) {
  return file + ":" + std::to_string(node.Mark().line + 1) + ": ";
}

inline Result<Millis> YamlPositiveDuration(const YAML::Node& node, const std::string& file,
                                           const std::string& key) {
  auto d = ParseDuration(node.as<std::string>(""));
  if (!d || d->count() <= 0) {
    return InvalidArgument(YamlWhere(file, node) + key +
                           " must be a positive duration like 30s");
  }
  return *d;
}

}  // namespace medic
