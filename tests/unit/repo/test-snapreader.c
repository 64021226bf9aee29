/* xsnap: tests for lib/repo/snapreader.c.
 *
 * A snapshot built from a model image (random, text, zero and shared
 * blocks, a partial last block) reads back equal to the model at any
 * offset and length, with and without a cache and from several threads;
 * zero blocks are holes in extents; a corrupt or missing chunk fails only
 * the reads that touch it, with EIO and one line naming the snapshot, the
 * block, the chunk and the reason, and a repaired chunk reads again;
 * whole-block reads fill a cache only while it has room.  The read-ahead
 * follows sequential readers (one, and several at once in separate
 * parts) and decodes what they read next, leaves random readers alone,
 * decodes what it is asked to prefetch, and a chunk it could not load is
 * reported once, by the read that needs it.
 *
 * Then a benchmark: a 256 MiB snapshot of mixed data read sequentially
 * with 256 KiB requests from 2 threads, against pread of the same bytes
 * from a plain file (numbers as TAP comments).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "repo/backend.h"
#include "repo/chunk.h"
#include "repo/chunkcache.h"
#include "base/hash.h"
#include "repo/manifest.h"
#include "repo/readahead.h"
#include "repo/repo.h"
#include "repo/snapreader.h"
#include "repofixture.h"
#include "tap.h"

#define BS 65536u
#define NBLOCKS 20u
/* The last block is partial. */
#define SIZE ((uint64_t) (NBLOCKS - 1) * BS + 5000)
#define LABEL "snapshot db1@s1 (snap-test)"

struct fixture {
  char *dir;
  struct xs_backend *backend;
  struct xs_repo *repo;
  struct xs_chunk_codec *codec;
};

static uint64_t
next_random (uint64_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

static void
fill_random (uint8_t *buf, size_t len, uint64_t seed)
{
  uint64_t state = seed * 0x9e3779b97f4a7c15u + 1;
  size_t i;

  for (i = 0; i + 8 <= len; i += 8) {
    uint64_t r = next_random (&state);

    memcpy (buf + i, &r, 8);
  }
  for (; i < len; i++)
    buf[i] = (uint8_t) next_random (&state);
}

/* Text that compresses about as well as real text does. */
static void
fill_text (uint8_t *buf, size_t len, uint64_t seed)
{
  static const char *const words[] = {
    "the", "snapshot", "of", "a", "volume", "is", "logically", "full",
    "and", "physically", "incremental", "block", "chunk", "manifest",
    "repository", "region", "account", "copy", "share", "policy", "read",
    "write", "extent", "hole", "zero", "cache", "thread", "server", "kernel",
    "filesystem", "inode", "journal", "commit", "transaction", "error",
    "return", "static", "struct", "const", "uint64_t", "include", "define",
    "while", "for", "if", "else", "{", "}", "(", ");", "=", "==", "->",
  };
  uint64_t state = seed * 0x9e3779b97f4a7c15u + 7;
  size_t i = 0;

  while (i < len) {
    uint64_t r = next_random (&state);
    const char *w = words[r % (sizeof words / sizeof words[0])];
    size_t n = strlen (w);

    if (n > len - i)
      n = len - i;
    memcpy (buf + i, w, n);
    i += n;
    if (i < len)
      buf[i++] = (r >> 32) % 11 == 0 ? '\n' : ' ';
  }
}

static void
fixture_open (struct fixture *f)
{
  repo_fixture_open (&f->dir, &f->backend, &f->repo);
  f->codec = xs_chunk_codec_new (1);
  if (f->codec == NULL)
    abort ();
}

static void
fixture_close (struct fixture *f)
{
  xs_chunk_codec_free (f->codec);
  repo_fixture_close (f->dir, f->backend, f->repo);
}

static bool
is_all_zero (const uint8_t *buf, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++)
    if (buf[i] != 0)
      return false;
  return true;
}

/* Store every non-zero block of model as a chunk; a manifest mapping
 * them.  Aborts on failure: the tests cannot go on without it.
 */
static struct xs_manifest *
store_snapshot (struct fixture *f, const uint8_t *model, uint64_t size,
                uint32_t block_size)
{
  struct xs_manifest *m = xs_manifest_new (size, block_size);
  struct xs_repo *map_repo = xs_repo_open (f->backend, "alice");
  struct xs_hash128 id;
  uint64_t i;

  if (m == NULL || map_repo == NULL)
    abort ();
  xs_manifest_attach (m, map_repo);
  for (i = 0; i < m->nblocks; i++) {
    const uint8_t *plain = model + i * block_size;
    size_t len = size - i * block_size < block_size
      ? (size_t) (size - i * block_size) : block_size;
    void *stored;
    size_t stored_len;

    if (is_all_zero (plain, len))
      continue;
    if (xs_chunk_encode (f->codec, plain, len, &id, &stored,
                         &stored_len) == -1
        || xs_repo_put_chunk (f->repo, &id, stored, stored_len,
                              false) == -1
        || xs_manifest_set_block (m, i, &id) == -1)
      abort ();
    free (stored);
  }
  if (xs_repo_sync (f->repo) == -1 || xs_manifest_seal (m) == -1)
    abort ();
  return m;
}

/* Block B's entry in M. */
static struct xs_hash128
entry_of (struct xs_manifest *m, uint64_t b)
{
  struct xs_hash128 id;

  if (xs_manifest_get_block (m, b, &id) == -1)
    abort ();
  return id;
}

/* A reader of snapshot M through a copy of it (a reader takes its
 * manifest over).
 */
static struct xs_snapreader *
open_copy (struct fixture *f, const struct xs_manifest *m,
           struct xs_chunk_cache *cache)
{
  struct xs_manifest *copy = xs_manifest_copy (m);

  if (copy == NULL)
    abort ();
  return xs_snapreader_open (f->repo, copy, cache, LABEL);
}

/* The model of the small snapshot: block kinds by index.  Blocks 3 and 7
 * are the same (one shared chunk); 2, 5, 6, 12 are zero.
 */
static uint8_t *
make_small_model (void)
{
  uint8_t *model = calloc (1, NBLOCKS * BS);
  unsigned i;

  if (model == NULL)
    abort ();
  for (i = 0; i < NBLOCKS; i++) {
    uint8_t *block = model + (size_t) i * BS;

    if (i == 2 || i == 5 || i == 6 || i == 12)
      continue;
    if (i == 3 || i == 7)
      fill_text (block, BS, 3);
    else if (i % 2 == 0)
      fill_random (block, BS, i);
    else
      fill_text (block, BS, i);
  }
  /* Bytes past SIZE in the last block do not exist. */
  memset (model + SIZE, 0, NBLOCKS * BS - SIZE);
  return model;
}

static char *
chunk_path (const struct fixture *f, const struct xs_hash128 *id)
{
  char hex[XS_HASH128_HEX_LEN + 1], *path;

  xs_hash128_to_hex (id, hex);
  if (asprintf (&path, "%s/alice/chunks/%.2s/%s", f->dir, hex, hex) == -1)
    abort ();
  return path;
}

static void
read_file (const char *path, void **data, size_t *len)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  off_t size;

  if (fd == -1 || (size = lseek (fd, 0, SEEK_END)) == -1)
    abort ();
  *len = (size_t) size;
  *data = malloc (*len);
  if (*data == NULL || pread (fd, *data, *len, 0) != (ssize_t) *len)
    abort ();
  close (fd);
}

static void
write_file (const char *path, const void *data, size_t len)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

  if (fd == -1 || write (fd, data, len) != (ssize_t) len)
    abort ();
  close (fd);
}

static void
flip_bit (const char *path, off_t where)
{
  int fd = open (path, O_RDWR | O_CLOEXEC);
  uint8_t byte;

  if (fd == -1 || pread (fd, &byte, 1, where) != 1)
    abort ();
  byte ^= 0x04;
  if (pwrite (fd, &byte, 1, where) != 1)
    abort ();
  close (fd);
}

static void
test_geometry (struct xs_snapreader *r, struct xs_manifest *m)
{
  struct xs_hash128 id, want = entry_of (m, 3);

  is_int (xs_snapreader_size (r), SIZE, "size");
  is_int (xs_snapreader_block_size (r), BS, "block size");
  is_int (xs_snapreader_nblocks (r), NBLOCKS, "number of blocks");
  is_str (xs_snapreader_label (r), LABEL, "label");
  ok (xs_snapreader_entry (r, 2, &id) == 0 && xs_hash128_is_zero (&id),
      "a zero block has the zero id");
  ok (xs_snapreader_entry (r, 3, &id) == 0 && xs_hash128_equal (&id, &want),
      "a data block has its chunk id");
  errno = 0;
  is_int (xs_snapreader_entry (r, NBLOCKS, &id), -1,
          "no entry past the last block");
  is_int (errno, EINVAL, "... EINVAL");
  error_contains ("beyond the last", "... with a message");
}

/* Random reads of up to 3 blocks at any offset equal the model. */
static void
test_random_reads (struct xs_snapreader *r, const uint8_t *model,
                   const char *what)
{
  uint8_t *buf = malloc (3 * BS);
  unsigned seed = 42, i, bad = 0;

  if (buf == NULL)
    abort ();
  for (i = 0; i < 2000; i++) {
    uint64_t offset = (uint64_t) rand_r (&seed) % SIZE;
    uint32_t count = 1 + (uint32_t) rand_r (&seed) % (3 * BS);

    if (count > SIZE - offset)
      count = (uint32_t) (SIZE - offset);
    if (xs_snapreader_pread (r, buf, count, offset) == -1
        || memcmp (buf, model + offset, count) != 0)
      bad++;
  }
  is_int (bad, 0, "%s: 2000 unaligned reads spanning blocks equal the model",
          what);
  free (buf);
}

static void
test_reads (struct xs_snapreader *r, const uint8_t *model, const char *what)
{
  uint8_t *all = malloc (SIZE), block[BS];
  uint64_t b;
  unsigned bad = 0;

  if (all == NULL)
    abort ();
  memset (all, 0xaa, SIZE);
  is_int (xs_snapreader_pread (r, all, SIZE, 0), 0, "%s: read it all", what);
  ok (memcmp (all, model, SIZE) == 0, "%s: equal to the model", what);
  ok (is_all_zero (all + 2 * BS, BS) && is_all_zero (all + 12 * BS, BS),
      "%s: zero blocks read as zeros", what);
  test_random_reads (r, model, what);
  for (b = 0; b < NBLOCKS; b++) {
    size_t len = b == NBLOCKS - 1 ? SIZE % BS : BS;

    memset (block, 0xaa, sizeof block);
    if (xs_snapreader_read_block (r, b, block) == -1
        || memcmp (block, model + b * BS, len) != 0
        || (len < BS && block[len] != 0xaa))
      bad++;
  }
  is_int (bad, 0, "%s: every block reads whole; the last one partial", what);
  free (all);
}

struct extent_check {
  struct xs_snapreader *r;
  uint64_t next;                /* where the next extent must start */
  int calls;
  bool last_hole;
  bool ok;
};

static int
check_extent (uint64_t offset, uint64_t length, bool hole, void *opaque)
{
  struct extent_check *c = opaque;
  uint32_t bs = xs_snapreader_block_size (c->r);
  struct xs_hash128 id;
  uint64_t b;

  if (offset != c->next || length == 0
      || (c->calls > 0 && hole == c->last_hole))
    c->ok = false;
  for (b = offset / bs; b * bs < offset + length; b++)
    if (xs_snapreader_entry (c->r, b, &id) == -1
        || xs_hash128_is_zero (&id) != hole)
      c->ok = false;
  c->next = offset + length;
  c->last_hole = hole;
  c->calls++;
  return 0;
}

static int
stop_extents (uint64_t offset, uint64_t length, bool hole, void *opaque)
{
  (*(int *) opaque)++;
  errno = ENOTSUP;
  return -1;
}

/* Extents of ranges at random: right, maximal, from the offset to the
 * end of the block of the range's last byte.
 */
static void
test_random_extents (struct xs_snapreader *r)
{
  struct extent_check c;
  unsigned seed = 5, i, bad = 0;

  for (i = 0; i < 2000; i++) {
    uint64_t offset = (uint64_t) rand_r (&seed) % SIZE;
    uint64_t count = 1 + (uint64_t) rand_r (&seed) % (6 * BS);
    uint64_t last_block_end;

    if (count > SIZE - offset)
      count = SIZE - offset;
    last_block_end = ((offset + count - 1) / BS + 1) * BS;
    if (last_block_end > SIZE)
      last_block_end = SIZE;
    c = (struct extent_check) { .r = r, .next = offset, .ok = true };
    if (xs_snapreader_extents (r, offset, count, check_extent, &c) != 0
        || !c.ok || c.next != last_block_end)
      bad++;
  }
  is_int (bad, 0, "extents of 2000 ranges at random are right");
}

static void
test_extents (struct xs_snapreader *r)
{
  struct extent_check c = { .r = r, .next = 0, .ok = true };
  int calls = 0;

  is_int (xs_snapreader_extents (r, 0, SIZE, check_extent, &c), 0,
          "extents of the whole snapshot");
  ok (c.ok, "contiguous maximal runs; holes exactly at zero blocks");
  is_int (c.next, SIZE, "they cover the snapshot");
  /* 0-1 data, 2 hole, 3-4 data, 5-6 hole, 7-11 data, 12 hole, 13-19. */
  is_int (c.calls, 7, "7 runs");

  c = (struct extent_check) { .r = r, .next = 2 * BS + 100, .ok = true };
  is_int (xs_snapreader_extents (r, 2 * BS + 100, 3 * BS, check_extent, &c),
          0, "extents at an unaligned offset");
  ok (c.ok, "they start at the offset and are right");
  ok (c.next >= 5 * BS + 100 && c.next <= 6 * BS,
      "they cover the range, ending in its last block (%" PRIu64 ")",
      c.next);
  test_random_extents (r);
  is_int (xs_snapreader_extents (r, 0, SIZE, stop_extents, &calls), -1,
          "the callback can stop the walk");
  is_int (calls, 1, "... after one call");
  calls = 0;
  is_int (xs_snapreader_extents (r, 3 * BS, 5 * BS, stop_extents, &calls),
          -1, "... also when the range starts with data");
  is_int (calls, 1, "... after one call");
  calls = 0;
  is_int (xs_snapreader_extents (r, 5 * BS, 0, stop_extents, &calls), 0,
          "an empty range has no extents");
  is_int (calls, 0, "... and calls nothing");
  is_int (xs_snapreader_extents (r, SIZE - 10, 11, check_extent, &c), -1,
          "extents past the end are refused");
  error_contains ("beyond the end", "... with a message");
}

static void
test_range_errors (struct xs_snapreader *r)
{
  uint8_t buf[16];

  errno = 0;
  is_int (xs_snapreader_pread (r, buf, 16, SIZE - 8), -1,
          "a read past the end fails");
  is_int (errno, EINVAL, "... with EINVAL");
  error_contains (LABEL, "... naming the snapshot");
  is_int (xs_snapreader_pread (r, buf, 0, SIZE), 0,
          "an empty read at the end is fine");
  errno = 0;
  is_int (xs_snapreader_read_block (r, NBLOCKS, buf), -1,
          "reading a block past the last fails");
  is_int (errno, EINVAL, "... with EINVAL");
  tap_take_error ();
}

/* Every block but those in [bad_first, bad_last] reads right. */
static bool
others_read_right (struct xs_snapreader *r, const uint8_t *model,
                   uint64_t bad_first, uint64_t bad_last)
{
  uint8_t block[BS];
  uint64_t b;

  for (b = 0; b < NBLOCKS; b++) {
    size_t len = b == NBLOCKS - 1 ? SIZE % BS : BS;

    if (b >= bad_first && b <= bad_last)
      continue;
    if (xs_snapreader_read_block (r, b, block) == -1
        || memcmp (block, model + b * BS, len) != 0)
      return false;
  }
  return true;
}

/* r reads through a cache, r_nocache without one. */
static void
test_corruption (struct fixture *f, struct xs_snapreader *r,
                 struct xs_snapreader *r_nocache,
                 struct xs_manifest *m, const uint8_t *model)
{
  char hex[XS_HASH128_HEX_LEN + 1], want[128];
  struct xs_hash128 id = entry_of (m, 4);
  char *path = chunk_path (f, &id);
  uint8_t *buf = malloc (3 * BS);
  void *good;
  size_t good_len;

  if (buf == NULL)
    abort ();
  read_file (path, &good, &good_len);
  flip_bit (path, (off_t) good_len / 2);
  xs_hash128_to_hex (&id, hex);

  errno = 0;
  is_int (xs_snapreader_pread (r, buf, 2 * BS, 3 * BS + 10), -1,
          "a read over a chunk with a flipped bit fails");
  is_int (errno, EIO, "... with EIO");
  snprintf (want, sizeof want, LABEL ": block 4: chunk %s: ", hex);
  error_contains (want, "... one line naming snapshot, block and chunk");
  errno = 0;
  is_int (xs_snapreader_pread (r, buf, 100, 4 * BS + 100), -1,
          "a partial read of that block fails too (through the cache)");
  is_int (errno, EIO, "... with EIO");
  error_contains ("checksum mismatch", "... and says why");
  is_int (xs_snapreader_read_block (r, 4, buf), -1,
          "read_block of it fails");
  error_contains ("block 4", "... naming the block");
  ok (others_read_right (r, model, 4, 4), "every other block reads fine");

  write_file (path, good, good_len);
  is_int (xs_snapreader_pread (r, buf, 100, 4 * BS + 100), 0,
          "once the chunk file is repaired, the partial read succeeds");
  ok (memcmp (buf, model + 4 * BS + 100, 100) == 0, "... with the data");
  is_int (xs_snapreader_read_block (r, 4, buf), 0, "and so does the block");

  /* A missing chunk. */
  free (path);
  free (good);
  id = entry_of (m, 9);
  path = chunk_path (f, &id);
  read_file (path, &good, &good_len);
  unlink (path);
  errno = 0;
  is_int (xs_snapreader_read_block (r, 9, buf), -1,
          "reading a block whose chunk is missing fails");
  is_int (errno, EIO, "... with EIO");
  xs_hash128_to_hex (&id, hex);
  snprintf (want, sizeof want, LABEL ": block 9: chunk %s: missing", hex);
  error_contains (want, "... saying it is missing");
  ok (others_read_right (r, model, 9, 9), "every other block reads fine");
  write_file (path, good, good_len);

  /* A shared chunk: both blocks fail, each naming itself.  (Without a
   * cache: one that holds the verified plaintext already keeps serving
   * it, which is right.)
   */
  free (path);
  free (good);
  id = entry_of (m, 3);
  path = chunk_path (f, &id);
  read_file (path, &good, &good_len);
  flip_bit (path, 20);
  is_int (xs_snapreader_read_block (r_nocache, 7, buf), -1,
          "a corrupt shared chunk fails one of its blocks");
  error_contains ("block 7: chunk", "... naming that block");
  is_int (xs_snapreader_pread (r_nocache, buf, 10, 3 * BS + 5), -1,
          "... and the other");
  xs_hash128_to_hex (&id, hex);
  snprintf (want, sizeof want, "block 3: chunk %s: header checksum mismatch",
            hex);
  error_contains (want, "... naming that block and saying why");
  write_file (path, good, good_len);
  ok (others_read_right (r_nocache, model, NBLOCKS, NBLOCKS),
      "after the repairs everything reads");

  free (path);
  free (good);
  free (buf);
}

/* Threads reading at random and comparing. */
struct reader_thread {
  pthread_t thread;
  struct xs_snapreader *r;
  const uint8_t *model;
  unsigned seed;
  int bad;
};

static void *
read_at_random (void *arg)
{
  struct reader_thread *t = arg;
  uint8_t *buf = malloc (2 * BS);
  int i;

  if (buf == NULL)
    abort ();
  for (i = 0; i < 3000; i++) {
    uint64_t offset = (uint64_t) rand_r (&t->seed) % SIZE;
    uint32_t count = 1 + (uint32_t) rand_r (&t->seed) % (2 * BS);

    if (count > SIZE - offset)
      count = (uint32_t) (SIZE - offset);
    if (xs_snapreader_pread (t->r, buf, count, offset) == -1
        || memcmp (buf, t->model + offset, count) != 0)
      t->bad++;
  }
  free (buf);
  return NULL;
}

static void
test_threads (struct xs_snapreader *r, const uint8_t *model,
              const char *what)
{
  struct reader_thread threads[4];
  int i, bad = 0;

  for (i = 0; i < 4; i++) {
    threads[i] = (struct reader_thread) {
      .r = r, .model = model, .seed = 7u + (unsigned) i,
    };
    if (pthread_create (&threads[i].thread, NULL, read_at_random,
                        &threads[i]) != 0)
      abort ();
  }
  for (i = 0; i < 4; i++) {
    pthread_join (threads[i].thread, NULL);
    bad += threads[i].bad;
  }
  is_int (bad, 0, "%s: 4 threads x 3000 random reads all right", what);
}

/* The number of non-zero blocks of M whose chunk an earlier block has,
 * at most MAX.
 */
static unsigned
repeated_chunks (struct xs_manifest *m, unsigned max)
{
  unsigned n = 0;
  uint64_t b, a;

  for (b = 0; b < NBLOCKS && n < max; b++) {
    struct xs_hash128 id = entry_of (m, b), earlier;

    for (a = 0; a < b && !xs_hash128_is_zero (&id); a++) {
      earlier = entry_of (m, a);
      if (xs_hash128_equal (&id, &earlier)) {
        n++;
        break;
      }
    }
  }
  return n;
}

/* Whole-block reads fill a cache that has room from the second read of
 * a chunk on, and never evict.
 */
static void
test_whole_blocks_fill_room (struct fixture *f, struct xs_manifest *m,
                             const uint8_t *model)
{
  struct xs_chunk_cache *cache = xs_chunk_cache_new (2 * BS);
  struct xs_snapreader *r = open_copy (f, m, cache);
  struct xs_hash128 id;
  struct xs_chunk_cache_stats before, after;
  uint8_t *buf = malloc (BS);
  uint64_t b, first = NBLOCKS;
  bool right = true;

  if (cache == NULL || r == NULL || buf == NULL)
    abort ();
  for (b = 0; b < NBLOCKS; b++) {
    id = entry_of (m, b);
    if (first == NBLOCKS && !xs_hash128_is_zero (&id))
      first = b;
    right &= xs_snapreader_read_block (r, b, buf) == 0
      && memcmp (buf, model + b * BS, b == NBLOCKS - 1 ? SIZE - b * BS : BS)
         == 0;
  }
  ok (right, "whole blocks read right through an empty cache");
  xs_chunk_cache_stats (cache, &before);
  is_int (before.offers_kept, repeated_chunks (m, 2),
          "... which kept only chunks read a second time (of repeated blocks)");
  for (b = 0; b < NBLOCKS; b++)
    right &= xs_snapreader_read_block (r, b, buf) == 0
      && memcmp (buf, model + b * BS, b == NBLOCKS - 1 ? SIZE - b * BS : BS)
         == 0;
  ok (right, "read again, right");
  xs_chunk_cache_stats (cache, &before);
  is_int (before.offers_kept, 2, "... and the cache kept the first two chunks");
  is_int (before.evictions, 0, "... and evicted nothing");
  is_int (xs_snapreader_read_block (r, first, buf), 0,
          "the first block again");
  xs_chunk_cache_stats (cache, &after);
  is_int (after.hits, before.hits + 1, "... comes from the cache");
  xs_snapreader_close (r);
  xs_chunk_cache_free (cache);
  free (buf);
}

static void
test_small_snapshot (void)
{
  struct fixture f;
  uint8_t *model = make_small_model ();
  struct xs_manifest *m;
  struct xs_chunk_cache *cache = xs_chunk_cache_new (4 * BS);
  struct xs_chunk_cache *no_cache = xs_chunk_cache_new (0);
  struct xs_chunk_cache_stats stats;
  struct xs_snapreader *r, *r_nocache, *r_zero;

  fixture_open (&f);
  m = store_snapshot (&f, model, SIZE, BS);
  r = open_copy (&f, m, cache);
  r_nocache = open_copy (&f, m, NULL);
  r_zero = open_copy (&f, m, no_cache);
  ok (r != NULL && r_nocache != NULL && r_zero != NULL, "open readers");
  /* Each reader has its own manifest. */
  xs_manifest_free (m);
  m = store_snapshot (&f, model, SIZE, BS);

  test_geometry (r, m);
  test_reads (r, model, "cached");
  xs_chunk_cache_stats (cache, &stats);
  ok (stats.hits > 0 && stats.bytes <= 4 * BS,
      "the cache was used (%" PRIu64 " hits) within its capacity",
      stats.hits);
  test_reads (r_nocache, model, "no cache");
  test_reads (r_zero, model, "cache of capacity 0");
  test_extents (r);
  test_range_errors (r);
  /* Fresh readers: the read-ahead of the reads above may still hold
   * (verified) blocks that the corruption below is meant to reach.
   */
  xs_snapreader_close (r);
  xs_snapreader_close (r_nocache);
  r = open_copy (&f, m, cache);
  r_nocache = open_copy (&f, m, NULL);
  test_corruption (&f, r, r_nocache, m, model);
  test_whole_blocks_fill_room (&f, m, model);
  test_threads (r, model, "cached");
  test_threads (r_nocache, model, "no cache");

  xs_snapreader_close (r);
  xs_snapreader_close (r_nocache);
  xs_snapreader_close (r_zero);
  xs_chunk_cache_free (cache);
  xs_chunk_cache_free (no_cache);
  xs_manifest_free (m);
  free (model);
  fixture_close (&f);
}

/* The benchmark. */

#define REQUEST (256u * 1024)

static double
now_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Blocks: 40% random, 40% text, 20% zero, by a hash of the index. */
static uint8_t *
make_mixed_model (uint64_t size, uint32_t piece)
{
  uint8_t *model = calloc (1, size);
  uint64_t i;

  if (model == NULL)
    abort ();
  for (i = 0; i < size / piece; i++) {
    uint64_t h = i * 0x9e3779b97f4a7c15u;
    unsigned kind = (unsigned) ((h >> 32) % 10);

    if (kind < 4)
      fill_random (model + i * piece, piece, i + 1);
    else if (kind < 8)
      fill_text (model + i * piece, piece, i + 1);
  }
  return model;
}

/* One benchmark subject: a reader, or (r NULL) a plain file. */
struct bench {
  struct xs_snapreader *r;
  int fd;
  uint64_t size;
  atomic_uint_fast64_t next;
  atomic_int failures;
  const uint8_t *model;         /* compare with it if not NULL */
};

static void *
bench_thread (void *arg)
{
  struct bench *b = arg;
  uint8_t *buf = malloc (REQUEST);
  uint64_t offset;

  if (buf == NULL)
    abort ();
  while ((offset = atomic_fetch_add (&b->next, REQUEST)) < b->size) {
    uint32_t count = b->size - offset < REQUEST
      ? (uint32_t) (b->size - offset) : REQUEST;
    int r = b->r != NULL
      ? xs_snapreader_pread (b->r, buf, count, offset)
      : (pread (b->fd, buf, count, (off_t) offset) == (ssize_t) count
         ? 0 : -1);

    if (r == -1 || (b->model && memcmp (buf, b->model + offset, count)))
      atomic_fetch_add (&b->failures, 1);
  }
  free (buf);
  return NULL;
}

/* One sequential pass with 2 threads; returns MB/s (1e6 bytes). */
static double
bench_pass (struct bench *b)
{
  pthread_t threads[2];
  double start;
  int i;

  atomic_store (&b->next, 0);
  start = now_seconds ();
  for (i = 0; i < 2; i++)
    if (pthread_create (&threads[i], NULL, bench_thread, b) != 0)
      abort ();
  for (i = 0; i < 2; i++)
    pthread_join (threads[i], NULL);
  return (double) b->size / 1e6 / (now_seconds () - start);
}

/* Best of three passes, then one pass that checks the data. */
static double
bench_best (struct bench *b, bool *right)
{
  double best = 0, mbs;
  int i;

  atomic_store (&b->failures, 0);
  for (i = 0; i < 3; i++)
    if ((mbs = bench_pass (b)) > best)
      best = mbs;
  bench_pass (b);
  *right = atomic_load (&b->failures) == 0;
  return best;
}

static void
bench_block_size (struct fixture *f, const uint8_t *model, uint64_t size,
                  uint32_t block_size, double plain_mbs)
{
  struct xs_manifest *m = store_snapshot (f, model, size, block_size);
  /* A quarter of the data, filled by the first pass: later passes hit
   * in that quarter only (a whole-block read never evicts), so they
   * mostly measure decoding.
   */
  struct xs_chunk_cache *cache = xs_chunk_cache_new (size / 4);
  struct bench b = { .size = size, .fd = -1 };
  bool right;
  double mbs;

  b.r = xs_snapreader_open (f->repo, m, cache, "snapshot bench");
  m = NULL;                     /* the reader's */
  if (b.r == NULL)
    abort ();
  mbs = bench_best (&b, &right);
  b.model = model;
  bench_pass (&b);
  right = right && atomic_load (&b.failures) == 0;
  ok (right, "benchmark, %u KiB blocks: the data read is right",
      block_size / 1024);
  printf ("# snapshot reader, %u KiB blocks, %" PRIu64 " MiB cache: "
          "%.0f MB/s (%.2f x plain pread)\n", block_size / 1024,
          (size / 4) >> 20, mbs, mbs / plain_mbs);
  xs_snapreader_close (b.r);
  xs_chunk_cache_free (cache);
}

static void
test_benchmark (void)
{
  const char *sanitize = getenv ("XSNAP_SANITIZE");
  bool small = sanitize != NULL && strcmp (sanitize, "1") == 0;
  uint64_t size = small ? (32u << 20) : (256u << 20);
  uint8_t *model = make_mixed_model (size, 64 * 1024);
  struct fixture f;
  struct bench plain = { .size = size };
  char *path;
  bool right;
  double plain_mbs;

  fixture_open (&f);
  if (asprintf (&path, "%s/plain.img", f.dir) == -1)
    abort ();
  write_file (path, model, size);
  plain.fd = open (path, O_RDONLY | O_CLOEXEC);
  if (plain.fd == -1)
    abort ();
  plain_mbs = bench_best (&plain, &right);
  close (plain.fd);
  printf ("# benchmark: %" PRIu64 " MiB of mixed data (40%% random, 40%% "
          "text, 20%% zero), 256 KiB requests, 2 threads, best of 3\n",
          size >> 20);
  printf ("# plain file pread: %.0f MB/s\n", plain_mbs);
  bench_block_size (&f, model, size, 64 * 1024, plain_mbs);
  bench_block_size (&f, model, size, 512 * 1024, plain_mbs);
  bench_block_size (&f, model, size, 1024 * 1024, plain_mbs);
  free (path);
  free (model);
  fixture_close (&f);
}


/* ----- The read-ahead ----- */

#define RA_NBLOCKS 1024u
#define RA_SIZE ((uint64_t) RA_NBLOCKS * BS)

static struct xs_readahead_counts
ahead_counts (struct xs_snapreader *r)
{
  struct xs_readahead_counts c;

  xs_snapreader_readahead_counts (r, &c);
  return c;
}

static uint64_t
ahead_done (const struct xs_readahead_counts *c)
{
  return c->loaded + c->skipped + c->failed;
}

/* Wait (up to 10 s) until the read-ahead's queue is empty and its
 * workers have done nothing for 50 ms (or have done want blocks).
 */
static struct xs_readahead_counts
ahead_settle_at (struct xs_snapreader *r, uint64_t want)
{
  struct xs_readahead_counts c = ahead_counts (r), last;
  int i, still = 0;

  for (i = 0; i < 1000 && still < 5 && ahead_done (&c) != want; i++) {
    usleep (10000);
    last = c;
    c = ahead_counts (r);
    still = c.queued == 0 && ahead_done (&c) == ahead_done (&last)
      ? still + 1 : 0;
  }
  return c;
}

static struct xs_readahead_counts
ahead_settle (struct xs_snapreader *r)
{
  return ahead_settle_at (r, UINT64_MAX);
}

static void
test_readahead_sequential (struct fixture *f, struct xs_manifest *m,
                           const uint8_t *model)
{
  struct xs_snapreader *r = open_copy (f, m, NULL);
  uint8_t *buf = malloc (BS);
  struct xs_readahead_counts c;
  uint64_t b;
  unsigned bad = 0;

  if (r == NULL || buf == NULL)
    abort ();
  for (b = 0; b < RA_NBLOCKS; b++)
    if (xs_snapreader_read_block (r, b, buf) == -1
        || memcmp (buf, model + b * BS, BS) != 0)
      bad++;
  is_int (bad, 0, "read-ahead: one sequential reader reads every block "
          "right");
  c = ahead_settle (r);
  ok (c.loaded > 0,
      "... and the read-ahead loaded ahead of it (%" PRIu64 " blocks)",
      c.loaded);
  is_int ((int) c.failed, 0, "... without a failure");
  xs_snapreader_close (r);

  /* Unaligned pieces across block boundaries: the same. */
  r = open_copy (f, m, NULL);
  bad = 0;
  for (b = 0; b < RA_SIZE; b += 40000) {
    uint32_t n = RA_SIZE - b < 40000 ? (uint32_t) (RA_SIZE - b) : 40000;

    if (xs_snapreader_pread (r, buf, n, b) == -1
        || memcmp (buf, model + b, n) != 0)
      bad++;
  }
  is_int (bad, 0, "read-ahead: sequential 40000-byte reads read right");
  ok (ahead_settle (r).loaded > 0, "... with the read-ahead loading ahead");
  xs_snapreader_close (r);
  free (buf);
}

static void
test_readahead_random (struct fixture *f, struct xs_manifest *m,
                       const uint8_t *model)
{
  struct xs_snapreader *r = open_copy (f, m, NULL);
  uint8_t *buf = malloc (BS);
  unsigned bad = 0, i;

  if (r == NULL || buf == NULL)
    abort ();
  /* Jumps of 389 blocks (prime, and far more than a window): never a
   * run.
   */
  for (i = 0; i < 300; i++) {
    uint64_t b = ((uint64_t) i * 389) % RA_NBLOCKS;

    if (xs_snapreader_read_block (r, b, buf) == -1
        || memcmp (buf, model + b * BS, BS) != 0)
      bad++;
  }
  is_int (bad, 0, "read-ahead: random block reads read right");
  is_int ((int) ahead_settle (r).loaded, 0,
          "... and load nothing ahead of them");
  xs_snapreader_close (r);
  free (buf);
}

/* Several sequential readers at once, each in its own part. */
struct part_reader {
  pthread_t thread;
  struct xs_snapreader *r;
  const uint8_t *model;
  uint64_t start, end;
  unsigned bad;
};

static void *
read_part (void *arg)
{
  struct part_reader *p = arg;
  uint8_t *buf = malloc (3 * BS);
  uint64_t offset;

  if (buf == NULL)
    abort ();
  for (offset = p->start; offset < p->end; offset += 24576) {
    uint32_t n = p->end - offset < 24576 ? (uint32_t) (p->end - offset)
      : 24576;

    if (xs_snapreader_pread (p->r, buf, n, offset) == -1
        || memcmp (buf, p->model + offset, n) != 0)
      p->bad++;
  }
  free (buf);
  return NULL;
}

static void
test_readahead_streams (struct fixture *f, struct xs_manifest *m,
                        const uint8_t *model)
{
  struct xs_chunk_cache *cache = xs_chunk_cache_new (8 * BS);
  struct xs_snapreader *r = open_copy (f, m, cache);
  struct part_reader parts[4];
  unsigned i, bad = 0;

  if (r == NULL)
    abort ();
  for (i = 0; i < 4; i++) {
    parts[i] = (struct part_reader) {
      .r = r, .model = model,
      .start = RA_SIZE / 4 * i, .end = RA_SIZE / 4 * (i + 1),
    };
    if (pthread_create (&parts[i].thread, NULL, read_part, &parts[i]) != 0)
      abort ();
  }
  for (i = 0; i < 4; i++) {
    pthread_join (parts[i].thread, NULL);
    bad += parts[i].bad;
  }
  is_int (bad, 0, "read-ahead: 4 sequential readers in 4 parts at once "
          "read right (through a small shared cache)");
  ok (ahead_settle (r).loaded > 0, "... and they were read ahead of");
  xs_snapreader_close (r);
  xs_chunk_cache_free (cache);
}

/* Whole reads of several blocks decode the others beside the first. */
static void
test_readahead_large_reads (struct fixture *f, struct xs_manifest *m,
                            const uint8_t *model)
{
  struct xs_snapreader *r = open_copy (f, m, NULL);
  uint8_t *buf = malloc (8 * BS);
  uint64_t b;
  unsigned bad = 0;

  if (r == NULL || buf == NULL)
    abort ();
  /* Backwards, so that no reader is sequential. */
  for (b = RA_NBLOCKS; b >= 8; b -= 8)
    if (xs_snapreader_pread (r, buf, 8 * BS, (b - 8) * BS) == -1
        || memcmp (buf, model + (b - 8) * BS, 8 * BS) != 0)
      bad++;
  is_int (bad, 0, "read-ahead: reads of 8 blocks, backwards, read right");
  ok (ahead_settle (r).loaded > 0,
      "... and had blocks decoded beside their first");
  xs_snapreader_close (r);
  free (buf);
}

/* prefetch, and a chunk the read-ahead cannot load. */
static void
test_readahead_prefetch (struct fixture *f, struct xs_manifest *m,
                         const uint8_t *model)
{
  struct xs_snapreader *r = open_copy (f, m, NULL);
  uint8_t *buf = malloc (BS);
  struct xs_hash128 id;
  struct xs_readahead_counts c;
  char *path, want[64];
  void *good;
  size_t good_len;
  unsigned bad = 0;
  uint64_t b, broken = 100;

  if (r == NULL || buf == NULL)
    abort ();
  /* A data block near 100, alone of its content. */
  while (id = entry_of (m, broken), xs_hash128_is_zero (&id))
    broken++;
  path = chunk_path (f, &id);
  read_file (path, &good, &good_len);
  flip_bit (path, (off_t) good_len / 2);
  tap_take_error ();
  xs_snapreader_prefetch (r, 64, 64);
  c = ahead_settle_at (r, 64);
  is_int ((int) ahead_done (&c), 64,
          "prefetch: the 64 blocks asked for were done");
  ok (c.loaded > 40, "... most of them loaded (%" PRIu64 "; the rest are "
      "zero blocks)", c.loaded);
  is_int ((int) c.failed, 1, "... but the corrupt one");
  ok (tap_take_error ()[0] == '\0',
      "... which the read-ahead did not report");
  errno = 0;
  is_int (xs_snapreader_read_block (r, broken, buf), -1,
          "the read of that block fails");
  is_int (errno, EIO, "... with EIO");
  snprintf (want, sizeof want, "block %" PRIu64 ": chunk", broken);
  error_contains (want, "... and reports it");
  for (b = 64; b < 128; b++)
    if (b != broken && (xs_snapreader_read_block (r, b, buf) == -1
                        || memcmp (buf, model + b * BS, BS) != 0))
      bad++;
  is_int (bad, 0, "the other prefetched blocks read right");
  write_file (path, good, good_len);
  is_int (xs_snapreader_read_block (r, broken, buf), 0,
          "repaired, the block reads");
  ok (memcmp (buf, model + broken * BS, BS) == 0, "... right");
  xs_snapreader_close (r);
  free (good);
  free (path);
  free (buf);
}

static void
test_readahead (void)
{
  struct fixture f;
  uint8_t *model = make_mixed_model (RA_SIZE, BS);
  struct xs_manifest *m;

  fixture_open (&f);
  m = store_snapshot (&f, model, RA_SIZE, BS);
  test_readahead_sequential (&f, m, model);
  test_readahead_random (&f, m, model);
  test_readahead_streams (&f, m, model);
  test_readahead_large_reads (&f, m, model);
  test_readahead_prefetch (&f, m, model);
  xs_manifest_free (m);
  free (model);
  fixture_close (&f);
}

int
main (void)
{
  test_small_snapshot ();
  test_readahead ();
  test_benchmark ();
  return done_testing ();
}
