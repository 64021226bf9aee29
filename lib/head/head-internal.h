/* xsnap: what the other modules of lib/head/ see of a head.
 *
 * The head (head.c) is the writable data path and knows nothing of what
 * watches it.  A module that must act before a change overwrites the
 * data — the seal (seal.c), which keeps the blocks of a pending snapshot
 * — registers a write guard with the head, and reads the head through the
 * accessors below; the head's fields stay in head.c.  Nothing outside
 * lib/head/ includes this, but the layer's unit tests.
 */
#ifndef XSNAP_HEAD_INTERNAL_H
#define XSNAP_HEAD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "head/dirtymap.h"
#include "head/head.h"
#include "repo/repo.h"
#include "repo/snapreader.h"

/* ----- Write guards -----
 *
 * A head has at most one guard.  Locks (lib/base/lockorder.h): every
 * change (write, zero, trim) holds the head's gate (XS_LOCK_HEAD_GATE, an
 * rwlock) for reading while it calls the guard, marks the dirty map and
 * touches the data.  Installing and removing a guard hold the gate for
 * writing, so no change is in flight then, and removing takes the guard
 * lock (XS_LOCK_HEAD_GUARD) inside it to wake xs_head_close, which waits
 * there for the guard to go; so they are called holding none of the data
 * path's locks.  BEFORE_WRITE may take only locks ranked after
 * XS_LOCK_HEAD_GUARD.  The installed guard is an atomic pointer, set and
 * cleared only under the gate's write side: a change with no guard
 * installed pays one load for it.
 */
struct xs_head_guard {
  /* Called before each change of [OFFSET, OFFSET + COUNT) (COUNT > 0,
   * within the volume), before its blocks are marked in the dirty map
   * and before the data is touched; changes run alongside.  0 lets the
   * change go on; -1 fails it with nothing changed (the guard reports
   * why and sets errno).
   */
  int (*before_write) (void *opaque, uint64_t offset, uint64_t count);

  /* Optional: called by install and remove with no change in flight —
   * the points where the guard starts and stops seeing changes.
   * ON_INSTALL failing (-1, reported) leaves the guard out; what
   * ON_REMOVE returns, remove returns, and the guard goes anyway.
   */
  int (*on_install) (void *opaque);
  int (*on_remove) (void *opaque);

  void *opaque;
};

/* What xs_head_guard_install did. */
enum xs_head_guard_result {
  XS_HEAD_GUARD_INSTALLED,
  XS_HEAD_GUARD_BUSY,           /* another guard is installed (not
                                   reported: the caller knows what it
                                   was installing) */
  XS_HEAD_GUARD_FAILED,         /* ON_INSTALL failed (reported) */
};

/* Install GUARD on H; GUARD is kept, not copied, until it is removed.
 * Whoever installs a guard removes it: xs_head_close waits for that.
 */
extern enum xs_head_guard_result
xs_head_guard_install (struct xs_head *h, const struct xs_head_guard *guard);

/* Remove GUARD, installed on H; returns what its ON_REMOVE returned (0
 * without one).  Once this returns no change calls it any more.
 */
extern int xs_head_guard_remove (struct xs_head *h,
                                 const struct xs_head_guard *guard);

/* ----- What a guard may read of a head ----- */

extern const char *xs_head_name (const struct xs_head *h);     /* messages */
extern const char *xs_head_dir (const struct xs_head *h);

/* Blocks of the volume; the last one may be short. */
extern uint64_t xs_head_nblocks (const struct xs_head *h);

/* Whether block B's content is in the data file (always, for a head that
 * is not a clone).  A block not present cannot change until it is made
 * present, under the gate's read side.
 */
extern bool xs_head_block_present (const struct xs_head *h, uint64_t b);

/* A clone's source snapshot and the repository it reads from; NULL for a
 * head that is not a clone.
 */
extern struct xs_snapreader *xs_head_source (const struct xs_head *h);
extern struct xs_repo *xs_head_source_repo (const struct xs_head *h);

/* The data, for reading and copying from (segfile.h): the volume's
 * bytes at their offsets, as ciphertext for an encrypted head (whole
 * 4 KiB sectors, headcrypt.h).
 */
struct xs_segfile;
extern struct xs_segfile *xs_head_data (const struct xs_head *h);

/* BUF holds LEN bytes of the data file from OFFSET (whole sectors):
 * turn them into the volume's bytes in place.  Nothing to do for a
 * plaintext head.  0, or -1 (reported).
 */
extern int xs_head_decrypt_raw (const struct xs_head *h, void *buf,
                                size_t len, uint64_t offset);

/* The budget set by xs_head_set_seal_buffer.  Read it with no change in
 * flight (in ON_INSTALL).
 */
extern uint64_t xs_head_seal_buffer (const struct xs_head *h);

/* ----- Clones, for hydration (hydrate.c) ----- */

struct xs_presentmap;

/* Make block b of a clone present, copying it up from the source under
 * its copy-up stripe lock unless it is present already.  *buf is a
 * block buffer, allocated on first use (the caller frees it).  0, or -1
 * reported.
 */
extern int xs_head_copy_up (struct xs_head *h, uint64_t b, void **buf);

/* The clone's present map (NULL for a head that is not a clone). */
extern const struct xs_presentmap *xs_head_present (const struct xs_head *h);

/* How many client reads are reading through to the source right now. */
extern unsigned xs_head_source_reads (struct xs_head *h);

#endif /* XSNAP_HEAD_INTERNAL_H */
