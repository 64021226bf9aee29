/* xsnap: libcurl, loaded when needed.
 *
 * Only the S3 backend speaks HTTP, but linking libcurl pulls some thirty
 * libraries (nghttp2, ssh2, ldap, kerberos, gnutls, ...) into every
 * process that links libxsnap: about 3 ms more on each start of the xsnap
 * tool, whatever the command, when "snapshot create" must return in under
 * 10 ms.  So libcurl is opened with dlopen when an S3 backend is opened.
 * <curl/curl.h> still gives the types, constants and each function's type;
 * the table of function pointers belongs to the backend (libxsnap has no
 * global mutable state).  The library is never unloaded (RTLD_NODELETE):
 * libcurl and the TLS library under it are not made to be unloaded and
 * loaded again.
 */
#ifndef XSNAP_CURLAPI_H
#define XSNAP_CURLAPI_H

#include <curl/curl.h>

#define XS_CURL_LIBRARY "libcurl.so.4"

/* The libcurl functions backend-s3.c calls. */
struct xs_curl_api {
  void *dl;
  __typeof__ (curl_global_init) *global_init;
  __typeof__ (curl_global_cleanup) *global_cleanup;
  __typeof__ (curl_easy_init) *easy_init;
  __typeof__ (curl_easy_cleanup) *easy_cleanup;
  __typeof__ (curl_easy_reset) *easy_reset;
  __typeof__ (curl_easy_setopt) *easy_setopt;
  __typeof__ (curl_easy_perform) *easy_perform;
  __typeof__ (curl_easy_getinfo) *easy_getinfo;
  __typeof__ (curl_easy_strerror) *easy_strerror;
  __typeof__ (curl_slist_append) *slist_append;
  __typeof__ (curl_slist_free_all) *slist_free_all;
};

/* Open libcurl, fill *API and initialise libcurl (curl_global_init, which
 * counts its callers).  Returns 0, or -1 with the reason reported (and
 * *API cleared).
 */
extern int xs_curl_api_load (struct xs_curl_api *api);

/* Undo xs_curl_api_load (curl_global_cleanup); nothing of libcurl may be
 * in use any more.  *API may be cleared already.
 */
extern void xs_curl_api_unload (struct xs_curl_api *api);

#endif /* XSNAP_CURLAPI_H */
