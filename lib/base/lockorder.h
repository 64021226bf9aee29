/* xsnap: the order in which the data path's locks may be taken, and a
 * checker of it for debug builds.
 *
 * Every lock of the data path has a rank.  A thread may take a lock only
 * if its rank comes after the rank of every lock it already holds (outer
 * to inner, top to bottom below); a rank marked "several" may be held
 * more than once by one thread, in increasing index order.  A cycle, and
 * so a deadlock, is then impossible.  Condition waits drop and retake
 * their own lock only, so they keep the order.
 *
 *  SERVER           xs_server.lock (server.c): the exports and their
 *                   refs.  Held across opening and closing a head (I/O).
 *  EXPORT_SEALER    xs_export.sealer_lock (server.c), with sealer_idle:
 *                   the background sealer's fields, and a detached
 *                   sealer's state (handed over, given up).  Never
 *                   across I/O.
 *  HEAD_GATE        xs_head.gate, rwlock (head.c): head->guard and
 *                   seal_buffer, and so a snapshot's point in time.  Read
 *                   side held by every change across its I/O; the write
 *                   side by installing and removing a write guard (the
 *                   seal's begin and end), across the dirty map's commit
 *                   (I/O) at the end.
 *  HEAD_GUARD       xs_head.guard_lock, with guard_gone: waiting for a
 *                   write guard (a pending seal) to go.  Never across I/O.
 *  SEAL_STRIPE      xs_seal.stripes[256] (seal.c): a block's todo bit and
 *                   copied units.  One at a time; across I/O (reading the
 *                   block, copying units to the spill file).
 *  HEAD_COPYUP      xs_head.copyup[64]: a clone block's copy-up and present
 *                   bit.  One at a time; across I/O (source read, write).
 *  HEAD_SECTOR      xs_head.sector[64], rwlock: whole 4 KiB sectors of an
 *                   encrypted head.  Several, in index order; across I/O.
 *  DIRTYMAP         xs_dirtymap.persist_lock (dirtymap.c): the map file,
 *                   its header, the swap of bits by take.  Across I/O.
 *  PRESENTMAP       xs_presentmap.persist_lock (presentmap.c): the map file
 *                   and the copy of its bits, from persist_begin to
 *                   persist_end (across the data file's sync).
 *  SEAL_QUEUE       xs_seal.queue_lock, with work: the queue of blocks with
 *                   copied units, opening the spill file (the only I/O).
 *  SEAL_CODECS      xs_seal.codecs.lock: the seal's idle codecs.
 *  MAPTREE          xs_maptree.lock (maptree.c): a block map's cached
 *                   and changed pages.  Across I/O (reading and writing
 *                   pages); callbacks run without it.
 *  SNAPREADER_POOL  xs_snapreader.pool_lock (snapreader.c): idle decoders.
 *  READAHEAD        xs_readahead.lock, with work (readahead.c): its
 *                   streams and queue.  Never across a load.
 *  CHUNKCACHE       xs_chunk_cache.lock, with loaded (chunkcache.c): the
 *                   table and LRU; dropped around loads and copies.
 *  HEAD_BOUNCE      xs_head.bounce_lock: the bounce buffer pool.
 *  HEADCRYPT_POOL   xs_head_cipher pools[].lock (headcrypt.c): idle cipher
 *                   contexts.
 *
 * MAPTREE and the ranks after it are leaves: nothing is taken while one
 * is held.  Lock-free state (the dirty and present bits, a seal's todo
 * bits and counters) is C11 <stdatomic.h>; see bitmap.h for the bitmaps'
 * bytes.
 *
 * The checker (XS_LOCK_CHECK, defined by the Makefile for SANITIZE=1 or
 * LOCK_CHECK=1 builds and for unit tests) keeps, per thread, the locks it
 * holds and aborts with both locks' names when a take breaks the order.
 * Without it the helpers below are the bare pthread calls.
 */
#ifndef XSNAP_LOCKORDER_H
#define XSNAP_LOCKORDER_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>

enum xs_lock_rank {
  XS_LOCK_SERVER = 1,
  XS_LOCK_EXPORT_SEALER,
  XS_LOCK_HEAD_GATE,
  XS_LOCK_HEAD_GUARD,
  XS_LOCK_SEAL_STRIPE,
  XS_LOCK_HEAD_COPYUP,
  XS_LOCK_HEAD_SECTOR,
  XS_LOCK_DIRTYMAP,
  XS_LOCK_PRESENTMAP,
  XS_LOCK_SEAL_QUEUE,
  XS_LOCK_SEAL_CODECS,
  XS_LOCK_MAPTREE,
  XS_LOCK_SNAPREADER_POOL,
  XS_LOCK_READAHEAD,
  XS_LOCK_CHUNKCACHE,
  XS_LOCK_HEAD_BOUNCE,
  XS_LOCK_HEADCRYPT_POOL,
  XS_LOCK_NRANKS
};

/* The checker (always in the library, so that a checked caller can link
 * against an unchecked build).  xs_lock_check_take aborts, naming both
 * locks, if taking LOCK of RANK (its INDEX among locks of a "several"
 * rank) breaks the order; xs_lock_check_drop aborts if LOCK is not held.
 */
extern void xs_lock_check_take (enum xs_lock_rank rank, unsigned index,
                                const void *lock);
extern void xs_lock_check_drop (const void *lock);

/* How many locks the calling thread holds (checked builds; else 0). */
extern unsigned xs_lock_check_held (void);

/* Whether the library itself was built with the checker. */
extern bool xs_lock_check_built_in (void);

#ifdef XS_LOCK_CHECK
#define XS_LOCK_TAKING(rank, index, lock) \
  xs_lock_check_take ((rank), (index), (lock))
#define XS_LOCK_DROPPING(lock) xs_lock_check_drop ((lock))
#else
#define XS_LOCK_TAKING(rank, index, lock) ((void) 0)
#define XS_LOCK_DROPPING(lock) ((void) 0)
#endif

/* A failing lock or unlock of a valid, initialized lock is a bug; the
 * checks cost a compare.
 */
static inline void
xs_lock_take (pthread_mutex_t *m, enum xs_lock_rank rank, unsigned index)
{
  int r;

  XS_LOCK_TAKING (rank, index, m);
  r = pthread_mutex_lock (m);
  assert (r == 0);
  (void) r;
}

static inline void
xs_lock_drop (pthread_mutex_t *m)
{
  int r;

  XS_LOCK_DROPPING (m);
  r = pthread_mutex_unlock (m);
  assert (r == 0);
  (void) r;
}

static inline void
xs_lock_take_read (pthread_rwlock_t *l, enum xs_lock_rank rank,
                   unsigned index)
{
  int r;

  XS_LOCK_TAKING (rank, index, l);
  r = pthread_rwlock_rdlock (l);
  assert (r == 0);
  (void) r;
}

static inline void
xs_lock_take_write (pthread_rwlock_t *l, enum xs_lock_rank rank,
                    unsigned index)
{
  int r;

  XS_LOCK_TAKING (rank, index, l);
  r = pthread_rwlock_wrlock (l);
  assert (r == 0);
  (void) r;
}

static inline void
xs_lock_drop_rw (pthread_rwlock_t *l)
{
  int r;

  XS_LOCK_DROPPING (l);
  r = pthread_rwlock_unlock (l);
  assert (r == 0);
  (void) r;
}

#endif /* XSNAP_LOCKORDER_H */
