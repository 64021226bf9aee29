/* xsnap: libnbd, loaded when needed (see nbdapi.h).
 *
 * RTLD_NOW resolves every symbol libnbd needs at once, so a broken
 * installation fails here with dlerror's reason rather than in the
 * middle of a copy; RTLD_LOCAL keeps libnbd's symbols (and those of
 * gnutls and the rest it brings) out of the process's global namespace.
 */
#include <dlfcn.h>
#include <string.h>

#include "error.h"
#include "nbdapi.h"

/* dlsym returns void *; the cast to a function pointer is what POSIX
 * promises works.  Every name is looked up by the same expression that
 * types it, so a table entry cannot get another function's type.
 */
#define XS_NBD_SYM(api, field, name)                                    \
  ((api)->field = (__typeof__ (&name)) dlsym ((api)->dl, #name),         \
   (api)->field != NULL)

int
xs_nbd_api_load (struct xs_nbd_api *api)
{
  const char *why;

  memset (api, 0, sizeof *api);
  dlerror ();                   /* clear any earlier error */
  api->dl = dlopen (XS_NBD_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  if (api->dl == NULL) {
    why = dlerror ();
    xs_error ("cannot load libnbd (%s): %s", XS_NBD_LIBRARY,
              why ? why : "unknown error");
    return -1;
  }
  if (XS_NBD_SYM (api, create, nbd_create)
      && XS_NBD_SYM (api, close, nbd_close)
      && XS_NBD_SYM (api, connect_uri, nbd_connect_uri)
      && XS_NBD_SYM (api, shutdown, nbd_shutdown)
      && XS_NBD_SYM (api, poll, nbd_poll)
      && XS_NBD_SYM (api, get_error, nbd_get_error)
      && XS_NBD_SYM (api, get_size, nbd_get_size)
      && XS_NBD_SYM (api, get_block_size, nbd_get_block_size)
      && XS_NBD_SYM (api, is_read_only, nbd_is_read_only)
      && XS_NBD_SYM (api, can_zero, nbd_can_zero)
      && XS_NBD_SYM (api, can_flush, nbd_can_flush)
      && XS_NBD_SYM (api, can_multi_conn, nbd_can_multi_conn)
      && XS_NBD_SYM (api, can_meta_context, nbd_can_meta_context)
      && XS_NBD_SYM (api, add_meta_context, nbd_add_meta_context)
      && XS_NBD_SYM (api, block_status, nbd_block_status)
      && XS_NBD_SYM (api, flush, nbd_flush)
      && XS_NBD_SYM (api, aio_pread, nbd_aio_pread)
      && XS_NBD_SYM (api, aio_pwrite, nbd_aio_pwrite)
      && XS_NBD_SYM (api, aio_zero, nbd_aio_zero))
    return 0;
  why = dlerror ();
  xs_error ("cannot load libnbd (%s): %s", XS_NBD_LIBRARY,
            why ? why : "a function is missing");
  xs_nbd_api_unload (api);
  return -1;
}

void
xs_nbd_api_unload (struct xs_nbd_api *api)
{
  if (api->dl)
    dlclose (api->dl);
  memset (api, 0, sizeof *api);
}
