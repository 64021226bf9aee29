/* xsnap: tests for lib/repo/chunkcache.c.
 *
 * Hits and misses are counted, the byte bound holds and the least
 * recently used entry goes first, offers are kept only while there is
 * room, concurrent misses on one chunk load it
 * once, many threads get the right bytes, and a failed load leaves
 * nothing behind: the next read loads again and succeeds once the cause
 * is gone.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/chunkcache.h"
#include "base/hash.h"
#include "tap.h"

#define CHUNK 4096

/* A fake chunk store: chunk n's byte i is (n * 31 + i * 7) & 0xff. */
struct fake_store {
  atomic_int loads;
  atomic_bool broken;           /* loads fail with EIO */
  unsigned delay_us;            /* each load sleeps this long */
};

static void
make_id (unsigned n, struct xs_hash128 *id)
{
  memset (id, 0, sizeof *id);
  memcpy (id->bytes, &n, sizeof n);
  id->bytes[15] = 1;            /* never the zero id */
}

static unsigned
id_number (const struct xs_hash128 *id)
{
  unsigned n;

  memcpy (&n, id->bytes, sizeof n);
  return n;
}

static uint8_t
model_byte (unsigned n, size_t i)
{
  return (uint8_t) (n * 31 + i * 7);
}

static int
fake_load (void *opaque, const struct xs_hash128 *id, void *buf, size_t len)
{
  struct fake_store *store = opaque;
  uint8_t *bytes = buf;
  unsigned n = id_number (id);
  size_t i;

  atomic_fetch_add (&store->loads, 1);
  if (store->delay_us > 0)
    usleep (store->delay_us);
  if (atomic_load (&store->broken)) {
    xs_error ("chunk %u: checksum mismatch", n);
    errno = EIO;
    return -1;
  }
  for (i = 0; i < len; i++)
    bytes[i] = model_byte (n, i);
  return 0;
}

static bool
matches_model (unsigned n, const uint8_t *buf, size_t offset, size_t count)
{
  size_t i;

  for (i = 0; i < count; i++)
    if (buf[i] != model_byte (n, offset + i))
      return false;
  return true;
}

static int
read_chunk (struct xs_chunk_cache *cache, struct fake_store *store,
            unsigned n, uint8_t *buf, size_t offset, size_t count)
{
  struct xs_hash128 id;

  make_id (n, &id);
  return xs_chunk_cache_read (cache, &id, CHUNK, buf, offset, count,
                              fake_load, store);
}

static void
test_hits_and_misses (void)
{
  struct xs_chunk_cache *cache = xs_chunk_cache_new (4 * CHUNK);
  struct fake_store store = { .delay_us = 0 };
  struct xs_chunk_cache_stats stats;
  struct xs_hash128 id;
  uint8_t buf[CHUNK];

  ok (cache != NULL, "new cache");
  is_int (xs_chunk_cache_capacity (cache), 4 * CHUNK, "capacity");
  is_int (read_chunk (cache, &store, 1, buf, 100, 50), 0, "first read");
  ok (matches_model (1, buf, 100, 50), "... has the right bytes");
  is_int (read_chunk (cache, &store, 1, buf, 4000, 96), 0, "second read");
  ok (matches_model (1, buf, 4000, 96), "... has the right bytes");
  xs_chunk_cache_stats (cache, &stats);
  is_int (stats.misses, 1, "one miss");
  is_int (stats.hits, 1, "one hit");
  is_int (stats.loads, 1, "one load");
  is_int (atomic_load (&store.loads), 1, "the load function ran once");
  is_int (stats.bytes, CHUNK, "one chunk's bytes held");
  is_int (stats.entries, 1, "one entry");

  make_id (1, &id);
  memset (buf, 0, sizeof buf);
  is_int (xs_chunk_cache_lookup (cache, &id, CHUNK, buf, 0, CHUNK), 1,
          "lookup finds a cached chunk");
  ok (matches_model (1, buf, 0, CHUNK), "... and copies it whole");
  make_id (2, &id);
  is_int (xs_chunk_cache_lookup (cache, &id, CHUNK, buf, 0, CHUNK), 0,
          "lookup of an uncached chunk misses");
  make_id (1, &id);
  is_int (xs_chunk_cache_lookup (cache, &id, CHUNK / 2, buf, 0, CHUNK / 2),
          0, "the same id with another length is another entry");
  xs_chunk_cache_stats (cache, &stats);
  is_int (atomic_load (&store.loads), 1, "lookups never load");
  is_int (stats.hits, 2, "hits counted");
  is_int (stats.misses, 3, "misses counted");
  xs_chunk_cache_free (cache);
}

static void
test_capacity_and_lru (void)
{
  struct xs_chunk_cache *cache = xs_chunk_cache_new (4 * CHUNK);
  struct fake_store store = { .delay_us = 0 };
  struct xs_chunk_cache_stats stats;
  uint8_t buf[CHUNK];
  unsigned n;
  bool all_right = true;

  for (n = 1; n <= 10; n++) {
    all_right &= read_chunk (cache, &store, n, buf, 0, CHUNK) == 0;
    all_right &= matches_model (n, buf, 0, CHUNK);
    xs_chunk_cache_stats (cache, &stats);
    all_right &= stats.bytes <= 4 * CHUNK;
  }
  ok (all_right, "10 chunks read right, never more than capacity held");
  xs_chunk_cache_stats (cache, &stats);
  is_int (stats.entries, 4, "4 entries fit");
  is_int (stats.bytes, 4 * CHUNK, "capacity is full");
  is_int (stats.evictions, 6, "6 evicted");

  /* Held now: 7 8 9 10.  Touch 7, add 11: 8 is least recent. */
  read_chunk (cache, &store, 7, buf, 0, 1);
  read_chunk (cache, &store, 11, buf, 0, 1);
  atomic_store (&store.loads, 0);
  read_chunk (cache, &store, 7, buf, 0, 1);
  is_int (atomic_load (&store.loads), 0,
          "the recently used chunk survived eviction");
  read_chunk (cache, &store, 8, buf, 0, 1);
  is_int (atomic_load (&store.loads), 1,
          "the least recently used chunk was evicted");
  xs_chunk_cache_free (cache);
}

static void
test_capacity_zero (void)
{
  struct xs_chunk_cache *cache = xs_chunk_cache_new (0);
  struct fake_store store = { .delay_us = 0 };
  struct xs_chunk_cache_stats stats;
  uint8_t buf[CHUNK];

  is_int (read_chunk (cache, &store, 5, buf, 10, 100), 0,
          "capacity 0: read works");
  ok (matches_model (5, buf, 10, 100), "... with the right bytes");
  read_chunk (cache, &store, 5, buf, 10, 100);
  xs_chunk_cache_stats (cache, &stats);
  is_int (stats.bytes, 0, "capacity 0 keeps nothing");
  is_int (stats.entries, 0, "... no entries");
  is_int (atomic_load (&store.loads), 2, "... every read loads");
  xs_chunk_cache_free (cache);
}

static void
test_failed_load (void)
{
  struct xs_chunk_cache *cache = xs_chunk_cache_new (4 * CHUNK);
  struct fake_store store = { .delay_us = 0 };
  struct xs_chunk_cache_stats stats;
  uint8_t buf[CHUNK];

  atomic_store (&store.broken, true);
  errno = 0;
  is_int (read_chunk (cache, &store, 3, buf, 0, 10), -1,
          "a failed load fails the read");
  is_int (errno, EIO, "... with the load's errno");
  error_contains ("chunk 3: checksum mismatch", "... and the load's error");
  xs_chunk_cache_stats (cache, &stats);
  is_int (stats.entries, 0, "no entry is left behind");
  is_int (stats.bytes, 0, "... nor bytes");
  is_int (read_chunk (cache, &store, 3, buf, 0, 10), -1,
          "reading again loads again and fails again");
  is_int (atomic_load (&store.loads), 2, "... the load was retried");

  atomic_store (&store.broken, false);
  is_int (read_chunk (cache, &store, 3, buf, 0, 10), 0,
          "once repaired, the read succeeds");
  ok (matches_model (3, buf, 0, 10), "... with the right bytes");
  xs_chunk_cache_free (cache);
}

/* Threads. */

struct reader_thread {
  pthread_t thread;
  struct xs_chunk_cache *cache;
  struct fake_store *store;
  pthread_barrier_t *start;
  unsigned seed;
  unsigned first_chunk, nchunks;
  int reads;
  int wrong;                    /* reads that failed or got bad bytes */
  int failed_eio;
};

static void *
read_randomly (void *arg)
{
  struct reader_thread *t = arg;
  uint8_t buf[CHUNK];
  int i;

  pthread_barrier_wait (t->start);
  for (i = 0; i < t->reads; i++) {
    unsigned n = t->first_chunk + (unsigned) rand_r (&t->seed) % t->nchunks;
    size_t offset = (size_t) rand_r (&t->seed) % CHUNK;
    size_t count = 1 + (size_t) rand_r (&t->seed) % (CHUNK - offset);

    if (read_chunk (t->cache, t->store, n, buf, offset, count) == -1) {
      t->wrong++;
      if (errno == EIO)
        t->failed_eio++;
    }
    else if (!matches_model (n, buf, offset, count))
      t->wrong++;
  }
  return NULL;
}

/* Start nthreads readers of chunks [first, first + nchunks) and wait. */
static void
run_readers (struct reader_thread *threads, int nthreads,
             struct xs_chunk_cache *cache, struct fake_store *store,
             unsigned first, unsigned nchunks, int reads)
{
  pthread_barrier_t start;
  int i;

  pthread_barrier_init (&start, NULL, (unsigned) nthreads);
  for (i = 0; i < nthreads; i++) {
    threads[i] = (struct reader_thread) {
      .cache = cache, .store = store, .start = &start,
      .seed = 1234u + (unsigned) i, .first_chunk = first,
      .nchunks = nchunks, .reads = reads,
    };
    if (pthread_create (&threads[i].thread, NULL, read_randomly,
                        &threads[i]) != 0)
      abort ();
  }
  for (i = 0; i < nthreads; i++)
    pthread_join (threads[i].thread, NULL);
  pthread_barrier_destroy (&start);
}

static void
test_concurrent_readers (void)
{
  struct xs_chunk_cache *cache = xs_chunk_cache_new (8 * CHUNK);
  struct fake_store store = { .delay_us = 20 };
  struct xs_chunk_cache_stats stats;
  struct reader_thread threads[4];
  int i, wrong = 0;

  run_readers (threads, 4, cache, &store, 100, 32, 5000);
  for (i = 0; i < 4; i++)
    wrong += threads[i].wrong;
  is_int (wrong, 0, "4 threads, 32 chunks, room for 8: every read right");
  xs_chunk_cache_stats (cache, &stats);
  ok (stats.bytes <= 8 * CHUNK, "capacity respected (%zu bytes held)",
      stats.bytes);
  is_int (stats.hits + stats.misses, 4 * 5000, "every read counted once");
  ok (stats.hits > 0 && stats.evictions > 0,
      "there were hits (%" PRIu64 ") and evictions (%" PRIu64 ")",
      stats.hits, stats.evictions);
  xs_chunk_cache_free (cache);
}

static void
test_one_load_for_concurrent_misses (void)
{
  struct xs_chunk_cache *cache = xs_chunk_cache_new (8 * CHUNK);
  struct fake_store store = { .delay_us = 100000 };
  struct reader_thread threads[4];
  int i, wrong = 0;

  /* All four read chunk 7 at once; the load takes 100 ms. */
  run_readers (threads, 4, cache, &store, 7, 1, 1);
  for (i = 0; i < 4; i++)
    wrong += threads[i].wrong;
  is_int (wrong, 0, "4 concurrent misses on one chunk: all right");
  is_int (atomic_load (&store.loads), 1, "... and the chunk loaded once");
  xs_chunk_cache_free (cache);

  /* The same, with a load that fails: every reader fails, cleanly. */
  cache = xs_chunk_cache_new (8 * CHUNK);
  atomic_store (&store.loads, 0);
  atomic_store (&store.broken, true);
  store.delay_us = 20000;
  run_readers (threads, 4, cache, &store, 7, 1, 1);
  wrong = 0;
  for (i = 0; i < 4; i++)
    wrong += threads[i].failed_eio;
  is_int (wrong, 4, "a failing load fails every waiting reader with EIO");
  atomic_store (&store.broken, false);
  {
    uint8_t buf[CHUNK];
    struct xs_chunk_cache_stats stats;

    xs_chunk_cache_stats (cache, &stats);
    is_int (stats.entries, 0, "... and leaves no entry");
    is_int (read_chunk (cache, &store, 7, buf, 0, CHUNK), 0,
            "the next read succeeds");
  }
  xs_chunk_cache_free (cache);
}

/* Offer chunk n (its model bytes) to the cache. */
static void
offer_chunk (struct xs_chunk_cache *cache, unsigned n)
{
  uint8_t plain[CHUNK];
  struct xs_hash128 id;
  size_t i;

  for (i = 0; i < CHUNK; i++)
    plain[i] = model_byte (n, i);
  make_id (n, &id);
  xs_chunk_cache_offer (cache, &id, CHUNK, plain);
}

/* Offers are kept from the second on, while there is room, never by
 * evicting.
 */
static void
test_offers (void)
{
  struct xs_chunk_cache *cache = xs_chunk_cache_new (2 * CHUNK);
  struct fake_store store = { .delay_us = 0 };
  struct xs_chunk_cache_stats stats;
  struct xs_hash128 id;
  uint8_t plain[CHUNK], buf[CHUNK];
  unsigned n;

  for (n = 1; n <= 3; n++)
    offer_chunk (cache, n);
  xs_chunk_cache_stats (cache, &stats);
  is_int (stats.offers_kept, 0, "a chunk offered once is not kept");
  is_int (stats.entries, 0, "... the cache is empty");
  for (n = 1; n <= 3; n++)
    offer_chunk (cache, n);
  make_id (1, &id);
  memset (plain, 0, sizeof plain);
  xs_chunk_cache_offer (cache, &id, CHUNK, plain);   /* again: no copy */
  xs_chunk_cache_stats (cache, &stats);
  is_int (stats.offers_kept, 2,
          "offered again, chunks are kept while there is room");
  is_int (stats.entries, 2, "... two entries");
  is_int (stats.bytes, 2 * CHUNK, "... within the capacity");
  is_int (stats.evictions, 0, "an offer never evicts");
  make_id (2, &id);
  is_int (xs_chunk_cache_lookup (cache, &id, CHUNK, buf, 0, CHUNK), 1,
          "an offered chunk is found");
  ok (matches_model (2, buf, 0, CHUNK), "... with its bytes");
  make_id (3, &id);
  is_int (xs_chunk_cache_lookup (cache, &id, CHUNK, buf, 0, CHUNK), 0,
          "the chunk offered when the cache was full is not");
  is_int (read_chunk (cache, &store, 1, buf, 10, 20), 0,
          "a read of an offered chunk");
  is_int (atomic_load (&store.loads), 0, "... does not load it");
  ok (matches_model (1, buf, 10, 20), "... and has the right bytes");
  xs_chunk_cache_free (cache);

  cache = xs_chunk_cache_new (0);
  offer_chunk (cache, 1);
  offer_chunk (cache, 1);
  xs_chunk_cache_stats (cache, &stats);
  is_int (stats.entries, 0, "a cache of capacity 0 keeps no offer");
  xs_chunk_cache_free (cache);
}


/* prefetch loads without copying; take copies whole and drops the
 * entry, waiting for a load under way.
 */
struct prefetcher {
  pthread_t thread;
  struct xs_chunk_cache *cache;
  struct fake_store *store;
  int r;
};

static void *
prefetch_chunk_3 (void *arg)
{
  struct prefetcher *p = arg;
  struct xs_hash128 id;

  make_id (3, &id);
  p->r = xs_chunk_cache_prefetch (p->cache, &id, CHUNK, fake_load, p->store);
  return NULL;
}

static void
test_prefetch_and_take (void)
{
  struct xs_chunk_cache *cache = xs_chunk_cache_new (4 * CHUNK);
  struct fake_store store = { .delay_us = 0 };
  struct xs_chunk_cache_stats stats;
  struct xs_hash128 id;
  struct prefetcher prefetcher = { .cache = cache, .store = &store };
  uint8_t buf[CHUNK];

  make_id (1, &id);
  is_int (xs_chunk_cache_prefetch (cache, &id, CHUNK, fake_load, &store), 0,
          "prefetch loads a chunk");
  ok (xs_chunk_cache_has (cache, &id, CHUNK), "... which the cache has");
  is_int (xs_chunk_cache_prefetch (cache, &id, CHUNK, fake_load, &store), 0,
          "prefetch of it again");
  is_int (atomic_load (&store.loads), 1, "... loads nothing");
  is_int (xs_chunk_cache_take (cache, &id, CHUNK, buf), 1,
          "take finds it");
  ok (matches_model (1, buf, 0, CHUNK), "... and copies it whole");
  ok (!xs_chunk_cache_has (cache, &id, CHUNK), "... and drops it");
  xs_chunk_cache_stats (cache, &stats);
  is_int (stats.bytes, 0, "... its bytes too");
  is_int (xs_chunk_cache_take (cache, &id, CHUNK, buf), 0,
          "a second take misses");

  /* A take waits for a load under way. */
  store.delay_us = 300000;
  if (pthread_create (&prefetcher.thread, NULL, prefetch_chunk_3,
                      &prefetcher) != 0)
    abort ();
  make_id (3, &id);
  while (!xs_chunk_cache_has (cache, &id, CHUNK))
    usleep (1000);              /* its load has begun */
  memset (buf, 0, sizeof buf);
  is_int (xs_chunk_cache_take (cache, &id, CHUNK, buf), 1,
          "a take during a slow prefetch finds the chunk");
  ok (matches_model (3, buf, 0, CHUNK), "... with the loaded bytes");
  pthread_join (prefetcher.thread, NULL);
  is_int (prefetcher.r, 0, "... and the prefetch succeeded");
  ok (!xs_chunk_cache_has (cache, &id, CHUNK), "... and the take dropped it");
  store.delay_us = 0;

  /* A failed prefetch leaves nothing. */
  atomic_store (&store.broken, true);
  make_id (4, &id);
  is_int (xs_chunk_cache_prefetch (cache, &id, CHUNK, fake_load, &store), -1,
          "a failed prefetch fails");
  tap_take_error ();
  ok (!xs_chunk_cache_has (cache, &id, CHUNK), "... and keeps nothing");
  is_int (xs_chunk_cache_take (cache, &id, CHUNK, buf), 0,
          "... so a take misses");
  atomic_store (&store.broken, false);
  xs_chunk_cache_free (cache);
}

int
main (void)
{
  test_hits_and_misses ();
  test_capacity_and_lru ();
  test_capacity_zero ();
  test_offers ();
  test_failed_load ();
  test_concurrent_readers ();
  test_one_load_for_concurrent_misses ();
  test_prefetch_and_take ();
  return done_testing ();
}
