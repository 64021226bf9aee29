/* xsnap: the lock-order checker of debug builds (see lockorder.h for the
 * order itself).
 *
 * Each thread keeps the locks it holds, as a small stack of (rank, index,
 * lock).  Taking a lock checks it against every lock held: a cycle of
 * waits needs two threads taking two locks in opposite orders, and that
 * needs one of them to break the order, which is caught here the first
 * time it happens, whether or not the other thread is there to deadlock.
 * The cost is a scan of a few entries per lock taken, in checked builds
 * only; release builds do not call this file.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/lockorder.h"

/* The gate, a seal stripe, a copy-up stripe, every sector stripe, the dirty
 * map and the leaves: far fewer than this.
 */
#define MAX_HELD 96

static const struct {
  const char *name;
  int several;                  /* held more than once, by index order */
} ranks[XS_LOCK_NRANKS] = {
  [XS_LOCK_SERVER] = { "server lock", 0 },
  [XS_LOCK_EXPORT_SEALER] = { "export sealer lock", 0 },
  [XS_LOCK_HEAD_GATE] = { "head gate", 0 },
  [XS_LOCK_HEAD_GUARD] = { "head guard lock", 0 },
  [XS_LOCK_SEAL_STRIPE] = { "seal stripe", 0 },
  [XS_LOCK_HEAD_COPYUP] = { "head copy-up stripe", 0 },
  [XS_LOCK_HEAD_SECTOR] = { "head sector stripe", 1 },
  [XS_LOCK_DIRTYMAP] = { "dirty map persist lock", 0 },
  [XS_LOCK_PRESENTMAP] = { "present map persist lock", 0 },
  [XS_LOCK_SEAL_QUEUE] = { "seal queue lock", 0 },
  [XS_LOCK_SEAL_CODECS] = { "seal codec pool lock", 0 },
  [XS_LOCK_MAPTREE] = { "block map lock", 0 },
  [XS_LOCK_SNAPREADER_POOL] = { "snapshot reader pool lock", 0 },
  [XS_LOCK_READAHEAD] = { "read-ahead lock", 0 },
  [XS_LOCK_CHUNKCACHE] = { "chunk cache lock", 0 },
  [XS_LOCK_HEAD_BOUNCE] = { "head bounce pool lock", 0 },
  [XS_LOCK_HEADCRYPT_POOL] = { "head cipher pool lock", 0 },
};

struct held {
  enum xs_lock_rank rank;
  unsigned index;
  const void *lock;
};

static _Thread_local struct held held[MAX_HELD];
static _Thread_local unsigned nheld;

static const char *
rank_name (enum xs_lock_rank rank)
{
  return rank > 0 && rank < XS_LOCK_NRANKS && ranks[rank].name
    ? ranks[rank].name : "lock of no rank";
}

static void
order_broken (const struct held *h, enum xs_lock_rank rank, unsigned index,
              const char *why)
{
  fprintf (stderr, "xsnap: lock order broken: taking %s %u (rank %d) while "
           "holding %s %u (rank %d): %s\n",
           rank_name (rank), index, (int) rank,
           rank_name (h->rank), h->index, (int) h->rank, why);
  abort ();
}

void
xs_lock_check_take (enum xs_lock_rank rank, unsigned index, const void *lock)
{
  unsigned i;

  if (rank <= 0 || rank >= XS_LOCK_NRANKS) {
    fprintf (stderr, "xsnap: lock %p taken with no rank (%d)\n", lock,
             (int) rank);
    abort ();
  }
  for (i = 0; i < nheld; i++) {
    const struct held *h = &held[i];

    if (h->lock == lock)
      order_broken (h, rank, index, "it is held already");
    if (h->rank > rank)
      order_broken (h, rank, index, "an inner lock is held");
    if (h->rank == rank && !ranks[rank].several)
      order_broken (h, rank, index, "one of its kind at a time");
    if (h->rank == rank && h->index >= index)
      order_broken (h, rank, index, "several are taken in index order");
  }
  if (nheld == MAX_HELD) {
    fprintf (stderr, "xsnap: more than %d locks held at once\n", MAX_HELD);
    abort ();
  }
  held[nheld++] = (struct held) { .rank = rank, .index = index,
                                  .lock = lock };
}

void
xs_lock_check_drop (const void *lock)
{
  unsigned i;

  for (i = nheld; i-- > 0;)
    if (held[i].lock == lock) {
      held[i] = held[--nheld];
      return;
    }
  fprintf (stderr, "xsnap: lock %p released but not held by this thread\n",
           lock);
  abort ();
}

unsigned
xs_lock_check_held (void)
{
  return nheld;
}

bool
xs_lock_check_built_in (void)
{
#ifdef XS_LOCK_CHECK
  return true;
#else
  return false;
#endif
}
