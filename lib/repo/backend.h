/* xsnap: object stores that hold repositories.
 *
 * Repositories keep immutable objects (chunks, manifests) under keys.  The
 * same small set of calls works on a local directory (file://) and on an
 * S3 bucket (s3://, backend-s3.c), so the repository code never knows
 * where its bytes live.
 *
 * Keys are relative slash-separated paths of the characters
 * [A-Za-z0-9._-/], at most XS_BACKEND_KEY_MAX bytes, with no empty
 * component and no component starting with '.' (which rules out "." and
 * "..", and keeps ".tmp.*" names free for the backends' temporary files).
 *
 * A backend object may be used by many threads at once.  What the
 * implementations provide and share is in backend-impl.h.
 */
#ifndef XSNAP_BACKEND_H
#define XSNAP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#define XS_BACKEND_KEY_MAX 1024

struct xs_backend;

/* "file:///abs/path" (the directory is created if missing) or
 * "s3://bucket[/prefix][?options]" (see s3config.h; the bucket must
 * exist and answer).  Returns NULL
 * with an error for a bad or unsupported URL.
 */
extern struct xs_backend *xs_backend_open (const char *url);
/* The same for a repository about to be made: a file:// directory is made
 * only if its parent exists (a mistyped path is refused, not made from
 * the root down).
 */
extern struct xs_backend *xs_backend_open_new (const char *url);
extern void xs_backend_close (struct xs_backend *backend);
extern const char *xs_backend_url (const struct xs_backend *backend);

/* Store data under key unless the key exists.  Returns 1 if stored, 0 if
 * an object with that key already existed (left untouched), -1 on error.
 * Atomic: readers see the whole object or nothing, and of two concurrent
 * writers (threads or processes) exactly one stores.  durable: the object
 * is on stable storage when the call returns; otherwise call
 * xs_backend_sync before relying on it.
 */
extern int xs_backend_put_if_absent (struct xs_backend *backend,
                                     const char *key,
                                     const void *data, size_t len,
                                     bool durable);

/* Store data under key, replacing any object there, atomically.  Returns
 * 0 or -1.
 */
extern int xs_backend_put (struct xs_backend *backend, const char *key,
                           const void *data, size_t len, bool durable);

/* Read a whole object into a malloc'd buffer (*data is never NULL on
 * success, even for an empty object).  Returns 0, 1 if the key does not
 * exist (no error reported), or -1 on error.
 */
extern int xs_backend_get (struct xs_backend *backend, const char *key,
                           void **data, size_t *len);

/* Where xs_backend_get_placed puts an object: count buffers (at most
 * XS_BACKEND_PLACES), filled in order, that together hold exactly the
 * object's size.
 */
#define XS_BACKEND_PLACES 2
struct xs_backend_place {
  struct iovec iov[XS_BACKEND_PLACES];
  int count;
};

/* Chooses where an object of size bytes goes: fills *where and returns 0,
 * or returns -1 with an error reported and errno set (the get fails).
 */
typedef int (*xs_backend_place_fn) (size_t size,
                                    struct xs_backend_place *where,
                                    void *opaque);

/* Read a whole object into buffers that place chooses once the object's
 * size is known, so that a reader can reuse its buffers (and put parts of
 * an object straight where they belong) instead of getting a new
 * allocation per object.  Returns 0, 1 if the key does not exist (place is
 * not called, no error reported), or -1 on error.
 */
extern int xs_backend_get_placed (struct xs_backend *backend,
                                  const char *key,
                                  xs_backend_place_fn place, void *opaque);

/* True when each call is a round trip over the network (S3), so that one
 * listing of a folder is cheaper than asking for its keys one by one.
 */
extern bool xs_backend_is_remote (const struct xs_backend *backend);

/* Returns 1 if the key exists, 0 if not, -1 on error. */
extern int xs_backend_exists (struct xs_backend *backend, const char *key);

/* Call fn for each key under the folder prefix ("a/b" or "a/b/" lists
 * "a/b/c" and "a/b/c/d", not "a/bc"; "" lists everything), in no
 * particular order.  Only valid keys under the folder reach fn, whatever
 * the implementation (or its server) lists.  Temporary files are never listed.  A non-zero return
 * from fn stops the listing and is returned; otherwise returns 0, or -1 on
 * error.  Keys put or deleted during the listing may or may not be seen.
 */
typedef int (*xs_backend_list_fn) (const char *key, void *opaque);
extern int xs_backend_list (struct xs_backend *backend, const char *prefix,
                            xs_backend_list_fn fn, void *opaque);

/* Delete an object.  Returns 0 (also if it did not exist) or -1. */
extern int xs_backend_delete (struct xs_backend *backend, const char *key);

/* Make everything put with durable = false so far durable.  0 or -1. */
extern int xs_backend_sync (struct xs_backend *backend);

/* Remove temporary files left by writers that died, if they are older
 * than older_than_seconds (choose a time no writer takes).  Returns the
 * number removed, or -1 on error.
 */
extern long xs_backend_remove_stale_temps (struct xs_backend *backend,
                                           unsigned older_than_seconds);

#endif /* XSNAP_BACKEND_H */
