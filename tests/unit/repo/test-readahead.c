/* xsnap: tests for lib/repo/readahead.c.
 *
 * With a load function that counts what it loads: queued blocks are
 * loaded once each; a block a reader comes for before a worker starts it
 * is never loaded by a worker (over many rounds of colliding block
 * numbers, against a model of what must load); a full queue drops what
 * does not fit and counts it; a sequential reader is followed a window
 * ahead, clipped at the last block, while random reads queue nothing; a
 * read of several blocks queues its others.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/readahead.h"
#include "tap.h"

#define MAX_TRACKED 4096

struct loader {
  struct xs_readahead *ra;
  atomic_int loads[MAX_TRACKED];        /* by block % MAX_TRACKED */
  pthread_mutex_t gate_lock;
  pthread_cond_t gate_open;
  bool open;
};

static int
count_load (void *opaque, uint64_t block)
{
  struct loader *l = opaque;

  pthread_mutex_lock (&l->gate_lock);
  while (!l->open)
    pthread_cond_wait (&l->gate_open, &l->gate_lock);
  pthread_mutex_unlock (&l->gate_lock);
  if (!xs_readahead_claim (l->ra, block))
    return 1;
  atomic_fetch_add (&l->loads[block % MAX_TRACKED], 1);
  return 0;
}

static struct loader *
loader_new (uint64_t nblocks, unsigned threads, unsigned window, bool open)
{
  struct loader *l = calloc (1, sizeof *l);

  if (l == NULL)
    abort ();
  pthread_mutex_init (&l->gate_lock, NULL);
  pthread_cond_init (&l->gate_open, NULL);
  l->open = open;
  l->ra = xs_readahead_new (nblocks, threads, window, count_load, l);
  if (l->ra == NULL)
    abort ();
  return l;
}

static void
loader_open_gate (struct loader *l)
{
  pthread_mutex_lock (&l->gate_lock);
  l->open = true;
  pthread_cond_broadcast (&l->gate_open);
  pthread_mutex_unlock (&l->gate_lock);
}

/* Wait until the workers have done n blocks (up to 10 s). */
static struct xs_readahead_counts
loader_wait (struct loader *l, uint64_t n)
{
  struct xs_readahead_counts c;
  int i;

  for (i = 0; i < 2000; i++) {
    xs_readahead_counts (l->ra, &c);
    if (c.loaded + c.skipped + c.failed >= n && c.queued == 0)
      break;
    usleep (5000);
  }
  return c;
}

static void
loader_free (struct loader *l)
{
  loader_open_gate (l);
  xs_readahead_free (l->ra);
  pthread_cond_destroy (&l->gate_open);
  pthread_mutex_destroy (&l->gate_lock);
  free (l);
}

static void
test_each_once (void)
{
  struct loader *l = loader_new (1000, 4, 16, true);
  struct xs_readahead_counts c;
  unsigned b, wrong = 0;

  xs_readahead_queue (l->ra, 0, 100);
  c = loader_wait (l, 100);
  for (b = 0; b < 100; b++)
    wrong += atomic_load (&l->loads[b]) != 1;
  is_int ((int) wrong, 0, "100 queued blocks are each loaded once");
  is_int ((int) c.loaded, 100, "... and counted");
  xs_readahead_queue (l->ra, 995, 10);
  c = loader_wait (l, 105);
  is_int ((int) c.loaded, 105, "a queue past the last block is clipped");
  loader_free (l);
}

static uint64_t
next_random (uint64_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

/* One worker, held at the gate; blocks queued, some consumed by a
 * reader, then the gate opens: exactly the others load.
 */
static void
test_consumed_never_load (void)
{
  uint64_t seed = 88172645463325252u;
  unsigned round, bad_rounds = 0;

  for (round = 0; round < 200; round++) {
    /* window 2: a queue of 16 and a pending set of 32 slots, so that
     * the numbers below collide and the set's deletion is exercised.
     */
    struct loader *l = loader_new (1u << 30, 1, 2, false);
    uint64_t blocks[16];
    bool consumed[16];
    unsigned i, n = 1 + (unsigned) (next_random (&seed) % 16);
    bool right = true;

    for (i = 0; i < n; i++) {
      /* Distinct modulo MAX_TRACKED, scattered over the space. */
      blocks[i] = (next_random (&seed) % (1u << 17)) * MAX_TRACKED + i;
      xs_readahead_queue (l->ra, blocks[i], 1);
    }
    for (i = 0; i < n; i++) {
      consumed[i] = next_random (&seed) % 2;
      if (consumed[i])
        xs_readahead_consume (l->ra, blocks[i]);
    }
    loader_open_gate (l);
    loader_wait (l, n);
    for (i = 0; i < n; i++)
      right &= atomic_load (&l->loads[blocks[i] % MAX_TRACKED])
        == (consumed[i] ? 0 : 1);
    bad_rounds += !right;
    loader_free (l);
  }
  is_int ((int) bad_rounds, 0, "200 rounds: blocks a reader came for first "
          "are never loaded, the others once");
}

static void
test_full_queue_drops (void)
{
  struct loader *l = loader_new (1u << 20, 1, 2, false);
  struct xs_readahead_counts c;

  /* A queue of 16; the one worker takes at most one and waits. */
  xs_readahead_queue (l->ra, 0, 100);
  xs_readahead_counts (l->ra, &c);
  ok (c.dropped == 84 || c.dropped == 83,
      "a full queue drops what does not fit (%d dropped)", (int) c.dropped);
  loader_open_gate (l);
  c = loader_wait (l, 100 - c.dropped);
  ok (c.loaded == 16 || c.loaded == 17, "... and loads the rest");
  loader_free (l);
}

static unsigned
loaded_in (struct loader *l, uint64_t first, uint64_t end)
{
  unsigned n = 0;
  uint64_t b;

  for (b = first; b < end; b++)
    n += (unsigned) atomic_load (&l->loads[b % MAX_TRACKED]);
  return n;
}

static void
test_streams (void)
{
  struct loader *l = loader_new (1000, 2, 16, true);
  struct xs_readahead_counts c;
  unsigned twice;
  uint64_t b;

  xs_readahead_observe (l->ra, 10, 1);
  c = loader_wait (l, 0);
  is_int ((int) (c.loaded + c.queued), 0, "one read queues nothing");
  xs_readahead_observe (l->ra, 11, 1);
  c = loader_wait (l, 16);
  is_int ((int) c.loaded, 16, "a second read in a row: a window queued");
  is_int ((int) loaded_in (l, 12, 28), 16, "... the window after it");
  for (b = 12; b < 1000; b++) {
    xs_readahead_consume (l->ra, b);
    xs_readahead_observe (l->ra, b, 1);
  }
  c = loader_wait (l, 0);
  twice = 0;
  for (b = 0; b < 1000; b++)
    twice += atomic_load (&l->loads[b]) > 1;
  is_int ((int) twice, 0, "a sequential reader to the end: no block loaded "
          "twice");
  is_int ((int) loaded_in (l, 1000, MAX_TRACKED), 0,
          "... nor past the last block");
  ok (loaded_in (l, 0, 12) == 0, "... nor behind its start");
  loader_free (l);

  l = loader_new (1000000, 2, 16, true);
  for (b = 0; b < 200; b++)
    xs_readahead_observe (l->ra, (b * 7919) % 1000000, 1);
  c = loader_wait (l, 0);
  is_int ((int) (c.loaded + c.skipped + c.queued), 0,
          "200 random reads queue nothing");
  xs_readahead_observe (l->ra, 5000, 8);
  c = loader_wait (l, 7);
  is_int ((int) loaded_in (l, 5001, 5008), 7,
          "a read of 8 blocks queues its 7 others");
  is_int ((int) loaded_in (l, 5000, 5001), 0, "... not its first");
  loader_free (l);
}

int
main (void)
{
  test_each_once ();
  test_consumed_never_load ();
  test_full_queue_drops ();
  test_streams ();
  return done_testing ();
}
