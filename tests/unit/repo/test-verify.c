/* xsnap: tests for lib/repo/verify.c.
 *
 * The quiet decoder finds every kind of damage the chunk format can show
 * and says which, without reporting anything; verifying a snapshot reads
 * each distinct chunk once and reports exactly the bad blocks, every block
 * of a shared bad chunk, in block order, with the reason.  A repair
 * replaces exactly the bad chunks the other repository holds intact and
 * leaves the others as they were.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/backend.h"
#include "repo/chunk.h"
#include "base/hash.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "repo/verify.h"
#include "repofixture.h"
#include "tap.h"

#define BS 16384u

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

  for (i = 0; i < len; i++)
    buf[i] = (uint8_t) next_random (&state);
}

static void
fill_text (uint8_t *buf, size_t len, uint64_t seed)
{
  static const char text[] = "verify reads every chunk once; ";
  size_t i;

  for (i = 0; i < len; i++)
    buf[i] = (uint8_t) (text[(i + seed) % (sizeof text - 1)]);
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

static void
store_block (struct fixture *f, const uint8_t *plain, size_t len,
             struct xs_hash128 *id)
{
  void *stored;
  size_t stored_len;

  if (xs_chunk_encode (f->codec, plain, len, id, &stored, &stored_len) == -1
      || xs_repo_put_chunk (f->repo, id, stored, stored_len, true) == -1)
    abort ();
  free (stored);
}

/* Store PLAIN as block BLOCK of M. */
static void
store_entry (struct fixture *f, struct xs_manifest *m, uint64_t block,
             const uint8_t *plain, size_t len)
{
  struct xs_hash128 id;

  store_block (f, plain, len, &id);
  if (xs_manifest_set_block (m, block, &id) == -1)
    abort ();
}

static struct xs_hash128
entry (struct xs_manifest *m, uint64_t block)
{
  struct xs_hash128 id;

  if (xs_manifest_get_block (m, block, &id) == -1)
    abort ();
  return id;
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

/* The file of the chunk of block BLOCK of M. */
static char *
entry_path (const struct fixture *f, struct xs_manifest *m, uint64_t block)
{
  struct xs_hash128 id = entry (m, block);

  return chunk_path (f, &id);
}

static void
flip_bit (const char *path, off_t where)
{
  int fd = open (path, O_RDWR | O_CLOEXEC);
  uint8_t byte;

  if (fd == -1 || pread (fd, &byte, 1, where) != 1)
    abort ();
  byte ^= 0x01;
  if (pwrite (fd, &byte, 1, where) != 1)
    abort ();
  close (fd);
}

/* The quiet decoder, on chunks edited in memory. */

static void
reseal_header (uint8_t *stored)
{
  uint64_t check = htole64 (xs_hash64 (stored, 40));

  memcpy (stored + 40, &check, sizeof check);
}

/* Recompute the payload checksum after editing the payload on purpose. */
static void
reseal_payload (uint8_t *stored, size_t len)
{
  uint64_t check = htole64 (xs_hash64 (stored + 48, len - 48));

  memcpy (stored + 32, &check, sizeof check);
  reseal_header (stored);
}

/* An encoded chunk to damage. */
struct sample {
  void *stored;
  size_t len;
  struct xs_hash128 id;
};

/* Decode a copy of sample s cut or zero-extended to len bytes (0: as it
 * is) and edited by edit (may be NULL), asking for id (NULL: its own) and
 * plain_len; check it is bad with reason containing want and errno EIO.
 */
static void
expect_bad (struct xs_chunk_decoder *d, const struct sample *s, size_t len,
            void (*edit) (uint8_t *copy, size_t len),
            const struct xs_hash128 *id, size_t plain_len,
            const char *want, const char *what)
{
  uint8_t *copy, plain[BS];
  char reason[XS_CHUNK_REASON_MAX] = "";
  int r;

  if (len == 0)
    len = s->len;
  if ((copy = calloc (1, len)) == NULL)
    abort ();
  memcpy (copy, s->stored, len < s->len ? len : s->len);
  if (edit)
    edit (copy, len);
  errno = 0;
  r = xs_chunk_decode_checked (d, copy, len, id ? id : &s->id, plain,
                               plain_len, reason);
  if (!ok (r == 1 && errno == EIO && strstr (reason, want) != NULL,
           "%s: bad, \"%s\"", what, want))
    printf ("#   got %d, errno %d, reason '%s'\n", r, errno, reason);
  free (copy);
}

/* Ways to damage a chunk. */
static void
edit_magic (uint8_t *c, size_t n)
{
  c[0] = 'Y';
}

static void
edit_version (uint8_t *c, size_t n)
{
  c[4] = 3;
}

static void
edit_version_encrypted (uint8_t *c, size_t n)
{
  c[4] = 2;
}

static void
edit_header_bit (uint8_t *c, size_t n)
{
  c[9] ^= 0x80;
}

static void
edit_codec (uint8_t *c, size_t n)
{
  c[5] = 7;
  reseal_header (c);
}

static void
edit_flags (uint8_t *c, size_t n)
{
  c[6] = 1;
  reseal_header (c);
}

static void
edit_payload_bit (uint8_t *c, size_t n)
{
  c[n - 5] ^= 0x08;
}

static void
edit_payload_resealed (uint8_t *c, size_t n)
{
  c[n - 5] ^= 0x08;
  reseal_payload (c, n);
}

static void
test_decode_checked (struct xs_chunk_codec *codec)
{
  struct xs_chunk_decoder *d = xs_chunk_decoder_new ();
  uint8_t random[BS], text[BS], plain[BS];
  struct sample raw, zstd;
  char reason[XS_CHUNK_REASON_MAX];

  ok (d != NULL, "new decoder");
  fill_random (random, BS, 1);
  fill_text (text, BS, 0);
  if (xs_chunk_encode (codec, random, BS, &raw.id, &raw.stored, &raw.len)
      || xs_chunk_encode (codec, text, BS, &zstd.id, &zstd.stored, &zstd.len))
    abort ();
  ok (raw.len == 48 + BS && zstd.len < BS, "one raw and one zstd chunk");

  is_int (xs_chunk_decode_checked (d, raw.stored, raw.len, &raw.id, plain,
                                   BS, reason), 0, "a good raw chunk decodes");
  ok (memcmp (plain, random, BS) == 0, "... to its plaintext");
  is_int (xs_chunk_decode_checked (d, zstd.stored, zstd.len, &zstd.id, plain,
                                   BS, reason), 0,
          "a good zstd chunk decodes");
  ok (memcmp (plain, text, BS) == 0, "... to its plaintext");

  expect_bad (d, &raw, 3, NULL, NULL, BS, "truncated (3 bytes)", "3 bytes");
  expect_bad (d, &raw, 0, edit_magic, NULL, BS, "bad magic", "bad magic");
  expect_bad (d, &raw, 0, edit_version, NULL, BS,
              "unsupported chunk version 3 (this xsnap reads versions 1 and 2;"
              " upgrade xsnap)", "version 3");
  expect_bad (d, &raw, 0, edit_version_encrypted, NULL, BS,
              "the chunk is encrypted and no key was given to read it",
              "version 2 without a key");
  expect_bad (d, &raw, 40, NULL, NULL, BS,
              "truncated (40 bytes, the header alone is 48)", "40 bytes");
  expect_bad (d, &raw, 0, edit_header_bit, NULL, BS,
              "header checksum mismatch", "a flipped header bit");
  expect_bad (d, &raw, 0, edit_codec, NULL, BS, "unknown codec 7", "codec 7");
  expect_bad (d, &raw, 0, edit_flags, NULL, BS, "unknown flags 0x1", "flags");
  expect_bad (d, &raw, 0, NULL, &zstd.id, BS, "(wrong chunk)",
              "asking for another id");
  expect_bad (d, &raw, 0, NULL, NULL, BS / 2,
              "16384 bytes do not fit in a buffer of 8192",
              "asking for another length");
  expect_bad (d, &zstd, zstd.len - 1, NULL, NULL, BS, "truncated (",
              "a payload one byte short");
  expect_bad (d, &zstd, zstd.len + 1, NULL, NULL, BS,
              "1 unexpected bytes after the payload", "one byte too many");
  expect_bad (d, &zstd, 0, edit_payload_bit, NULL, BS,
              "payload checksum mismatch", "a flipped payload bit");
  {
    /* Only the final hash of the plaintext can catch this one. */
    uint8_t *copy = malloc (raw.len);

    if (copy == NULL)
      abort ();
    memcpy (copy, raw.stored, raw.len);
    edit_payload_resealed (copy, raw.len);
    is_int (xs_chunk_decode_checked (d, copy, raw.len, &raw.id, plain, BS,
                                     reason), 1,
            "raw payload changed, checksums redone: bad");
    is_str (reason, "checksum mismatch", "... by the plaintext's hash");
    free (copy);
  }
  expect_bad (d, &zstd, 0, edit_payload_resealed, NULL, BS, "",
              "zstd payload changed, checksums redone");
  is_str (tap_take_error (), "", "the decoder reported nothing");

  xs_chunk_decoder_free (d);
  free (raw.stored);
  free (zstd.stored);
}

/* Snapshot verification. */

struct calls {
  int nbad;
  uint64_t blocks[64];
  struct xs_hash128 ids[64];
  char reasons[64][XS_CHUNK_REASON_MAX];
  int nprogress;
  uint64_t last_done, last_total;
  bool progress_monotonic;
};

static void
record_bad (uint64_t block, const struct xs_hash128 *id, const char *reason,
            void *opaque)
{
  struct calls *c = opaque;

  if (c->nbad < 64) {
    c->blocks[c->nbad] = block;
    c->ids[c->nbad] = *id;
    snprintf (c->reasons[c->nbad], XS_CHUNK_REASON_MAX, "%s", reason);
  }
  c->nbad++;
}

static void
record_progress (uint64_t done, uint64_t total, void *opaque)
{
  struct calls *c = opaque;

  if (done < c->last_done || done > total)
    c->progress_monotonic = false;
  c->last_done = done;
  c->last_total = total;
  c->nprogress++;
}

static void
reset_calls (struct calls *c)
{
  memset (c, 0, sizeof *c);
  c->progress_monotonic = true;
}

/* 24 blocks, the last partial.  2 and 5 are zero; 3 and 7 share a
 * chunk, and so do 10, 11 and 20.  *distinct counts the chunks stored.
 */
#define NBLOCKS 24u
#define SIZE ((uint64_t) (NBLOCKS - 1) * BS + 1000)

static struct xs_manifest *
make_snapshot (struct fixture *f, uint64_t *distinct)
{
  struct xs_manifest *m = xs_manifest_new (SIZE, BS);
  struct xs_repo *repo = xs_repo_open (f->backend, "alice");
  struct xs_hash128 shared;
  uint8_t block[BS];
  unsigned i;

  if (m == NULL || repo == NULL)
    abort ();
  xs_manifest_attach (m, repo);
  *distinct = 0;
  for (i = 0; i < NBLOCKS; i++) {
    size_t len = i == NBLOCKS - 1 ? SIZE % BS : BS;

    if (i == 2 || i == 5)
      continue;
    if (i == 7 || i == 11 || i == 20) {
      shared = entry (m, i == 7 ? 3 : 10);
      if (xs_manifest_set_block (m, i, &shared) == -1)
        abort ();
      continue;
    }
    if (i % 2)
      fill_text (block, len, i);
    else
      fill_random (block, len, i);
    store_entry (f, m, i, block, len);
    (*distinct)++;
  }
  if (xs_manifest_seal (m) == -1)
    abort ();
  return m;
}

static void
test_good (struct fixture *f, struct xs_manifest *m, uint64_t distinct)
{
  struct xs_verify_report report;
  struct calls c;

  reset_calls (&c);
  is_int (xs_verify_snapshot (f->repo, m, &report, record_bad,
                              record_progress, &c), 0,
          "a good snapshot verifies");
  is_int (report.blocks, NBLOCKS, "report: blocks");
  is_int (report.zero_blocks, 2, "report: zero blocks");
  is_int (report.chunks_checked, distinct,
          "report: each distinct chunk checked once");
  is_int (report.bad_blocks, 0, "report: no bad blocks");
  is_int (c.nbad, 0, "bad () was not called");
  ok (c.nprogress >= 1 && c.progress_monotonic,
      "progress was reported, never going back");
  ok (c.last_done == distinct && c.last_total == distinct,
      "the last progress call says all done (%" PRIu64 "/%" PRIu64 ")",
      c.last_done, c.last_total);
}

static void
test_bad (struct fixture *f, struct xs_manifest *m, uint64_t distinct)
{
  char *shared = entry_path (f, m, 3);
  char *missing = entry_path (f, m, 9);
  char *truncated = entry_path (f, m, NBLOCKS - 1);
  struct xs_hash128 id3 = entry (m, 3), id9 = entry (m, 9);
  struct xs_verify_report report;
  struct calls c;

  flip_bit (shared, 60);
  unlink (missing);
  if (truncate (truncated, 50) == -1)
    abort ();

  reset_calls (&c);
  is_int (xs_verify_snapshot (f->repo, m, &report, record_bad, NULL, &c), 1,
          "a damaged snapshot: verify returns 1");
  is_int (report.bad_blocks, 4, "report: 4 bad blocks");
  is_int (report.chunks_checked, distinct, "report: every chunk checked");
  is_int (c.nbad, 4, "bad () called once per bad block");
  ok (c.nbad == 4 && c.blocks[0] == 3 && c.blocks[1] == 7 && c.blocks[2] == 9
      && c.blocks[3] == NBLOCKS - 1,
      "exactly blocks 3, 7 (sharing the chunk), 9 and %u, in order",
      NBLOCKS - 1);
  if (c.nbad == 4) {
    is_str (c.reasons[0], "payload checksum mismatch", "block 3: why");
    is_str (c.reasons[1], "payload checksum mismatch", "block 7: why");
    ok (xs_hash128_equal (&c.ids[0], &id3)
        && xs_hash128_equal (&c.ids[1], &id3),
        "both name the shared chunk");
    is_str (c.reasons[2], "missing", "block 9: missing");
    ok (xs_hash128_equal (&c.ids[2], &id9), "... its chunk");
    ok (strncmp (c.reasons[3], "truncated", 9) == 0,
        "last block: %s", c.reasons[3]);
  }
  free (shared);
  free (missing);
  free (truncated);
}

static void
test_empty (struct fixture *f)
{
  struct xs_manifest *empty = xs_manifest_new (0, BS);
  struct xs_manifest *zeros = xs_manifest_new (100 * BS, BS);
  struct xs_verify_report report;
  struct calls c;

  reset_calls (&c);
  is_int (xs_verify_snapshot (f->repo, empty, &report, record_bad,
                              record_progress, &c), 0,
          "an empty snapshot verifies");
  ok (report.blocks == 0 && report.chunks_checked == 0, "nothing checked");
  is_int (xs_verify_snapshot (f->repo, zeros, &report, NULL, NULL, NULL), 0,
          "an all-zero snapshot verifies (callbacks may be NULL)");
  ok (report.blocks == 100 && report.zero_blocks == 100
      && report.chunks_checked == 0, "100 zero blocks, no chunk read");
  xs_manifest_free (empty);
  xs_manifest_free (zeros);
}

/* Many chunks, checked by several threads: still exactly the bad ones. */
static void
test_many (struct fixture *f)
{
  struct xs_manifest *m = xs_manifest_new (600 * 4096, 4096);
  static const uint64_t bad_blocks[] = { 0, 77, 78, 300, 599 };
  struct xs_verify_report report;
  struct calls c;
  uint8_t block[4096];
  unsigned i;
  bool right = true;

  for (i = 0; i < 600; i++) {
    fill_random (block, sizeof block, 1000 + i);
    store_entry (f, m, i, block, sizeof block);
  }
  for (i = 0; i < 5; i++) {
    char *path = entry_path (f, m, bad_blocks[i]);

    flip_bit (path, 2000);
    free (path);
  }
  reset_calls (&c);
  is_int (xs_verify_snapshot (f->repo, m, &report, record_bad,
                              record_progress, &c), 1,
          "600 chunks, 5 corrupt: verify returns 1");
  is_int (report.chunks_checked, 600, "600 checked");
  is_int (c.nbad, 5, "5 bad blocks");
  for (i = 0; i < 5 && i < (unsigned) c.nbad; i++)
    right &= c.blocks[i] == bad_blocks[i];
  ok (right, "exactly the corrupt ones, in order");
  ok (c.progress_monotonic && c.last_done == 600 && c.nprogress > 1,
      "progress went up to 600 in %d calls", c.nprogress);
  xs_manifest_free (m);
}

struct not_repaired {
  int n;
  struct xs_hash128 ids[8];
  char reasons[8][XS_CHUNK_REASON_MAX];
};

static void
record_not_repaired (const struct xs_hash128 *id, const char *reason,
                     void *opaque)
{
  struct not_repaired *nr = opaque;

  if (nr->n < 8) {
    nr->ids[nr->n] = *id;
    snprintf (nr->reasons[nr->n], XS_CHUNK_REASON_MAX, "%s", reason);
  }
  nr->n++;
}

static int
count_run (uint64_t first, uint64_t count, void *opaque)
{
  (*(uint64_t *) opaque)++;
  return 0;
}

/* The whole file at PATH (malloc'd), *LEN its size. */
static char *
slurp (const char *path, size_t *len)
{
  char *data = malloc (1 << 20);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  ssize_t r;

  if (data == NULL || fd == -1 || (r = read (fd, data, 1 << 20)) < 0)
    abort ();
  close (fd);
  *len = (size_t) r;
  return data;
}

/* After test_bad: blocks 3 and 7 (one chunk) damaged, 9 missing, the
 * last truncated.  Another repository holds the same snapshot, with
 * block 3's chunk damaged and block 9's missing there too at first.
 */
static void
test_repair (struct fixture *f, struct xs_manifest *m)
{
  static const uint64_t bad[] = { 3, 7, 9, NBLOCKS - 1 };
  struct xs_repair_report report;
  struct xs_verify_report vr;
  struct not_repaired nr = { 0 };
  struct fixture good;
  struct xs_manifest *again;
  char *damaged = entry_path (f, m, 3);
  char *source3, *source9, *before, *after;
  size_t before_len, after_len;
  uint8_t block[BS];
  uint64_t distinct, runs = 0;
  struct calls c;

  fixture_open (&good);
  again = make_snapshot (&good, &distinct);
  ok (xs_manifest_diff (again, m, count_run, &runs) == 0 && runs == 0,
      "the other repository holds the same chunk ids");
  source3 = entry_path (&good, m, 3);
  source9 = entry_path (&good, m, 9);
  flip_bit (source3, 60);
  unlink (source9);
  before = slurp (damaged, &before_len);

  is_int (xs_verify_repair (f->repo, good.repo, m, bad, 4, &report,
                            record_not_repaired, &nr), 1,
          "a repair that cannot fix everything returns 1");
  ok (report.chunks == 3 && report.repaired == 1,
      "3 distinct bad chunks, 1 repaired (%" PRIu64 ", %" PRIu64 ")",
      report.chunks, report.repaired);
  is_int (nr.n, 2, "the two others are named");
  ok (nr.n == 2 && strstr (nr.reasons[0] , "there too") != NULL
      && strstr (nr.reasons[1], "there too") != NULL,
      "... as bad there too: '%s', '%s'", nr.reasons[0], nr.reasons[1]);
  after = slurp (damaged, &after_len);
  ok (before_len == after_len && memcmp (before, after, before_len) == 0,
      "a chunk damaged at the source too is left as it was");
  reset_calls (&c);
  is_int (xs_verify_snapshot (f->repo, m, &vr, record_bad, NULL, &c), 1,
          "the snapshot is still damaged");
  ok (c.nbad == 3 && c.blocks[0] == 3 && c.blocks[1] == 7
      && c.blocks[2] == 9, "but the truncated last block is repaired");

  /* The source made whole: everything is repaired. */
  unlink (source3);
  fill_text (block, BS, 3);
  store_entry (&good, again, 3, block, BS);
  fill_text (block, BS, 9);
  store_entry (&good, again, 9, block, BS);
  nr.n = 0;
  is_int (xs_verify_repair (f->repo, good.repo, m, bad, 3, &report,
                            record_not_repaired, &nr), 0,
          "from a whole source the repair returns 0");
  ok (report.chunks == 2 && report.repaired == 2 && nr.n == 0,
      "both remaining chunks repaired");
  is_int (xs_verify_snapshot (f->repo, m, &vr, NULL, NULL, NULL), 0,
          "the repaired snapshot verifies");
  free (before);
  free (after);
  free (source3);
  free (source9);
  free (damaged);
  xs_manifest_free (again);
  fixture_close (&good);
}

int
main (void)
{
  struct fixture f;
  struct xs_manifest *m;
  uint64_t distinct;

  fixture_open (&f);
  test_decode_checked (f.codec);
  m = make_snapshot (&f, &distinct);
  test_good (&f, m, distinct);
  test_bad (&f, m, distinct);
  test_repair (&f, m);
  test_empty (&f);
  test_many (&f);
  xs_manifest_free (m);
  fixture_close (&f);
  return done_testing ();
}
