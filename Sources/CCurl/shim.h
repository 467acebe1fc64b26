// CCurl — libcurl for Swift. Swift cannot call C variadic functions, so every curl_easy_setopt /
// curl_easy_getinfo form tune uses has a typed static-inline shim here.
#include <curl/curl.h>

typedef size_t (*tune_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef int (*tune_curl_progress_cb)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                     curl_off_t ultotal, curl_off_t ulnow);

static inline CURLcode tune_curl_set_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode tune_curl_set_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode tune_curl_set_str(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode tune_curl_set_ptr(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode tune_curl_set_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode tune_curl_set_mime(CURL *h, curl_mime *m) { return curl_easy_setopt(h, CURLOPT_MIMEPOST, m); }
static inline CURLcode tune_curl_set_data_cb(CURL *h, CURLoption o, tune_curl_data_cb cb) { return curl_easy_setopt(h, o, cb); }
static inline CURLcode tune_curl_set_progress_cb(CURL *h, tune_curl_progress_cb cb) {
    return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, cb);
}
static inline CURLcode tune_curl_get_long(CURL *h, CURLINFO i, long *out) { return curl_easy_getinfo(h, i, out); }
static inline CURLcode tune_curl_get_double(CURL *h, CURLINFO i, double *out) { return curl_easy_getinfo(h, i, out); }
