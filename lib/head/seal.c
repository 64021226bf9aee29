/* xsnap: sealing snapshots of live heads (see seal.h for the design).
 *
 * The seal registers with the head rather than the head calling it: while
 * a snapshot is pending, the seal is the head's write guard
 * (head-internal.h).  Installing the guard is the point in time (the
 * dirty map is taken with no change in flight); every change then calls
 * protect() before it marks the map or touches the data; removing the
 * guard commits or gives back the dirty map.  The head's fields are read
 * only through the accessors of head-internal.h, and never written.
 *
 * Concurrency.  TODO holds the blocks of S not taken by a sealer yet.  A
 * sealer takes a block under the block's stripe lock: it copies the
 * block's content at the point in time into its own buffer, clears the
 * bit (release), drops the lock, and only then hashes, compresses and
 * stores.  A writer that sees a clear bit (acquire) may write at once:
 * the bit is cleared only after the copy is complete, and bits only go
 * from set to clear while the seal exists.
 *
 * Copy-before-write, cheaply.  A writer about to change a block whose bit
 * is set copies aside only the 4 KiB units it is about to change and that
 * are not copied yet (under the stripe lock), into the spill file:
 * unnamed, sparse files in the head's directory laid out as the volume's
 * data is, in segments of the same size (segfile.h, so that it holds any
 * offset the data does), which stay in the page cache while small.  A block's content at
 * the point in time is then the data file's with its copied units laid
 * over it, which is what a sealer reads.  A block's first copied unit
 * also queues the block, and sealers take queued blocks before anything
 * else, which frees the spill file soonest.  The units copied at once are
 * bounded by the head's budget; with the budget spent (or no spill file),
 * a writer takes the block itself, as a sealer would, and seals it before
 * its write goes on.  The spill file need not be durable: a crash loses
 * the pending snapshot, which was never visible, and the next owner
 * removes its record.
 *
 * DONE counts blocks whose entry is final; the seal is complete when it
 * reaches |S|.  Codecs are not thread-safe, so a small pool lends one to
 * each sealing thread.
 *
 * Locks follow lockorder.h: a writer holds the head's gate (read side)
 * when it calls protect(), which takes at most one block stripe, under
 * which it may take the queue lock and the codec pool's.  Beginning and
 * ending install and remove the guard, for which the head takes its gate
 * (write side) and then its guard lock; the dirty map's lock is taken
 * inside the gate, by the guard's on_install and on_remove.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/bitmap.h"
#include "repo/chunk.h"
#include "base/error.h"
#include "crypto/chunkcrypt.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "head/head-internal.h"
#include "base/lockorder.h"
#include "head/seal.h"
#include "head/segfile.h"

#define STRIPES 256
#define DEFAULT_THREADS 2
#define MAX_THREADS 16
#define CLAIM_BLOCKS 64         /* blocks a sealer thread claims at once */
#define UNIT 4096u              /* what copy-before-write copies */
#define UNIT_WORDS (XS_MANIFEST_MAX_BLOCK_SIZE / UNIT / 64)

struct codec_pool {
  pthread_mutex_t lock;
  struct xs_chunk_codec *free[MAX_THREADS + 8];
  unsigned nfree;
};

/* The units of a block copied to the spill file (under its stripe). */
struct copied {
  uint64_t block;
  unsigned count;
  uint64_t bits[UNIT_WORDS];
};

/* The copied-units records of the blocks of one stripe, found by block:
 * open addressing, linear probing, a power-of-two number of slots.  Only
 * blocks written while the snapshot is pending have one, so the tables
 * cost what writes copied aside, not the volume's size.
 */
struct copied_table {
  struct copied **slots;
  size_t nslots, count;
};

/* A block with copied units, for the sealers to take first. */
struct queued {
  struct queued *next;
  uint64_t block;
};

struct xs_seal {
  struct xs_head *head;
  struct xs_head_guard guard;   /* installed on HEAD while pending */
  uint64_t size;                /* HEAD's geometry, fixed while pending */
  uint32_t block_size;
  unsigned block_shift;
  struct xs_repo *repo;
  struct xs_manifest *manifest; /* base entries, replaced as blocks seal */
  struct xs_bitmap taken;       /* S as taken from the dirty map */
  struct xs_bitmap todo;        /* blocks of S not taken by a sealer */
  pthread_mutex_t stripes[STRIPES];
  struct copied_table copied[STRIPES];  /* under the stripe's lock */
  struct codec_pool codecs;
  struct xs_data_key *dk;       /* encrypted volume: its data key */
  /* A clone's blocks still in its source may keep the source's chunk
   * ids: the source is in the same namespace, under the same data key.
   * Otherwise they are read through and stored again.
   */
  bool source_ids_fit;
  bool full_compare;
  bool committed;               /* how it ends: see xs_seal_end */
  uint64_t new_epoch;
  atomic_bool failed;           /* set once */
  atomic_bool stopped;          /* asked to stop (then failed too) */
  _Atomic uint64_t cursor;      /* next block to claim */
  _Atomic uint64_t done;        /* blocks sealed */

  /* QUEUE_LOCK protects the queue and the opening of SPILL, and with
   * WORK wakes idle sealers (a block queued, the last one done, a
   * failure).
   */
  pthread_mutex_t queue_lock;
  pthread_cond_t work;
  struct queued *first, *last;
  /* How many are queued, read without the lock: sealers sweeping a
   * mostly clean map look at it between runs instead of taking the lock.
   */
  _Atomic uint64_t nqueued;
  struct xs_segfile *spill;     /* NULL: not open (yet) */
  atomic_bool spill_broken;     /* do not try the spill file */
  uint64_t spill_limit;         /* bytes copied aside at once, at most */
  _Atomic uint64_t spill_used;

  /* STATS holds what is set when the seal begins; the counters below
   * are added to concurrently and copied into it at the end.
   */
  struct xs_seal_stats stats;
  struct {
    _Atomic uint64_t changed_blocks, new_chunks, stored_bytes, bytes_read,
      copied_bytes, sealed_by_writes;
  } count;
};

static struct xs_chunk_codec *
borrow_codec (struct codec_pool *pool)
{
  struct xs_chunk_codec *codec = NULL;

  xs_lock_take (&pool->lock, XS_LOCK_SEAL_CODECS, 0);
  if (pool->nfree > 0)
    codec = pool->free[--pool->nfree];
  xs_lock_drop (&pool->lock);
  return codec;
}

/* A codec for SEAL: from its pool, else a new one under its key. */
static struct xs_chunk_codec *
seal_codec (struct xs_seal *seal)
{
  struct xs_chunk_codec *codec = borrow_codec (&seal->codecs);

  if (codec)
    return codec;
  codec = xs_chunk_codec_new (1);
  if (codec && xs_chunk_codec_set_key (codec, seal->dk) == -1) {
    xs_chunk_codec_free (codec);
    codec = NULL;
  }
  return codec;
}

static void
return_codec (struct codec_pool *pool, struct xs_chunk_codec *codec)
{
  xs_lock_take (&pool->lock, XS_LOCK_SEAL_CODECS, 0);
  if (pool->nfree < sizeof pool->free / sizeof pool->free[0]) {
    pool->free[pool->nfree++] = codec;
    codec = NULL;
  }
  xs_lock_drop (&pool->lock);
  xs_chunk_codec_free (codec);
}

static void
add_stat (_Atomic uint64_t *counter, uint64_t n)
{
  atomic_fetch_add_explicit (counter, n, memory_order_relaxed);
}

/* Bring the counters into STATS. */
static void
copy_counts (struct xs_seal *seal)
{
  seal->stats.changed_blocks = atomic_load (&seal->count.changed_blocks);
  seal->stats.new_chunks = atomic_load (&seal->count.new_chunks);
  seal->stats.stored_bytes = atomic_load (&seal->count.stored_bytes);
  seal->stats.bytes_read = atomic_load (&seal->count.bytes_read);
  seal->stats.copied_bytes = atomic_load (&seal->count.copied_bytes);
  seal->stats.sealed_by_writes = atomic_load (&seal->count.sealed_by_writes);
}

static bool
is_zero (const void *buf, size_t len)
{
  const unsigned char *p = buf;

  return len == 0 || (p[0] == 0 && memcmp (p, p + 1, len - 1) == 0);
}

static uint64_t
block_offset (const struct xs_seal *seal, uint64_t block)
{
  return block << seal->block_shift;
}

static size_t
block_len (const struct xs_seal *seal, uint64_t block)
{
  uint64_t offset = block_offset (seal, block);

  return seal->size - offset < seal->block_size
    ? (size_t) (seal->size - offset) : seal->block_size;
}

static void
wake_sealers (struct xs_seal *seal)
{
  xs_lock_take (&seal->queue_lock, XS_LOCK_SEAL_QUEUE, 0);
  pthread_cond_broadcast (&seal->work);
  xs_lock_drop (&seal->queue_lock);
}

static void
mark_failed (struct xs_seal *seal)
{
  atomic_store_explicit (&seal->failed, true, memory_order_release);
  wake_sealers (seal);
}

static bool
has_failed (struct xs_seal *seal)
{
  return atomic_load_explicit (&seal->failed, memory_order_acquire);
}

static bool
all_done (struct xs_seal *seal)
{
  return atomic_load_explicit (&seal->done, memory_order_acquire)
    >= seal->stats.blocks_to_seal;
}

/* Whether BLOCK may still need copying before a write changes it.
 * Acquire: a clear bit means the sealer's copy is complete.
 */
static bool
is_untaken (struct xs_seal *seal, uint64_t block)
{
  return atomic_load_explicit (xs_bitmap_atomic_byte (&seal->todo, block),
                               memory_order_acquire)
    & xs_bitmap_bit_mask (block);
}

/* BLOCK's content is copied (or needs no copy).  Holding its stripe. */
static void
mark_taken (struct xs_seal *seal, uint64_t block)
{
  xs_bitmap_clear_atomic (&seal->todo, block, memory_order_release);
}

/* BLOCK's entry in the new manifest is ID.  0, or -1 (the manifest
 * reported why; the block is not done and the caller fails the seal).
 */
static int
finish_block (struct xs_seal *seal, uint64_t block,
              const struct xs_hash128 *id)
{
  int changed = xs_manifest_set_block (seal->manifest, block, id);

  if (changed == -1)
    return -1;
  if (changed == 1)
    add_stat (&seal->count.changed_blocks, 1);
  if (atomic_fetch_add_explicit (&seal->done, 1, memory_order_acq_rel) + 1
      == seal->stats.blocks_to_seal)
    wake_sealers (seal);
  return 0;
}

/* Store BLOCK's content unless the repository has it; set *ID. */
static int
store_block (struct xs_seal *seal, struct xs_chunk_codec *codec,
             const void *buf, size_t len, struct xs_hash128 *id)
{
  void *stored;
  size_t stored_len;
  int r;

  if (xs_chunk_id (codec, buf, len, id) == -1)
    return -1;
  r = xs_repo_has_chunk (seal->repo, id);
  if (r != 0)
    return r == 1 ? 0 : -1;
  if (xs_chunk_encode_as (codec, buf, len, id, &stored, &stored_len) == -1)
    return -1;
  r = xs_repo_put_chunk (seal->repo, id, stored, stored_len, false);
  free (stored);
  if (r == 1) {
    add_stat (&seal->count.new_chunks, 1);
    add_stat (&seal->count.stored_bytes, stored_len);
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
  return finish_block (seal, block, &id);
}

/* The copied-units record of BLOCK, or NULL.  Holding its stripe. */
static struct copied *
find_copied (const struct xs_seal *seal, uint64_t block)
{
  const struct copied_table *t = &seal->copied[block % STRIPES];
  size_t i;

  if (t->nslots == 0)
    return NULL;
  for (i = (size_t) (block / STRIPES) & (t->nslots - 1); t->slots[i];
       i = (i + 1) & (t->nslots - 1))
    if (t->slots[i]->block == block)
      return t->slots[i];
  return NULL;
}

static void
place_copied (struct copied_table *t, struct copied *c)
{
  size_t i;

  for (i = (size_t) (c->block / STRIPES) & (t->nslots - 1); t->slots[i];
       i = (i + 1) & (t->nslots - 1))
    ;
  t->slots[i] = c;
}

/* Add C (whose block has none yet).  0, or -1 without memory (nothing
 * reported: the caller falls back to sealing the block at once).
 */
static int
add_copied (struct xs_seal *seal, struct copied *c)
{
  struct copied_table *t = &seal->copied[c->block % STRIPES];

  if (2 * (t->count + 1) > t->nslots) {
    size_t nslots = t->nslots ? 2 * t->nslots : 16, i;
    struct copied **old = t->slots, **slots = calloc (nslots, sizeof *slots);

    if (slots == NULL)
      return -1;
    t->slots = slots;
    t->nslots = nslots;
    for (i = 0; i < nslots / 2; i++)
      if (old && old[i])
        place_copied (t, old[i]);
    free (old);
  }
  place_copied (t, c);
  t->count++;
  return 0;
}

/* Take BLOCK's record out of its table (backward-shift deletion). */
static void
remove_copied (struct xs_seal *seal, uint64_t block)
{
  struct copied_table *t = &seal->copied[block % STRIPES];
  size_t i, j, mask = t->nslots - 1;

  for (i = (size_t) (block / STRIPES) & mask; t->slots[i]->block != block;
       i = (i + 1) & mask)
    ;
  t->slots[i] = NULL;
  t->count--;
  for (j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
    struct copied *c = t->slots[j];

    t->slots[j] = NULL;
    place_copied (t, c);
  }
}

/* If BLOCK's id needs no reading — a block a clone still reads from its
 * source, or a hole of the data file with nothing copied aside — set *ID
 * and return 1; 0 if it must be read; -1 if the source's entry cannot be
 * had (reported).  Holding the block's stripe.
 */
static int
id_without_reading (struct xs_seal *seal, uint64_t block,
                    struct xs_hash128 *id)
{
  struct xs_head *h = seal->head;

  if (find_copied (seal, block))
    return 0;
  if (!xs_head_block_present (h, block)) {
    if (!seal->source_ids_fit)
      return 0;
    /* Still the source's. */
    return xs_snapreader_entry (xs_head_source (h), block, id) == -1 ? -1 : 1;
  }
  /* A hole reads as zero without reading. */
  if (xs_segfile_is_hole (xs_head_data (h), block_offset (seal, block),
                          block_len (seal, block))) {
    memset (id, 0, sizeof *id);
    return 1;
  }
  return 0;
}

/* Take N bytes of the spill budget. */
static bool
reserve (struct xs_seal *seal, uint64_t n)
{
  uint64_t limit = seal->spill_limit;
  uint64_t old = atomic_load_explicit (&seal->spill_used,
                                      memory_order_relaxed);

  do {
    if (n > limit || old > limit - n)
      return false;
  } while (!atomic_compare_exchange_weak_explicit (&seal->spill_used, &old,
                                                   old + n,
                                                   memory_order_relaxed,
                                                   memory_order_relaxed));
  return true;
}

static void
unreserve (struct xs_seal *seal, uint64_t n)
{
  atomic_fetch_sub_explicit (&seal->spill_used, n, memory_order_relaxed);
}

/* Units [U, U + N) of BLOCK as a byte range of the volume. */
static void
unit_range (struct xs_seal *seal, uint64_t block, unsigned u, unsigned n,
            uint64_t *offset, size_t *len)
{
  uint64_t end = block_offset (seal, block) + block_len (seal, block);

  *offset = block_offset (seal, block) + (uint64_t) u * UNIT;
  *len = *offset + (uint64_t) n * UNIT > end
    ? (size_t) (end - *offset) : (size_t) n * UNIT;
}

static bool
unit_copied (const struct copied *c, unsigned u)
{
  return c && (c->bits[u / 64] >> (u % 64)) & 1;
}

/* Lay the copied units of BLOCK over BUF, its data as in the data file.
 * Holding the block's stripe.
 */
static int
overlay_copied (struct xs_seal *seal, uint64_t block, void *buf)
{
  const struct copied *c = find_copied (seal, block);
  unsigned nunits = (unsigned) ((block_len (seal, block) + UNIT - 1) / UNIT);
  unsigned u, n;
  uint64_t offset;
  size_t len;

  for (u = 0; c && u < nunits; u += n) {
    for (n = 1; u + n < nunits
           && unit_copied (c, u + n) == unit_copied (c, u); n++)
      ;
    if (!unit_copied (c, u))
      continue;
    unit_range (seal, block, u, n, &offset, &len);
    if (xs_segfile_pread (seal->spill, (char *) buf + (size_t) u * UNIT,
                          len, offset) == -1) {
      xs_error ("volume '%s': cannot read block %lu back from the spill "
                "file: %m", xs_head_name (seal->head), (unsigned long) block);
      return -1;
    }
  }
  return 0;
}

/* Forget what BLOCK had copied aside: free its budget and spill space. */
static void
drop_copied (struct xs_seal *seal, uint64_t block)
{
  struct copied *c = find_copied (seal, block);

  if (c == NULL)
    return;
  (void) xs_segfile_fallocate (seal->spill,
                               FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               block_offset (seal, block),
                               block_len (seal, block));
  unreserve (seal, (uint64_t) c->count * UNIT);
  remove_copied (seal, block);
  free (c);
}

/* Copy BLOCK's content at the point in time into BUF: the data file's,
 * with the units copied aside laid over it.  Holding the block's stripe.
 */
static int
read_block (struct xs_seal *seal, uint64_t block, void *buf)
{
  size_t len = block_len (seal, block);

  if (xs_segfile_pread (xs_head_data (seal->head), buf, len,
                        block_offset (seal, block)) == -1) {
    xs_error ("volume '%s': cannot read block %lu to seal it: %m",
              xs_head_name (seal->head), (unsigned long) block);
    return -1;
  }
  add_stat (&seal->count.bytes_read, len);
  if (overlay_copied (seal, block, buf) == -1)
    return -1;
  /* The data file and the units copied aside hold an encrypted head's
   * ciphertext, sector for sector.
   */
  if (xs_head_decrypt_raw (seal->head, buf, len,
                           block_offset (seal, block)) == -1)
    return -1;
  return 0;
}

/* Copy BLOCK, not yet present in a clone, from its source into BUF (it
 * cannot change before it is present, and it is made present only after
 * this snapshot takes it).
 */
static int
read_source_block (struct xs_seal *seal, uint64_t block, void *buf)
{
  if (xs_snapreader_read_block (xs_head_source (seal->head), block,
                                buf) == -1)
    return -1;
  add_stat (&seal->count.bytes_read, block_len (seal, block));
  return 0;
}

/* The spill file, opened on first use; NULL if there is none.  It has
 * no name, so it never outlives the process.
 */
static struct xs_segfile *
spill (struct xs_seal *seal)
{
  struct xs_segfile *sf;

  xs_lock_take (&seal->queue_lock, XS_LOCK_SEAL_QUEUE, 0);
  if (seal->spill == NULL
      && !atomic_load_explicit (&seal->spill_broken, memory_order_relaxed)) {
    seal->spill = xs_segfile_open_unnamed (xs_head_dir (seal->head),
                                           seal->size,
                                           xs_segfile_segment_size
                                           (xs_head_data (seal->head)),
                                           xs_head_name (seal->head));
    if (seal->spill == NULL) {
      xs_debug ("volume '%s': no spill file for the pending snapshot "
                "(%m): writes seal their blocks first",
                xs_head_name (seal->head));
      atomic_store_explicit (&seal->spill_broken, true, memory_order_relaxed);
    }
  }
  sf = seal->spill;
  xs_lock_drop (&seal->queue_lock);
  return sf;
}

static void
push (struct xs_seal *seal, struct queued *q)
{
  q->next = NULL;
  xs_lock_take (&seal->queue_lock, XS_LOCK_SEAL_QUEUE, 0);
  if (seal->last)
    seal->last->next = q;
  else
    seal->first = q;
  seal->last = q;
  atomic_fetch_add_explicit (&seal->nqueued, 1, memory_order_release);
  pthread_cond_signal (&seal->work);
  xs_lock_drop (&seal->queue_lock);
}

static struct queued *
pop (struct xs_seal *seal)
{
  struct queued *q;

  if (atomic_load_explicit (&seal->nqueued, memory_order_acquire) == 0)
    return NULL;
  xs_lock_take (&seal->queue_lock, XS_LOCK_SEAL_QUEUE, 0);
  q = seal->first;
  if (q) {
    seal->first = q->next;
    if (seal->first == NULL)
      seal->last = NULL;
    atomic_fetch_sub_explicit (&seal->nqueued, 1, memory_order_relaxed);
  }
  xs_lock_drop (&seal->queue_lock);
  return q;
}

/* The copied-units record of BLOCK, made (and the block queued) on first
 * use.  Holding the block's stripe.
 */
static struct copied *
get_copied (struct xs_seal *seal, uint64_t block)
{
  struct copied *c = find_copied (seal, block);
  struct queued *q;

  if (c)
    return c;
  c = calloc (1, sizeof *c);
  q = malloc (sizeof *q);
  if (c == NULL || q == NULL) {
    free (c);
    free (q);
    return NULL;
  }
  c->block = block;
  if (add_copied (seal, c) == -1) {
    free (c);
    free (q);
    return NULL;
  }
  q->block = block;
  push (seal, q);
  return c;
}

/* Copy aside the units of BLOCK in [U0, U1] not copied yet.  False if the
 * budget or the spill file does not allow it (some may be copied).
 * Holding the block's stripe.
 */
static bool
copy_units (struct xs_seal *seal, uint64_t block, unsigned u0, unsigned u1)
{
  struct copied *c;
  unsigned u, n, i;
  struct xs_segfile *sf;
  uint64_t offset;
  size_t len;

  for (u = u0; u <= u1; u += n) {
    n = 1;
    if (unit_copied (find_copied (seal, block), u))
      continue;
    while (u + n <= u1 && !unit_copied (find_copied (seal, block), u + n))
      n++;
    if (atomic_load_explicit (&seal->spill_broken, memory_order_relaxed)
        || !reserve (seal, (uint64_t) n * UNIT))
      return false;
    sf = spill (seal);
    c = sf ? get_copied (seal, block) : NULL;
    unit_range (seal, block, u, n, &offset, &len);
    if (c == NULL
        || xs_segfile_copy (xs_head_data (seal->head), sf, offset,
                            len) == -1) {
      if (c) {
        /* A full disk, or no copy_file_range here: stop trying. */
        xs_debug ("volume '%s': cannot copy part of block %lu to the "
                  "spill file (%m): writes seal their blocks first",
                  xs_head_name (seal->head), (unsigned long) block);
        atomic_store_explicit (&seal->spill_broken, true,
                               memory_order_relaxed);
      }
      unreserve (seal, (uint64_t) n * UNIT);
      return false;
    }
    for (i = u; i < u + n; i++)
      c->bits[i / 64] |= UINT64_C (1) << (i % 64);
    c->count += n;
    add_stat (&seal->count.copied_bytes, len);
  }
  return true;
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
  s->codec = seal_codec (s->seal);
  s->buf = malloc (s->seal->block_size);
  if (s->codec == NULL || s->buf == NULL) {
    xs_error ("volume '%s': cannot seal a block of the pending snapshot: %m",
              xs_head_name (s->seal->head));
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

/* Take BLOCK if it is still untaken, and seal it.  A writer passes the
 * byte range [OFFSET, END) of the block it is about to change: then
 * copying those units aside is enough, while the budget allows.
 */
static int
take_block (struct xs_seal *seal, uint64_t block, bool writer,
            uint64_t offset, uint64_t end, struct scratch *s)
{
  unsigned k = (unsigned) (block % STRIPES);
  uint64_t start = block_offset (seal, block);
  struct xs_hash128 id;
  enum { NOTHING, FINISH, SEAL } then = NOTHING;
  int r = 0;

  xs_lock_take (&seal->stripes[k], XS_LOCK_SEAL_STRIPE, k);
  if (is_untaken (seal, block)) {
    bool in_source = !xs_head_block_present (seal->head, block);
    int known = id_without_reading (seal, block, &id);

    if (known == -1)
      r = -1;
    else if (known == 1)
      then = FINISH;
    else if (!writer || in_source
             || !copy_units (seal, block, (unsigned) ((offset - start) / UNIT),
                             (unsigned) ((end - 1 - start) / UNIT))) {
      r = scratch_get (s);
      if (r == 0)
        r = in_source ? read_source_block (seal, block, s->buf)
          : read_block (seal, block, s->buf);
      then = SEAL;
    }
    if (r == 0 && then != NOTHING) {
      mark_taken (seal, block);
      drop_copied (seal, block);
    }
  }
  xs_lock_drop (&seal->stripes[k]);
  if (r == -1)
    return -1;
  if (then == FINISH)
    return finish_block (seal, block, &id);
  if (then == SEAL) {
    if (writer)
      add_stat (&seal->count.sealed_by_writes, 1);
    return seal_copy (seal, s->codec, block, s->buf);
  }
  return 0;
}

/* The guard's before_write: called by the head before each change of
 * [OFFSET, OFFSET + COUNT) while the snapshot is pending, holding its
 * gate for reading.  Keeps what the change overwrites for the snapshot
 * (copy-before-write).  Never fails the change.
 */
static int
protect (void *opaque, uint64_t offset, uint64_t count)
{
  struct xs_seal *seal = opaque;
  struct scratch s = { .seal = seal };
  uint64_t end = offset + count, block, start, stop;

  for (block = offset >> seal->block_shift;
       (block << seal->block_shift) < end && !has_failed (seal); block++) {
    if (!is_untaken (seal, block))
      continue;
    start = block << seal->block_shift;
    stop = start + seal->block_size;
    /* A failure here must not fail the write: the snapshot fails instead
     * (reported), and the volume goes on.
     */
    if (take_block (seal, block, true, offset > start ? offset : start,
                    end < stop ? end : stop, &s) == -1)
      mark_failed (seal);
  }
  scratch_put (&s);
  return 0;
}

static void
free_seal (struct xs_seal *seal)
{
  struct queued *q;
  unsigned i;

  while ((q = seal->first) != NULL) {
    seal->first = q->next;
    free (q);
  }
  for (i = 0; i < STRIPES; i++) {
    struct copied_table *t = &seal->copied[i];
    size_t j;

    for (j = 0; j < t->nslots; j++)
      free (t->slots[j]);       /* left by a failed seal */
    free (t->slots);
  }
  xs_segfile_close (seal->spill);
  pthread_mutex_destroy (&seal->queue_lock);
  pthread_cond_destroy (&seal->work);
  for (i = 0; i < STRIPES; i++)
    pthread_mutex_destroy (&seal->stripes[i]);
  for (i = 0; i < seal->codecs.nfree; i++)
    xs_chunk_codec_free (seal->codecs.free[i]);
  pthread_mutex_destroy (&seal->codecs.lock);
  xs_data_key_free (seal->dk);
  xs_bitmap_free (&seal->taken);
  xs_bitmap_free (&seal->todo);
  xs_manifest_free (seal->manifest);
  free (seal);
}

/* Whether chunks named under A are named the same under B. */
static bool
same_data_key (const struct xs_data_key *a, const struct xs_data_key *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return xs_crypt_equal (a->chunk_id, b->chunk_id, sizeof a->chunk_id)
    && xs_crypt_equal (a->chunk_enc, b->chunk_enc, sizeof a->chunk_enc);
}

/* The guard's on_install, with no change in flight: the point in time.
 * The dirty map's bits become S and the map starts afresh.
 */
static int
point_in_time (void *opaque)
{
  struct xs_seal *seal = opaque;
  struct xs_dirtymap *map = xs_head_dirtymap (seal->head);
  bool trusted;

  seal->spill_limit = xs_head_seal_buffer (seal->head);
  trusted = xs_dirtymap_doubt (map) == XS_DIRTYMAP_TRUSTED;
  if (xs_dirtymap_take (map, &seal->taken) == -1)
    return -1;
  seal->full_compare |= !trusted;
  if (seal->full_compare)
    xs_bitmap_set_range (&seal->todo, 0, seal->todo.nbits);
  else                          /* todo is new, all zero */
    xs_bitmap_or (&seal->todo, &seal->taken);
  /* Counted in taken: todo's pages without bits are never touched. */
  seal->stats.blocks_to_seal = seal->full_compare ? seal->todo.nbits
    : xs_bitmap_count (&seal->taken);
  seal->stats.full_compare = seal->full_compare;
  return 0;
}

/* The guard's on_remove, with no change in flight: a committed snapshot
 * moves the dirty map to its new epoch; otherwise S goes back into it.
 */
static int
give_back_map (void *opaque)
{
  struct xs_seal *seal = opaque;
  struct xs_dirtymap *map = xs_head_dirtymap (seal->head);

  if (seal->committed)
    return xs_dirtymap_commit_epoch (map, seal->new_epoch);
  xs_dirtymap_merge (map, &seal->taken);
  return 0;
}

/* A manifest of SEAL's geometry with every block zero, whose block map
 * goes to *MAP_REPO (taken over).  NULL with an error.
 */
static struct xs_manifest *
empty_manifest (struct xs_seal *seal, struct xs_repo **map_repo)
{
  struct xs_manifest *m = xs_manifest_new (seal->size, seal->block_size);

  if (m) {
    xs_manifest_attach (m, *map_repo);
    *map_repo = NULL;
  }
  return m;
}

static struct xs_seal *
new_seal (struct xs_head *h, struct xs_repo *repo, struct xs_repo *map_repo,
          struct xs_manifest *base, const struct xs_data_key *dk)
{
  struct xs_seal *seal = calloc (1, sizeof *seal);
  uint64_t nblocks = xs_head_nblocks (h);
  unsigned i;

  if (seal == NULL) {
    xs_error ("cannot snapshot volume '%s': %m", xs_head_name (h));
    xs_manifest_free (base);
    xs_repo_close (map_repo);
    return NULL;
  }
  seal->head = h;
  seal->guard = (struct xs_head_guard) {
    .before_write = protect,
    .on_install = point_in_time,
    .on_remove = give_back_map,
    .opaque = seal,
  };
  seal->size = xs_head_size (h);
  seal->block_size = xs_head_block_size (h);
  seal->block_shift = (unsigned) __builtin_ctz (seal->block_size);
  seal->repo = repo;
  for (i = 0; i < STRIPES; i++)
    pthread_mutex_init (&seal->stripes[i], NULL);
  pthread_mutex_init (&seal->codecs.lock, NULL);
  pthread_mutex_init (&seal->queue_lock, NULL);
  pthread_cond_init (&seal->work, NULL);
  seal->manifest = base;
  if (base && (base->size != seal->size
               || base->block_size != seal->block_size)) {
    /* The volume grew since its base: a base of the old geometry cannot
     * be patched, so compare everything against an empty one.
     */
    xs_manifest_free (base);
    seal->manifest = NULL;
    seal->full_compare = true;
  }
  if (seal->manifest == NULL)
    seal->manifest = empty_manifest (seal, &map_repo);
  xs_repo_close (map_repo);     /* not needed: the base has its own */
  if (seal->manifest == NULL
      || (dk && (seal->dk = xs_data_key_dup (dk)) == NULL)
      || xs_bitmap_init (&seal->todo, nblocks) == -1) {
    free_seal (seal);
    return NULL;
  }
  return seal;
}

struct xs_seal *
xs_seal_begin (struct xs_head *h, struct xs_repo *repo,
               struct xs_repo *map_repo, struct xs_manifest *base,
               bool map_matches_base, const struct xs_data_key *dk)
{
  struct xs_snapreader *source = xs_head_source (h);
  struct xs_seal *seal;

  seal = new_seal (h, repo, map_repo, base, dk);
  if (seal == NULL)
    return NULL;
  seal->source_ids_fit = source != NULL
    && xs_repo_same_namespace (xs_head_source_repo (h), repo)
    && same_data_key (xs_snapreader_data_key (source), dk);
  seal->full_compare |= !map_matches_base;

  switch (xs_head_guard_install (h, &seal->guard)) {
  case XS_HEAD_GUARD_INSTALLED:
    return seal;
  case XS_HEAD_GUARD_BUSY:
    xs_error ("cannot snapshot volume '%s': a snapshot of it is already "
              "pending", xs_head_name (h));
    break;
  case XS_HEAD_GUARD_FAILED:
    break;
  }
  free_seal (seal);
  return NULL;
}

struct sealer_thread {
  struct xs_seal *seal;
  pthread_t thread;
  char why[512];                /* the first error it reported */
};

/* Wait until there may be something to do.  False when the seal is
 * complete or has failed.
 */
static bool
wait_for_work (struct xs_seal *seal)
{
  bool more;

  xs_lock_take (&seal->queue_lock, XS_LOCK_SEAL_QUEUE, 0);
  while (seal->first == NULL && !all_done (seal) && !has_failed (seal))
    pthread_cond_wait (&seal->work, &seal->queue_lock);
  more = seal->first != NULL && !has_failed (seal);
  xs_lock_drop (&seal->queue_lock);
  return more;
}

/* Seal what is still untaken in the run of CLAIM_BLOCKS from FIRST. */
static int
sweep_run (struct xs_seal *seal, struct scratch *s, uint64_t first)
{
  uint64_t end = first + CLAIM_BLOCKS, block;

  /* Only within the run: a search to the end of the map from every run
   * would make sealing a large, mostly clean volume quadratic.
   */
  for (block = xs_bitmap_next_set_within (&seal->todo, first, end);
       block < end && block < seal->todo.nbits;
       block = xs_bitmap_next_set_within (&seal->todo, block + 1, end))
    if (take_block (seal, block, false, 0, 0, s) == -1)
      return -1;
  return 0;
}

/* Claim the next run of CLAIM_BLOCKS blocks that has work: from the
 * cursor, the run starting at the next block of S (which does not change
 * while the seal runs, so it is read without atomics; with a full compare
 * every run has work).  Each stretch of the map is searched once, not
 * once a run.  False once every run is claimed.
 */
static bool
claim_run (struct xs_seal *seal, uint64_t *first)
{
  uint64_t nbits = seal->todo.nbits;
  uint64_t cur = atomic_load_explicit (&seal->cursor, memory_order_relaxed);

  for (;;) {
    uint64_t next, after;

    if (cur >= nbits)
      return false;
    next = seal->full_compare ? cur : xs_bitmap_next_set (&seal->taken, cur);
    after = next >= nbits ? nbits : next + CLAIM_BLOCKS;
    if (atomic_compare_exchange_weak_explicit (&seal->cursor, &cur, after,
                                               memory_order_relaxed,
                                               memory_order_relaxed)) {
      *first = next;
      return next < nbits;
    }
  }
}

/* Seal queued blocks first (their copies hold budget), else claim the
 * next run of blocks; once every run is claimed, help with queued blocks
 * until the seal is complete.
 */
static void *
sealer_main (void *opaque)
{
  struct sealer_thread *t = opaque;
  struct xs_seal *seal = t->seal;
  struct scratch s = { .seal = seal };
  struct queued *q;
  uint64_t first;
  int r;

  xs_error_capture_begin (t->why, sizeof t->why);
  if (scratch_get (&s) == -1)
    mark_failed (seal);
  while (!has_failed (seal)) {
    q = pop (seal);
    if (q) {
      r = take_block (seal, q->block, false, 0, 0, &s);
      free (q);
    }
    else if (claim_run (seal, &first))
      r = sweep_run (seal, &s, first);
    else if (!wait_for_work (seal))
      break;
    else
      r = 0;
    if (r == -1)
      mark_failed (seal);
  }
  scratch_put (&s);
  xs_error_capture_end ();
  return NULL;
}

/* Whether the caller asks the run to stop; if so, the sealers are told. */
static bool
stop_asked (struct xs_seal *seal, const atomic_int *stop)
{
  if (stop == NULL || !atomic_load_explicit (stop, memory_order_acquire))
    return false;
  atomic_store_explicit (&seal->stopped, true, memory_order_release);
  mark_failed (seal);
  return true;
}

bool
xs_seal_stopped (struct xs_seal *seal)
{
  return atomic_load_explicit (&seal->stopped, memory_order_acquire);
}

int
xs_seal_run (struct xs_seal *seal, unsigned threads, const atomic_int *stop,
             void (*progress) (uint64_t done, uint64_t total, void *opaque),
             void *opaque)
{
  struct sealer_thread workers[MAX_THREADS];
  unsigned i, started = 0;

  if (threads == 0)
    threads = DEFAULT_THREADS;
  if (threads > MAX_THREADS)
    threads = MAX_THREADS;
  if (stop_asked (seal, stop))
    threads = 0;                /* stopped before it began */
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
  if (progress || stop) {
    /* Report (and look at STOP) every 10 ms until every block is sealed
     * (a snapshot with little to seal must not wait for a long tick).
     */
    while (!all_done (seal) && !has_failed (seal)
           && !stop_asked (seal, stop)) {
      if (progress)
        progress (atomic_load_explicit (&seal->done, memory_order_relaxed),
                  seal->stats.blocks_to_seal, opaque);
      usleep (10000);
    }
  }
  for (i = 0; i < started; i++) {
    pthread_join (workers[i].thread, NULL);
    /* A sealer reported why; this thread's capture (a control request's
     * reply) keeps it rather than the summary below.
     */
    if (workers[i].why[0])
      xs_error_capture_note (workers[i].why);
  }
  if (!has_failed (seal) && !all_done (seal)) {
    xs_error ("cannot seal the snapshot of volume '%s': %lu of %lu "
              "blocks sealed",
              xs_head_name (seal->head),
              (unsigned long) atomic_load (&seal->done),
              (unsigned long) seal->stats.blocks_to_seal);
    mark_failed (seal);
  }
  if (xs_seal_stopped (seal))
    return -1;                  /* as asked: nothing failed */
  if (has_failed (seal)) {
    xs_error ("snapshot of volume '%s' failed", xs_head_name (seal->head));
    return -1;
  }
  copy_counts (seal);
  if (seal->stats.copied_bytes + seal->stats.sealed_by_writes > 0)
    xs_debug ("snapshot of volume '%s': writes while pending copied %lu "
              "bytes aside and sealed %lu blocks first",
              xs_head_name (seal->head),
              (unsigned long) seal->stats.copied_bytes,
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
  copy_counts (seal);           /* the sealer threads have been joined */
  *stats = seal->stats;
}

int
xs_seal_end (struct xs_seal *seal, bool committed, uint64_t new_epoch)
{
  int r;

  seal->committed = committed;
  seal->new_epoch = new_epoch;
  r = xs_head_guard_remove (seal->head, &seal->guard);
  free_seal (seal);
  return r;
}
