/* xsnap: the chunk and manifest repository of one account namespace.
 *
 * A repository is the set of chunks and manifests of one account on one
 * backend (one region).  A manifest only refers to chunks of its own
 * repository, so deleting anything elsewhere never breaks it.  Keys:
 *
 *   <account>/chunks/<first 2 hex digits of id>/<32 hex digits of id>
 *   <account>/pages/<first 2 hex digits of id>/<32 hex digits of id>
 *   <account>/manifests/<snapshot id>
 *   xsnap/owner        the owner mark: which store (and which of its
 *                      regions) owns every repository on the backend
 *
 * (xsnap/owner never collides with an account named "xsnap": an
 * account's keys are only under its chunks/ and manifests/ folders.)
 *
 * A repository object may be used by many threads at once (each with its
 * own chunk codec).
 */
#ifndef XSNAP_REPO_H
#define XSNAP_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "repo/backend.h"
#include "repo/chunk.h"
#include "base/hash.h"

/* Longest account or snapshot id: one key component of [A-Za-z0-9._-],
 * not starting with '.'.
 */
#define XS_REPO_NAME_MAX 128

struct xs_repo;

/* Does not take ownership of backend, which must outlive the repo. */
extern struct xs_repo *xs_repo_open (struct xs_backend *backend,
                                     const char *account);
extern void xs_repo_close (struct xs_repo *repo);
/* Another handle on REPO's namespace (the same backend, which must
 * outlive both).  NULL with an error.
 */
extern struct xs_repo *xs_repo_dup (const struct xs_repo *repo);
extern const char *xs_repo_account (const struct xs_repo *repo);
/* Whether A and B are one namespace: the same account on the same
 * backend (backends are opened once per region and store).
 */
extern bool xs_repo_same_namespace (const struct xs_repo *a,
                                    const struct xs_repo *b);

/* Store an encoded chunk (from xs_chunk_encode) under id.  Returns 1 if
 * stored, 0 if present already, -1 on error.  With durable = false, call
 * xs_repo_sync before writing a manifest that refers to it.
 */
extern int xs_repo_put_chunk (struct xs_repo *repo,
                              const struct xs_hash128 *id,
                              const void *stored, size_t len, bool durable);
/* Chunks are written once, so a damaged object would stay damaged: this
 * is the one way to overwrite one.  STORED must be chunk ID, verified by
 * the caller against the id (decoded and hashed) just before; it replaces
 * whatever object is there, atomically and durably.  0 or -1.  Used only
 * to repair damage (xs_verify_repair, a copy that found the destination's
 * object damaged).
 */
extern int xs_repo_replace_chunk (struct xs_repo *repo,
                                  const struct xs_hash128 *id,
                                  const void *stored, size_t len);
/* True when asking for chunks one by one costs a round trip each (see
 * xs_backend_is_remote): then list them instead.
 */
extern bool xs_repo_is_remote (const struct xs_repo *repo);
/* 1 present, 0 absent, -1 error. */
extern int xs_repo_has_chunk (struct xs_repo *repo,
                              const struct xs_hash128 *id);
/* Read, decode and verify a chunk into plain.  Returns the plaintext
 * length, or -1 with an error naming the chunk (missing, corrupt, ...).
 */
extern ssize_t xs_repo_read_chunk (struct xs_repo *repo,
                                   struct xs_chunk_codec *codec,
                                   const struct xs_hash128 *id,
                                   void *plain, size_t plain_cap);
/* A buffer for stored chunks that one reader reuses from read to read.
 * Start it zeroed; xs_repo_scratch_release frees what it holds.
 */
struct xs_repo_scratch {
  void *data;
  size_t cap;
};
extern void xs_repo_scratch_release (struct xs_repo_scratch *scratch);

/* Read chunk id into plain, which receives exactly plain_len bytes,
 * decoded and verified: the chunk must be chunk id and its plaintext
 * plain_len bytes long.  The stored chunk goes into scratch, except that
 * a raw chunk's payload is read straight into plain, so a read costs no
 * allocation once scratch has grown.  Returns 0; 1 when the chunk is bad
 * or "missing" (reason set, errno = EIO, nothing reported); or -1 when it
 * could not be read at all (reported by the backend, errno set).
 */
extern int xs_repo_fetch_chunk (struct xs_repo *repo,
                                struct xs_chunk_codec *codec,
                                const struct xs_hash128 *id,
                                void *plain, size_t plain_len,
                                struct xs_repo_scratch *scratch,
                                char reason[XS_CHUNK_REASON_MAX]);

/* The stored form of chunk ID, unverified, into SCRATCH (grown as
 * needed and kept for the next read, so that a reader that reads many
 * chunks allocates once); *LEN receives its size.  0, 1 if absent (no
 * error), -1 on error.
 */
extern int xs_repo_get_chunk_into (struct xs_repo *repo,
                                   const struct xs_hash128 *id,
                                   struct xs_repo_scratch *scratch,
                                   size_t *len);

/* The stored form, unverified (for copying to another repository).
 * Returns 0 with a malloc'd buffer, 1 if absent (no error), -1 on error.
 */
extern int xs_repo_get_chunk_raw (struct xs_repo *repo,
                                  const struct xs_hash128 *id,
                                  void **stored, size_t *len);
/* 0 (also if absent) or -1. */
extern int xs_repo_delete_chunk (struct xs_repo *repo,
                                 const struct xs_hash128 *id);
/* Calls fn for each chunk id, in no particular order; a non-zero return
 * from fn stops and is returned.  Objects that are not chunks are skipped.
 */
extern int xs_repo_list_chunks (struct xs_repo *repo,
                                int (*fn) (const struct xs_hash128 *id,
                                           void *opaque),
                                void *opaque);

/* Map pages (maptree.h): content-addressed like chunks, in a folder of
 * their own, written once.  put: 1 stored, 0 present already, -1 error
 * (with durable = false, xs_repo_sync before a manifest refers to it);
 * get: 0 with a malloc'd buffer, 1 if absent (no error), -1; has: 1, 0
 * or -1; replace (repairs only, as xs_repo_replace_chunk), delete and
 * list as for chunks.  Nothing here checks a page: maptree.c does.
 */
extern int xs_repo_put_page (struct xs_repo *repo,
                             const struct xs_hash128 *id,
                             const void *data, size_t len, bool durable);
extern int xs_repo_get_page (struct xs_repo *repo,
                             const struct xs_hash128 *id,
                             void **data, size_t *len);
extern int xs_repo_has_page (struct xs_repo *repo,
                             const struct xs_hash128 *id);
extern int xs_repo_replace_page (struct xs_repo *repo,
                                 const struct xs_hash128 *id,
                                 const void *data, size_t len);
extern int xs_repo_delete_page (struct xs_repo *repo,
                                const struct xs_hash128 *id);
extern int xs_repo_list_pages (struct xs_repo *repo,
                               int (*fn) (const struct xs_hash128 *id,
                                          void *opaque),
                               void *opaque);

/* Store a serialized manifest, durably.  Manifests are immutable: returns
 * 1 if stored, 0 if the same bytes were there already, and -1 with an
 * error if a different manifest has that id.
 */
extern int xs_repo_put_manifest (struct xs_repo *repo,
                                 const char *snapshot_id,
                                 const void *data, size_t len);
/* 0 with a malloc'd buffer, 1 if absent (no error), -1 on error. */
extern int xs_repo_get_manifest (struct xs_repo *repo,
                                 const char *snapshot_id,
                                 void **data, size_t *len);
/* 0 (also if absent) or -1. */
extern int xs_repo_delete_manifest (struct xs_repo *repo,
                                    const char *snapshot_id);
extern int xs_repo_list_manifests (struct xs_repo *repo,
                                   int (*fn) (const char *snapshot_id,
                                              void *opaque),
                                   void *opaque);

/* What a listed key is in ACCOUNT's repository.  Keys come from the
 * backend (for S3, from the server), so this trusts nothing: a key not
 * under "ACCOUNT/chunks/" or "ACCOUNT/manifests/", or not exactly a chunk
 * or manifest name there, is XS_REPO_KEY_OTHER.  For a chunk or a page
 * *chunk_id is set (the page's id), for a manifest *snapshot_id points into key.
 */
enum xs_repo_key_kind {
  XS_REPO_KEY_OTHER,
  XS_REPO_KEY_CHUNK,
  XS_REPO_KEY_PAGE,
  XS_REPO_KEY_MANIFEST,
};
extern enum xs_repo_key_kind xs_repo_parse_key (const char *account,
                                                const char *key,
                                                struct xs_hash128 *chunk_id,
                                                const char **snapshot_id);

/* The owner mark of a backend (docs/FORMAT.md, "Repository owner mark"):
 * the store, and the region of that store, whose repositories the
 * backend holds.  A store writes to and collects only what it owns
 * (store.c decides).
 */
#define XS_STORE_ID_LEN 32      /* lower-case hex digits */
#define XS_REPO_OWNER_PATH_MAX 1024
struct xs_repo_owner {
  char store_id[XS_STORE_ID_LEN + 1];
  char region[XS_REPO_NAME_MAX + 1];
  char path[XS_REPO_OWNER_PATH_MAX + 1];  /* where the store was made,
                                           * for messages only */
};

/* Parse a mark (outside input).  0, or -1 with an error saying why. */
extern int xs_repo_owner_parse (const void *data, size_t len,
                                struct xs_repo_owner *owner);
/* Read the mark of BACKEND: 0, 1 if there is none (no error), or -1 (a
 * damaged mark is an error, never "no owner").
 */
extern int xs_repo_read_owner (struct xs_backend *backend,
                               struct xs_repo_owner *owner);
/* Write the mark, durably: unless REPLACE only where there is none.
 * Returns 1 written, 0 a mark was there already (not REPLACE), or -1.
 */
extern int xs_repo_write_owner (struct xs_backend *backend,
                                const struct xs_repo_owner *owner,
                                bool replace);
/* Remove the mark (undoing a claim that was just written).  0 or -1. */
extern int xs_repo_remove_owner (struct xs_backend *backend);
/* Whether BACKEND holds any object besides the mark: 1, 0, or -1. */
extern int xs_repo_holds_data (struct xs_backend *backend);

/* Make every chunk put with durable = false so far durable. */
extern int xs_repo_sync (struct xs_repo *repo);

/* true if name can be an account or snapshot id; else reports why. */
extern bool xs_repo_name_is_valid (const char *what, const char *name);

#endif /* XSNAP_REPO_H */
