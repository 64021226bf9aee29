/* xsnap: fetching and decoding the blocks a reader will ask for next
 * (see readahead.h).
 *
 * One mutex guards the streams, the queue and the counters; it is held
 * for bookkeeping only, never across a load.  The queue is a ring of
 * block numbers, loaded in the order they were queued by whichever
 * worker is free.  A stream is a sequential reader: the block after the
 * furthest it has read (next) and the first block not yet queued for it
 * (ahead).  A read close to a stream's position (up to a quarter window
 * behind it, as the requests of one reader overtake each other, or
 * within what is queued for it) continues it; any other read starts a new stream in the
 * place of the one used longest ago.  A stream is followed once it has
 * read twice in a row, and is then kept a window ahead, refilled when
 * half of it has been read, so that the queue is touched once per half
 * window rather than once per read.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/error.h"
#include "base/lockorder.h"
#include "repo/readahead.h"

struct stream {
  uint64_t next;                /* the block after the furthest read */
  uint64_t ahead;               /* the first block not queued for it */
  uint64_t used;                /* tick of its last read */
  unsigned reads;               /* reads in a row; followed from 2 */
  bool live;
};

struct xs_readahead {
  uint64_t nblocks;
  unsigned window;
  unsigned max_threads;
  xs_readahead_load_fn load;
  void *opaque;

  pthread_mutex_t lock;
  pthread_cond_t work;          /* the queue is not empty, or stopping */
  uint64_t *queue;              /* ring of queue_capacity block numbers */
  unsigned queue_capacity, queue_head, queue_length;
  /* Blocks queued that neither a worker has started nor a reader has
   * come for: open addressing, pending_slots (a power of two, at least
   * twice queue_capacity) entries of block + 1 (0: empty).
   */
  uint64_t *pending;
  unsigned pending_slots;
  atomic_uint pending_count;
  struct stream streams[XS_READAHEAD_STREAMS];
  uint64_t tick;
  pthread_t *threads;
  unsigned nthreads;            /* started */
  bool stopping;
  uint64_t loaded, skipped, failed, dropped;
};

struct xs_readahead *
xs_readahead_new (uint64_t nblocks, unsigned threads, unsigned window,
                  xs_readahead_load_fn load, void *opaque)
{
  struct xs_readahead *ra = calloc (1, sizeof *ra);
  unsigned slots = 1;

  if (threads == 0)
    threads = 1;
  if (window < 2)
    window = 2;
  while (slots < 2 * window * XS_READAHEAD_STREAMS)
    slots *= 2;
  if (ra == NULL
      || (ra->queue = calloc ((size_t) window * XS_READAHEAD_STREAMS,
                              sizeof *ra->queue)) == NULL
      || (ra->pending = calloc (slots, sizeof *ra->pending)) == NULL
      || (ra->threads = calloc (threads, sizeof *ra->threads)) == NULL) {
    xs_error ("cannot allocate a read-ahead: %m");
    if (ra != NULL) {
      free (ra->queue);
      free (ra->pending);
    }
    free (ra);
    return NULL;
  }
  ra->pending_slots = slots;
  ra->nblocks = nblocks;
  ra->window = window;
  ra->max_threads = threads;
  ra->load = load;
  ra->opaque = opaque;
  ra->queue_capacity = window * XS_READAHEAD_STREAMS;
  pthread_mutex_init (&ra->lock, NULL);
  pthread_cond_init (&ra->work, NULL);
  return ra;
}

void
xs_readahead_free (struct xs_readahead *ra)
{
  unsigned i;

  if (ra == NULL)
    return;
  xs_lock_take (&ra->lock, XS_LOCK_READAHEAD, 0);
  ra->stopping = true;
  pthread_cond_broadcast (&ra->work);
  xs_lock_drop (&ra->lock);
  for (i = 0; i < ra->nthreads; i++)
    pthread_join (ra->threads[i], NULL);
  pthread_cond_destroy (&ra->work);
  pthread_mutex_destroy (&ra->lock);
  free (ra->threads);
  free (ra->pending);
  free (ra->queue);
  free (ra);
}

/* ----- The pending set ----- */

static unsigned
pending_home (const struct xs_readahead *ra, uint64_t block)
{
  return (unsigned) ((block * 0x9e3779b97f4a7c15u) >> 32)
    & (ra->pending_slots - 1);
}

/* Add block (with the lock held); false if it is there already.  The
 * set never fills: it holds at most what the queue does, and has twice
 * the room.
 */
static bool
pending_add (struct xs_readahead *ra, uint64_t block)
{
  unsigned i = pending_home (ra, block);

  while (ra->pending[i] != 0) {
    if (ra->pending[i] == block + 1)
      return false;
    i = (i + 1) & (ra->pending_slots - 1);
  }
  ra->pending[i] = block + 1;
  atomic_fetch_add_explicit (&ra->pending_count, 1, memory_order_relaxed);
  return true;
}

/* Remove block if there (with the lock held); true if it was.  Later
 * entries of its run move back into the hole, so that probing never
 * stops early.
 */
static bool
pending_remove (struct xs_readahead *ra, uint64_t block)
{
  unsigned mask = ra->pending_slots - 1, i = pending_home (ra, block), j;

  while (ra->pending[i] != block + 1) {
    if (ra->pending[i] == 0)
      return false;
    i = (i + 1) & mask;
  }
  ra->pending[i] = 0;
  for (j = (i + 1) & mask; ra->pending[j] != 0; j = (j + 1) & mask) {
    unsigned home = pending_home (ra, ra->pending[j] - 1);

    /* Move it back if its home is not within (i, j]. */
    if (((j - home) & mask) >= ((j - i) & mask)) {
      ra->pending[i] = ra->pending[j];
      ra->pending[j] = 0;
      i = j;
    }
  }
  atomic_fetch_sub_explicit (&ra->pending_count, 1, memory_order_relaxed);
  return true;
}

bool
xs_readahead_claim (struct xs_readahead *ra, uint64_t block)
{
  bool pending;

  xs_lock_take (&ra->lock, XS_LOCK_READAHEAD, 0);
  pending = pending_remove (ra, block);
  xs_lock_drop (&ra->lock);
  return pending;
}

void
xs_readahead_consume (struct xs_readahead *ra, uint64_t block)
{
  if (atomic_load_explicit (&ra->pending_count, memory_order_relaxed) == 0)
    return;
  (void) xs_readahead_claim (ra, block);
}

/* A worker: load queued blocks until told to stop.  What a load reports
 * is held back: the reader that needs the block reports it.
 */
static void *
worker_main (void *opaque)
{
  struct xs_readahead *ra = opaque;
  char held[256];

  xs_lock_take (&ra->lock, XS_LOCK_READAHEAD, 0);
  for (;;) {
    uint64_t block;
    int r;

    while (ra->queue_length == 0 && !ra->stopping)
      pthread_cond_wait (&ra->work, &ra->lock);
    if (ra->stopping)
      break;
    block = ra->queue[ra->queue_head];
    ra->queue_head = (ra->queue_head + 1) % ra->queue_capacity;
    ra->queue_length--;
    xs_lock_drop (&ra->lock);

    xs_error_hold_begin (held, sizeof held);
    r = ra->load (ra->opaque, block);
    xs_error_capture_end ();

    xs_lock_take (&ra->lock, XS_LOCK_READAHEAD, 0);
    (void) pending_remove (ra, block); /* if the load did not claim it */
    if (r == 0)
      ra->loaded++;
    else if (r == 1)
      ra->skipped++;
    else
      ra->failed++;
  }
  xs_lock_drop (&ra->lock);
  return NULL;
}

/* Start the workers not started yet.  With the lock held.  A worker
 * that cannot start only makes the read-ahead slower.
 */
static void
start_workers (struct xs_readahead *ra)
{
  while (ra->nthreads < ra->max_threads
         && pthread_create (&ra->threads[ra->nthreads], NULL, worker_main,
                            ra) == 0)
    ra->nthreads++;
}

/* Queue [first, first + count), clipped to the blocks there are.  With
 * the lock held.
 */
static void
queue_locked (struct xs_readahead *ra, uint64_t first, uint64_t count)
{
  uint64_t block, end;

  if (first >= ra->nblocks || count == 0)
    return;
  end = count > ra->nblocks - first ? ra->nblocks : first + count;
  for (block = first; block < end; block++) {
    if (ra->queue_length == ra->queue_capacity) {
      ra->dropped += end - block;
      break;
    }
    if (!pending_add (ra, block))
      continue;                 /* queued already */
    ra->queue[(ra->queue_head + ra->queue_length) % ra->queue_capacity]
      = block;
    ra->queue_length++;
  }
  if (ra->queue_length > 0 && !ra->stopping) {
    start_workers (ra);
    pthread_cond_broadcast (&ra->work);
  }
}

void
xs_readahead_queue (struct xs_readahead *ra, uint64_t first, uint64_t count)
{
  xs_lock_take (&ra->lock, XS_LOCK_READAHEAD, 0);
  queue_locked (ra, first, count);
  xs_lock_drop (&ra->lock);
}

/* The stream a read at first continues, or NULL. */
static struct stream *
find_stream (struct xs_readahead *ra, uint64_t first)
{
  unsigned i;

  for (i = 0; i < XS_READAHEAD_STREAMS; i++) {
    struct stream *s = &ra->streams[i];
    uint64_t slack = ra->window / 4 + 1;
    uint64_t behind = s->next > slack ? s->next - slack : 0;
    uint64_t beyond = s->ahead > s->next + 1 ? s->ahead : s->next + 1;

    if (s->live && first >= behind && first <= beyond)
      return s;
  }
  return NULL;
}

/* A stream slot for a new reader: a free one, or the one used longest
 * ago.
 */
static struct stream *
replace_stream (struct xs_readahead *ra)
{
  struct stream *oldest = &ra->streams[0];
  unsigned i;

  for (i = 0; i < XS_READAHEAD_STREAMS; i++) {
    struct stream *s = &ra->streams[i];

    if (!s->live)
      return s;
    if (s->used < oldest->used)
      oldest = s;
  }
  return oldest;
}

/* Keep stream s a window ahead of its reader, refilling by halves. */
static void
follow_stream (struct xs_readahead *ra, struct stream *s)
{
  uint64_t target;

  if (s->ahead < s->next)
    s->ahead = s->next;
  if (s->ahead >= s->next + ra->window / 2 || s->ahead >= ra->nblocks)
    return;
  target = s->next + ra->window;
  if (target > ra->nblocks)
    target = ra->nblocks;
  queue_locked (ra, s->ahead, target - s->ahead);
  s->ahead = target;
}

void
xs_readahead_observe (struct xs_readahead *ra, uint64_t first,
                      uint64_t count)
{
  uint64_t end = first + count;
  struct stream *s;

  if (count == 0 || first >= ra->nblocks)
    return;
  if (end > ra->nblocks)
    end = ra->nblocks;
  xs_lock_take (&ra->lock, XS_LOCK_READAHEAD, 0);
  ra->tick++;
  s = find_stream (ra, first);
  if (s != NULL) {
    s->reads++;
    if (end > s->next)
      s->next = end;
  }
  else {
    s = replace_stream (ra);
    *s = (struct stream) { .next = end, .ahead = end, .reads = 1,
                           .live = true };
  }
  s->used = ra->tick;
  if (s->reads >= 2)
    follow_stream (ra, s);
  /* A read of several blocks: its others decode beside its first. */
  if (end - first > 1)
    queue_locked (ra, first + 1, end - first - 1);
  xs_lock_drop (&ra->lock);
}

void
xs_readahead_counts (struct xs_readahead *ra,
                     struct xs_readahead_counts *counts)
{
  xs_lock_take (&ra->lock, XS_LOCK_READAHEAD, 0);
  counts->loaded = ra->loaded;
  counts->skipped = ra->skipped;
  counts->failed = ra->failed;
  counts->dropped = ra->dropped;
  counts->queued = ra->queue_length;
  xs_lock_drop (&ra->lock);
}
