#pragma once

// The archive's `s3` backend: uploads a file to an S3-compatible bucket, signed with AWS
// Signature Version 4, in one PUT or, above the part size, by multipart upload, and confirms
// that the bucket holds the very bytes (docs/integrations/s3.md).
//
// Integrity: every PUT (object or part) carries Content-MD5, so the store refuses bytes that
// changed on the way, and x-amz-content-sha256 with the payload's SHA-256, which the signature
// covers. The answer's ETag must then equal the MD5 (a part, a single PUT); a completed
// multipart object's ETag must be S3's md5(concatenated part MD5s)-N, or the whole file's MD5
// (what some S3-compatible stores answer). Anything else is a failure, and a failed multipart
// upload is aborted.
//
// The signing, key encoding, XML reading and ETag arithmetic are pure functions, tested on
// their own (tests/server/archive/s3_test.cc); S3Uploader is the thin I/O around them.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "server/archive/s3_config.h"
#include "transport/http_client.h"

namespace medic::server {

// Percent-encodes as SigV4 wants (RFC 3986 unreserved kept: A-Z a-z 0-9 - . _ ~), '/' kept
// when `keep_slash` (an object key in a path).
std::string S3UriEncode(std::string_view s, bool keep_slash);

// The object key of an archived file: PREFIX + HOST/NAME.
std::string S3ObjectKey(const std::string& prefix, const std::string& host,
                        const std::string& name);

struct SigV4Input {
  std::string method;           // GET, PUT, POST, DELETE
  std::string canonical_uri;    // the path as sent, already encoded (S3UriEncode(…, true))
  std::string canonical_query;  // name=value pairs, encoded, sorted by name, joined by '&'
  // Every header to sign (host and x-amz-date at least), any case; sorted and lower-cased here.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload_sha256;  // lowercase hex, as sent in x-amz-content-sha256
  std::string amz_date;        // 20130524T000000Z, as sent in x-amz-date
  std::string region;
  std::string service = "s3";
};

// The Authorization header's value for `in`, signed with the secret.
std::string SigV4Authorization(const SigV4Input& in, const std::string& access_key_id,
                               const std::string& secret_access_key);

// 20130524T000000Z
std::string AmzDate(WallTime t);

// The text of the first <name>…</name> element in `xml` (no attributes expected), with the five
// XML entities and numeric character references decoded; nullopt when there is none or it is
// malformed. Never throws, reads at most the first 1 MiB.
std::optional<std::string> XmlElementText(std::string_view xml, std::string_view name);

// "403 SignatureDoesNotMatch: The request signature…" from an S3 error answer (its XML Code and
// Message when there are, else the status and the start of the body, printable only).
std::string DescribeS3Error(const HttpResponse& response);

// Lowercase hex MD5 and its base64 (for Content-MD5) of `data`.
std::string Md5Hex(std::string_view data);
std::string Md5Base64(std::string_view data);
// Incremental MD5.
class Md5 {
 public:
  Md5();
  ~Md5();
  Md5(const Md5&) = delete;
  Md5& operator=(const Md5&) = delete;
  void Update(std::string_view data);
  std::string HexDigest();  // once

 private:
  void* ctx_;
};

// S3's ETag of a multipart object: hex MD5 of the concatenated binary part MD5s, "-", the count.
// REQUIRES: each part_md5_hex is 32 hex digits.
std::string MultipartEtag(const std::vector<std::string>& part_md5_hex);
// The ETag header's value without quotes, lower-cased ("\"ABC\"" -> "abc").
std::string NormalizeEtag(std::string_view etag);

// Uploads files to the configured bucket. Thread-safe: each Upload makes its own HTTP client.
class S3Uploader {
 public:
  using ClientFactory = std::function<std::unique_ptr<HttpClient>()>;
  // REQUIRES: `config` completed (CompleteS3Config). `new_client` defaults to libcurl with the
  // config's ca_file.
  S3Uploader(S3Config config, const Clock& clock, ClientFactory new_client = nullptr);

  // Uploads the file at `path` as `key`; returns "s3://BUCKET/KEY" once the store confirmed
  // it holds the same bytes. Unavailable naming the store's answer (never the secret) otherwise.
  Result<std::string> Upload(const std::string& key, const std::string& path);

  const S3Config& config() const { return config_; }

 private:
  struct Call;
  Result<HttpResponse> Send(HttpClient& http, const std::string& method, const std::string& key,
                            const std::string& query, std::string body,
                            const std::string& content_md5);
  Result<std::string> PutSingle(HttpClient& http, const std::string& key, int fd, int64_t size);
  Result<std::string> PutMultipart(HttpClient& http, const std::string& key, int fd,
                                   int64_t size);

  const S3Config config_;
  const Clock& clock_;
  ClientFactory new_client_;
  std::string scheme_;     // http or https
  std::string authority_;  // host[:port] as the Host header carries it (default port dropped)
};

}  // namespace medic::server
