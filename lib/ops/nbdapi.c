/* xsnap: libnbd, loaded when needed (see nbdapi.h).
 *
 * RTLD_NOW resolves every symbol libnbd needs at once, so a broken
 * installation fails here with dlerror's reason rather than in the
 * middle of a copy; RTLD_LOCAL keeps libnbd's symbols (and those of
 * gnutls and the rest it brings) out of the process's global namespace.
 */
#include <string.h>

#include "base/dlsym.h"
#include "base/error.h"
#include "ops/nbdapi.h"

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
  if (XS_DLSYM (api, create, nbd_create)
      && XS_DLSYM (api, close, nbd_close)
      && XS_DLSYM (api, connect_uri, nbd_connect_uri)
      && XS_DLSYM (api, shutdown, nbd_shutdown)
      && XS_DLSYM (api, poll, nbd_poll)
      && XS_DLSYM (api, get_error, nbd_get_error)
      && XS_DLSYM (api, get_size, nbd_get_size)
      && XS_DLSYM (api, get_block_size, nbd_get_block_size)
      && XS_DLSYM (api, is_read_only, nbd_is_read_only)
      && XS_DLSYM (api, can_zero, nbd_can_zero)
      && XS_DLSYM (api, can_flush, nbd_can_flush)
      && XS_DLSYM (api, can_multi_conn, nbd_can_multi_conn)
      && XS_DLSYM (api, can_meta_context, nbd_can_meta_context)
      && XS_DLSYM (api, add_meta_context, nbd_add_meta_context)
      && XS_DLSYM (api, block_status, nbd_block_status)
      && XS_DLSYM (api, flush, nbd_flush)
      && XS_DLSYM (api, pread, nbd_pread)
      && XS_DLSYM (api, aio_pread, nbd_aio_pread)
      && XS_DLSYM (api, aio_pwrite, nbd_aio_pwrite)
      && XS_DLSYM (api, aio_zero, nbd_aio_zero))
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
