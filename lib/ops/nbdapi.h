/* xsnap: libnbd, loaded when needed.
 *
 * Only import and export (nbdxfer.c) speak NBD as a client, but linking
 * libnbd pulls gnutls, libxml2, ICU and libstdc++ into every process that
 * links libxsnap: about 4 ms of dynamic loading on each start of the
 * xsnap tool, whatever the command, when "snapshot create" must return in
 * under 10 ms.  So libnbd is opened with dlopen at the start of a
 * transfer and closed at its end.  <libnbd.h> still gives the types,
 * callbacks and constants, and the type of each function; the table of
 * function pointers belongs to the caller (libxsnap has no global
 * mutable state).
 */
#ifndef XSNAP_NBDAPI_H
#define XSNAP_NBDAPI_H

#include <libnbd.h>

#define XS_NBD_LIBRARY "libnbd.so.0"

/* The libnbd functions nbdxfer.c calls, and the library they come from. */
struct xs_nbd_api {
  void *dl;
  __typeof__ (nbd_create) *create;
  __typeof__ (nbd_close) *close;
  __typeof__ (nbd_connect_uri) *connect_uri;
  __typeof__ (nbd_shutdown) *shutdown;
  __typeof__ (nbd_poll) *poll;
  __typeof__ (nbd_get_error) *get_error;
  __typeof__ (nbd_get_size) *get_size;
  __typeof__ (nbd_get_block_size) *get_block_size;
  __typeof__ (nbd_is_read_only) *is_read_only;
  __typeof__ (nbd_can_zero) *can_zero;
  __typeof__ (nbd_can_flush) *can_flush;
  __typeof__ (nbd_can_multi_conn) *can_multi_conn;
  __typeof__ (nbd_can_meta_context) *can_meta_context;
  __typeof__ (nbd_add_meta_context) *add_meta_context;
  __typeof__ (nbd_block_status) *block_status;
  __typeof__ (nbd_flush) *flush;
  __typeof__ (nbd_pread) *pread;
  __typeof__ (nbd_aio_pread) *aio_pread;
  __typeof__ (nbd_aio_pwrite) *aio_pwrite;
  __typeof__ (nbd_aio_zero) *aio_zero;
};

/* Open libnbd and fill *API.  Returns 0, or -1 with the reason reported
 * (and *API cleared).
 */
extern int xs_nbd_api_load (struct xs_nbd_api *api);

/* Close the library of *API (loaded or cleared) and clear it; nothing
 * of libnbd may be in use any more.
 */
extern void xs_nbd_api_unload (struct xs_nbd_api *api);

#endif /* XSNAP_NBDAPI_H */
