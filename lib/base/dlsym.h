/* xsnap: looking up a function of a library opened with dlopen.
 *
 * dlsym returns void *; the cast to a function pointer is what POSIX
 * promises works.  Each name is looked up by the same expression that
 * types it, so a table entry cannot get another function's type.  Used by
 * nbdapi.c and curlapi.c, which load libnbd and libcurl on demand.
 */
#ifndef XSNAP_DLSYM_H
#define XSNAP_DLSYM_H

#include <dlfcn.h>

/* Sets API->FIELD to NAME in the library API->dl; true if found. */
#define XS_DLSYM(api, field, name)                                      \
  ((api)->field = (__typeof__ (&name)) dlsym ((api)->dl, #name),         \
   (api)->field != NULL)

#endif /* XSNAP_DLSYM_H */
