/* xsnap: the insides of a head, shared by head.c (the data path) and
 * seal.c (taking snapshots of it).  Nothing else includes this.
 */
#ifndef XSNAP_HEAD_INTERNAL_H
#define XSNAP_HEAD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "head/dirtymap.h"
#include "head/head.h"
#include "crypto/headcrypt.h"
#include "head/presentmap.h"
#include "repo/snapreader.h"

#define XS_HEAD_COPYUP_STRIPES 64
#define XS_HEAD_SECTOR_STRIPES 64      /* a 64-bit mask of them: head.c */
#define XS_HEAD_BOUNCE_POOL 8

struct xs_seal;

struct xs_head {
  char *dir;
  char *name;                   /* for messages */
  int data_fd;
  int lock_fd;
  uint64_t size;
  uint32_t block_size;
  unsigned block_shift;
  struct xs_dirtymap *dirtymap;

  /* The locks below are taken in the order of lib/base/lockorder.h (gate,
   * seal_lock, copyup, sector, bounce_lock), through its helpers.
   *
   * Every change (write, zero, trim) holds the gate for reading while it
   * marks the dirty map and touches the data; taking a snapshot's point in
   * time holds it for writing, for microseconds.  SEAL is set and cleared
   * only under the write side, so a change sees one consistent value;
   * xs_head_close reads it without the gate (acquire, under seal_lock).
   */
  pthread_rwlock_t gate;
  _Atomic (struct xs_seal *) seal;      /* the pending snapshot, or NULL */
  pthread_mutex_t seal_lock;    /* with seal_done: waiting for SEAL to end */
  pthread_cond_t seal_done;
  uint64_t seal_buffer;         /* see xs_head_set_seal_buffer */

  /* A clone: blocks not present read through to SOURCE.  A block becomes
   * present under its copy-up stripe lock, after its data is written.
   */
  struct xs_snapreader *source; /* NULL: not a clone */
  struct xs_repo *source_repo;  /* where SOURCE reads from */
  struct xs_presentmap *present;
  pthread_mutex_t copyup[XS_HEAD_COPYUP_STRIPES];

  /* An encrypted head (headcrypt.h): the data file holds ciphertext, in
   * whole 4 KiB sectors.  A change of part of a sector reads, changes and
   * writes back the whole sector holding its stripe for writing; reads
   * hold the stripes of the sectors they read for reading while they
   * read, so that they never see a sector half rewritten (which would
   * decrypt to garbage, bytes the write did not touch included).  Requests are
   * encrypted into bounce buffers (the client's buffer is the client's),
   * kept in a small pool so that large ones are not mapped afresh each
   * time.  NULL: a plaintext head.
   */
  struct xs_head_cipher *cipher;
  pthread_rwlock_t sector[XS_HEAD_SECTOR_STRIPES];
  pthread_mutex_t bounce_lock;
  void *bounce[XS_HEAD_BOUNCE_POOL];
  size_t bounce_cap[XS_HEAD_BOUNCE_POOL];
  unsigned nbounce;
};

/* Whether block B's content is in the data file (always, for a head that
 * is not a clone).
 */
static inline bool
xs_head_block_present (const struct xs_head *h, uint64_t b)
{
  return h->source == NULL || xs_presentmap_has (h->present, b);
}

static inline uint64_t
xs_head_nblocks (const struct xs_head *h)
{
  return (h->size + h->block_size - 1) >> h->block_shift;
}

/* Called by head.c before every change of [OFFSET, OFFSET + COUNT) while
 * a snapshot is pending: keeps what the change overwrites for the
 * snapshot (copy-before-write).  Holding the gate for reading.
 */
extern void xs_seal_protect (struct xs_seal *seal, uint64_t offset,
                             uint64_t count);

#endif /* XSNAP_HEAD_INTERNAL_H */
