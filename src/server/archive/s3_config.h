#pragma once

// The `s3` backend's settings: the `archive.s3` subsection of the server config
// (docs/integrations/s3.md).
//
//   archive:
//     backend: s3                       # dir (the default) | s3
//     s3:
//       endpoint: http://127.0.0.1:9000 # left out: AWS (https://s3.REGION.amazonaws.com)
//       bucket: medic-logs
//       prefix: medic/                  # prepended to HOST/NAME
//       region: eu-west-1               # default us-east-1
//       access_key_id: AKIA...          # or AWS_ACCESS_KEY_ID
//       secret_access_key_file: /etc/medic/s3.secret   # or secret_access_key, or the env
//       session_token: ...              # optional (AWS_SESSION_TOKEN)
//       path_style: true                # default: true for a custom endpoint, false for AWS
//       ca_file: /etc/medic/s3-ca.pem   # optional: verify the endpoint against this CA
//       part_size: 8MiB                 # larger files go up in parts (5MiB..512MiB)
//       timeout: 2m                     # per request
//
// Credentials come from the section, else from the standard AWS environment variables
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); the region from the section,
// else AWS_REGION / AWS_DEFAULT_REGION; the endpoint from the section, else AWS_ENDPOINT_URL_S3 /
// AWS_ENDPOINT_URL. The secret is never logged nor put in an error message.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/result.h"

namespace YAML {
class Node;
}

namespace medic::server {

inline constexpr uint64_t kS3MinPartSize = uint64_t{5} << 20;  // S3's minimum (but the last)
inline constexpr uint64_t kS3MaxPartSize = uint64_t{512} << 20;

struct S3Config {
  std::string endpoint;  // scheme://host[:port], no path; empty: AWS for `region`
  std::string bucket;
  std::string prefix;
  std::string region;
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::optional<bool> path_style;  // unset: true for a custom endpoint
  std::string ca_file;
  uint64_t part_size = uint64_t{8} << 20;
  Millis timeout{120'000};

  // The endpoint requests go to and whether the bucket is in the path (after defaults).
  std::string EffectiveEndpoint() const;
  bool PathStyle() const;
};

// Reads an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
// The process's environment.
EnvLookup ProcessEnv();

// Parses the `s3:` mapping into `out`. Unknown keys and wrong types are errors naming `file`
// and the line. A secret_access_key_file is read here (its content, trimmed, is the secret).
// `allow_small_parts` (tests only) lowers the part-size floor to 1 byte.
Status ParseS3Yaml(const YAML::Node& node, const std::string& file, S3Config& out);

// Fills what the section left out from the AWS environment variables, then checks that the
// backend can work: a bucket, both credentials, a valid endpoint. `where` prefixes errors.
Status CompleteS3Config(S3Config& config, const EnvLookup& env, const std::string& where);

}  // namespace medic::server
