#pragma once

// Small helpers for YAML config files: loading one, where a node is ("FILE:LINE: ") and a
// positive duration read from a node, for error messages that name the file and the line.

#include <yaml-cpp/yaml.h>

#include <string>

#include "core/clock.h"
#include "core/result.h"

namespace medic {

inline std::string YamlWhere(const std::string& file, const YAML::Node& node) {
  return file + ":" + std::to_string(node.Mark().line + 1) + ": ";
}

// Reads a YAML config file whose top level is a mapping; an empty file gives a null node.
// NotFound when the file cannot be read, InvalidArgument naming file and line when it does not
// parse or is not a mapping.
inline Result<YAML::Node> LoadYamlConfigFile(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return NotFound("cannot read config file " + path);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsNull() && !root.IsMap()) {
    return InvalidArgument(path + ": the top level must be a mapping");
  }
  return root;
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
