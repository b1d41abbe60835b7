#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "transport/http_client.h"

namespace medic {

namespace {

constexpr size_t kMaxResponseBytes = 64 * 1024 * 1024;

// Where the body goes: `out`, at most `limit` bytes. With `truncate`, the bytes past the limit
// are dropped and the transfer stops (`truncated`); without, the request fails.
struct BodySink {
  std::string* out;
  size_t limit;
  bool truncate;
  bool truncated = false;
};

size_t WriteBody(char* ptr, size_t size, size_t nmemb, void* userdata) {
  auto* sink = static_cast<BodySink*>(userdata);
  const size_t n = size * nmemb;
  const size_t room = sink->limit - sink->out->size();
  if (n > room) {
    if (sink->truncate) {
      sink->out->append(ptr, room);
      sink->truncated = true;
    }
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  sink->out->append(ptr, n);
  return n;
}

// Collects "Name: value" header lines; a new status line (after a redirect or 100) resets them.
size_t WriteHeader(char* ptr, size_t size, size_t nmemb, void* userdata) {
  auto* out = static_cast<std::vector<std::pair<std::string, std::string>>*>(userdata);
  const size_t n = size * nmemb;
  std::string_view line(ptr, n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
    line.remove_suffix(1);
  }
  if (line.substr(0, 5) == "HTTP/") {
    out->clear();
    return n;
  }
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos && out->size() < 256) {
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    out->emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return n;
}

// A failure of the TLS handshake or of the server's certificate, whose reason is in curl's
// error buffer rather than in its code.
bool IsTlsFailure(CURLcode rc) {
  return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ||
         rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM ||
         rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

class CurlHttpClient : public HttpClient {
 public:
  explicit CurlHttpClient(TlsOptions tls) : tls_(std::move(tls)), curl_(curl_easy_init()) {}
  ~CurlHttpClient() override {
    if (curl_ != nullptr) {
      curl_easy_cleanup(curl_);
    }
  }

  Result<HttpResponse> Do(const HttpRequest& req) override {
    if (curl_ == nullptr) {
      return Internal("curl_easy_init failed");
    }
    curl_easy_reset(curl_);
    HttpResponse resp;
    curl_easy_setopt(curl_, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(req.connect_timeout.count()));
    BodySink sink{&resp.body,
                  req.max_body_bytes > 0 ? std::min(req.max_body_bytes, kMaxResponseBytes)
                                         : kMaxResponseBytes,
                  req.max_body_bytes > 0};
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &WriteBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &WriteHeader);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &resp.headers);
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 0L);
    if (!tls_.ca_file.empty()) {
      curl_easy_setopt(curl_, CURLOPT_CAINFO, tls_.ca_file.c_str());
    }
    if (!tls_.pin.empty()) {
      // The server's public key must be this one. Alone (no CA file), it is the whole check:
      // a pinned key proves the server whatever signed its certificate and whatever its name.
      curl_easy_setopt(curl_, CURLOPT_PINNEDPUBLICKEY, tls_.pin.c_str());
      if (tls_.ca_file.empty()) {
        curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, 0L);
      }
    }
    if (!tls_.cert_file.empty()) {
      curl_easy_setopt(curl_, CURLOPT_SSLCERT, tls_.cert_file.c_str());
    }
    if (!tls_.key_file.empty()) {
      curl_easy_setopt(curl_, CURLOPT_SSLKEY, tls_.key_file.c_str());
    }
    curl_slist* headers = nullptr;
    for (const auto& [k, v] : req.headers) {
      headers = curl_slist_append(headers, (k + ": " + v).c_str());
    }
    if (req.method == "GET") {
      curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
    } else {
      if (req.method != "POST") {
        curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, req.method.c_str());
      }
      curl_easy_setopt(curl_, CURLOPT_POST, 1L);
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, req.body.data());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(req.body.size()));
      headers = curl_slist_append(headers, "Expect:");
    }
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    char detail[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, detail);
    const CURLcode rc = curl_easy_perform(curl_);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, nullptr);
    curl_slist_free_all(headers);
    resp.body_truncated = sink.truncated;
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && sink.truncated)) {
      std::string msg = req.method + " " + req.url + ": " + curl_easy_strerror(rc);
      if (IsTlsFailure(rc) && detail[0] != '\0') {
        // curl's code says only that TLS failed; its detail says why (which CA, which name).
        msg += std::string(" (") + detail + ")";
      }
      if (rc == CURLE_OPERATION_TIMEDOUT) {
        return DeadlineExceeded(msg);
      }
      return Unavailable(msg);
    }
    long code = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &code);
    resp.status = static_cast<int>(code);
    char* ct = nullptr;
    curl_easy_getinfo(curl_, CURLINFO_CONTENT_TYPE, &ct);
    if (ct != nullptr) {
      resp.content_type = ct;
    }
    return resp;
  }

 private:
  TlsOptions tls_;
  CURL* curl_;
};

}  // namespace

std::unique_ptr<HttpClient> NewCurlHttpClient(const TlsOptions& tls) {
  InitHttpClientLibrary();
  return std::make_unique<CurlHttpClient>(tls);
}

void InitHttpClientLibrary() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace medic
