/* xsnap: the head of a live volume — its current, writable contents.
 *
 * A head is a directory holding:
 *   data      the volume's bytes at their offsets, in sparse files: data,
 *             then data.1, data.2, ... past the first segment (segfile.h)
 *   dirtymap  the changed-block map (dirtymap.h)
 *   lock      the owner lock (ownerlock.h)
 *
 * Opening a head takes the owner lock, so one process owns it; inside that
 * process every connection shares the one open head (server.h), and all
 * calls here are thread-safe.  Every write, zero and trim marks its blocks
 * in the dirty map before touching the data, and a flush makes the data
 * durable before the map, so a durable map never misses a durable write.
 *
 * The head does not know about snapshots.  A snapshot being sealed
 * (seal.h) registers with its head as the head's write guard
 * (head-internal.h) and is called before each change, to keep what the
 * change overwrites.
 */
#ifndef XSNAP_HEAD_H
#define XSNAP_HEAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "head/dirtymap.h"

/* Flags for xs_head_zero. */
#define XS_HEAD_MAY_TRIM  1u    /* the range may be deallocated */
#define XS_HEAD_FUA       2u    /* durable before returning */
#define XS_HEAD_FAST_ZERO 4u    /* fail with ENOTSUP unless it is cheap */

/* Create the files of a new head in DIR (which must not exist).  With a
 * SOURCE_ID the head is a clone of that snapshot: no block is present.
 */
extern int xs_head_create (const char *dir, uint64_t size,
                           uint32_t block_size, uint64_t epoch,
                           const char *source_id);

/* Make an existing head (owned by the caller, closed) a fresh clone of
 * SOURCE_ID at SIZE: all its data is dropped.  For reset.
 */
extern int xs_head_recreate_as_clone (const char *dir, uint64_t size,
                                      uint32_t block_size,
                                      const char *source_id);

struct xs_head;
struct xs_snapreader;

/* Open the head in DIR as its owner.  NAME is used in messages.  SIZE,
 * BLOCK_SIZE and MAP (the dirty map's epoch and session, and how to
 * record a new session) come from the catalog.  Data shorter than SIZE
 * (a grow the catalog recorded first, as resizes once did) is grown to
 * it; data longer (a grow the catalog never recorded) is cut back to it
 * if nothing past SIZE was written, else the head is not opened.  SOURCE, for a clone that
 * is not fully hydrated, reads its snapshot SOURCE_ID from SOURCE_REPO
 * (both taken over, even on failure; NULL otherwise).  KEY, for an
 * encrypted head, is its AES-128-XTS key (XS_HEAD_KEY_LEN bytes,
 * headcrypt.h): everything in the data file is ciphertext.  NULL for a
 * plaintext head.
 */
struct xs_repo;
extern struct xs_head *xs_head_open (const char *dir, const char *name,
                                     uint64_t size, uint32_t block_size,
                                     const struct xs_dirtymap_binding *map,
                                     const char *source_id,
                                     struct xs_snapreader *source,
                                     struct xs_repo *source_repo,
                                     const unsigned char *key);

/* What xs_head_hydrate did. */
enum xs_hydrate_result {
  XS_HYDRATE_DONE,              /* every block present */
  XS_HYDRATE_STOPPED,           /* STOP was set; what was copied stays */
  XS_HYDRATE_FAILED,            /* reported */
};

/* How to hydrate (all optional: zero is "as fast as possible"). */
struct xs_hydrate_options {
  /* Called now and then with the blocks copied so far and how many were
   * missing when it began.
   */
  void (*progress) (uint64_t done, uint64_t total, void *opaque);
  void *opaque;
  const atomic_int *stop;       /* non-zero: stop at the next block */
  uint64_t rate;                /* bytes a second at most; 0: no limit */
  /* Pause while clients read blocks through to the source (a served
   * clone): their reads come first.
   */
  bool give_way_to_reads;
};

/* What a hydration did, whatever its result. */
struct xs_hydrate_stats {
  uint64_t copied;              /* blocks copied */
  double seconds;               /* from start to end */
  double gave_way_seconds;      /* of which waiting for clients' reads */
};

/* Copy every block not yet present from the clone's source into the
 * head, without counting it as a change; *STATS says how many blocks
 * were copied and how long it took.  Blocks are fetched and decoded ahead of the copy on the
 * source's read-ahead workers, written back as it goes, and the head is
 * flushed at the end: then the clone no longer needs its source.
 */
extern enum xs_hydrate_result
xs_head_hydrate (struct xs_head *h, const struct xs_hydrate_options *options,
                 struct xs_hydrate_stats *stats);

/* Whether the head still reads through to a source snapshot. */
extern bool xs_head_is_clone (const struct xs_head *h);

/* Record in the owner lock what kind of owner holds H ("sealer":
 * head/ownerlock.h).  0 or -1 (reported).
 */
extern int xs_head_set_owner_role (struct xs_head *h, const char *role);

/* Make everything durable, mark the dirty map clean and release the owner
 * lock.  Frees H even on failure.
 */
extern int xs_head_close (struct xs_head *h);

/* Release H as a crash would: nothing is synced or marked clean. */
extern void xs_head_abandon (struct xs_head *h);

extern uint64_t xs_head_size (const struct xs_head *h);
extern uint32_t xs_head_block_size (const struct xs_head *h);
extern struct xs_dirtymap *xs_head_dirtymap (struct xs_head *h);

/* Data path.  All return 0, or -1 with errno set and the error reported. */
extern int xs_head_pread (struct xs_head *h, void *buf, uint32_t count,
                          uint64_t offset);
extern int xs_head_pwrite (struct xs_head *h, const void *buf,
                           uint32_t count, uint64_t offset, bool fua);
extern int xs_head_zero (struct xs_head *h, uint32_t count, uint64_t offset,
                         unsigned flags);
extern int xs_head_trim (struct xs_head *h, uint32_t count, uint64_t offset,
                         bool fua);
extern int xs_head_flush (struct xs_head *h);

/* Describe [OFFSET, OFFSET + COUNT) as data and holes, in order, calling FN
 * for each extent, the last one ending at the end of the request (a
 * search to the end of a large volume would cost every request as much as
 * the whole map).  Holes are ranges never written or trimmed (they read
 * as zeroes).
 */
extern int xs_head_extents (struct xs_head *h, uint64_t offset,
                            uint64_t count,
                            int (*fn) (uint64_t offset, uint64_t length,
                                       bool hole, void *opaque),
                            void *opaque);

/* A hint for bulk writers (import): start writing [OFFSET, OFFSET +
 * COUNT) back to disk now; with WAIT_AND_DROP, wait for that and drop the
 * range from the page cache.  Without it a large copy fills the page cache
 * with dirty pages and the kernel throttles every write.  Errors are left
 * to the next flush.
 */
extern void xs_head_writeback (struct xs_head *h, uint64_t offset,
                               uint64_t count, bool wait_and_drop);

/* While a snapshot of the head is pending, a change of a block it has
 * not sealed yet first copies the 4 KiB units it overwrites to a spill
 * file in the head's directory (kept in the page cache while it is
 * small), for the sealers.  BYTES bounds what is copied aside at once
 * (default XS_HEAD_SEAL_BUFFER); with it spent, a change seals its block
 * first, which is much slower.  Takes effect from the next snapshot.
 */
#define XS_HEAD_SEAL_BUFFER (256u << 20)
extern void xs_head_set_seal_buffer (struct xs_head *h, uint64_t bytes);

/* Grow the volume to NEW_SIZE, all or nothing: its data (new segments
 * made, segfile.h) and its dirty map, or, on a failure (reported), the
 * head as it was.  No I/O may be in flight.
 */
extern int xs_head_grow (struct xs_head *h, uint64_t new_size);

/* Undo the grow just made, back to OLD_SIZE, when what should record it
 * (the catalog) failed: nothing was written past OLD_SIZE since.  0, or
 * -1 (reported; opening the head gives back what is left, see
 * xs_head_open).
 */
extern int xs_head_grow_undo (struct xs_head *h, uint64_t old_size);

#endif /* XSNAP_HEAD_H */
