// The libcurl entry points curl_http_client.cc uses, defined here so that a program linked with
// medic_transport_lazy_curl (medic-agent) does not load libcurl.so.4, and with it ~30 shared
// libraries and about 9 MiB of resident memory, at start-up. The first call of any of them loads
// libcurl.so.4 with dlopen and forwards to it; if it cannot be loaded, curl_easy_init returns
// nullptr (the client reports that) and the reason is logged once.
//
// These definitions are not exported from the executable (it is not linked with -rdynamic), so
// they do not interpose on libcurl's own symbols once it is loaded.

#define CURL_DISABLE_TYPECHECK  // curl_easy_setopt must be a function here, not a macro
#include <curl/curl.h>
#include <dlfcn.h>

#include <cstdarg>
#include <mutex>
#include <string>

#include "core/log.h"

namespace {

struct CurlApi {
  CURLcode (*global_init)(long) = nullptr;
  CURL* (*easy_init)() = nullptr;
  void (*easy_cleanup)(CURL*) = nullptr;
  void (*easy_reset)(CURL*) = nullptr;
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...) = nullptr;
  CURLcode (*easy_perform)(CURL*) = nullptr;
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...) = nullptr;
  const char* (*easy_strerror)(CURLcode) = nullptr;
  curl_slist* (*slist_append)(curl_slist*, const char*) = nullptr;
  void (*slist_free_all)(curl_slist*) = nullptr;
  bool loaded = false;
};

template <typename F>
bool Bind(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(::dlsym(lib, name));
  return *out != nullptr;
}

const CurlApi& Api() {
  static CurlApi api;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* why = ::dlerror();
      medic::LogError(std::string("cannot load libcurl.so.4 (needed for https://): ") +
                      (why != nullptr ? why : "unknown error"));
      return;
    }
    api.loaded = Bind(lib, "curl_global_init", &api.global_init) &&
                 Bind(lib, "curl_easy_init", &api.easy_init) &&
                 Bind(lib, "curl_easy_cleanup", &api.easy_cleanup) &&
                 Bind(lib, "curl_easy_reset", &api.easy_reset) &&
                 Bind(lib, "curl_easy_setopt", &api.easy_setopt) &&
                 Bind(lib, "curl_easy_perform", &api.easy_perform) &&
                 Bind(lib, "curl_easy_getinfo", &api.easy_getinfo) &&
                 Bind(lib, "curl_easy_strerror", &api.easy_strerror) &&
                 Bind(lib, "curl_slist_append", &api.slist_append) &&
                 Bind(lib, "curl_slist_free_all", &api.slist_free_all);
    if (!api.loaded) {
      medic::LogError("libcurl.so.4 lacks an expected function; https:// is unavailable");
    }
  });
  return api;
}

}  // namespace

extern "C" {

CURLcode curl_global_init(long flags) {
  const CurlApi& api = Api();
  return api.loaded ? api.global_init(flags) : CURLE_FAILED_INIT;
}

CURL* curl_easy_init() {
  const CurlApi& api = Api();
  return api.loaded ? api.easy_init() : nullptr;
}

// The functions below only ever receive a handle curl_easy_init returned, so libcurl is loaded.

void curl_easy_cleanup(CURL* curl) { Api().easy_cleanup(curl); }

void curl_easy_reset(CURL* curl) { Api().easy_reset(curl); }

// Forwards the one variadic argument with the type libcurl reads for this option's range (as
// libcurl's own curl_easy_setopt does).
CURLcode curl_easy_setopt(CURL* curl, CURLoption option, ...) {
  va_list ap;
  va_start(ap, option);
  CURLcode rc;
  if (option < CURLOPTTYPE_OBJECTPOINT) {
    rc = Api().easy_setopt(curl, option, va_arg(ap, long));
  } else if (option < CURLOPTTYPE_FUNCTIONPOINT) {
    rc = Api().easy_setopt(curl, option, va_arg(ap, void*));
  } else if (option < CURLOPTTYPE_OFF_T) {
    using AnyFunction = void (*)();
    rc = Api().easy_setopt(curl, option, va_arg(ap, AnyFunction));
  } else if (option < CURLOPTTYPE_BLOB) {
    rc = Api().easy_setopt(curl, option, va_arg(ap, curl_off_t));
  } else {
    rc = Api().easy_setopt(curl, option, va_arg(ap, void*));
  }
  va_end(ap);
  return rc;
}

CURLcode curl_easy_perform(CURL* curl) { return Api().easy_perform(curl); }

// Every CURLINFO takes a pointer.
CURLcode curl_easy_getinfo(CURL* curl, CURLINFO info, ...) {
  va_list ap;
  va_start(ap, info);
  void* out = va_arg(ap, void*);
  va_end(ap);
  return Api().easy_getinfo(curl, info, out);
}

const char* curl_easy_strerror(CURLcode code) {
  const CurlApi& api = Api();
  return api.loaded ? api.easy_strerror(code) : "libcurl.so.4 could not be loaded";
}

curl_slist* curl_slist_append(curl_slist* list, const char* s) {
  const CurlApi& api = Api();
  return api.loaded ? api.slist_append(list, s) : nullptr;
}

void curl_slist_free_all(curl_slist* list) {
  const CurlApi& api = Api();
  if (api.loaded) {
    api.slist_free_all(list);
  }
}

}  // extern "C"
