/* xsnap: sealing snapshots of live heads (see seal.h for the design).
 *
 * Concurrency.  TODO holds the blocks of S not yet sealed.  A block is
 * sealed under its stripe lock: whoever gets the lock first (a sealer
 * thread or a writer about to change the block) checks TODO, seals, and
 * clears the bit; everyone after sees the bit clear and moves on.  Bits
 * only ever go from set to clear while the seal exists, so a writer that
 * sees a clear bit without the lock may write at once.  Codecs are not
 * thread-safe, so a small pool lends one to each sealing thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitmap.h"
#include "chunk.h"
#include "error.h"
#include "fileio.h"
#include "hash.h"
#include "head-internal.h"
#include "seal.h"

#define STRIPES 256
#define DEFAULT_THREADS 2
#define MAX_THREADS 16
#define CLAIM_BLOCKS 64         /* blocks a sealer thread claims at once */

struct codec_pool {
  pthread_mutex_t lock;
  struct xs_chunk_codec *free[MAX_THREADS + 8];
  unsigned nfree;
};

struct xs_seal {
  struct xs_head *head;
  struct xs_repo *repo;
  struct xs_manifest *manifest; /* base entries, replaced as blocks seal */
  struct xs_bitmap taken;       /* S as taken from the dirty map */
  struct xs_bitmap todo;        /* blocks of S not sealed yet */
  pthread_mutex_t stripes[STRIPES];
  struct codec_pool codecs;
  bool full_compare;
  int failed;                   /* set once; atomic */
  uint64_t cursor;              /* next block to claim; atomic */
  uint64_t done;                /* blocks sealed; atomic */
  struct xs_seal_stats stats;   /* counters updated atomically */
};

static struct xs_chunk_codec *
borrow_codec (struct codec_pool *pool)
{
  struct xs_chunk_codec *codec = NULL;

  pthread_mutex_lock (&pool->lock);
  if (pool->nfree > 0)
    codec = pool->free[--pool->nfree];
  pthread_mutex_unlock (&pool->lock);
  return codec ? codec : xs_chunk_codec_new (1);
}

static void
return_codec (struct codec_pool *pool, struct xs_chunk_codec *codec)
{
  pthread_mutex_lock (&pool->lock);
  if (pool->nfree < sizeof pool->free / sizeof pool->free[0]) {
    pool->free[pool->nfree++] = codec;
    codec = NULL;
  }
  pthread_mutex_unlock (&pool->lock);
  xs_chunk_codec_free (codec);
}

static void
add_stat (uint64_t *counter, uint64_t n)
{
  __atomic_fetch_add (counter, n, __ATOMIC_RELAXED);
}

static bool
is_zero (const void *buf, size_t len)
{
  const unsigned char *p = buf;

  return len == 0 || (p[0] == 0 && memcmp (p, p + 1, len - 1) == 0);
}

/* True if [offset, offset + len) is entirely a hole of the data file, so
 * it reads as zero without reading.
 */
static bool
is_hole (int fd, uint64_t offset, size_t len)
{
  off_t data = lseek (fd, (off_t) offset, SEEK_DATA);

  return (data == -1 && errno == ENXIO)
    || (data != -1 && (uint64_t) data >= offset + len);
}

/* Store BLOCK's content unless the repository has it; set *ID. */
static int
store_block (struct xs_seal *seal, struct xs_chunk_codec *codec,
             const void *buf, size_t len, struct xs_hash128 *id)
{
  void *stored;
  size_t stored_len;
  int r;

  xs_hash128 (buf, len, id);
  r = xs_repo_has_chunk (seal->repo, id);
  if (r != 0)
    return r == 1 ? 0 : -1;
  if (xs_chunk_encode (codec, buf, len, id, &stored, &stored_len) == -1)
    return -1;
  r = xs_repo_put_chunk (seal->repo, id, stored, stored_len, false);
  free (stored);
  if (r == 1) {
    add_stat (&seal->stats.new_chunks, 1);
    add_stat (&seal->stats.stored_bytes, stored_len);
  }
  return r == -1 ? -1 : 0;
}

/* Seal one block: its entry in the new manifest becomes the id of its
 * current content.  Holding the block's stripe lock.
 */
static int
seal_block (struct xs_seal *seal, struct xs_chunk_codec *codec,
            void *buf, uint64_t block)
{
  struct xs_head *h = seal->head;
  uint64_t offset = block << h->block_shift;
  size_t len = h->size - offset < h->block_size
    ? (size_t) (h->size - offset) : h->block_size;
  struct xs_hash128 id;

  if (!xs_head_block_present (h, block))
    id = *xs_snapreader_entry (h->source, block);   /* still the source's */
  else if (is_hole (h->data_fd, offset, len))
    memset (&id, 0, sizeof id);
  else {
    if (xs_full_pread (h->data_fd, buf, len, offset) == -1) {
      xs_error ("volume '%s': cannot read block %lu to seal it: %m",
                h->name, (unsigned long) block);
      return -1;
    }
    add_stat (&seal->stats.bytes_read, len);
    if (is_zero (buf, len))
      memset (&id, 0, sizeof id);
    else if (store_block (seal, codec, buf, len, &id) == -1)
      return -1;
  }
  if (!xs_hash128_equal (&id, &seal->manifest->entries[block])) {
    seal->manifest->entries[block] = id;
    add_stat (&seal->stats.changed_blocks, 1);
  }
  return 0;
}

static void
mark_failed (struct xs_seal *seal)
{
  __atomic_store_n (&seal->failed, 1, __ATOMIC_RELEASE);
}

static bool
has_failed (struct xs_seal *seal)
{
  return __atomic_load_n (&seal->failed, __ATOMIC_ACQUIRE) != 0;
}

/* Seal BLOCK if nobody has yet.  Returns -1 on failure. */
static int
seal_if_needed (struct xs_seal *seal, struct xs_chunk_codec *codec,
                void *buf, uint64_t block)
{
  pthread_mutex_t *stripe = &seal->stripes[block % STRIPES];
  int r = 0;

  if (!xs_bitmap_get (&seal->todo, block))
    return 0;
  pthread_mutex_lock (stripe);
  if (xs_bitmap_get (&seal->todo, block)) {
    r = seal_block (seal, codec, buf, block);
    if (r == 0) {
      __atomic_fetch_and (&seal->todo.bytes[block / 8],
                          (uint8_t) ~(1u << (block % 8)), __ATOMIC_RELEASE);
      add_stat (&seal->done, 1);
    }
  }
  pthread_mutex_unlock (stripe);
  return r;
}

void
xs_seal_protect (struct xs_seal *seal, uint64_t first, uint64_t last)
{
  struct xs_chunk_codec *codec = NULL;
  void *buf = NULL;
  uint64_t block;

  for (block = first; block <= last && !has_failed (seal); block++) {
    if (!xs_bitmap_get (&seal->todo, block))
      continue;
    if (buf == NULL) {
      codec = borrow_codec (&seal->codecs);
      buf = malloc (seal->head->block_size);
      if (codec == NULL || buf == NULL) {
        xs_error ("volume '%s': cannot protect the pending snapshot: %m",
                  seal->head->name);
        mark_failed (seal);
        break;
      }
    }
    /* A failure here must not fail the write: the snapshot fails instead
     * (reported), and the volume goes on.
     */
    if (seal_if_needed (seal, codec, buf, block) == -1)
      mark_failed (seal);
  }
  free (buf);
  if (codec)
    return_codec (&seal->codecs, codec);
}

static void
free_seal (struct xs_seal *seal)
{
  unsigned i;

  for (i = 0; i < STRIPES; i++)
    pthread_mutex_destroy (&seal->stripes[i]);
  for (i = 0; i < seal->codecs.nfree; i++)
    xs_chunk_codec_free (seal->codecs.free[i]);
  pthread_mutex_destroy (&seal->codecs.lock);
  xs_bitmap_free (&seal->taken);
  xs_bitmap_free (&seal->todo);
  xs_manifest_free (seal->manifest);
  free (seal);
}

static struct xs_seal *
new_seal (struct xs_head *h, struct xs_repo *repo, struct xs_manifest *base)
{
  struct xs_seal *seal = calloc (1, sizeof *seal);
  unsigned i;

  if (seal == NULL) {
    xs_error ("cannot snapshot volume '%s': %m", h->name);
    xs_manifest_free (base);
    return NULL;
  }
  seal->head = h;
  seal->repo = repo;
  for (i = 0; i < STRIPES; i++)
    pthread_mutex_init (&seal->stripes[i], NULL);
  pthread_mutex_init (&seal->codecs.lock, NULL);
  seal->manifest = base ? base : xs_manifest_new (h->size, h->block_size);
  if (seal->manifest == NULL
      || xs_bitmap_init (&seal->todo, xs_head_nblocks (h)) == -1) {
    free_seal (seal);
    return NULL;
  }
  if (seal->manifest->size != h->size
      || seal->manifest->block_size != h->block_size) {
    /* The volume grew since its base: a base of the old geometry cannot
     * be patched, so compare everything against an empty one.
     */
    xs_manifest_free (seal->manifest);
    seal->manifest = xs_manifest_new (h->size, h->block_size);
    seal->full_compare = true;
    if (seal->manifest == NULL) {
      free_seal (seal);
      return NULL;
    }
  }
  return seal;
}

struct xs_seal *
xs_seal_begin (struct xs_head *h, struct xs_repo *repo,
               struct xs_manifest *base, bool map_matches_base)
{
  struct xs_seal *seal;
  bool trusted;

  seal = new_seal (h, repo, base);
  if (seal == NULL)
    return NULL;
  seal->full_compare |= !map_matches_base;

  pthread_rwlock_wrlock (&h->gate);
  if (h->seal != NULL) {
    pthread_rwlock_unlock (&h->gate);
    xs_error ("cannot snapshot volume '%s': a snapshot of it is already "
              "pending", h->name);
    free_seal (seal);
    return NULL;
  }
  /* The point in time: no change is in flight. */
  trusted = xs_dirtymap_doubt (h->dirtymap) == XS_DIRTYMAP_TRUSTED;
  if (xs_dirtymap_take (h->dirtymap, &seal->taken) == -1) {
    pthread_rwlock_unlock (&h->gate);
    free_seal (seal);
    return NULL;
  }
  seal->full_compare |= !trusted;
  if (seal->full_compare)
    xs_bitmap_set_range (&seal->todo, 0, seal->todo.nbits);
  else
    memcpy (seal->todo.bytes, seal->taken.bytes, seal->todo.nbytes);
  seal->stats.blocks_to_seal = xs_bitmap_count (&seal->todo);
  seal->stats.full_compare = seal->full_compare;
  __atomic_store_n (&h->seal, seal, __ATOMIC_RELEASE);
  pthread_rwlock_unlock (&h->gate);
  return seal;
}

struct sealer_thread {
  struct xs_seal *seal;
  pthread_t thread;
  int result;
};

/* Claim runs of CLAIM_BLOCKS blocks and seal what is still to do. */
static void *
sealer_main (void *opaque)
{
  struct sealer_thread *t = opaque;
  struct xs_seal *seal = t->seal;
  uint64_t nblocks = seal->todo.nbits, first, block;
  struct xs_chunk_codec *codec = borrow_codec (&seal->codecs);
  void *buf = malloc (seal->head->block_size);

  if (codec == NULL || buf == NULL) {
    xs_error ("cannot seal a snapshot of volume '%s': %m", seal->head->name);
    mark_failed (seal);
  }
  while (!has_failed (seal)) {
    first = __atomic_fetch_add (&seal->cursor, CLAIM_BLOCKS,
                                __ATOMIC_RELAXED);
    if (first >= nblocks)
      break;
    for (block = xs_bitmap_next_set (&seal->todo, first);
         block < first + CLAIM_BLOCKS && block < nblocks;
         block = xs_bitmap_next_set (&seal->todo, block + 1)) {
      if (seal_if_needed (seal, codec, buf, block) == -1) {
        mark_failed (seal);
        break;
      }
    }
  }
  free (buf);
  if (codec)
    return_codec (&seal->codecs, codec);
  t->result = has_failed (seal) ? -1 : 0;
  return NULL;
}

int
xs_seal_run (struct xs_seal *seal, unsigned threads,
             void (*progress) (uint64_t done, uint64_t total, void *opaque),
             void *opaque)
{
  struct sealer_thread workers[MAX_THREADS];
  unsigned i, started = 0;

  if (threads == 0)
    threads = DEFAULT_THREADS;
  if (threads > MAX_THREADS)
    threads = MAX_THREADS;
  for (i = 0; i < threads; i++) {
    workers[i] = (struct sealer_thread) { .seal = seal };
    if (pthread_create (&workers[i].thread, NULL, sealer_main,
                        &workers[i]) != 0) {
      xs_error ("cannot start a sealer thread: %m");
      mark_failed (seal);
      break;
    }
    started++;
  }
  if (progress) {
    /* Report every 10 ms until the workers have claimed everything (a
     * snapshot with little to seal must not wait for a long tick).
     */
    while (__atomic_load_n (&seal->cursor, __ATOMIC_RELAXED)
           < seal->todo.nbits && !has_failed (seal)) {
      progress (__atomic_load_n (&seal->done, __ATOMIC_RELAXED),
                seal->stats.blocks_to_seal, opaque);
      usleep (10000);
    }
  }
  for (i = 0; i < started; i++)
    pthread_join (workers[i].thread, NULL);
  if (has_failed (seal)) {
    xs_error ("snapshot of volume '%s' failed", seal->head->name);
    return -1;
  }
  if (progress)
    progress (seal->stats.blocks_to_seal, seal->stats.blocks_to_seal, opaque);
  /* Chunks were written without syncing each: one sync for all, before
   * the manifest that refers to them (commit order).
   */
  return xs_repo_sync (seal->repo);
}

struct xs_manifest *
xs_seal_manifest (struct xs_seal *seal)
{
  return seal->manifest;
}

void
xs_seal_get_stats (struct xs_seal *seal, struct xs_seal_stats *stats)
{
  *stats = seal->stats;        /* the sealer threads have been joined */
}

int
xs_seal_end (struct xs_seal *seal, bool committed, uint64_t new_epoch)
{
  struct xs_head *h = seal->head;
  int r = 0;

  pthread_rwlock_wrlock (&h->gate);
  if (committed)
    r = xs_dirtymap_commit_epoch (h->dirtymap, new_epoch);
  else
    xs_dirtymap_merge (h->dirtymap, &seal->taken);
  pthread_mutex_lock (&h->seal_lock);
  __atomic_store_n (&h->seal, NULL, __ATOMIC_RELEASE);
  pthread_cond_broadcast (&h->seal_done);
  pthread_mutex_unlock (&h->seal_lock);
  pthread_rwlock_unlock (&h->gate);
  free_seal (seal);
  return r;
}
