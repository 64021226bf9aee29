/* xsnap: sealing snapshots of live heads (see seal.h for the design).
 *
 * Concurrency.  TODO holds the blocks of S whose content at the point in
 * time is not safe yet.  A block becomes safe under its stripe lock:
 * whoever gets the lock first (a sealer thread, or a writer about to
 * change the block) copies the block's content somewhere no write reaches
 * and clears the bit; everyone after sees the bit clear and moves on.
 * Bits only ever go from set to clear while the seal exists, and a bit is
 * cleared (release) only after the copy is complete, so a writer that
 * sees a clear bit (acquire) without the lock may write at once.
 *
 * Where the copy goes decides what a first write costs.  A sealer copies
 * into its own buffer and seals from it after dropping the lock.  A writer
 * preserves the block — a copy in memory while the memory budget lasts,
 * then in the spill file (an unnamed file in the head's directory, at the
 * block's offset) while the spill budget lasts — and leaves it to the
 * sealers, which take preserved blocks before anything else (that frees
 * the budgets soonest).  Only when both budgets are spent does a writer
 * seal the block itself before its write goes on.  Preserved copies are
 * not durable and need not be: a crash loses the pending snapshot, which
 * was never visible, and the next owner removes its record.
 *
 * DONE counts blocks whose entry is final; the seal is complete when it
 * reaches |S|.  Codecs are not thread-safe, so a small pool lends one to
 * each sealing thread.
 */
#include <errno.h>
#include <fcntl.h>
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

/* A block's content at the point in time, copied aside before a write
 * changed it, waiting for a sealer.
 */
struct preserved {
  struct preserved *next;
  uint64_t block;
  void *buf;                    /* the copy, or NULL: in the spill file */
};

struct xs_seal {
  struct xs_head *head;
  struct xs_repo *repo;
  struct xs_manifest *manifest; /* base entries, replaced as blocks seal */
  struct xs_bitmap taken;       /* S as taken from the dirty map */
  struct xs_bitmap todo;        /* blocks of S not safe yet */
  pthread_mutex_t stripes[STRIPES];
  struct codec_pool codecs;
  bool full_compare;
  int failed;                   /* set once; atomic */
  uint64_t cursor;              /* next block to claim; atomic */
  uint64_t done;                /* blocks sealed; atomic */

  /* Preserved blocks, oldest first.  QUEUE_LOCK also guards SPILL_FD's
   * opening, and with WORK wakes idle sealers (a block preserved, the
   * last block done, a failure).
   */
  pthread_mutex_t queue_lock;
  pthread_cond_t work;
  struct preserved *first, *last;
  uint64_t memory_limit, memory_used;   /* bytes; USED atomic */
  uint64_t spill_limit, spill_used;     /* bytes; USED atomic */
  int spill_fd;                 /* -1: not open (yet) */
  bool spill_broken;            /* atomic: do not try the spill file */
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

static uint64_t
block_offset (const struct xs_seal *seal, uint64_t block)
{
  return block << seal->head->block_shift;
}

static size_t
block_len (const struct xs_seal *seal, uint64_t block)
{
  const struct xs_head *h = seal->head;
  uint64_t offset = block_offset (seal, block);

  return h->size - offset < h->block_size
    ? (size_t) (h->size - offset) : h->block_size;
}

static void
wake_sealers (struct xs_seal *seal)
{
  pthread_mutex_lock (&seal->queue_lock);
  pthread_cond_broadcast (&seal->work);
  pthread_mutex_unlock (&seal->queue_lock);
}

static void
mark_failed (struct xs_seal *seal)
{
  __atomic_store_n (&seal->failed, 1, __ATOMIC_RELEASE);
  wake_sealers (seal);
}

static bool
has_failed (struct xs_seal *seal)
{
  return __atomic_load_n (&seal->failed, __ATOMIC_ACQUIRE) != 0;
}

static bool
all_done (struct xs_seal *seal)
{
  return __atomic_load_n (&seal->done, __ATOMIC_ACQUIRE)
    >= seal->stats.blocks_to_seal;
}

/* Whether BLOCK's content at the point in time may still be changed by a
 * write.  Acquire: a clear bit means its copy is complete.
 */
static bool
is_unsafe (struct xs_seal *seal, uint64_t block)
{
  uint8_t byte = __atomic_load_n (&seal->todo.bytes[block / 8],
                                  __ATOMIC_ACQUIRE);

  return (byte >> (block % 8)) & 1;
}

/* BLOCK's content is copied (or needs no copy).  Holding its stripe. */
static void
mark_safe (struct xs_seal *seal, uint64_t block)
{
  __atomic_fetch_and (&seal->todo.bytes[block / 8],
                      (uint8_t) ~(1u << (block % 8)), __ATOMIC_RELEASE);
}

/* BLOCK's entry in the new manifest is ID. */
static void
finish_block (struct xs_seal *seal, uint64_t block,
              const struct xs_hash128 *id)
{
  if (!xs_hash128_equal (id, &seal->manifest->entries[block])) {
    seal->manifest->entries[block] = *id;
    add_stat (&seal->stats.changed_blocks, 1);
  }
  if (__atomic_add_fetch (&seal->done, 1, __ATOMIC_ACQ_REL)
      == seal->stats.blocks_to_seal)
    wake_sealers (seal);
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

/* Seal BLOCK from BUF, a copy of its content at the point in time. */
static int
seal_copy (struct xs_seal *seal, struct xs_chunk_codec *codec,
           uint64_t block, const void *buf)
{
  size_t len = block_len (seal, block);
  struct xs_hash128 id;

  if (is_zero (buf, len))
    memset (&id, 0, sizeof id);
  else if (store_block (seal, codec, buf, len, &id) == -1)
    return -1;
  finish_block (seal, block, &id);
  return 0;
}

/* If BLOCK's id needs no reading — a block a clone still reads from its
 * source, or a hole of the data file — set *ID and return true.  Holding
 * the block's stripe.
 */
static bool
id_without_reading (struct xs_seal *seal, uint64_t block,
                    struct xs_hash128 *id)
{
  struct xs_head *h = seal->head;

  if (!xs_head_block_present (h, block)) {
    *id = *xs_snapreader_entry (h->source, block);  /* still the source's */
    return true;
  }
  if (is_hole (h->data_fd, block_offset (seal, block),
               block_len (seal, block))) {
    memset (id, 0, sizeof *id);
    return true;
  }
  return false;
}

/* Copy BLOCK's content from the data file into BUF. */
static int
read_block (struct xs_seal *seal, uint64_t block, void *buf)
{
  size_t len = block_len (seal, block);

  if (xs_full_pread (seal->head->data_fd, buf, len,
                     block_offset (seal, block)) == -1) {
    xs_error ("volume '%s': cannot read block %lu to seal it: %m",
              seal->head->name, (unsigned long) block);
    return -1;
  }
  add_stat (&seal->stats.bytes_read, len);
  return 0;
}

/* Take N bytes of a budget of LIMIT of which *USED are taken. */
static bool
reserve (uint64_t *used, uint64_t limit, uint64_t n)
{
  uint64_t old = __atomic_load_n (used, __ATOMIC_RELAXED);

  do {
    if (n > limit || old > limit - n)
      return false;
  } while (!__atomic_compare_exchange_n (used, &old, old + n, true,
                                         __ATOMIC_RELAXED,
                                         __ATOMIC_RELAXED));
  return true;
}

static void
unreserve (uint64_t *used, uint64_t n)
{
  __atomic_fetch_sub (used, n, __ATOMIC_RELAXED);
}

/* The spill file, opened on first use; -1 if there is none.  It has no
 * name, so it never outlives the process.
 */
static int
spill_fd (struct xs_seal *seal)
{
  int fd;

  pthread_mutex_lock (&seal->queue_lock);
  if (seal->spill_fd == -1
      && !__atomic_load_n (&seal->spill_broken, __ATOMIC_RELAXED)) {
    seal->spill_fd = open (seal->head->dir, O_TMPFILE | O_RDWR | O_CLOEXEC,
                           0600);
    if (seal->spill_fd == -1) {
      xs_debug ("volume '%s': no spill file for the pending snapshot "
                "(%m): writes seal their blocks first once the memory "
                "budget is spent", seal->head->name);
      __atomic_store_n (&seal->spill_broken, true, __ATOMIC_RELAXED);
    }
  }
  fd = seal->spill_fd;
  pthread_mutex_unlock (&seal->queue_lock);
  return fd;
}

/* Copy BLOCK from the data file to the same offset of the spill file. */
static int
spill_copy (struct xs_seal *seal, int fd, uint64_t block)
{
  loff_t in = (loff_t) block_offset (seal, block), out = in;
  size_t left = block_len (seal, block);

  while (left > 0) {
    ssize_t n = copy_file_range (seal->head->data_fd, &in, fd, &out, left,
                                 0);
    if (n <= 0) {
      if (n == 0)
        errno = EIO;
      return -1;
    }
    left -= (size_t) n;
  }
  return 0;
}

/* Preserve BLOCK in the spill file, if its budget allows. */
static bool
spill_block (struct xs_seal *seal, uint64_t block)
{
  size_t len = block_len (seal, block);
  int fd;

  if (__atomic_load_n (&seal->spill_broken, __ATOMIC_RELAXED)
      || !reserve (&seal->spill_used, seal->spill_limit, len))
    return false;
  fd = spill_fd (seal);
  if (fd >= 0 && spill_copy (seal, fd, block) == 0) {
    add_stat (&seal->stats.preserved_spilled, 1);
    return true;
  }
  if (fd >= 0) {
    /* Full disk, or no copy_file_range here: stop trying. */
    xs_debug ("volume '%s': cannot spill block %lu of the pending "
              "snapshot (%m): writes seal their blocks first once the "
              "memory budget is spent", seal->head->name,
              (unsigned long) block);
    __atomic_store_n (&seal->spill_broken, true, __ATOMIC_RELAXED);
  }
  unreserve (&seal->spill_used, len);
  return false;
}

/* Preserve BLOCK in memory, if its budget allows; returns the copy. */
static void *
copy_to_memory (struct xs_seal *seal, uint64_t block)
{
  size_t len = block_len (seal, block);
  void *buf;

  if (!reserve (&seal->memory_used, seal->memory_limit, len))
    return NULL;
  buf = malloc (len);
  if (buf && xs_full_pread (seal->head->data_fd, buf, len,
                            block_offset (seal, block)) == 0) {
    add_stat (&seal->stats.preserved_in_memory, 1);
    return buf;
  }
  free (buf);                   /* the caller's fallback reports it */
  unreserve (&seal->memory_used, len);
  return NULL;
}

static void
push (struct xs_seal *seal, struct preserved *p)
{
  p->next = NULL;
  pthread_mutex_lock (&seal->queue_lock);
  if (seal->last)
    seal->last->next = p;
  else
    seal->first = p;
  seal->last = p;
  pthread_cond_signal (&seal->work);
  pthread_mutex_unlock (&seal->queue_lock);
}

static struct preserved *
pop (struct xs_seal *seal)
{
  struct preserved *p;

  pthread_mutex_lock (&seal->queue_lock);
  p = seal->first;
  if (p) {
    seal->first = p->next;
    if (seal->first == NULL)
      seal->last = NULL;
  }
  pthread_mutex_unlock (&seal->queue_lock);
  return p;
}

/* Preserve BLOCK for the sealers (in memory, else in the spill file).
 * False if neither budget allows it.  Holding the block's stripe.
 */
static bool
preserve (struct xs_seal *seal, uint64_t block)
{
  struct preserved *p = malloc (sizeof *p);

  if (p == NULL)
    return false;
  p->block = block;
  p->buf = copy_to_memory (seal, block);
  if (p->buf == NULL && !spill_block (seal, block)) {
    free (p);
    return false;
  }
  push (seal, p);
  return true;
}

/* Seal a preserved block, and give back what its copy took. */
static int
seal_preserved (struct xs_seal *seal, struct xs_chunk_codec *codec,
                void *buf, struct preserved *p)
{
  uint64_t offset = block_offset (seal, p->block);
  size_t len = block_len (seal, p->block);
  int r;

  if (p->buf) {
    r = seal_copy (seal, codec, p->block, p->buf);
    free (p->buf);
    unreserve (&seal->memory_used, len);
  }
  else {
    r = xs_full_pread (seal->spill_fd, buf, len, offset);
    if (r == -1)
      xs_error ("volume '%s': cannot read block %lu back from the spill "
                "file: %m", seal->head->name, (unsigned long) p->block);
    else
      r = seal_copy (seal, codec, p->block, buf);
    /* Free the space (and the page cache) at once. */
    (void) fallocate (seal->spill_fd,
                      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t) offset, (off_t) len);
    unreserve (&seal->spill_used, len);
  }
  free (p);
  return r;
}

/* Scratch space of a thread that seals blocks itself. */
struct scratch {
  struct xs_seal *seal;
  struct xs_chunk_codec *codec;
  void *buf;
};

static int
scratch_get (struct scratch *s)
{
  if (s->buf)
    return 0;
  s->codec = borrow_codec (&s->seal->codecs);
  s->buf = malloc (s->seal->head->block_size);
  if (s->codec == NULL || s->buf == NULL) {
    xs_error ("volume '%s': cannot seal a block of the pending snapshot: %m",
              s->seal->head->name);
    return -1;
  }
  return 0;
}

static void
scratch_put (struct scratch *s)
{
  free (s->buf);
  if (s->codec)
    return_codec (&s->seal->codecs, s->codec);
  s->buf = NULL;
  s->codec = NULL;
}

/* Make BLOCK safe: its id if that needs no reading, else its content
 * copied.  A writer (PRESERVE) leaves the copy to the sealers while the
 * budgets allow; otherwise the copy goes into the scratch buffer and is
 * sealed here, after the stripe is released.
 */
static int
secure_block (struct xs_seal *seal, uint64_t block, bool preserve_it,
              struct scratch *s)
{
  pthread_mutex_t *stripe = &seal->stripes[block % STRIPES];
  struct xs_hash128 id;
  enum { NOTHING, FINISH, SEAL } then = NOTHING;
  int r = 0;

  pthread_mutex_lock (stripe);
  if (is_unsafe (seal, block)) {
    if (id_without_reading (seal, block, &id))
      then = FINISH;
    else if (!(preserve_it && preserve (seal, block))) {
      r = scratch_get (s);
      if (r == 0)
        r = read_block (seal, block, s->buf);
      then = SEAL;
    }
    if (r == 0)
      mark_safe (seal, block);
  }
  pthread_mutex_unlock (stripe);
  if (r == -1)
    return -1;
  if (then == FINISH)
    finish_block (seal, block, &id);
  else if (then == SEAL) {
    if (preserve_it)
      add_stat (&seal->stats.sealed_by_writes, 1);
    return seal_copy (seal, s->codec, block, s->buf);
  }
  return 0;
}

void
xs_seal_protect (struct xs_seal *seal, uint64_t first, uint64_t last)
{
  struct scratch s = { .seal = seal };
  uint64_t block;

  for (block = first; block <= last && !has_failed (seal); block++) {
    if (!is_unsafe (seal, block))
      continue;
    /* A failure here must not fail the write: the snapshot fails instead
     * (reported), and the volume goes on.
     */
    if (secure_block (seal, block, true, &s) == -1)
      mark_failed (seal);
  }
  scratch_put (&s);
}

static void
free_seal (struct xs_seal *seal)
{
  struct preserved *p;
  unsigned i;

  while ((p = seal->first) != NULL) {   /* left by a failed seal */
    seal->first = p->next;
    free (p->buf);
    free (p);
  }
  if (seal->spill_fd >= 0)
    close (seal->spill_fd);
  pthread_mutex_destroy (&seal->queue_lock);
  pthread_cond_destroy (&seal->work);
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
  pthread_mutex_init (&seal->queue_lock, NULL);
  pthread_cond_init (&seal->work, NULL);
  seal->spill_fd = -1;
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
  seal->memory_limit = h->seal_memory;
  seal->spill_limit = h->seal_spill;
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
};

/* Wait until there may be something to do.  False when the seal is
 * complete or has failed.
 */
static bool
wait_for_work (struct xs_seal *seal)
{
  bool more;

  pthread_mutex_lock (&seal->queue_lock);
  while (seal->first == NULL && !all_done (seal) && !has_failed (seal))
    pthread_cond_wait (&seal->work, &seal->queue_lock);
  more = seal->first != NULL && !has_failed (seal);
  pthread_mutex_unlock (&seal->queue_lock);
  return more;
}

/* Seal what is still unsafe in the run of CLAIM_BLOCKS from FIRST. */
static int
sweep_run (struct xs_seal *seal, struct scratch *s, uint64_t first)
{
  uint64_t nblocks = seal->todo.nbits, block;

  for (block = xs_bitmap_next_set (&seal->todo, first);
       block < first + CLAIM_BLOCKS && block < nblocks;
       block = xs_bitmap_next_set (&seal->todo, block + 1))
    if (secure_block (seal, block, false, s) == -1)
      return -1;
  return 0;
}

/* Seal preserved blocks first (they hold budget), else claim the next
 * run of blocks; once every run is claimed, wait for preserved blocks
 * until the seal is complete.
 */
static void *
sealer_main (void *opaque)
{
  struct sealer_thread *t = opaque;
  struct xs_seal *seal = t->seal;
  struct scratch s = { .seal = seal };
  struct preserved *p;
  uint64_t first;
  int r;

  if (scratch_get (&s) == -1)
    mark_failed (seal);
  while (!has_failed (seal)) {
    p = pop (seal);
    if (p)
      r = seal_preserved (seal, s.codec, s.buf, p);
    else if ((first = __atomic_fetch_add (&seal->cursor, CLAIM_BLOCKS,
                                          __ATOMIC_RELAXED))
             < seal->todo.nbits)
      r = sweep_run (seal, &s, first);
    else if (!wait_for_work (seal))
      break;
    else
      r = 0;
    if (r == -1)
      mark_failed (seal);
  }
  scratch_put (&s);
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
    /* Report every 10 ms until every block is sealed (a snapshot with
     * little to seal must not wait for a long tick).
     */
    while (!all_done (seal) && !has_failed (seal)) {
      progress (__atomic_load_n (&seal->done, __ATOMIC_RELAXED),
                seal->stats.blocks_to_seal, opaque);
      usleep (10000);
    }
  }
  for (i = 0; i < started; i++)
    pthread_join (workers[i].thread, NULL);
  if (!has_failed (seal) && !all_done (seal)) {
    xs_error ("cannot seal the snapshot of volume '%s': %lu of %lu "
              "blocks sealed",
              seal->head->name, (unsigned long) seal->done,
              (unsigned long) seal->stats.blocks_to_seal);
    mark_failed (seal);
  }
  if (has_failed (seal)) {
    xs_error ("snapshot of volume '%s' failed", seal->head->name);
    return -1;
  }
  if (seal->stats.preserved_in_memory + seal->stats.preserved_spilled
      + seal->stats.sealed_by_writes > 0)
    xs_debug ("snapshot of volume '%s': blocks written while pending: "
              "%lu preserved in memory, %lu spilled, %lu sealed first",
              seal->head->name,
              (unsigned long) seal->stats.preserved_in_memory,
              (unsigned long) seal->stats.preserved_spilled,
              (unsigned long) seal->stats.sealed_by_writes);
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
