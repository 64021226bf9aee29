/* xsnap: reading one snapshot's bytes (see snapreader.h).
 *
 * A read is cut at block boundaries; each piece is zeros (a zero entry),
 * a whole block decoded straight into the caller's buffer (and offered to
 * the cache), or part of a block copied out of the shared chunk cache (or,
 * without a cache, out of a scratch block that belongs to the decoder
 * doing the work).  Each decoder keeps its zstd context and the buffer
 * its stored chunks are read into, so a read allocates nothing.  The only
 * lock here is the one around the decoder pool, held for a pop or a push.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/chunkcache.h"
#include "crypto/chunkcrypt.h"
#include "base/error.h"
#include "base/hash.h"
#include "base/lockorder.h"
#include "repo/manifest.h"
#include "repo/readahead.h"
#include "repo/repo.h"
#include "repo/snapreader.h"

/* The read-ahead: this much is kept decoded ahead of each sequential
 * reader (at least READAHEAD_MIN_BLOCKS blocks), by up to two workers per
 * CPU (fetches wait on the disk as well as decode), into a cache of
 * READAHEAD_WINDOWS windows: what is decoded and not yet read.  A
 * repository across the network (S3) answers each fetch a few
 * milliseconds later however fast it sends: there, more fetches are kept
 * in flight, over a longer window.
 */
#define READAHEAD_BYTES ((uint64_t) 8 << 20)
#define READAHEAD_REMOTE_BYTES ((uint64_t) 32 << 20)
#define READAHEAD_MIN_BLOCKS 4
#define READAHEAD_WINDOWS 4
#define READAHEAD_MAX_THREADS 8
#define READAHEAD_REMOTE_THREADS 16

/* A decoder and its buffers, used by one thread at a time. */
struct decoder_slot {
  struct xs_chunk_codec *codec;
  struct xs_repo_scratch stored; /* the stored chunk being decoded */
  void *scratch;                /* block_size bytes, allocated on demand */
  struct decoder_slot *next;    /* in the idle list */
};

struct xs_snapreader {
  struct xs_repo *repo;
  struct xs_chunk_cache *cache; /* NULL: no caching */
  char *label;
  uint64_t size;
  uint32_t block_size;
  unsigned block_shift;
  uint64_t nblocks;
  struct xs_manifest *manifest; /* the reader's: entries, data key */
  pthread_mutex_t pool_lock;
  struct decoder_slot *idle;    /* decoders not in use */
  struct xs_readahead *ahead;   /* keeps sequential readers fed */
  struct xs_chunk_cache *ahead_cache; /* what it decoded */
  uint64_t ahead_window;        /* blocks kept ahead of a reader */
};

/* What the cache's load function needs to know about the read. */
struct load_request {
  struct xs_snapreader *reader;
  uint64_t block;
  bool not_wanted;              /* a read-ahead's: a reader came first */
};

static int start_readahead (struct xs_snapreader *reader);

struct xs_snapreader *
xs_snapreader_open (struct xs_repo *repo, struct xs_manifest *m,
                    struct xs_chunk_cache *cache, const char *label)
{
  struct xs_snapreader *reader;

  /* An encrypted manifest read without its key was never authenticated:
   * nothing it names may be read.
   */
  if (xs_manifest_is_encrypted (m) && m->dk == NULL) {
    xs_error ("%s: cannot read an encrypted snapshot whose key is not open",
              label);
    xs_manifest_free (m);
    errno = EACCES;
    return NULL;
  }
  reader = calloc (1, sizeof *reader);
  if (reader == NULL || (reader->label = strdup (label)) == NULL) {
    errno = ENOMEM;
    xs_error ("%s: cannot allocate a reader: %m", label);
    free (reader);
    xs_manifest_free (m);
    return NULL;
  }
  reader->repo = repo;
  reader->cache = cache != NULL && xs_chunk_cache_capacity (cache) > 0
    ? cache : NULL;
  reader->manifest = m;
  reader->size = m->size;
  reader->block_size = m->block_size;
  reader->block_shift = (unsigned) __builtin_ctz (m->block_size);
  reader->nblocks = m->nblocks;
  pthread_mutex_init (&reader->pool_lock, NULL);
  if (start_readahead (reader) == -1) {
    xs_snapreader_close (reader);
    return NULL;
  }
  return reader;
}

static void
free_slot (struct decoder_slot *slot)
{
  xs_chunk_codec_free (slot->codec);
  xs_repo_scratch_release (&slot->stored);
  free (slot->scratch);
  free (slot);
}

void
xs_snapreader_close (struct xs_snapreader *reader)
{
  struct decoder_slot *slot, *next;

  if (reader == NULL)
    return;
  xs_readahead_free (reader->ahead);  /* its workers use decoders */
  xs_chunk_cache_free (reader->ahead_cache);
  for (slot = reader->idle; slot != NULL; slot = next) {
    next = slot->next;
    free_slot (slot);
  }
  pthread_mutex_destroy (&reader->pool_lock);
  xs_manifest_free (reader->manifest);
  free (reader->label);
  free (reader);
}

uint64_t
xs_snapreader_size (const struct xs_snapreader *reader)
{
  return reader->size;
}

uint32_t
xs_snapreader_block_size (const struct xs_snapreader *reader)
{
  return reader->block_size;
}

uint64_t
xs_snapreader_nblocks (const struct xs_snapreader *reader)
{
  return reader->nblocks;
}

const struct xs_data_key *
xs_snapreader_data_key (const struct xs_snapreader *reader)
{
  return reader->manifest->dk;
}

const char *
xs_snapreader_label (const struct xs_snapreader *reader)
{
  return reader->label;
}

/* Block BLOCK's entry, BLOCK in range.  A failure of the manifest is
 * reported there; errno is EIO.
 */
static int
get_entry (struct xs_snapreader *reader, uint64_t block,
           struct xs_hash128 *id)
{
  if (xs_manifest_get_block (reader->manifest, block, id) == -1) {
    errno = EIO;
    return -1;
  }
  return 0;
}

static int
check_block (const struct xs_snapreader *reader, uint64_t block)
{
  if (block >= reader->nblocks) {
    xs_error ("%s: block %" PRIu64 " is beyond the last (%" PRIu64 ")",
              reader->label, block, reader->nblocks);
    errno = EINVAL;
    return -1;
  }
  return 0;
}

int
xs_snapreader_entry (struct xs_snapreader *reader, uint64_t block,
                     struct xs_hash128 *id)
{
  if (check_block (reader, block) == -1)
    return -1;
  return get_entry (reader, block, id);
}

/* Bytes in block: block_size, or what is left for a partial last one. */
static size_t
block_length (const struct xs_snapreader *reader, uint64_t block)
{
  uint64_t start = block << reader->block_shift;

  return reader->size - start < reader->block_size
    ? (size_t) (reader->size - start) : reader->block_size;
}

/* An idle decoder, or a new one.  NULL with an error. */
static struct decoder_slot *
take_slot (struct xs_snapreader *reader)
{
  struct decoder_slot *slot;

  xs_lock_take (&reader->pool_lock, XS_LOCK_SNAPREADER_POOL, 0);
  slot = reader->idle;
  if (slot != NULL)
    reader->idle = slot->next;
  xs_lock_drop (&reader->pool_lock);
  if (slot != NULL)
    return slot;

  slot = calloc (1, sizeof *slot);
  if (slot == NULL) {
    xs_error ("%s: cannot allocate a decoder: %m", reader->label);
    return NULL;
  }
  slot->codec = xs_chunk_codec_new (0);
  if (slot->codec == NULL
      || xs_chunk_codec_set_key (slot->codec, reader->manifest->dk) == -1) {
    xs_chunk_codec_free (slot->codec);
    free (slot);
    return NULL;
  }
  return slot;
}

static void
give_slot (struct xs_snapreader *reader, struct decoder_slot *slot)
{
  xs_lock_take (&reader->pool_lock, XS_LOCK_SNAPREADER_POOL, 0);
  slot->next = reader->idle;
  reader->idle = slot;
  xs_lock_drop (&reader->pool_lock);
}

/* Fetch and verify block's chunk id into buf (len bytes) with the
 * decoder of slot.  A bad chunk is reported here, once, with the
 * snapshot, the block and the reason; errno is EIO.
 */
static int
fetch_block (struct xs_snapreader *reader, struct decoder_slot *slot,
             uint64_t block, const struct xs_hash128 *id,
             void *buf, size_t len)
{
  char reason[XS_CHUNK_REASON_MAX], hex[XS_HASH128_HEX_LEN + 1];
  int r = xs_repo_fetch_chunk (reader->repo, slot->codec, id, buf, len,
                               &slot->stored, reason);

  if (r == 1) {
    xs_hash128_to_hex (id, hex);
    xs_error ("%s: block %" PRIu64 ": chunk %s: %s",
              reader->label, block, hex, reason);
    errno = EIO;
    return -1;
  }
  return r;
}

/* Decode block whole into buf, with a decoder from the pool. */
static int
decode_block (struct xs_snapreader *reader, uint64_t block,
              const struct xs_hash128 *id, void *buf, size_t len)
{
  struct decoder_slot *slot = take_slot (reader);
  int r, saved_errno;

  if (slot == NULL)
    return -1;
  r = fetch_block (reader, slot, block, id, buf, len);
  saved_errno = errno;
  give_slot (reader, slot);
  errno = saved_errno;
  return r;
}

/* Block whole into buf: what the read-ahead decoded for it (taken out of
 * its cache, waiting for a decode under way), or decoded now.
 */
static int
load_block (struct xs_snapreader *reader, uint64_t block,
            const struct xs_hash128 *id, void *buf, size_t len)
{
  if (xs_chunk_cache_take (reader->ahead_cache, id, len, buf))
    return 0;
  return decode_block (reader, block, id, buf, len);
}

/* The shared cache's load function. */
static int
load_for_cache (void *opaque, const struct xs_hash128 *id, void *buf,
                size_t len)
{
  struct load_request *request = opaque;

  return load_block (request->reader, request->block, id, buf, len);
}

/* The read-ahead cache's load function: a decode, if the block is still
 * wanted now that its load is under way in the cache.
 */
static int
decode_for_readahead (void *opaque, const struct xs_hash128 *id, void *buf,
                      size_t len)
{
  struct load_request *request = opaque;
  struct xs_snapreader *reader = request->reader;

  if (!xs_readahead_claim (reader->ahead, request->block)) {
    request->not_wanted = true;
    errno = ECANCELED;
    return -1;
  }
  return decode_block (reader, request->block, id, buf, len);
}

/* The read-ahead's load function: block into the read-ahead's cache,
 * unless it is a zero block or the shared cache has it (a re-read of a
 * cached snapshot decodes nothing).
 */
static int
prefetch_block (void *opaque, uint64_t block)
{
  struct xs_snapreader *reader = opaque;
  struct load_request request = { .reader = reader, .block = block };
  size_t len = block_length (reader, block);
  struct xs_hash128 id;

  int r;

  if (get_entry (reader, block, &id) == -1)
    return -1;
  if (xs_hash128_is_zero (&id)
      || (reader->cache != NULL
          && xs_chunk_cache_has (reader->cache, &id, len)))
    return 1;
  r = xs_chunk_cache_prefetch (reader->ahead_cache, &id, len,
                               decode_for_readahead, &request);
  return request.not_wanted ? 1 : r;
}

static int
start_readahead (struct xs_snapreader *reader)
{
  bool remote = xs_repo_is_remote (reader->repo);
  uint64_t window = (remote ? READAHEAD_REMOTE_BYTES : READAHEAD_BYTES)
    >> reader->block_shift;
  long cpus = sysconf (_SC_NPROCESSORS_ONLN);
  unsigned threads = cpus > 0 ? 2 * (unsigned) cpus : 2;

  if (window < READAHEAD_MIN_BLOCKS)
    window = READAHEAD_MIN_BLOCKS;
  if (threads > READAHEAD_MAX_THREADS)
    threads = READAHEAD_MAX_THREADS;
  if (remote)
    threads = READAHEAD_REMOTE_THREADS;
  reader->ahead_window = window;
  reader->ahead_cache = xs_chunk_cache_new (READAHEAD_WINDOWS * window
                                            * reader->block_size);
  if (reader->ahead_cache == NULL)
    return -1;
  reader->ahead = xs_readahead_new (reader->nblocks, threads,
                                    (unsigned) window, prefetch_block,
                                    reader);
  return reader->ahead != NULL ? 0 : -1;
}

/* Part of a block, without a cache: load it into the decoder's scratch
 * block and copy the part out.
 */
static int
read_part_uncached (struct xs_snapreader *reader, uint64_t block,
                    const struct xs_hash128 *id, size_t len,
                    void *dst, size_t offset, size_t count)
{
  struct decoder_slot *slot = take_slot (reader);
  int r = -1, saved_errno;

  if (slot == NULL)
    return -1;
  if (slot->scratch == NULL
      && (slot->scratch = malloc (reader->block_size)) == NULL)
    xs_error ("%s: cannot allocate a block buffer: %m", reader->label);
  else if (xs_chunk_cache_take (reader->ahead_cache, id, len,
                                slot->scratch)
           || (r = fetch_block (reader, slot, block, id, slot->scratch,
                                len)) == 0) {
    memcpy (dst, (const char *) slot->scratch + offset, count);
    r = 0;
  }
  saved_errno = errno;
  give_slot (reader, slot);
  errno = saved_errno;
  return r;
}

/* A whole block straight into dst: from the cache if it has the chunk,
 * else loaded into dst and offered to the cache (kept only while the
 * cache has room, so a scan never flushes it).
 */
static int
read_whole_block (struct xs_snapreader *reader, uint64_t block,
                  const struct xs_hash128 *id, size_t len, void *dst)
{
  if (reader->cache == NULL)
    return load_block (reader, block, id, dst, len);
  if (xs_chunk_cache_lookup (reader->cache, id, len, dst, 0, len))
    return 0;
  if (load_block (reader, block, id, dst, len) == -1)
    return -1;
  xs_chunk_cache_offer (reader->cache, id, len, dst);
  return 0;
}

/* count bytes at offset within block into dst. */
static int
read_piece (struct xs_snapreader *reader, uint64_t block, size_t offset,
            size_t count, void *dst)
{
  size_t len = block_length (reader, block);
  struct load_request request = { .reader = reader, .block = block };
  struct xs_hash128 id;

  if (get_entry (reader, block, &id) == -1)
    return -1;
  if (xs_hash128_is_zero (&id)) {
    memset (dst, 0, count);
    return 0;
  }
  xs_readahead_consume (reader->ahead, block);
  if (offset == 0 && count == len)
    return read_whole_block (reader, block, &id, len, dst);
  if (reader->cache != NULL)
    return xs_chunk_cache_read (reader->cache, &id, len, dst, offset, count,
                                load_for_cache, &request);
  return read_part_uncached (reader, block, &id, len, dst, offset, count);
}

static int
check_range (const struct xs_snapreader *reader, uint64_t offset,
             uint64_t count)
{
  if (offset > reader->size || count > reader->size - offset) {
    xs_error ("%s: read of %" PRIu64 " bytes at offset %" PRIu64
              " is beyond the end (%" PRIu64 " bytes)",
              reader->label, count, offset, reader->size);
    errno = EINVAL;
    return -1;
  }
  return 0;
}

int
xs_snapreader_pread (struct xs_snapreader *reader, void *buf,
                     uint32_t count, uint64_t offset)
{
  char *dst = buf;

  if (check_range (reader, offset, count) == -1)
    return -1;
  if (count == 0)
    return 0;
  xs_readahead_observe (reader->ahead,
                                offset >> reader->block_shift,
                                ((offset + count - 1) >> reader->block_shift)
                                - (offset >> reader->block_shift) + 1);
  while (count > 0) {
    uint64_t block = offset >> reader->block_shift;
    size_t within = (size_t) (offset & (reader->block_size - 1));
    size_t len = block_length (reader, block);
    size_t n = len - within < count ? len - within : count;

    if (read_piece (reader, block, within, n, dst) == -1)
      return -1;
    dst += n;
    offset += n;
    count -= (uint32_t) n;
  }
  return 0;
}

int
xs_snapreader_read_block (struct xs_snapreader *reader, uint64_t block,
                          void *buf)
{
  if (check_block (reader, block) == -1)
    return -1;
  xs_readahead_observe (reader->ahead, block, 1);
  return read_piece (reader, block, 0, block_length (reader, block), buf);
}

void
xs_snapreader_readahead_counts (struct xs_snapreader *reader,
                                struct xs_readahead_counts *counts)
{
  xs_readahead_counts (reader->ahead, counts);
}

uint64_t
xs_snapreader_readahead_window (const struct xs_snapreader *reader)
{
  return reader->ahead_window;
}

void
xs_snapreader_prefetch (struct xs_snapreader *reader, uint64_t block,
                        uint64_t count)
{
  xs_readahead_queue (reader->ahead, block, count);
}

/* An extents walk: the ranges before OFFSET are given to FN; data
 * blocks run from there to DATA_END (none if it starts before OFFSET).
 */
struct extents_walk {
  struct xs_snapreader *reader;
  uint64_t offset;
  uint64_t data_end;
  int (*fn) (uint64_t offset, uint64_t length, bool hole, void *opaque);
  void *opaque;
  bool stopped;                 /* by FN */
};

/* Give FN the range from w->offset to the start of END_BLOCK (or the
 * end of the snapshot), if it is not empty.
 */
static int
give_range (struct extents_walk *w, uint64_t end_block, bool hole)
{
  uint64_t end = end_block << w->reader->block_shift;
  int r;

  if (end > w->reader->size)
    end = w->reader->size;
  if (end <= w->offset)
    return 0;
  r = w->fn (w->offset, end - w->offset, hole, w->opaque);
  if (r != 0) {
    w->stopped = true;
    return r;
  }
  w->offset = end;
  return 0;
}

/* A data block: it extends the run of data, or ends it and the hole
 * after it.
 */
static int
extents_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  struct extents_walk *w = opaque;
  int r;

  if (block != w->data_end
      && ((r = give_range (w, w->data_end, false)) != 0
          || (r = give_range (w, block, true)) != 0))
    return r;
  w->data_end = block + 1;
  return 0;
}

int
xs_snapreader_extents (struct xs_snapreader *reader, uint64_t offset,
                       uint64_t count,
                       int (*fn) (uint64_t offset, uint64_t length,
                                  bool hole, void *opaque),
                       void *opaque)
{
  struct extents_walk w = {
    .reader = reader, .offset = offset,
    .data_end = offset >> reader->block_shift,
    .fn = fn, .opaque = opaque,
  };
  uint64_t first_block = offset >> reader->block_shift, end_block;
  int r;

  if (check_range (reader, offset, count) == -1)
    return -1;
  if (count == 0)
    return 0;
  end_block = (offset + count + reader->block_size - 1)
    >> reader->block_shift;
  /* Only the data blocks are visited: the holes are what lies between. */
  r = xs_manifest_for_each_block (reader->manifest, first_block,
                                  end_block - first_block, extents_block,
                                  &w);
  if (r == 0 && (r = give_range (&w, w.data_end, false)) == 0)
    r = give_range (&w, end_block, true);
  if (r == -1 && !w.stopped)
    errno = EIO;                /* the manifest reported why */
  return r;
}
