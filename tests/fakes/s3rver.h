#pragma once

// s3rver (npm @20minutes/s3rver 5.0.0, which checks AWS Signature V4 itself; tests/fakes/
// s3rver.js) on a loopback port with a temp directory and one bucket. Killed (its process group,
// by pid) when the object goes; the directory goes with the TempDir the caller owns. Also a
// signed GET, to read back what the bucket holds.

#include <cstdlib>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/sha256.h"
#include "server/archive/s3_client.h"
#include "tests/fakes/subprocess.h"
#include "transport/http_client.h"

namespace medic::test {

inline std::string SourceDir() {
  const char* dir = std::getenv("MEDIC_SOURCE_DIR");
  return dir != nullptr ? dir : ".";
}

class S3rver {
 public:
  static constexpr char kAccessKey[] = "S3RVER";
  static constexpr char kSecret[] = "S3RVER";
  static constexpr char kRegion[] = "us-east-1";

  // Starts it; ok() tells whether it printed its port within 30 s.
  S3rver(const std::string& dir, const std::string& bucket, const std::string& stderr_path)
      : bucket_(bucket) {
    proc_ = std::make_unique<Subprocess>(
        std::vector<std::string>{"/usr/bin/node", SourceDir() + "/tests/fakes/s3rver.js",
                                 dir, bucket},
        stderr_path);
    if (auto line = proc_->ReadLine(std::chrono::seconds(30));
        line && line->rfind("port ", 0) == 0) {
      port_ = std::atoi(line->c_str() + 5);
    }
  }
  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return proc_->pid(); }

  server::S3Config Config(const std::string& secret = kSecret) const {
    server::S3Config c;
    c.endpoint = endpoint();
    c.bucket = bucket_;
    c.region = kRegion;
    c.access_key_id = kAccessKey;
    c.secret_access_key = secret;
    return c;
  }

  // GET of an object (or of "" with a query: a listing), signed; the response or the error.
  Result<HttpResponse> Get(const std::string& key, const std::string& query = "") const {
    const std::string uri = "/" + bucket_ + (key.empty() ? "" : "/" + server::S3UriEncode(key, true));
    server::SigV4Input in;
    in.method = "GET";
    in.canonical_uri = uri;
    in.canonical_query = query;
    in.payload_sha256 = Sha256Hex("");
    in.amz_date = server::AmzDate(std::chrono::system_clock::now());
    in.region = kRegion;
    in.headers = {{"host", "127.0.0.1:" + std::to_string(port_)},
                  {"x-amz-content-sha256", in.payload_sha256},
                  {"x-amz-date", in.amz_date}};
    HttpRequest req;
    req.url = endpoint() + uri + (query.empty() ? "" : "?" + query);
    req.headers = in.headers;
    req.headers.emplace_back("Authorization",
                             server::SigV4Authorization(in, kAccessKey, kSecret));
    req.timeout = std::chrono::seconds(30);
    return NewCurlHttpClient()->Do(req);
  }

 private:
  std::string bucket_;
  std::unique_ptr<Subprocess> proc_;
  int port_ = 0;
};

}  // namespace medic::test
