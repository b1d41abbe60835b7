#include "server/archive/s3_client.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "core/files.h"
#include "core/log.h"
#include "core/sha256.h"

namespace medic::server {

namespace {

std::string HexToBytes(std::string_view hex) {
  std::string out;
  out.reserve(hex.size() / 2);
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 0;
  };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(val(hex[i]) * 16 + val(hex[i + 1])));
  }
  return out;
}

// Base64 of the bytes a hex string stands for (Content-MD5 from an MD5's hex).
std::string Md5Base64OfHex(std::string_view hex) {
  const std::string raw = HexToBytes(hex);
  unsigned char out[64] = {};
  const int n = EVP_EncodeBlock(out, reinterpret_cast<const unsigned char*>(raw.data()),
                                static_cast<int>(std::min<size_t>(raw.size(), 32)));
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

std::string Hmac(std::string_view key, std::string_view data) {
  return HexToBytes(HmacSha256Hex(key, data));
}

std::string Lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

// Trims and collapses runs of spaces, as SigV4's canonical header values want.
std::string CanonicalValue(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : Trim(v)) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) {
      out.push_back(' ');
    }
    space = false;
    out.push_back(c);
  }
  return out;
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Reads exactly n bytes at offset (fewer only at the end of the file).
Result<std::string> ReadAt(int fd, int64_t offset, size_t n, const std::string& path) {
  std::string buf(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, buf.data() + got, n - got, offset + static_cast<int64_t>(got));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) {
      return Internal(Errno("cannot read " + path));
    }
    if (r == 0) {
      break;
    }
    got += static_cast<size_t>(r);
  }
  buf.resize(got);
  return buf;
}

std::string HeaderValue(const HttpResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return std::string(Trim(v));
    }
  }
  return "";
}

}  // namespace

std::string S3UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string S3ObjectKey(const std::string& prefix, const std::string& host,
                        const std::string& name) {
  return prefix + host + "/" + name;
}

std::string AmzDate(WallTime t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string SigV4Authorization(const SigV4Input& in, const std::string& access_key_id,
                               const std::string& secret_access_key) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [k, v] : in.headers) {
    headers.emplace_back(Lower(k), CanonicalValue(v));
  }
  std::sort(headers.begin(), headers.end());
  std::string canonical_headers;
  std::string signed_headers;
  for (const auto& [k, v] : headers) {
    canonical_headers += k + ":" + v + "\n";
    signed_headers += (signed_headers.empty() ? "" : ";") + k;
  }
  const std::string canonical_request = in.method + "\n" + in.canonical_uri + "\n" +
                                        in.canonical_query + "\n" + canonical_headers + "\n" +
                                        signed_headers + "\n" + in.payload_sha256;
  const std::string date = in.amz_date.substr(0, 8);
  const std::string scope = date + "/" + in.region + "/" + in.service + "/aws4_request";
  const std::string string_to_sign = "AWS4-HMAC-SHA256\n" + in.amz_date + "\n" + scope + "\n" +
                                     Sha256Hex(canonical_request);
  const std::string k_date = Hmac("AWS4" + secret_access_key, date);
  const std::string k_region = Hmac(k_date, in.region);
  const std::string k_service = Hmac(k_region, in.service);
  const std::string k_signing = Hmac(k_service, "aws4_request");
  const std::string signature = HmacSha256Hex(k_signing, string_to_sign);
  return "AWS4-HMAC-SHA256 Credential=" + access_key_id + "/" + scope +
         ", SignedHeaders=" + signed_headers + ", Signature=" + signature;
}

std::optional<std::string> XmlElementText(std::string_view xml, std::string_view name) {
  xml = xml.substr(0, std::min<size_t>(xml.size(), 1 << 20));
  const std::string open = "<" + std::string(name) + ">";
  const std::string close = "</" + std::string(name) + ">";
  const size_t a = xml.find(open);
  if (a == std::string_view::npos) {
    return std::nullopt;
  }
  const size_t from = a + open.size();
  const size_t b = xml.find(close, from);
  if (b == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view raw = xml.substr(from, b - from);
  if (raw.find('<') != std::string_view::npos) {
    return std::nullopt;  // nested elements: not a text element
  }
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '&') {
      out.push_back(raw[i]);
      continue;
    }
    const size_t semi = raw.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) {
      return std::nullopt;
    }
    const std::string_view ent = raw.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out.push_back('&');
    } else if (ent == "lt") {
      out.push_back('<');
    } else if (ent == "gt") {
      out.push_back('>');
    } else if (ent == "quot") {
      out.push_back('"');
    } else if (ent == "apos") {
      out.push_back('\'');
    } else if (ent.size() >= 2 && ent[0] == '#') {
      const bool hex = ent[1] == 'x' || ent[1] == 'X';
      const std::string_view digits = ent.substr(hex ? 2 : 1);
      if (digits.empty() || digits.size() > 6 ||
          digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") !=
              std::string_view::npos) {
        return std::nullopt;
      }
      const unsigned long cp = std::stoul(std::string(digits), nullptr, hex ? 16 : 10);
      if (cp == 0 || cp > 0x10FFFF) {
        return std::nullopt;
      }
      // UTF-8.
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    } else {
      return std::nullopt;
    }
    i = semi;
  }
  return out;
}

std::string DescribeS3Error(const HttpResponse& r) {
  auto printable = [](std::string s, size_t max) {
    if (s.size() > max) {
      s.resize(max);
    }
    for (char& c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u >= 0x7f) {
        c = ' ';
      }
    }
    return s;
  };
  std::string out = std::to_string(r.status);
  const auto code = XmlElementText(r.body, "Code");
  const auto message = XmlElementText(r.body, "Message");
  if (code) {
    out += " " + printable(*code, 64);
    if (message) {
      out += ": " + printable(*message, 300);
    }
  } else if (!r.body.empty()) {
    out += ": " + printable(r.body, 200);
  }
  return out;
}

Md5::Md5() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_md5(), nullptr);
}
Md5::~Md5() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Md5::Update(std::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}
std::string Md5::HexDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &n);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

std::string Md5Hex(std::string_view data) {
  Md5 m;
  m.Update(data);
  return m.HexDigest();
}

std::string Md5Base64(std::string_view data) { return Md5Base64OfHex(Md5Hex(data)); }

std::string MultipartEtag(const std::vector<std::string>& part_md5_hex) {
  std::string concat;
  for (const auto& h : part_md5_hex) {
    concat += HexToBytes(h);
  }
  return Md5Hex(concat) + "-" + std::to_string(part_md5_hex.size());
}

std::string NormalizeEtag(std::string_view etag) {
  std::string out;
  for (char c : Trim(etag)) {
    if (c != '"') {
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
  }
  return out;
}

S3Uploader::S3Uploader(S3Config config, const Clock& clock, ClientFactory new_client)
    : config_(std::move(config)), clock_(clock), new_client_(std::move(new_client)) {
  if (!new_client_) {
    TlsOptions tls;
    tls.ca_file = config_.ca_file;
    new_client_ = [tls] { return NewCurlHttpClient(tls); };
  }
  const std::string endpoint = config_.EffectiveEndpoint();
  const size_t sep = endpoint.find("://");
  scheme_ = endpoint.substr(0, sep);
  authority_ = endpoint.substr(sep + 3);
  const std::string default_port = scheme_ == "https" ? ":443" : ":80";
  if (authority_.size() > default_port.size() &&
      authority_.compare(authority_.size() - default_port.size(), default_port.size(),
                         default_port) == 0) {
    authority_.resize(authority_.size() - default_port.size());  // curl's Host drops it too
  }
}

Result<HttpResponse> S3Uploader::Send(HttpClient& http, const std::string& method,
                                      const std::string& key, const std::string& query,
                                      std::string body, const std::string& content_md5) {
  const bool path_style = config_.PathStyle();
  const std::string host = path_style ? authority_ : config_.bucket + "." + authority_;
  const std::string uri =
      (path_style ? "/" + config_.bucket : std::string()) + "/" + S3UriEncode(key, true);
  SigV4Input in;
  in.method = method;
  in.canonical_uri = uri;
  in.canonical_query = query;
  in.payload_sha256 = Sha256Hex(body);
  in.amz_date = AmzDate(clock_.Now());
  in.region = config_.region;
  in.headers = {{"host", host},
                {"x-amz-content-sha256", in.payload_sha256},
                {"x-amz-date", in.amz_date}};
  if (!content_md5.empty()) {
    in.headers.emplace_back("content-md5", content_md5);
  }
  if (!config_.session_token.empty()) {
    in.headers.emplace_back("x-amz-security-token", config_.session_token);
  }
  HttpRequest req;
  req.method = method;
  req.url = scheme_ + "://" + host + uri + (query.empty() ? "" : "?" + query);
  req.headers = in.headers;
  req.headers.emplace_back("Authorization",
                           SigV4Authorization(in, config_.access_key_id,
                                              config_.secret_access_key));
  if (method == "PUT") {
    req.headers.emplace_back("Content-Type", "application/octet-stream");
  } else if (method == "POST" && !body.empty()) {
    req.headers.emplace_back("Content-Type", "application/xml");
  }
  req.body = std::move(body);
  req.timeout = config_.timeout;
  req.connect_timeout = Millis(10'000);
  req.max_body_bytes = 1 << 20;  // S3's answers here are small XML documents
  return http.Do(req);
}

Result<std::string> S3Uploader::PutSingle(HttpClient& http, const std::string& key, int fd,
                                          int64_t size) {
  ASSIGN_OR_RETURN(std::string body, ReadAt(fd, 0, static_cast<size_t>(size), key));
  if (static_cast<int64_t>(body.size()) != size) {
    return FailedPrecondition("the staged file shrank while it was uploaded");
  }
  const std::string md5 = Md5Hex(body);
  auto r = Send(http, "PUT", key, "", std::move(body), Md5Base64OfHex(md5));
  if (!r) {
    return Unavailable("PUT: " + r.error().message);
  }
  if (r->status != 200) {
    return Unavailable("PUT: " + DescribeS3Error(*r));
  }
  const std::string etag = NormalizeEtag(HeaderValue(*r, "ETag"));
  if (etag != md5) {
    return Unavailable("PUT: the store's ETag '" + etag.substr(0, 80) +
                       "' is not the MD5 of the file (" + md5 + ")");
  }
  return md5;
}

Result<std::string> S3Uploader::PutMultipart(HttpClient& http, const std::string& key, int fd,
                                             int64_t size) {
  auto created = Send(http, "POST", key, "uploads=", "", "");
  if (!created) {
    return Unavailable("CreateMultipartUpload: " + created.error().message);
  }
  if (created->status != 200) {
    return Unavailable("CreateMultipartUpload: " + DescribeS3Error(*created));
  }
  const auto upload_id = XmlElementText(created->body, "UploadId");
  if (!upload_id || upload_id->empty() || upload_id->size() > 1024) {
    return Unavailable("CreateMultipartUpload: the answer has no UploadId");
  }
  const std::string id_query = "uploadId=" + S3UriEncode(*upload_id, false);
  auto abort = [&](Error e) -> Error {
    auto r = Send(http, "DELETE", key, id_query, "", "");
    if (!r || (r->status != 204 && r->status != 200)) {
      LogWarn("archive: s3: could not abort the multipart upload of " + key + " (" +
              (r ? DescribeS3Error(*r) : r.error().message) +
              "); a bucket lifecycle rule for incomplete uploads removes its parts");
    }
    return e;
  };
  // S3 allows 10,000 parts: a larger part size for a file that would need more.
  uint64_t part_size = config_.part_size;
  const uint64_t usize = static_cast<uint64_t>(size);
  if ((usize + part_size - 1) / part_size > 10'000) {
    part_size = ((usize + 9'999) / 10'000 + (1 << 20) - 1) / (1 << 20) * (1 << 20);
  }
  std::vector<std::string> part_md5s;
  Md5 whole;
  std::string complete = "<CompleteMultipartUpload>";
  int64_t offset = 0;
  for (int number = 1; offset < size; ++number) {
    const size_t n = static_cast<size_t>(std::min<int64_t>(size - offset, part_size));
    auto bytes = ReadAt(fd, offset, n, key);
    if (!bytes) {
      return abort(bytes.error());
    }
    if (bytes->size() != n) {
      return abort(FailedPrecondition("the staged file shrank while it was uploaded"));
    }
    whole.Update(*bytes);
    const std::string md5 = Md5Hex(*bytes);
    const std::string what = "UploadPart " + std::to_string(number);
    auto r = Send(http, "PUT", key, "partNumber=" + std::to_string(number) + "&" + id_query,
                  std::move(*bytes), Md5Base64OfHex(md5));
    if (!r) {
      return abort(Unavailable(what + ": " + r.error().message));
    }
    if (r->status != 200) {
      return abort(Unavailable(what + ": " + DescribeS3Error(*r)));
    }
    const std::string etag = NormalizeEtag(HeaderValue(*r, "ETag"));
    if (etag != md5) {
      return abort(Unavailable(what + ": the store's ETag '" + etag.substr(0, 80) +
                               "' is not the part's MD5 (" + md5 + ")"));
    }
    part_md5s.push_back(md5);
    complete += "<Part><PartNumber>" + std::to_string(number) + "</PartNumber><ETag>\"" + md5 +
                "\"</ETag></Part>";
    offset += static_cast<int64_t>(n);
  }
  complete += "</CompleteMultipartUpload>";
  auto done = Send(http, "POST", key, id_query, complete, Md5Base64OfHex(Md5Hex(complete)));
  if (!done) {
    return abort(Unavailable("CompleteMultipartUpload: " + done.error().message));
  }
  // S3 may answer 200 and still fail: the error is then the body.
  if (done->status != 200 || XmlElementText(done->body, "Code").has_value()) {
    return abort(Unavailable("CompleteMultipartUpload: " + DescribeS3Error(*done)));
  }
  const std::string etag = NormalizeEtag(XmlElementText(done->body, "ETag").value_or(""));
  const std::string want = MultipartEtag(part_md5s);
  const std::string whole_md5 = whole.HexDigest();
  if (etag != want && etag != whole_md5) {
    // The object exists but cannot be confirmed: it is not to be trusted, and the agent keeps
    // its file. (It stays in the bucket; the next archive gets another name.)
    return Unavailable("CompleteMultipartUpload: the object's ETag '" + etag.substr(0, 80) +
                       "' is neither " + want + " nor the file's MD5 " + whole_md5);
  }
  return etag;
}

Result<std::string> S3Uploader::Upload(const std::string& key, const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return Internal(Errno("cannot open " + path));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const Error e = Internal(Errno("cannot stat " + path));
    ::close(fd);
    return e;
  }
  std::unique_ptr<HttpClient> http = new_client_();
  const std::string where = "s3://" + config_.bucket + "/" + key;
  Result<std::string> etag =
      static_cast<uint64_t>(st.st_size) <= config_.part_size
          ? PutSingle(*http, key, fd, st.st_size)
          : PutMultipart(*http, key, fd, st.st_size);
  ::close(fd);
  if (!etag) {
    return Error{etag.error().code, "upload to " + where + " failed: " + etag.error().message};
  }
  LogInfo("archive: uploaded " + where + " (" + std::to_string(st.st_size) + " bytes, ETag " +
          *etag + ")");
  return where;
}

}  // namespace medic::server
