/* xsnap: a shared cache of decoded chunks (see chunkcache.h).
 *
 * One mutex guards the table, the LRU list and the counters; it is never
 * held while loading (decompressing) or copying bytes, only for lookups
 * and bookkeeping, so readers of different chunks run in parallel.
 *
 * An entry is in the hash table from the moment its load starts until it
 * is evicted or its load fails.  refs counts the readers using it (the
 * loader and the waiters while it loads, the copiers once ready); only
 * ready entries with refs == 0 are on the LRU list, so eviction never
 * touches an entry in use.  An entry taken out of the table is freed by
 * whoever drops its last reference.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/chunkcache.h"
#include "base/error.h"
#include "base/hash.h"
#include "base/lockorder.h"

#define INITIAL_BUCKETS 256

/* The doorkeeper: a bit array of this many bits, two bits a chunk, that
 * remembers which chunks were offered; cleared after a quarter of its
 * bits' worth of offers, so that it forgets rather than fills up.
 */
#define DOORKEEPER_BITS ((size_t) 1 << 23)

enum entry_state {
  ENTRY_LOADING,
  ENTRY_READY,
  ENTRY_FAILED,
};

struct cache_entry {
  struct xs_hash128 id;
  size_t len;
  void *data;
  unsigned refs;
  enum entry_state state;
  bool in_table;
  /* Signalled when the load ends; only waited on with the entry pinned,
   * so it outlives its waiters.
   */
  pthread_cond_t loaded;
  struct cache_entry *hash_next;
  /* On the LRU list only when ready and unused. */
  struct cache_entry *lru_prev, *lru_next;
};

struct xs_chunk_cache {
  pthread_mutex_t lock;
  size_t capacity;
  size_t bytes;
  size_t count;
  struct cache_entry **buckets;
  size_t nbuckets;              /* a power of two */
  /* Sentinel of the LRU list: lru.lru_next is the least recently used. */
  struct cache_entry lru;
  uint64_t *doorkeeper;         /* allocated on the first offer */
  size_t doorkeeper_marks;
  uint64_t hits, misses, loads, evictions, offers_kept;
};

size_t
xs_chunk_cache_default_capacity (void)
{
  long pages = sysconf (_SC_PHYS_PAGES), page_size = sysconf (_SC_PAGESIZE);
  size_t quarter;

  if (pages <= 0 || page_size <= 0)
    return XS_CHUNK_CACHE_MIN_DEFAULT;
  quarter = (size_t) pages / 4 * (size_t) page_size;
  return quarter > XS_CHUNK_CACHE_MIN_DEFAULT
    ? quarter : XS_CHUNK_CACHE_MIN_DEFAULT;
}

struct xs_chunk_cache *
xs_chunk_cache_new (size_t capacity_bytes)
{
  struct xs_chunk_cache *cache = calloc (1, sizeof *cache);

  if (cache == NULL
      || (cache->buckets = calloc (INITIAL_BUCKETS,
                                   sizeof *cache->buckets)) == NULL) {
    xs_error ("cannot allocate chunk cache: %m");
    free (cache);
    return NULL;
  }
  pthread_mutex_init (&cache->lock, NULL);
  cache->capacity = capacity_bytes;
  cache->nbuckets = INITIAL_BUCKETS;
  cache->lru.lru_next = cache->lru.lru_prev = &cache->lru;
  return cache;
}

static void
free_entry (struct cache_entry *e)
{
  pthread_cond_destroy (&e->loaded);
  free (e->data);
  free (e);
}

void
xs_chunk_cache_free (struct xs_chunk_cache *cache)
{
  size_t i;

  if (cache == NULL)
    return;
  for (i = 0; i < cache->nbuckets; i++) {
    struct cache_entry *e = cache->buckets[i], *next;

    for (; e != NULL; e = next) {
      next = e->hash_next;
      free_entry (e);
    }
  }
  free (cache->buckets);
  free (cache->doorkeeper);
  pthread_mutex_destroy (&cache->lock);
  free (cache);
}

size_t
xs_chunk_cache_capacity (const struct xs_chunk_cache *cache)
{
  return cache->capacity;
}

/* Chunk ids are hashes already: any 8 of their bytes spread well. */
static size_t
bucket_of (const struct xs_chunk_cache *cache, const struct xs_hash128 *id)
{
  uint64_t h;

  memcpy (&h, id->bytes, sizeof h);
  return (size_t) h & (cache->nbuckets - 1);
}

static struct cache_entry *
find_entry (const struct xs_chunk_cache *cache, const struct xs_hash128 *id,
            size_t len)
{
  struct cache_entry *e = cache->buckets[bucket_of (cache, id)];

  for (; e != NULL; e = e->hash_next)
    if (e->len == len && xs_hash128_equal (&e->id, id))
      return e;
  return NULL;
}

/* Double the table when it is full.  Failing to grow is harmless: the
 * chains just get longer.
 */
static void
maybe_grow_table (struct xs_chunk_cache *cache)
{
  size_t old_n = cache->nbuckets, i;
  struct cache_entry **old = cache->buckets, **grown;

  if (cache->count < old_n || old_n > SIZE_MAX / 2 / sizeof *grown)
    return;
  grown = calloc (old_n * 2, sizeof *grown);
  if (grown == NULL)
    return;
  cache->buckets = grown;
  cache->nbuckets = old_n * 2;
  for (i = 0; i < old_n; i++) {
    struct cache_entry *e = old[i], *next;

    for (; e != NULL; e = next) {
      size_t b = bucket_of (cache, &e->id);

      next = e->hash_next;
      e->hash_next = grown[b];
      grown[b] = e;
    }
  }
  free (old);
}

static void
table_insert (struct xs_chunk_cache *cache, struct cache_entry *e)
{
  size_t b;

  maybe_grow_table (cache);
  b = bucket_of (cache, &e->id);
  e->hash_next = cache->buckets[b];
  cache->buckets[b] = e;
  e->in_table = true;
  cache->count++;
  cache->bytes += e->len;
}

static void
table_remove (struct xs_chunk_cache *cache, struct cache_entry *e)
{
  struct cache_entry **p = &cache->buckets[bucket_of (cache, &e->id)];

  while (*p != e)
    p = &(*p)->hash_next;
  *p = e->hash_next;
  e->in_table = false;
  cache->count--;
  cache->bytes -= e->len;
}

static void
lru_unlink (struct cache_entry *e)
{
  e->lru_prev->lru_next = e->lru_next;
  e->lru_next->lru_prev = e->lru_prev;
  e->lru_prev = e->lru_next = NULL;
}

static void
lru_push_most_recent (struct xs_chunk_cache *cache, struct cache_entry *e)
{
  e->lru_prev = cache->lru.lru_prev;
  e->lru_next = &cache->lru;
  cache->lru.lru_prev->lru_next = e;
  cache->lru.lru_prev = e;
}

/* Evict least recently used entries until bytes + incoming fits the
 * capacity (or nothing unused is left).  Victims go on *victims, to be
 * freed after the lock is dropped.  If one of them holds a buffer of
 * reuse_len bytes and *reuse is NULL, its buffer moves to *reuse.
 */
static void
evict_for (struct xs_chunk_cache *cache, size_t incoming,
           struct cache_entry **victims, size_t reuse_len, void **reuse)
{
  while (cache->bytes + incoming > cache->capacity
         && cache->lru.lru_next != &cache->lru) {
    struct cache_entry *e = cache->lru.lru_next;

    lru_unlink (e);
    table_remove (cache, e);
    cache->evictions++;
    if (reuse != NULL && *reuse == NULL && e->len == reuse_len) {
      *reuse = e->data;
      e->data = NULL;
    }
    e->hash_next = *victims;
    *victims = e;
  }
}

static void
free_victims (struct cache_entry *victims)
{
  struct cache_entry *next;

  for (; victims != NULL; victims = next) {
    next = victims->hash_next;
    free_entry (victims);
  }
}

/* Drop one reference, with the lock held.  Returns entries to free after
 * unlocking on *victims.
 */
static void
unpin (struct xs_chunk_cache *cache, struct cache_entry *e,
       struct cache_entry **victims)
{
  if (--e->refs > 0)
    return;
  if (!e->in_table) {
    e->hash_next = *victims;
    *victims = e;
    return;
  }
  lru_push_most_recent (cache, e);
  evict_for (cache, 0, victims, 0, NULL);
}

static void
pin (struct cache_entry *e)
{
  if (e->refs++ == 0 && e->state == ENTRY_READY)
    lru_unlink (e);
}

/* Copy from a pinned ready entry, then unpin it.  Called and returns
 * with the lock held.
 */
static void
copy_out (struct xs_chunk_cache *cache, struct cache_entry *e, void *dst,
          size_t offset, size_t count)
{
  struct cache_entry *victims = NULL;

  xs_lock_drop (&cache->lock);
  memcpy (dst, (const char *) e->data + offset, count);
  xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  unpin (cache, e, &victims);
  if (victims != NULL) {
    xs_lock_drop (&cache->lock);
    free_victims (victims);
    xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  }
}

int
xs_chunk_cache_lookup (struct xs_chunk_cache *cache,
                       const struct xs_hash128 *id, size_t len,
                       void *dst, size_t offset, size_t count)
{
  struct cache_entry *e;
  int found = 0;

  xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  e = find_entry (cache, id, len);
  if (e != NULL && e->state == ENTRY_READY) {
    cache->hits++;
    pin (e);
    copy_out (cache, e, dst, offset, count);
    found = 1;
  }
  else
    cache->misses++;
  xs_lock_drop (&cache->lock);
  return found;
}

/* Whether chunk id was offered before (as far as the doorkeeper
 * remembers), marking it offered now.  With the lock held.  Without
 * memory for the doorkeeper every chunk counts as seen: offers are kept
 * as they would be without one.
 */
static bool
offered_before (struct xs_chunk_cache *cache, const struct xs_hash128 *id)
{
  uint64_t h1, h2;
  size_t b1, b2;
  bool seen;

  if (cache->doorkeeper == NULL
      && (cache->doorkeeper = calloc (DOORKEEPER_BITS / 64,
                                      sizeof (uint64_t))) == NULL)
    return true;
  if (cache->doorkeeper_marks >= DOORKEEPER_BITS / 4) {
    memset (cache->doorkeeper, 0, DOORKEEPER_BITS / 8);
    cache->doorkeeper_marks = 0;
  }
  memcpy (&h1, id->bytes, sizeof h1);
  memcpy (&h2, id->bytes + 8, sizeof h2);
  b1 = (size_t) h1 & (DOORKEEPER_BITS - 1);
  b2 = (size_t) h2 & (DOORKEEPER_BITS - 1);
  seen = (cache->doorkeeper[b1 / 64] >> (b1 % 64) & 1)
    && (cache->doorkeeper[b2 / 64] >> (b2 % 64) & 1);
  if (!seen) {
    cache->doorkeeper[b1 / 64] |= UINT64_C (1) << (b1 % 64);
    cache->doorkeeper[b2 / 64] |= UINT64_C (1) << (b2 % 64);
    cache->doorkeeper_marks++;
  }
  return seen;
}

/* Room for len more bytes without evicting, and no entry for the chunk.
 * With the lock held.
 */
static bool
can_take_offer (const struct xs_chunk_cache *cache,
                const struct xs_hash128 *id, size_t len)
{
  return len <= cache->capacity && cache->bytes <= cache->capacity - len
    && find_entry (cache, id, len) == NULL;
}

void
xs_chunk_cache_offer (struct xs_chunk_cache *cache,
                      const struct xs_hash128 *id, size_t len,
                      const void *plain)
{
  struct cache_entry *e;
  bool room;

  xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  room = can_take_offer (cache, id, len) && offered_before (cache, id);
  xs_lock_drop (&cache->lock);
  if (!room)
    return;

  /* Copy without the lock, then look again: others may have filled the
   * room or the chunk meanwhile.
   */
  e = calloc (1, sizeof *e);
  if (e == NULL || (e->data = malloc (len > 0 ? len : 1)) == NULL) {
    free (e);
    return;
  }
  memcpy (e->data, plain, len);
  e->id = *id;
  e->len = len;
  e->state = ENTRY_READY;
  pthread_cond_init (&e->loaded, NULL);

  xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  room = can_take_offer (cache, id, len);
  if (room) {
    table_insert (cache, e);
    lru_push_most_recent (cache, e);
    cache->offers_kept++;
  }
  xs_lock_drop (&cache->lock);
  if (!room)
    free_entry (e);
}

/* A new entry for a load this thread is about to do, in the table and
 * pinned, with room made for it.  With the lock held.  Its data is the
 * buffer of an evicted entry of the same length when there was one, else
 * NULL (the loader allocates it after unlocking).  NULL if out of memory.
 */
static struct cache_entry *
start_load (struct xs_chunk_cache *cache, const struct xs_hash128 *id,
            size_t len, struct cache_entry **victims)
{
  struct cache_entry *e = calloc (1, sizeof *e);

  if (e == NULL)
    return NULL;
  e->id = *id;
  e->len = len;
  e->refs = 1;
  e->state = ENTRY_LOADING;
  pthread_cond_init (&e->loaded, NULL);
  evict_for (cache, len, victims, len, &e->data);
  table_insert (cache, e);
  cache->misses++;
  cache->loads++;
  return e;
}

/* The load of e failed: take it out so that nobody uses it, wake the
 * waiters (they will try again) and drop our reference.  With the lock
 * held.
 */
static void
fail_load (struct xs_chunk_cache *cache, struct cache_entry *e,
           struct cache_entry **victims)
{
  table_remove (cache, e);
  e->state = ENTRY_FAILED;
  pthread_cond_broadcast (&e->loaded);
  unpin (cache, e, victims);
}

/* Fill the new entry e (pinned by us, not yet ready) and copy our part
 * out (if dst is not NULL).  Called and returns with the lock held; unlocked in between.
 */
static int
load_entry (struct xs_chunk_cache *cache, struct cache_entry *e,
            void *dst, size_t offset, size_t count,
            xs_chunk_cache_load_fn load, void *opaque)
{
  struct cache_entry *victims = NULL;
  int r = 0, saved_errno;

  xs_lock_drop (&cache->lock);
  if (e->data == NULL)
    e->data = malloc (e->len > 0 ? e->len : 1);
  if (e->data == NULL) {
    xs_error ("cannot allocate %zu bytes for a cached chunk: %m", e->len);
    r = -1;
  }
  else if (load (opaque, &e->id, e->data, e->len) == -1)
    r = -1;
  else if (dst != NULL)
    memcpy (dst, (const char *) e->data + offset, count);
  saved_errno = errno;

  xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  if (r == 0) {
    e->state = ENTRY_READY;
    pthread_cond_broadcast (&e->loaded);
    unpin (cache, e, &victims);
  }
  else
    fail_load (cache, e, &victims);
  if (victims != NULL) {
    xs_lock_drop (&cache->lock);
    free_victims (victims);
    xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  }
  errno = saved_errno;
  return r;
}

/* Wait for another reader's load of e.  Returns true if e became ready
 * (and is still pinned by us), false if that load failed (e unpinned).
 */
static bool
wait_for_load (struct xs_chunk_cache *cache, struct cache_entry *e,
               struct cache_entry **victims)
{
  pin (e);
  while (e->state == ENTRY_LOADING)
    pthread_cond_wait (&e->loaded, &cache->lock);
  if (e->state == ENTRY_READY)
    return true;
  unpin (cache, e, victims);
  return false;
}

/* The ready entry of chunk id, pinned, waiting for a load under way
 * (and looking again if that load failed); NULL if there is none.  With
 * the lock held.
 */
static struct cache_entry *
find_ready (struct xs_chunk_cache *cache, const struct xs_hash128 *id,
            size_t len, struct cache_entry **victims)
{
  struct cache_entry *e;

  while ((e = find_entry (cache, id, len)) != NULL) {
    if (e->state == ENTRY_READY) {
      pin (e);
      return e;
    }
    if (wait_for_load (cache, e, victims))
      return e;
    /* That load failed and was taken out: look again. */
  }
  return NULL;
}

/* A load of chunk id into a new entry, copying our part out to dst if
 * it is not NULL.  Called and returns with the lock held.
 */
static int
load_new_entry (struct xs_chunk_cache *cache, const struct xs_hash128 *id,
                size_t len, void *dst, size_t offset, size_t count,
                xs_chunk_cache_load_fn load, void *opaque,
                struct cache_entry **victims)
{
  struct cache_entry *e = start_load (cache, id, len, victims);

  if (e == NULL) {
    xs_error ("cannot allocate a chunk cache entry: %m");
    return -1;
  }
  return load_entry (cache, e, dst, offset, count, load, opaque);
}

/* Drop the lock, then free victims (keeping errno). */
static void
unlock_and_free (struct xs_chunk_cache *cache, struct cache_entry *victims)
{
  int saved_errno = errno;

  xs_lock_drop (&cache->lock);
  if (victims != NULL)
    free_victims (victims);
  errno = saved_errno;
}

int
xs_chunk_cache_read (struct xs_chunk_cache *cache,
                     const struct xs_hash128 *id, size_t len,
                     void *dst, size_t offset, size_t count,
                     xs_chunk_cache_load_fn load, void *opaque)
{
  struct cache_entry *e, *victims = NULL;
  int r = 0;

  xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  e = find_ready (cache, id, len, &victims);
  if (e != NULL) {
    cache->hits++;
    copy_out (cache, e, dst, offset, count);
  }
  else
    r = load_new_entry (cache, id, len, dst, offset, count, load, opaque,
                        &victims);
  unlock_and_free (cache, victims);
  return r;
}

int
xs_chunk_cache_take (struct xs_chunk_cache *cache,
                     const struct xs_hash128 *id, size_t len, void *dst)
{
  struct cache_entry *e, *victims = NULL;
  int found = 0;

  xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  e = find_ready (cache, id, len, &victims);
  if (e == NULL)
    cache->misses++;
  else {
    cache->hits++;
    /* Another taker waiting on the same load may have taken it out. */
    if (e->in_table)
      table_remove (cache, e);
    copy_out (cache, e, dst, 0, len);   /* the last one out frees it */
    found = 1;
  }
  unlock_and_free (cache, victims);
  return found;
}

bool
xs_chunk_cache_has (struct xs_chunk_cache *cache,
                    const struct xs_hash128 *id, size_t len)
{
  bool has;

  xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  has = find_entry (cache, id, len) != NULL;
  xs_lock_drop (&cache->lock);
  return has;
}

int
xs_chunk_cache_prefetch (struct xs_chunk_cache *cache,
                         const struct xs_hash128 *id, size_t len,
                         xs_chunk_cache_load_fn load, void *opaque)
{
  struct cache_entry *victims = NULL;
  int r = 0;

  xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  if (find_entry (cache, id, len) == NULL)
    r = load_new_entry (cache, id, len, NULL, 0, 0, load, opaque, &victims);
  unlock_and_free (cache, victims);
  return r;
}

void
xs_chunk_cache_stats (struct xs_chunk_cache *cache,
                      struct xs_chunk_cache_stats *stats)
{
  xs_lock_take (&cache->lock, XS_LOCK_CHUNKCACHE, 0);
  stats->hits = cache->hits;
  stats->misses = cache->misses;
  stats->loads = cache->loads;
  stats->evictions = cache->evictions;
  stats->offers_kept = cache->offers_kept;
  stats->bytes = cache->bytes;
  stats->entries = cache->count;
  xs_lock_drop (&cache->lock);
}
