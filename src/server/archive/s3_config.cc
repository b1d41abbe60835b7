#include "server/archive/s3_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "core/files.h"
#include "core/units.h"
#include "core/yaml_util.h"

namespace medic::server {

namespace {

constexpr char kKeys[] =
    "endpoint, bucket, prefix, region, access_key_id, secret_access_key, "
    "secret_access_key_file, session_token, path_style, ca_file, part_size, timeout";

// scheme://host[:port] with scheme http or https, no path, query or user.
bool IsValidEndpoint(const std::string& e) {
  std::string rest;
  if (e.rfind("https://", 0) == 0) {
    rest = e.substr(8);
  } else if (e.rfind("http://", 0) == 0) {
    rest = e.substr(7);
  } else {
    return false;
  }
  if (!rest.empty() && rest.back() == '/') {
    rest.pop_back();
  }
  return !rest.empty() && rest.find_first_of("/?#@ \t") == std::string::npos;
}

// S3's bucket naming rules, the part that matters for URLs: 3-63 of [a-z0-9.-].
bool IsValidBucket(const std::string& b) {
  return b.size() >= 3 && b.size() <= 63 &&
         b.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") == std::string::npos &&
         b.front() != '.' && b.front() != '-' && b.back() != '.' && b.back() != '-';
}

bool IsValidRegion(const std::string& r) {
  return !r.empty() && r.size() <= 64 &&
         r.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos;
}

}  // namespace

std::string S3Config::EffectiveEndpoint() const {
  if (!endpoint.empty()) {
    return endpoint.back() == '/' ? endpoint.substr(0, endpoint.size() - 1) : endpoint;
  }
  return "https://s3." + region + ".amazonaws.com";
}

bool S3Config::PathStyle() const { return path_style.value_or(!endpoint.empty()); }

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) {
      return std::nullopt;
    }
    return std::string(v);
  };
}

Status ParseS3Yaml(const YAML::Node& node, const std::string& file, S3Config& out) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "archive.s3 must be a mapping (" + kKeys +
                           ")");
  }
  bool secret_given = false;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    auto where = [&] { return YamlWhere(file, kv.first) + "archive.s3." + key + ": "; };
    if (!v.IsScalar()) {
      return InvalidArgument(where() + "must be a single value");
    }
    const std::string text = v.as<std::string>("");
    if (key == "endpoint") {
      if (!IsValidEndpoint(text)) {
        return InvalidArgument(where() + "'" + text +
                               "' is not an endpoint (http:// or https://, a host and an "
                               "optional port, no path)");
      }
      out.endpoint = text;
    } else if (key == "bucket") {
      if (!IsValidBucket(text)) {
        return InvalidArgument(where() + "'" + text +
                               "' is not a bucket name (3-63 of a-z, 0-9, '.', '-')");
      }
      out.bucket = text;
    } else if (key == "prefix") {
      if (text.size() > 512 || (!text.empty() && text.front() == '/') ||
          text.find("..") != std::string::npos) {
        return InvalidArgument(where() + "must be at most 512 bytes, not start with '/' and "
                                         "have no '..'");
      }
      for (char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          return InvalidArgument(where() + "has a control character");
        }
      }
      out.prefix = text;
    } else if (key == "region") {
      if (!IsValidRegion(text)) {
        return InvalidArgument(where() + "'" + text + "' is not a region name (us-east-1)");
      }
      out.region = text;
    } else if (key == "access_key_id") {
      if (text.empty() || text.size() > 128) {
        return InvalidArgument(where() + "must be 1-128 characters");
      }
      out.access_key_id = text;
    } else if (key == "secret_access_key" || key == "secret_access_key_file") {
      if (secret_given) {
        return InvalidArgument(where() +
                               "give secret_access_key or secret_access_key_file, not both");
      }
      secret_given = true;
      if (key == "secret_access_key") {
        out.secret_access_key = text;
      } else {
        auto content = ReadFile(text);
        if (!content) {
          return InvalidArgument(where() + "cannot read '" + text + "': " +
                                 content.error().message);
        }
        out.secret_access_key = std::string(Trim(*content));
      }
      if (out.secret_access_key.empty()) {
        return InvalidArgument(where() + "the secret is empty");
      }
    } else if (key == "session_token") {
      out.session_token = text;
    } else if (key == "path_style") {
      bool b = false;
      if (!YAML::convert<bool>::decode(v, b)) {
        return InvalidArgument(where() + "must be true or false");
      }
      out.path_style = b;
    } else if (key == "ca_file") {
      if (text.empty() || text[0] != '/') {
        return InvalidArgument(where() + "must be an absolute path");
      }
      out.ca_file = text;
    } else if (key == "part_size") {
      auto bytes = ParseByteSize(text);
      if (!bytes || *bytes < kS3MinPartSize || *bytes > kS3MaxPartSize) {
        return InvalidArgument(where() + "'" + text +
                               "' must be a size from 5MiB (S3's smallest part) to 512MiB");
      }
      out.part_size = *bytes;
    } else if (key == "timeout") {
      auto d = ParseDuration(text);
      if (!d || *d < std::chrono::seconds(1) || *d > std::chrono::hours(1)) {
        return InvalidArgument(where() + "must be a duration from 1s to 1h");
      }
      out.timeout = *d;
    } else {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown archive.s3 key '" + key +
                             "' (" + kKeys + ")");
    }
  }
  return OkStatus();
}

Status CompleteS3Config(S3Config& c, const EnvLookup& env, const std::string& where) {
  auto get = [&](const char* name) { return env(name).value_or(""); };
  if (c.access_key_id.empty() && c.secret_access_key.empty()) {
    // Both from the environment, or neither: a key id and a secret of different origins would
    // be an odd pair.
    c.access_key_id = get("AWS_ACCESS_KEY_ID");
    c.secret_access_key = get("AWS_SECRET_ACCESS_KEY");
    if (c.session_token.empty()) {
      c.session_token = get("AWS_SESSION_TOKEN");
    }
  }
  if (c.region.empty()) {
    c.region = get("AWS_REGION");
  }
  if (c.region.empty()) {
    c.region = get("AWS_DEFAULT_REGION");
  }
  if (c.region.empty()) {
    c.region = "us-east-1";
  }
  if (!IsValidRegion(c.region)) {
    return InvalidArgument(where + "the region from the environment is not a region name");
  }
  if (c.endpoint.empty()) {
    std::string e = get("AWS_ENDPOINT_URL_S3");
    if (e.empty()) {
      e = get("AWS_ENDPOINT_URL");
    }
    if (!e.empty() && !IsValidEndpoint(e)) {
      return InvalidArgument(where + "AWS_ENDPOINT_URL(_S3) '" + e + "' is not an endpoint");
    }
    c.endpoint = e;
  }
  if (c.bucket.empty()) {
    return InvalidArgument(where + "archive backend s3 needs archive.s3.bucket");
  }
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return InvalidArgument(
        where + "archive backend s3 needs credentials: archive.s3.access_key_id and "
                "secret_access_key (or secret_access_key_file), or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY in the environment");
  }
  if (!c.PathStyle() && c.bucket.find('.') != std::string::npos &&
      c.EffectiveEndpoint().rfind("https://", 0) == 0) {
    return InvalidArgument(where + "bucket '" + c.bucket +
                           "' has a '.', which breaks TLS with virtual-hosted addressing: set "
                           "archive.s3.path_style: true");
  }
  return OkStatus();
}

}  // namespace medic::server
