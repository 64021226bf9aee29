/* xsnap: tests for lib/head/head.c, the data path of a live volume, without
 * NBD.
 *
 * A head made and opened through lib calls in a temporary directory,
 * plaintext and encrypted: writes (aligned, unaligned, across blocks and
 * sectors), zeroes (trimming or not), trims and flushes read back as a
 * model of the volume says, and mark exactly the blocks they touch in the
 * dirty map; ranges past the end are refused; threads writing at once
 * leave each its own bytes; an encrypted head's data file holds no
 * plaintext; a clean close and reopen keeps the map trusted with its
 * bits.  Then an unclean stop (a child that writes, flushes and _exits
 * without closing): the map is untrusted on reopen, and the next
 * snapshot compares every block and still reads as the head.  Last, the
 * write guard (head-internal.h): one installed on a head sees each write,
 * zero and trim first, with its range; one that refuses fails the change
 * with nothing written or marked; a second guard is refused while one is
 * installed; once removed it is called no more.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "headfixture.h"
#include "head/head-internal.h"

#define BS 65536u
#define NBLOCKS 16u
/* Volumes are whole blocks (volume.c). */
#define SIZE ((uint64_t) NBLOCKS * BS)
#define WRITERS 4

static const char *
kind (const struct fixture *f)
{
  if (f->segment_size)
    return f->encrypted ? "encrypted, in segments" : "plaintext, in segments";
  return f->encrypted ? "encrypted" : "plaintext";
}

/* Whether the dirty map has exactly the blocks of WANT (NBLOCKS flags). */
static bool
map_is (struct xs_head *h, const bool want[NBLOCKS])
{
  const struct xs_bitmap *bits = xs_dirtymap_bits (xs_head_dirtymap (h));

  for (uint64_t b = 0; b < NBLOCKS; b++)
    if (xs_bitmap_get (bits, b) != want[b]) {
      printf ("#   block %lu: dirty %d, want %d\n", (unsigned long) b,
              xs_bitmap_get (bits, b), want[b]);
      return false;
    }
  return true;
}

static void
mark (bool want[NBLOCKS], uint64_t offset, uint64_t len)
{
  for (uint64_t b = offset / BS; b <= (offset + len - 1) / BS; b++)
    want[b] = true;
}

static void
test_io (struct fixture *f, struct xs_head *h)
{
  bool want[NBLOCKS] = { false };
  uint8_t buf[100] = { 0 };

  ok (map_is (h, want), "%s: a new head has a clean dirty map", kind (f));
  ok (write_model (f, h, 0, BS, 1) == 0
      && write_model (f, h, 3 * BS + 100, 2 * BS + 7, 2) == 0
      && write_model (f, h, 9 * BS - 1, 2, 3) == 0
      && write_model (f, h, SIZE - 300, 300, 4) == 0,
      "%s: writes (whole block, unaligned, across blocks, to the end)",
      kind (f));
  mark (want, 0, BS);
  mark (want, 3 * BS + 100, 2 * BS + 7);
  mark (want, 9 * BS - 1, 2);
  mark (want, SIZE - 300, 300);
  ok (head_matches_model (f, h), "  read back as written");
  ok (map_is (h, want), "  the dirty map has exactly the blocks written");

  ok (xs_head_zero (h, 5000, 3 * BS + 50, XS_HEAD_MAY_TRIM) == 0,
      "%s: zero part of a block, trimming allowed", kind (f));
  memset (f->model + 3 * BS + 50, 0, 5000);
  ok (xs_head_zero (h, BS + 10, 6 * BS - 5, 0) == 0,
      "%s: zero across blocks, kept allocated", kind (f));
  memset (f->model + 6 * BS - 5, 0, BS + 10);
  mark (want, 6 * BS - 5, BS + 10);
  ok (xs_head_trim (h, 777, 4 * BS + 123, false) == 0,
      "%s: trim part of a block", kind (f));
  /* Trim is advisory: where a hole is punched the bytes read as zero,
   * which for an encrypted head is always (partial sectors are written
   * as zeros and whole ones punched).
   */
  if (f->encrypted)
    memset (f->model + 4 * BS + 123, 0, 777);
  else {
    uint8_t *check = malloc (777);
    if (check && xs_head_pread (h, check, 777, 4 * BS + 123) == 0)
      memcpy (f->model + 4 * BS + 123, check, 777);
    free (check);
  }
  ok (head_matches_model (f, h), "  zeroed and trimmed ranges read as zero");
  ok (map_is (h, want), "  zero and trim mark their blocks");

  ok (xs_head_pwrite (h, buf, 10, SIZE - 5, false) == -1,
      "%s: a write past the end is refused", kind (f));
  error_contains ("beyond the end", "  with a clear message");
  ok (xs_head_pread (h, buf, 1, SIZE) == -1, "  and a read past the end");
  tap_take_error ();
  ok (map_is (h, want), "  and marks nothing");

  ok (write_model (f, h, 12 * BS, 512, 5) == 0
      && xs_head_pwrite (h, f->model + 12 * BS, 512, 12 * BS, true) == 0,
      "%s: a write with FUA", kind (f));
  mark (want, 12 * BS, 512);
  ok (xs_head_flush (h) == 0, "%s: flush", kind (f));
  ok (head_matches_model (f, h) && map_is (h, want),
      "  content and map unchanged by flush");
}

struct writer {
  struct fixture *f;
  struct xs_head *h;
  unsigned id;
  int failures;
};

/* Each writer owns every WRITERS-th block from its id and writes it in
 * odd-sized pieces, reading each piece back at once.
 */
static void *
writer_main (void *opaque)
{
  struct writer *w = opaque;
  uint8_t buf[3001], back[3001];

  for (unsigned round = 0; round < 20; round++)
    for (uint64_t b = w->id; b < NBLOCKS; b += WRITERS) {
      uint64_t offset = b * BS + (round * 1237) % (BS - sizeof buf);

      fill_pattern (buf, sizeof buf, b * 1000 + round);
      if (xs_head_pwrite (w->h, buf, sizeof buf, offset, false) == -1
          || xs_head_pread (w->h, back, sizeof back, offset) == -1
          || memcmp (buf, back, sizeof buf) != 0)
        w->failures++;
      else
        memcpy (w->f->model + offset, buf, sizeof buf);
    }
  return NULL;
}

static void
test_parallel_writers (struct fixture *f, struct xs_head *h)
{
  struct writer w[WRITERS];
  pthread_t t[WRITERS];
  int failures = 0;

  for (unsigned i = 0; i < WRITERS; i++) {
    w[i] = (struct writer) { .f = f, .h = h, .id = i };
    if (pthread_create (&t[i], NULL, writer_main, &w[i]) != 0)
      abort ();
  }
  for (unsigned i = 0; i < WRITERS; i++) {
    pthread_join (t[i], NULL);
    failures += w[i].failures;
  }
  is_int (failures, 0, "%s: %d threads writing at once each read back "
          "their own bytes", kind (f), WRITERS);
  ok (head_matches_model (f, h), "  and the head holds all of them");
}

/* Whether the data files hold NEEDLE (LEN bytes) anywhere. */
static bool
data_file_holds (const struct fixture *f, const uint8_t *needle, size_t len)
{
  char path[4200];
  uint8_t *data = malloc (SIZE);
  struct xs_segfile *sf;
  bool found = false;

  snprintf (path, sizeof path, "%s/data", f->head_dir);
  sf = xs_segfile_open (path, XS_SEGFILE_SEGMENT_SIZE, "test");
  if (data == NULL || sf == NULL || xs_segfile_pread (sf, data, SIZE, 0) == -1)
    abort ();
  xs_segfile_close (sf);
  found = memmem (data, SIZE, needle, len) != NULL;
  free (data);
  return found;
}

static void
test_reopen (struct fixture *f, struct xs_head *h)
{
  const struct xs_bitmap *bits;
  uint64_t count;

  count = xs_bitmap_count (xs_dirtymap_bits (xs_head_dirtymap (h)));
  ok (xs_head_close (h) == 0, "%s: close", kind (f));
  if (f->encrypted)
    ok (!data_file_holds (f, f->model, 4096)
        && !data_file_holds (f, f->model + 12 * BS, 512),
        "  the data file holds no plaintext");
  h = fixture_open (f);
  ok (h != NULL, "%s: reopen", kind (f));
  if (h == NULL)
    return;
  is_int (xs_dirtymap_doubt (xs_head_dirtymap (h)), XS_DIRTYMAP_TRUSTED,
          "  after a clean close the map is trusted");
  bits = xs_dirtymap_bits (xs_head_dirtymap (h));
  is_int (xs_bitmap_count (bits), count, "  with the same blocks marked");
  ok (head_matches_model (f, h), "  and the content as written");
  xs_head_close (h);
}

/* SEGMENT_SIZE: the head's data in segments of that size (0: one). */
static void
test_data_path (bool encrypted, uint64_t segment_size)
{
  struct fixture f;
  struct xs_head *h;

  if (segment_size)
    fixture_init_segmented (&f, SIZE, BS, encrypted, segment_size);
  else
    fixture_init (&f, SIZE, BS, encrypted);
  h = fixture_open (&f);
  ok (h != NULL, "%s: open a new head", kind (&f));
  if (h == NULL)
    return;
  test_io (&f, h);
  test_parallel_writers (&f, h);
  test_reopen (&f, h);
  fixture_free (&f);
}

static void
test_unclean_stop (void)
{
  struct fixture f;
  struct xs_seal_stats stats;
  struct xs_manifest *m0, *m1, *m2;
  struct xs_head *h;
  uint8_t block[BS];
  pid_t pid;
  int status;

  fixture_init (&f, SIZE, BS, false);
  h = fixture_open (&f);
  if (h == NULL)
    abort ();
  write_model (&f, h, 0, (uint32_t) SIZE, 10);
  m0 = snapshot_take (&f, h, NULL, &stats);
  ok (m0 != NULL && snapshot_matches (&f, m0, f.model),
      "a first snapshot reads as the head");
  xs_head_close (h);

  /* The owner writes, flushes and dies without closing. */
  fill_pattern (block, BS, 11);
  fflush (stdout);
  pid = fork ();
  if (pid == 0) {
    h = fixture_open (&f);
    if (h == NULL || xs_head_pwrite (h, block, BS, 5 * BS, false) == -1
        || xs_head_flush (h) == -1)
      _exit (1);
    _exit (0);
  }
  waitpid (pid, &status, 0);
  ok (WIFEXITED (status) && WEXITSTATUS (status) == 0,
      "an owner wrote, flushed and ended without closing");
  memcpy (f.model + 5 * BS, block, BS);

  h = fixture_open (&f);
  ok (h != NULL, "the next owner opens the head");
  if (h == NULL)
    return;
  is_int (xs_dirtymap_doubt (xs_head_dirtymap (h)), XS_DIRTYMAP_UNCLEAN_STOP,
          "  its dirty map is untrusted: an unclean stop");
  ok (head_matches_model (&f, h),
      "  the flushed write is there");

  m1 = snapshot_take (&f, h, m0, &stats);
  ok (m1 != NULL, "the next snapshot succeeds");
  ok (stats.full_compare && stats.blocks_to_seal == NBLOCKS,
      "  comparing every block (%lu of %u)",
      (unsigned long) stats.blocks_to_seal, NBLOCKS);
  is_int (stats.changed_blocks, 1, "  and finds the one block changed");
  ok (m1 && snapshot_matches (&f, m1, f.model), "  it reads as the head");

  ok (write_model (&f, h, 7 * BS + 9, 10, 12) == 0, "one more write");
  m2 = snapshot_take (&f, h, m1, &stats);
  ok (m2 != NULL && !stats.full_compare && stats.blocks_to_seal == 1,
      "  the snapshot after that trusts the map again (1 block to seal)");
  ok (m2 && snapshot_matches (&f, m2, f.model), "  and reads as the head");
  ok (xs_head_close (h) == 0, "close");
  xs_manifest_free (m0);
  xs_manifest_free (m1);
  xs_manifest_free (m2);
  fixture_free (&f);
}

static long long
file_len (const struct fixture *f, const char *file)
{
  char path[4300];
  struct stat st;

  snprintf (path, sizeof path, "%s/%s", f->head_dir, file);
  return stat (path, &st) == 0 ? (long long) st.st_size : -1;
}

static uint64_t
map_blocks (struct xs_head *h)
{
  return xs_dirtymap_bits (xs_head_dirtymap (h))->nbits;
}

/* Growing a head in segments of 4 blocks (4 of them, to 8): all or
 * nothing, undone when the catalog cannot record it, and what a crash
 * between the head and the catalog leaves, either way round.
 */
static void
test_grow (void)
{
  const uint64_t big = 2 * SIZE;
  struct fixture f;
  struct xs_head *h;
  uint8_t block[BS], back[BS];
  char in_the_way[4300];

  fixture_init_segmented (&f, SIZE, BS, false, 4 * BS);
  h = fixture_open (&f);
  if (h == NULL || write_model (&f, h, SIZE - BS, BS, 20) == -1)
    abort ();
  snprintf (in_the_way, sizeof in_the_way, "%s/data.6", f.head_dir);
  if (mkdir (in_the_way, 0700) == -1)
    abort ();
  ok (xs_head_grow (h, big) == -1, "grow: a directory where data.6 goes "
      "fails it");
  error_contains ("data.6", "  naming it");
  ok (xs_head_size (h) == SIZE && map_blocks (h) == NBLOCKS
      && file_len (&f, "data.3") == 4 * BS && file_len (&f, "data.4") == -1
      && file_len (&f, "data.5") == -1,
      "  the head, its map and its files as they were");
  ok (write_model (&f, h, SIZE - 100, 100, 21) == 0
      && head_matches_model (&f, h), "  and it works on");
  rmdir (in_the_way);

  ok (xs_head_grow (h, big) == 0 && xs_head_size (h) == big
      && map_blocks (h) == 2 * NBLOCKS && file_len (&f, "data.7") == 4 * BS,
      "grow to 8 segments, and the dirty map with it");
  ok (xs_head_is_clone (h) == false && xs_head_pread (h, back, BS, big - BS) == 0
      && back[0] == 0 && back[BS - 1] == 0, "  the new range reads zero");
  ok (xs_head_grow_undo (h, SIZE) == 0 && xs_head_size (h) == SIZE
      && map_blocks (h) == NBLOCKS && file_len (&f, "data.4") == -1,
      "undo it (the catalog could not record it): back to 4 segments");
  ok (xs_head_close (h) == 0, "  close");
  h = fixture_open (&f);
  ok (h && xs_dirtymap_doubt (xs_head_dirtymap (h)) == XS_DIRTYMAP_TRUSTED
      && head_matches_model (&f, h),
      "  it reopens at the old size with its map trusted and its data");
  if (h == NULL)
    return;

  /* A crash after the head grew, before the catalog recorded it. */
  ok (xs_head_grow (h, big) == 0, "grow again");
  xs_head_abandon (h);
  h = fixture_open (&f);
  ok (h && xs_head_size (h) == SIZE && file_len (&f, "data.4") == -1
      && file_len (&f, "data.3") == 4 * BS && head_matches_model (&f, h),
      "  a crash before the catalog recorded it: opening at the old size "
      "gives the new range back");
  if (h == NULL)
    return;

  /* Data past the size the catalog says is never cut away. */
  fill_pattern (block, BS, 22);
  f.size = big;
  ok (xs_head_grow (h, big) == 0
      && xs_head_pwrite (h, block, BS, SIZE - BS / 2, false) == 0
      && xs_head_close (h) == 0,
      "grow, write across the old end, close");
  f.size = SIZE;
  ok (fixture_open (&f) == NULL, "  opening at the old size is refused");
  error_contains ("not cut back", "  saying why");
  ok (file_len (&f, "data.7") == 4 * BS, "  and cuts nothing");
  f.size = big;
  h = fixture_open (&f);
  ok (h && xs_head_pread (h, back, BS, SIZE - BS / 2) == 0
      && memcmp (back, block, BS) == 0,
      "  at the new size it opens, with what was written");
  ok (h && xs_head_close (h) == 0, "  close");

  /* Resizes that recorded the catalog first left heads shorter. */
  f.size = 3 * SIZE;
  h = fixture_open (&f);
  ok (h && xs_head_size (h) == 3 * SIZE && file_len (&f, "data.11") == 4 * BS,
      "opening at a larger size completes the grow (12 segments)");
  ok (h && xs_head_pread (h, back, BS, SIZE - BS / 2) == 0
      && memcmp (back, block, BS) == 0, "  keeping the data");
  if (h)
    xs_head_close (h);
  fixture_free (&f);
}

/* A guard that records what it is called with, and refuses when told. */
struct recorder {
  unsigned calls, installs, removes;
  uint64_t offset, count;
  bool refuse;
};

static int
record_change (void *opaque, uint64_t offset, uint64_t count)
{
  struct recorder *r = opaque;

  r->calls++;
  r->offset = offset;
  r->count = count;
  if (r->refuse) {
    xs_error ("test guard: change of %lu bytes at %lu refused",
              (unsigned long) count, (unsigned long) offset);
    errno = EPERM;
    return -1;
  }
  return 0;
}

static int
record_install (void *opaque)
{
  ((struct recorder *) opaque)->installs++;
  return 0;
}

static int
refuse_install (void *opaque)
{
  ((struct recorder *) opaque)->installs++;
  xs_error ("test guard: not installed");
  return -1;
}

static int
record_remove (void *opaque)
{
  ((struct recorder *) opaque)->removes++;
  return 0;
}

/* Whether R's last call was the one change of [OFFSET, OFFSET + COUNT)
 * since CALLS calls.
 */
static bool
called_with (const struct recorder *r, unsigned calls, uint64_t offset,
             uint64_t count)
{
  if (r->calls == calls + 1 && r->offset == offset && r->count == count)
    return true;
  printf ("#   %u calls (want %u), last at %lu for %lu (want %lu, %lu)\n",
          r->calls - calls, 1u, (unsigned long) r->offset,
          (unsigned long) r->count, (unsigned long) offset,
          (unsigned long) count);
  return false;
}

static void
test_guard (bool encrypted)
{
  struct recorder rec = { 0 }, other = { 0 };
  struct xs_head_guard guard = {
    .before_write = record_change, .on_install = record_install,
    .on_remove = record_remove, .opaque = &rec,
  };
  struct xs_head_guard second = {
    .before_write = record_change, .on_install = record_install,
    .opaque = &other,
  };
  struct xs_head_guard failing = {
    .before_write = record_change, .on_install = refuse_install,
    .opaque = &other,
  };
  bool want[NBLOCKS] = { false };
  struct fixture f;
  struct xs_head *h;
  uint8_t *check;
  unsigned calls;

  fixture_init (&f, SIZE, BS, encrypted);
  h = fixture_open (&f);
  if (h == NULL)
    abort ();
  ok (xs_head_guard_install (h, &failing) == XS_HEAD_GUARD_FAILED
      && other.installs == 1,
      "%s: a guard whose on_install fails is not installed", kind (&f));
  error_contains ("not installed", "  reported by it");
  ok (write_model (&f, h, 0, 10, 9) == 0 && other.calls == 0,
      "  and changes do not call it");
  mark (want, 0, 10);
  other.installs = 0;
  ok (xs_head_guard_install (h, &guard) == XS_HEAD_GUARD_INSTALLED
      && rec.installs == 1,
      "%s: install a write guard (its on_install is called)", kind (&f));
  ok (xs_head_guard_install (h, &second) == XS_HEAD_GUARD_BUSY
      && other.installs == 0,
      "  a second guard is refused while it is installed");

  calls = rec.calls;
  ok (write_model (&f, h, 3 * BS + 7, 100, 1) == 0
      && called_with (&rec, calls, 3 * BS + 7, 100),
      "%s: a write calls the guard with its offset and count", kind (&f));
  mark (want, 3 * BS + 7, 100);
  calls = rec.calls;
  ok (xs_head_zero (h, BS + 10, 5 * BS - 5, 0) == 0
      && called_with (&rec, calls, 5 * BS - 5, BS + 10),
      "%s: so does a zero", kind (&f));
  memset (f.model + 5 * BS - 5, 0, BS + 10);
  mark (want, 5 * BS - 5, BS + 10);
  calls = rec.calls;
  ok (xs_head_zero (h, 3000, 7 * BS + 1, XS_HEAD_MAY_TRIM) == 0
      && called_with (&rec, calls, 7 * BS + 1, 3000),
      "%s: and a zero that may trim", kind (&f));
  memset (f.model + 7 * BS + 1, 0, 3000);
  mark (want, 7 * BS + 1, 3000);
  calls = rec.calls;
  ok (xs_head_trim (h, 777, 4 * BS + 123, false) == 0
      && called_with (&rec, calls, 4 * BS + 123, 777),
      "%s: and a trim", kind (&f));
  mark (want, 4 * BS + 123, 777);
  /* Trim is advisory: take what it left (see test_io). */
  check = malloc (777);
  if (check == NULL || xs_head_pread (h, check, 777, 4 * BS + 123) == -1)
    abort ();
  memcpy (f.model + 4 * BS + 123, check, 777);
  free (check);
  ok (head_matches_model (&f, h) && map_is (h, want),
      "  the changes are made and marked as without a guard");
  calls = rec.calls;
  ok (xs_head_pwrite (h, f.model, 0, 0, false) == 0 && rec.calls == calls,
      "  a write of nothing does not call it");

  rec.refuse = true;
  calls = rec.calls;
  errno = 0;
  ok (write_model (&f, h, 9 * BS + 5, 4000, 2) == -1 && errno == EPERM
      && called_with (&rec, calls, 9 * BS + 5, 4000),
      "%s: a write the guard refuses fails, with the guard's errno",
      kind (&f));
  error_contains ("refused", "  reported by the guard");
  ok (xs_head_zero (h, 500, 10 * BS, 0) == -1
      && xs_head_trim (h, BS, 11 * BS, false) == -1,
      "  so do a zero and a trim it refuses");
  tap_take_error ();
  ok (head_matches_model (&f, h), "  the data is unchanged");
  ok (map_is (h, want), "  and no block is marked");
  rec.refuse = false;

  ok (xs_head_guard_remove (h, &guard) == 0 && rec.removes == 1,
      "%s: remove the guard (its on_remove is called)", kind (&f));
  calls = rec.calls;
  ok (write_model (&f, h, 9 * BS + 5, 4000, 3) == 0
      && xs_head_zero (h, 500, 10 * BS, 0) == 0
      && xs_head_trim (h, 100, 12 * BS, false) == 0 && rec.calls == calls,
      "  then changes no longer call it");
  memset (f.model + 10 * BS, 0, 500);
  ok (xs_head_guard_install (h, &second) == XS_HEAD_GUARD_INSTALLED
      && xs_head_guard_remove (h, &second) == 0,
      "  and another guard may be installed");
  ok (xs_head_close (h) == 0, "close");
  fixture_free (&f);
}

int
main (void)
{
  test_data_path (false, 0);
  test_data_path (true, 0);
  /* Segments of half a block: every block and most requests cross one. */
  test_data_path (false, BS / 2);
  test_data_path (true, BS / 2);
  test_unclean_stop ();
  test_grow ();
  test_guard (false);
  test_guard (true);
  return done_testing ();
}
