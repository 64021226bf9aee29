/* xsnap: libcurl, loaded when needed (see curlapi.h). */
#include <string.h>

#include "repo/curlapi.h"
#include "base/dlsym.h"
#include "base/error.h"

static int
resolve (struct xs_curl_api *api)
{
  return XS_DLSYM (api, global_init, curl_global_init)
    && XS_DLSYM (api, global_cleanup, curl_global_cleanup)
    && XS_DLSYM (api, easy_init, curl_easy_init)
    && XS_DLSYM (api, easy_cleanup, curl_easy_cleanup)
    && XS_DLSYM (api, easy_reset, curl_easy_reset)
    && XS_DLSYM (api, easy_setopt, curl_easy_setopt)
    && XS_DLSYM (api, easy_perform, curl_easy_perform)
    && XS_DLSYM (api, easy_getinfo, curl_easy_getinfo)
    && XS_DLSYM (api, easy_strerror, curl_easy_strerror)
    && XS_DLSYM (api, slist_append, curl_slist_append)
    && XS_DLSYM (api, slist_free_all, curl_slist_free_all);
}

int
xs_curl_api_load (struct xs_curl_api *api)
{
  const char *why;
  CURLcode rc;

  memset (api, 0, sizeof *api);
  dlerror ();
  api->dl = dlopen (XS_CURL_LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (api->dl == NULL || !resolve (api)) {
    why = dlerror ();
    xs_error ("cannot load libcurl (%s): %s", XS_CURL_LIBRARY,
              why ? why : "a function is missing");
    if (api->dl)
      dlclose (api->dl);
    memset (api, 0, sizeof *api);
    return -1;
  }
  /* Thread-safe and counted since libcurl 7.84 (Debian 12 has 7.88). */
  rc = api->global_init (CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    xs_error ("cannot initialise libcurl: %s", api->easy_strerror (rc));
    dlclose (api->dl);
    memset (api, 0, sizeof *api);
    return -1;
  }
  return 0;
}

void
xs_curl_api_unload (struct xs_curl_api *api)
{
  if (api->dl) {
    api->global_cleanup ();
    dlclose (api->dl);
  }
  memset (api, 0, sizeof *api);
}
