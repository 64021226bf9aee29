/* xsnap: the contract between the backend front (backend.c) and the
 * implementations it dispatches to (backend-file.c, backend-s3.c).
 *
 * Each implementation provides an operations table; they all share the
 * rules for object keys (backend.h), the decoding of %XX escapes in their
 * URLs and the checking of a placed read's buffers.  These live here,
 * below both the front and the implementations, so that the front can
 * know the implementations without them knowing the front.
 */
#ifndef XSNAP_BACKEND_IMPL_H
#define XSNAP_BACKEND_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "repo/backend.h"

/* Returns true if key is a valid key; otherwise reports why (naming
 * the key) and returns false.
 */
extern bool xs_backend_key_is_valid (const char *key);
/* The same check without a report: NULL if valid, else why not. */
extern const char *xs_backend_key_problem (const char *key);

/* What each implementation provides (backend.c dispatches to these).  Keys are
 * validated before any of them is called; prefixes are normalised to ""
 * or a valid key without a trailing slash.
 */
struct xs_backend_ops {
  const char *scheme;
  /* Every call is a network round trip: one listing beats many exists. */
  bool remote;
  /* location is the URL after "scheme:"; sets *impl. */
  int (*open) (const char *url, const char *location, void **impl);
  /* Optional: may a new repository be made at location?  0, or -1 with
   * an error (for xs_backend_open_new).
   */
  int (*check_new) (const char *url, const char *location);
  void (*close) (void *impl);
  /* Returns 1 stored, 0 present (only when if_absent), -1 error. */
  int (*put) (void *impl, const char *key, const void *data, size_t len,
              bool durable, bool if_absent);
  int (*get) (void *impl, const char *key, void **data, size_t *len);
  /* Optional: without it, get_placed is get and a copy. */
  int (*get_placed) (void *impl, const char *key, xs_backend_place_fn place,
                     void *opaque);
  int (*exists) (void *impl, const char *key);
  int (*list) (void *impl, const char *prefix, xs_backend_list_fn fn,
               void *opaque);
  int (*delete) (void *impl, const char *key);
  int (*sync) (void *impl);
  long (*remove_stale_temps) (void *impl, unsigned older_than_seconds);
};

/* For implementations of get_placed: calls place and checks that its
 * buffers hold exactly size bytes.  0, or -1 with an error.
 */
extern int xs_backend_call_place (const char *key, size_t size,
                                  xs_backend_place_fn place, void *opaque,
                                  struct xs_backend_place *where);

/* For implementations parsing their URLs: decode the %XX escapes (and
 * nothing else) of the LEN bytes at TEXT into a malloc'd string.  NULL
 * with errno EINVAL (a bad escape, or %00) or ENOMEM; nothing reported.
 */
extern char *xs_backend_url_decode (const char *text, size_t len);

extern const struct xs_backend_ops xs_backend_file_ops;
extern const struct xs_backend_ops xs_backend_s3_ops;

#endif /* XSNAP_BACKEND_IMPL_H */
