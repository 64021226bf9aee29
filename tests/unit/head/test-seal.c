/* xsnap: tests for lib/head/seal.c, snapshots of a live head, without NBD.
 *
 * A snapshot is begun, then the head is changed while it is pending:
 * part of a block of the sealed set, a whole one, and a block outside
 * it.  The committed snapshot reads as the head did at its point in time
 * and the head as written since.  Three ways: with the seal buffer (the
 * changed units are copied aside first), with a seal buffer of 0 (each
 * write seals its block first), and on an encrypted head.  Copy-before-
 * write block by block: a block overwritten while pending reads in the
 * snapshot as before, in the head as after.  Then writers
 * running during a multi-threaded seal, against the same rule; a second
 * snapshot while one is pending is refused; a snapshot ended uncommitted
 * gives its blocks back to the dirty map; a run asked to stop (a
 * handover) ends without an error, and its blocks go back too.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "headfixture.h"

#define BS 65536u
#define NBLOCKS 32u
#define SIZE ((uint64_t) NBLOCKS * BS)

/* Segments of the data of the heads "in segments": smaller than a block,
 * so that every block, its copied units and the spill file's cross them.
 */
#define SEGMENT (BS / 2 + 4096)

static const char *
mode_name (uint64_t seal_buffer, bool encrypted, bool segmented)
{
  if (segmented)
    return encrypted ? "encrypted, in segments" : "in segments";
  if (encrypted)
    return "encrypted";
  return seal_buffer ? "seal buffer" : "seal buffer 0";
}

/* A head with every block written and snapshotted once (*BASE), then
 * blocks 2 to 9 changed: the sealed set of the next snapshot.
 */
static struct xs_head *
prepare (struct fixture *f, bool encrypted, bool segmented,
         struct xs_manifest **base)
{
  struct xs_seal_stats stats;
  struct xs_head *h;

  if (segmented)
    fixture_init_segmented (f, SIZE, BS, encrypted, SEGMENT);
  else
    fixture_init (f, SIZE, BS, encrypted);
  h = fixture_open (f);
  if (h == NULL || write_model (f, h, 0, (uint32_t) SIZE, 1) == -1)
    abort ();
  *base = snapshot_take (f, h, NULL, &stats);
  if (*base == NULL || write_model (f, h, 2 * BS, 8 * BS, 2) == -1)
    abort ();
  return h;
}

static void
test_write_while_pending (uint64_t seal_buffer, bool encrypted,
                          bool segmented)
{
  const char *mode = mode_name (seal_buffer, encrypted, segmented);
  struct xs_seal_stats stats;
  struct xs_manifest *base, *m;
  struct fixture f;
  struct xs_head *h = prepare (&f, encrypted, segmented, &base);
  struct xs_seal *seal;
  uint8_t *point = malloc (SIZE);

  if (point == NULL)
    abort ();
  xs_head_set_seal_buffer (h, seal_buffer);
  seal = snapshot_begin (&f, h, base);
  ok (seal != NULL, "%s: begin a snapshot", mode);
  if (seal == NULL)
    return;
  memcpy (point, f.model, SIZE);        /* the point in time */

  ok (write_model (&f, h, 3 * BS + 5000, 100, 3) == 0
      && write_model (&f, h, 5 * BS, BS, 4) == 0
      && write_model (&f, h, 9 * BS - 10, 20, 5) == 0
      && write_model (&f, h, 20 * BS + 1, 4096, 6) == 0,
      "%s: write while it is pending (part of a sealed block, a whole "
      "one, across two, outside the set)", mode);
  ok (head_matches_model (&f, h), "  the head reads as written");

  m = snapshot_finish (&f, seal, 2, &stats);
  ok (m != NULL, "%s: the snapshot commits", mode);
  is_int (stats.blocks_to_seal, 8, "  it sealed the 8 blocks changed");
  if (seal_buffer) {
    ok (stats.copied_bytes > 0 && stats.sealed_by_writes == 0,
        "  the writes copied %lu bytes aside and sealed no block themselves",
        (unsigned long) stats.copied_bytes);
  }
  else
    ok (stats.copied_bytes == 0 && stats.sealed_by_writes > 0,
        "  the writes sealed %lu blocks first and copied nothing aside",
        (unsigned long) stats.sealed_by_writes);
  ok (m && snapshot_matches (&f, m, point),
      "%s: the snapshot has the content of its point in time", mode);
  ok (head_matches_model (&f, h), "  the head keeps the new content");
  {
    const struct xs_bitmap *bits = xs_dirtymap_bits (xs_head_dirtymap (h));
    ok (xs_bitmap_count (bits) == 5 && xs_bitmap_get (bits, 3)
        && xs_bitmap_get (bits, 5) && xs_bitmap_get (bits, 8)
        && xs_bitmap_get (bits, 9) && xs_bitmap_get (bits, 20),
        "  the dirty map holds the blocks written while pending");
  }
  ok (xs_head_close (h) == 0, "close");
  xs_manifest_free (base);
  xs_manifest_free (m);
  free (point);
  fixture_free (&f);
}

/* [OFFSET, OFFSET + LEN) of snapshot M. */
static uint8_t *
snapshot_range (struct fixture *f, const struct xs_manifest *m,
                uint64_t offset, uint32_t len)
{
  struct xs_snapreader *reader = snapshot_reader (f, m);
  uint8_t *buf = malloc (len);

  if (buf == NULL
      || xs_snapreader_pread (reader, buf, len, offset) == -1)
    abort ();
  xs_snapreader_close (reader);
  return buf;
}

static void
test_copy_before_write (void)
{
  struct xs_seal_stats stats;
  struct xs_manifest *base, *m;
  struct fixture f;
  struct xs_head *h = prepare (&f, false, false, &base);
  struct xs_seal *seal;
  uint8_t before[2 * BS], after[2 * BS], *got;
  uint8_t head[2 * BS];

  seal = snapshot_begin (&f, h, base);
  if (seal == NULL)
    abort ();
  memcpy (before, f.model + 4 * BS, sizeof before);
  ok (write_model (&f, h, 4 * BS, BS, 8) == 0
      && write_model (&f, h, 5 * BS + 8192, 100, 9) == 0,
      "copy-before-write: while pending, overwrite sealed block 4 whole "
      "and part of block 5");
  memcpy (after, f.model + 4 * BS, sizeof after);
  ok (memcmp (before, after, BS) != 0
      && memcmp (before + BS, after + BS, BS) != 0,
      "  (the new data differs from the old)");
  ok (xs_head_pread (h, head, sizeof head, 4 * BS) == 0
      && memcmp (head, after, sizeof head) == 0,
      "  the head reads the new data at once");

  m = snapshot_finish (&f, seal, 2, &stats);
  ok (m != NULL, "  the snapshot commits");
  if (m == NULL)
    return;
  ok (stats.copied_bytes >= BS + 4096,
      "  the writes copied what they overwrote aside first (%lu bytes)",
      (unsigned long) stats.copied_bytes);
  got = snapshot_range (&f, m, 4 * BS, 2 * BS);
  ok (memcmp (got, before, 2 * BS) == 0,
      "  the snapshot keeps both blocks' content from before the writes");
  free (got);
  ok (xs_head_pread (h, head, sizeof head, 4 * BS) == 0
      && memcmp (head, after, sizeof head) == 0,
      "  the head keeps the new data");
  ok (xs_head_close (h) == 0, "close");
  xs_manifest_free (base);
  xs_manifest_free (m);
  fixture_free (&f);
}

struct writer {
  struct fixture *f;
  struct xs_head *h;
  unsigned id;
  atomic_bool *stop;
  int failures;
  unsigned writes;
};

/* Write small pieces all over the sealed set until told to stop. */
static void *
writer_main (void *opaque)
{
  struct writer *w = opaque;
  uint64_t x = w->id + 1;
  uint8_t buf[6000];

  while (!atomic_load (w->stop) || w->writes < 50) {
    uint64_t block, offset;

    x = x * 6364136223846793005u + 1442695040888963407u;
    block = 2 + (x >> 33) % 8;
    /* Each writer its own slice of the block, so the model stays exact. */
    offset = block * BS + w->id * (BS / 4) + (x >> 20) % (BS / 4 - sizeof buf);
    fill_pattern (buf, sizeof buf, x);
    if (xs_head_pwrite (w->h, buf, sizeof buf, offset, false) == -1)
      w->failures++;
    else
      memcpy (w->f->model + offset, buf, sizeof buf);
    w->writes++;
  }
  return NULL;
}

static void
test_writers_during_seal (uint64_t seal_buffer)
{
  const char *mode = mode_name (seal_buffer, false, false);
  struct xs_seal_stats stats;
  struct xs_manifest *base, *m;
  struct fixture f;
  struct xs_head *h = prepare (&f, false, false, &base);
  struct writer w[4];
  pthread_t t[4];
  atomic_bool stop = false;
  struct xs_seal *seal;
  uint8_t *point = malloc (SIZE);
  int failures = 0;

  if (point == NULL)
    abort ();
  xs_head_set_seal_buffer (h, seal_buffer);
  seal = snapshot_begin (&f, h, base);
  if (seal == NULL)
    abort ();
  memcpy (point, f.model, SIZE);
  for (unsigned i = 0; i < 4; i++) {
    w[i] = (struct writer) { .f = &f, .h = h, .id = i, .stop = &stop };
    if (pthread_create (&t[i], NULL, writer_main, &w[i]) != 0)
      abort ();
  }
  m = snapshot_finish (&f, seal, 3, &stats);
  atomic_store (&stop, true);
  for (unsigned i = 0; i < 4; i++) {
    pthread_join (t[i], NULL);
    failures += w[i].failures;
  }
  is_int (failures, 0, "%s: 4 writers during a 3-thread seal: no write "
          "failed (%u, %u, %u, %u writes)", mode, w[0].writes, w[1].writes,
          w[2].writes, w[3].writes);
  ok (m && snapshot_matches (&f, m, point),
      "  the snapshot has the content of its point in time");
  ok (head_matches_model (&f, h), "  the head has every write");
  xs_head_close (h);
  xs_manifest_free (base);
  xs_manifest_free (m);
  free (point);
  fixture_free (&f);
}

static void
test_refused_and_aborted (void)
{
  struct xs_manifest *base;
  struct fixture f;
  struct xs_head *h = prepare (&f, false, false, &base);
  struct xs_seal *seal, *second;
  const struct xs_bitmap *bits;

  seal = snapshot_begin (&f, h, base);
  ok (seal != NULL, "begin a snapshot");
  second = snapshot_begin (&f, h, base);
  ok (second == NULL, "a second one while it is pending is refused");
  error_contains ("a snapshot of it is already pending",
                  "  with a clear message");
  bits = xs_dirtymap_bits (xs_head_dirtymap (h));
  is_int (xs_bitmap_count (bits), 0, "the pending snapshot took the map");
  ok (write_model (&f, h, 30 * BS, 10, 7) == 0, "a write while pending");
  ok (xs_seal_end (seal, false, 0) == 0, "end the snapshot uncommitted");
  bits = xs_dirtymap_bits (xs_head_dirtymap (h));
  ok (xs_bitmap_count (bits) == 9 && xs_bitmap_get (bits, 2)
      && xs_bitmap_get (bits, 9) && xs_bitmap_get (bits, 30),
      "  its blocks are back in the dirty map, with the new write's");
  ok (head_matches_model (&f, h), "  the head is as written");
  xs_head_close (h);
  xs_manifest_free (base);
  fixture_free (&f);
}

static void
test_stopped (void)
{
  struct xs_manifest *base;
  struct fixture f;
  struct xs_head *h = prepare (&f, false, false, &base);
  const struct xs_bitmap *bits;
  struct xs_seal *seal;
  atomic_int stop = 1;

  seal = snapshot_begin (&f, h, base);
  ok (seal != NULL, "begin a snapshot");
  (void) tap_take_error ();
  ok (xs_seal_run (seal, 0, &stop, NULL, NULL) == -1,
      "a run asked to stop does not complete");
  ok (xs_seal_stopped (seal), "  it says it stopped");
  is_str (tap_take_error (), "", "  and reports no error");
  ok (xs_seal_end (seal, false, 0) == 0, "end it uncommitted");
  bits = xs_dirtymap_bits (xs_head_dirtymap (h));
  ok (xs_bitmap_count (bits) == 8 && xs_bitmap_get (bits, 2)
      && xs_bitmap_get (bits, 9),
      "  its blocks are back in the dirty map, for the next owner");
  atomic_store (&stop, 0);
  seal = snapshot_begin (&f, h, base);
  ok (seal != NULL && xs_seal_run (seal, 0, &stop, NULL, NULL) == 0
      && !xs_seal_stopped (seal),
      "a run with the flag clear completes");
  if (seal)
    xs_seal_end (seal, false, 0);
  xs_head_close (h);
  xs_manifest_free (base);
  fixture_free (&f);
}

int
main (void)
{
  test_write_while_pending (XS_HEAD_SEAL_BUFFER, false, false);
  test_write_while_pending (0, false, false);
  test_write_while_pending (XS_HEAD_SEAL_BUFFER, true, false);
  test_write_while_pending (XS_HEAD_SEAL_BUFFER, false, true);
  test_write_while_pending (XS_HEAD_SEAL_BUFFER, true, true);
  test_copy_before_write ();
  test_writers_during_seal (XS_HEAD_SEAL_BUFFER);
  test_writers_during_seal (0);
  test_refused_and_aborted ();
  test_stopped ();
  return done_testing ();
}
