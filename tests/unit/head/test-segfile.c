/* xsnap: tests for lib/head/segfile.c, a volume's bytes in segment files.
 *
 * With segments of a few KiB instead of 1 TiB: a new layout has the
 * files it should, of the lengths it should; reads and writes (FUA too)
 * at every kind of offset, many crossing one or more segment boundaries,
 * read back as a model says and land in the segment files at their
 * offsets; holes and data found with SEEK_DATA/SEEK_HOLE across
 * boundaries, punched and zeroed ranges across them, copies into
 * unnamed segments of the same and of another size, sync and writeback.
 * Growing adds segments and keeps the data; reopening finds the same
 * layout.  A grow that fails (a file or a directory where a new segment
 * goes, RLIMIT_FSIZE) leaves every file as it was; a cut gives back a
 * grow and refuses to cut away data.  A head of one file made before
 * segments, longer than the segment size, keeps its length as its
 * segment size.  Damaged layouts are refused, and a reset drops
 * everything.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "headfixture.h"
#include "head/segfile.h"

#define SEG 16384u              /* a tiny segment: 4 pages */
#define PAGE 4096u

static char *dir;
static char path[4200];

/* The length of PATH.I (segment 0: PATH), or -1 if it does not exist. */
static long long
seg_len (unsigned i)
{
  char name[4300];
  struct stat st;

  if (i == 0)
    snprintf (name, sizeof name, "%s", path);
  else
    snprintf (name, sizeof name, "%s.%u", path, i);
  return stat (name, &st) == 0 ? (long long) st.st_size : -1;
}

static void
remove_all (void)
{
  char name[4300];

  unlink (path);
  for (unsigned i = 1; i < 64; i++) {
    snprintf (name, sizeof name, "%s.%u", path, i);
    unlink (name);
    rmdir (name);
  }
}

/* Whether SF reads as MODEL (its whole size). */
static bool
reads_as (struct xs_segfile *sf, const uint8_t *model)
{
  uint64_t size = xs_segfile_size (sf);
  uint8_t *buf = malloc (size);
  bool same;

  if (buf == NULL)
    abort ();
  same = xs_segfile_pread (sf, buf, size, 0) == 0
    && memcmp (buf, model, size) == 0;
  free (buf);
  return same;
}

static void
test_create (void)
{
  struct xs_segfile *sf;

  remove_all ();
  ok (xs_segfile_create (path, 5 * SEG + PAGE, SEG) == 0,
      "create 5 segments and a page");
  ok (seg_len (0) == SEG && seg_len (1) == SEG && seg_len (4) == SEG
      && seg_len (5) == PAGE && seg_len (6) == -1,
      "  the files are data, data.1 ... data.5, full but the last");
  sf = xs_segfile_open (path, SEG, "test");
  ok (sf != NULL, "open them");
  if (sf == NULL)
    return;
  is_int (xs_segfile_count (sf), 6, "  6 segments");
  is_int (xs_segfile_segment_size (sf), SEG, "  of %u bytes", SEG);
  is_int (xs_segfile_size (sf), 5 * SEG + PAGE, "  holding all the bytes");
  errno = 0;
  ok (xs_segfile_seek (sf, 0, SEEK_DATA) == -1 && errno == ENXIO,
      "  all holes");
  xs_segfile_close (sf);
  ok (xs_segfile_create (path, SEG, SEG) == -1, "create over them fails");
  error_contains ("File exists", "  saying why");
  ok (seg_len (5) == PAGE, "  and leaves them");
  ok (xs_segfile_create (path, (uint64_t) SEG * (XS_SEGFILE_MAX_SEGMENTS + 1),
                         SEG) == -1,
      "more than %u segments are refused", XS_SEGFILE_MAX_SEGMENTS);
  tap_take_error ();
}

/* Random writes of every size at every offset against a model. */
static void
test_io (void)
{
  const uint64_t size = 5 * SEG + PAGE;
  struct xs_segfile *sf;
  uint8_t *model = calloc (1, size), buf[3 * SEG], raw[SEG];
  int failures = 0, fd;
  char name[4300];

  sf = xs_segfile_open (path, SEG, "test");
  if (sf == NULL || model == NULL)
    abort ();
  for (unsigned i = 0; i < 300; i++) {
    uint64_t len = 1 + (i * 7919u) % sizeof buf;
    uint64_t offset = (i * 104729u) % (size - len + 1);

    if (i % 5 == 0) {             /* half on each side of a boundary */
      len = 2 + (i * 31u) % (2 * SEG - 2);
      offset = (1 + i % 4) * SEG - len / 2;
    }
    fill_pattern (buf, len, i);
    if (xs_segfile_pwrite (sf, buf, len, offset,
                           i % 7 == 0 ? RWF_DSYNC : 0) == -1)
      failures++;
    else
      memcpy (model + offset, buf, len);
  }
  is_int (failures, 0, "300 writes, some across boundaries, some FUA");
  ok (reads_as (sf, model), "  read back as written");
  ok (xs_segfile_pread (sf, buf, 3 * SEG, SEG - 1) == 0
      && memcmp (buf, model + SEG - 1, 3 * SEG) == 0,
      "  a read across three boundaries too");
  snprintf (name, sizeof name, "%s.3", path);
  fd = open (name, O_RDONLY);
  ok (fd >= 0 && pread (fd, raw, SEG, 0) == SEG
      && memcmp (raw, model + 3 * SEG, SEG) == 0,
      "  data.3 holds bytes [3 * %u, 4 * %u) at its own offsets", SEG, SEG);
  close (fd);
  ok (xs_segfile_pwrite (sf, buf, 2, size - 1, 0) == -1 && errno == EINVAL,
      "a write past the end is refused (EINVAL)");
  ok (xs_segfile_pread (sf, buf, 1, size) == -1 && errno == EINVAL,
      "  and a read");
  is_int (seg_len (5), PAGE, "  the last segment did not grow");
  ok (xs_segfile_sync (sf) == 0, "sync");
  xs_segfile_writeback (sf, SEG / 2, 3 * SEG, SYNC_FILE_RANGE_WRITE, false);
  xs_segfile_writeback (sf, 0, UINT64_MAX,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE
                        | SYNC_FILE_RANGE_WAIT_AFTER, true);
  ok (reads_as (sf, model), "writeback and dropping the cache keep the data");
  xs_segfile_close (sf);
  free (model);
}

/* The runs of SF as "D" (data) and "h" (hole) per page, from SEEK_DATA
 * and SEEK_HOLE alone.
 */
static void
map_of (struct xs_segfile *sf, char *map)
{
  uint64_t size = xs_segfile_size (sf), offset = 0, end;
  off_t next;

  memset (map, '?', size / PAGE);
  map[size / PAGE] = '\0';
  while (offset < size) {
    next = xs_segfile_seek (sf, offset, SEEK_DATA);
    end = next == -1 ? size : (uint64_t) next;
    if (next == -1 && errno != ENXIO)
      return;
    memset (map + offset / PAGE, 'h', (end - offset) / PAGE);
    offset = end;
    if (offset >= size)
      break;
    next = xs_segfile_seek (sf, offset, SEEK_HOLE);
    if (next == -1)
      return;
    memset (map + offset / PAGE, 'D', ((uint64_t) next - offset) / PAGE);
    offset = (uint64_t) next;
  }
}

static void
test_holes (void)
{
  const uint64_t size = 6 * SEG;
  struct xs_segfile *sf;
  uint8_t page[2 * PAGE], zero[2 * PAGE] = { 0 }, back[2 * PAGE];
  char map[64];

  remove_all ();
  if (xs_segfile_create (path, size, SEG) == -1
      || (sf = xs_segfile_open (path, SEG, "test")) == NULL)
    abort ();
  fill_pattern (page, sizeof page, 1);
  /* Pages: 0-3 seg 0, 4-7 seg 1, 8-11 seg 2, ... */
  ok (xs_segfile_pwrite (sf, page, 2 * PAGE, SEG - PAGE, 0) == 0
      && xs_segfile_pwrite (sf, page, PAGE, 2 * SEG - PAGE, 0) == 0
      && xs_segfile_pwrite (sf, page, PAGE, 2 * SEG, 0) == 0
      && xs_segfile_pwrite (sf, page, PAGE, 5 * SEG + PAGE, 0) == 0,
      "write pages 3-4 (across a boundary), 7-8 (ending and starting "
      "segments), 21");
  map_of (sf, map);
  is_str (map, "hhhDDhhDDhhhhhhhhhhhhDhh",
          "  SEEK_DATA and SEEK_HOLE find them: a boundary is no hole");
  ok (xs_segfile_is_hole (sf, 2 * SEG + PAGE, 3 * SEG)
      && !xs_segfile_is_hole (sf, SEG - PAGE, 2 * PAGE)
      && !xs_segfile_is_hole (sf, 4 * SEG, 2 * SEG),
      "  is_hole agrees");
  ok (xs_segfile_seek (sf, 5 * SEG + 2 * PAGE, SEEK_HOLE)
      == (off_t) (5 * SEG + 2 * PAGE)
      && xs_segfile_seek (sf, 5 * SEG + 2 * PAGE, SEEK_DATA) == -1
      && errno == ENXIO,
      "  past the last data only a hole, to the end");
  ok (xs_segfile_seek (sf, size, SEEK_HOLE) == -1 && errno == ENXIO,
      "  at the end, ENXIO");

  ok (xs_segfile_fallocate (sf, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            SEG - PAGE, 2 * PAGE) == 0,
      "punch pages 3-4, across a boundary");
  ok (xs_segfile_pread (sf, back, 2 * PAGE, SEG - PAGE) == 0
      && memcmp (back, zero, sizeof zero) == 0, "  they read as zero");
  map_of (sf, map);
  is_str (map, "hhhhhhhDDhhhhhhhhhhhhDhh", "  and are holes again");
  ok (xs_segfile_fallocate (sf, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                            2 * SEG - PAGE, 2 * PAGE) == 0
      && xs_segfile_pread (sf, back, 2 * PAGE, 2 * SEG - PAGE) == 0
      && memcmp (back, zero, sizeof zero) == 0,
      "zero range across a boundary reads as zero");
  ok (xs_segfile_fallocate (sf, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            size - PAGE, 2 * PAGE) == -1 && errno == EINVAL,
      "a punch past the end is refused");
  is_int (seg_len (5), SEG, "  the segment keeps its length");
  xs_segfile_close (sf);
}

static void
test_copy (void)
{
  const uint64_t size = 6 * SEG;
  struct xs_segfile *sf, *same, *other;
  uint8_t *model = malloc (size), *back = calloc (1, size);

  if (model == NULL || back == NULL
      || (sf = xs_segfile_open (path, SEG, "test")) == NULL)
    abort ();
  fill_pattern (model, size, 7);
  if (xs_segfile_pwrite (sf, model, size, 0, 0) == -1)
    abort ();
  same = xs_segfile_open_unnamed (dir, size, SEG, "spill");
  other = xs_segfile_open_unnamed (dir, size, 3 * PAGE, "spill");
  ok (same && other, "unnamed segments of the same and of another size");
  if (same == NULL || other == NULL)
    return;
  is_int (xs_segfile_count (other), 8, "  the other has 8 segments");
  ok (xs_segfile_seek (same, 0, SEEK_DATA) == -1 && errno == ENXIO,
      "  all holes");
  ok (xs_segfile_copy (sf, same, SEG - 100, 2 * SEG + 200) == 0
      && xs_segfile_copy (sf, other, SEG - 100, 2 * SEG + 200) == 0,
      "copy a range across boundaries into both");
  memset (back, 0, size);
  ok (xs_segfile_pread (same, back + SEG - 100, 2 * SEG + 200,
                        SEG - 100) == 0
      && memcmp (back + SEG - 100, model + SEG - 100, 2 * SEG + 200) == 0,
      "  the same size reads back the range");
  ok (xs_segfile_pread (other, back, size, 0) == 0
      && memcmp (back + SEG - 100, model + SEG - 100, 2 * SEG + 200) == 0
      && back[SEG - 101] == 0 && back[3 * SEG + 100] == 0,
      "  the other size too, and nothing around it");
  ok (xs_segfile_copy (sf, same, size - 10, 20) == -1 && errno == EINVAL,
      "  a copy past the end is refused");
  xs_segfile_close (same);
  xs_segfile_close (other);
  xs_segfile_close (sf);
  free (model);
  free (back);
}

static void
test_grow_and_cut (void)
{
  struct xs_segfile *sf;
  uint8_t *model = calloc (1, 8 * SEG), buf[PAGE];
  char name[4300];

  remove_all ();
  if (model == NULL || xs_segfile_create (path, SEG / 2, SEG) == -1
      || (sf = xs_segfile_open (path, SEG, "test")) == NULL)
    abort ();
  fill_pattern (model + SEG / 2 - 100, 100, 3);
  if (xs_segfile_pwrite (sf, model + SEG / 2 - 100, 100, SEG / 2 - 100,
                         0) == -1)
    abort ();
  ok (xs_segfile_grow (sf, 3 * SEG + SEG / 2) == 0,
      "grow one half segment to 3.5 segments");
  ok (seg_len (0) == SEG && seg_len (1) == SEG && seg_len (2) == SEG
      && seg_len (3) == SEG / 2 && seg_len (4) == -1,
      "  the first is filled up, then data.1 to data.3");
  ok (reads_as (sf, model), "  the data is kept, the new range reads zero");
  ok (xs_segfile_is_hole (sf, SEG / 2, 3 * SEG), "  and is a hole");
  fill_pattern (buf, PAGE, 4);
  ok (xs_segfile_pwrite (sf, buf, PAGE, 3 * SEG, 0) == 0,
      "  it can be written");
  memcpy (model + 3 * SEG, buf, PAGE);
  xs_segfile_close (sf);
  sf = xs_segfile_open (path, SEG, "test");
  ok (sf && xs_segfile_size (sf) == 3 * SEG + SEG / 2
      && xs_segfile_segment_size (sf) == SEG && reads_as (sf, model),
      "reopened: the same size, segment size and content");
  if (sf == NULL)
    return;
  xs_segfile_close (sf);
  sf = xs_segfile_open (path, 1u << 20, "test");
  ok (sf && xs_segfile_segment_size (sf) == SEG,
      "  whatever size new segments would have: the first one's");
  if (sf == NULL)
    return;

  /* A file where segment 5 goes: the grow fails half-way. */
  snprintf (name, sizeof name, "%s.5", path);
  if (mkdir (name, 0700) == -1)
    abort ();
  ok (xs_segfile_grow (sf, 7 * SEG) == -1, "a grow blocked at data.5 fails");
  error_contains ("data.5", "  naming it");
  ok (seg_len (3) == SEG / 2 && seg_len (4) == -1,
      "  data.3 has its old length and data.4 is gone");
  is_int (xs_segfile_size (sf), 3 * SEG + SEG / 2, "  the size is the old");
  ok (reads_as (sf, model), "  the data is as it was");
  ok (xs_segfile_pwrite (sf, buf, PAGE, 3 * SEG + PAGE, 0) == 0,
      "  and can be written");
  memcpy (model + 3 * SEG + PAGE, buf, PAGE);
  rmdir (name);
  if (open (name, O_CREAT | O_WRONLY | O_CLOEXEC, 0600) == -1)
    abort ();
  ok (xs_segfile_grow (sf, 7 * SEG) == -1 && seg_len (5) == 0
      && seg_len (4) == -1 && seg_len (3) == SEG / 2,
      "a file there: the same, and the file is left alone");
  tap_take_error ();
  unlink (name);

  /* RLIMIT_FSIZE: the new segments cannot be made long enough. */
  {
    struct rlimit old, low = { .rlim_cur = SEG / 2, .rlim_max = RLIM_INFINITY };
    void (*was) (int) = signal (SIGXFSZ, SIG_IGN);

    getrlimit (RLIMIT_FSIZE, &old);
    low.rlim_max = old.rlim_max;
    setrlimit (RLIMIT_FSIZE, &low);
    ok (xs_segfile_grow (sf, 7 * SEG) == -1,
        "a grow past RLIMIT_FSIZE fails");
    error_contains ("File too large", "  saying why");
    setrlimit (RLIMIT_FSIZE, &old);
    signal (SIGXFSZ, was);
  }
  ok (seg_len (3) == SEG / 2 && seg_len (4) == -1
      && xs_segfile_size (sf) == 3 * SEG + SEG / 2 && reads_as (sf, model),
      "  and leaves everything as it was");

  ok (xs_segfile_grow (sf, 7 * SEG) == 0 && seg_len (6) == SEG,
      "the grow, unblocked, works");
  ok (xs_segfile_cut (sf, 3 * SEG + SEG / 2) == 0,
      "cut it back (nothing written past the old size)");
  ok (seg_len (3) == SEG / 2 && seg_len (4) == -1
      && xs_segfile_size (sf) == 3 * SEG + SEG / 2 && reads_as (sf, model),
      "  the layout and data as before the grow");
  ok (xs_segfile_cut (sf, SEG) == -1, "cutting away data is refused");
  error_contains ("not cut back", "  saying why");
  ok (seg_len (3) == SEG / 2 && reads_as (sf, model), "  changing nothing");
  xs_segfile_close (sf);
  free (model);
}

static void
test_legacy_and_damage (void)
{
  struct xs_segfile *sf;
  uint8_t buf[PAGE], back[PAGE];
  int fd;

  /* A head made before segments: one file longer than a segment. */
  remove_all ();
  fd = open (path, O_RDWR | O_CREAT | O_EXCL, 0600);
  fill_pattern (buf, PAGE, 9);
  if (fd == -1 || ftruncate (fd, 3 * SEG + PAGE) == -1
      || pwrite (fd, buf, PAGE, 3 * SEG) != PAGE)
    abort ();
  close (fd);
  sf = xs_segfile_open (path, SEG, "test");
  ok (sf && xs_segfile_count (sf) == 1
      && xs_segfile_segment_size (sf) == 3 * SEG + PAGE,
      "one file longer than a segment: its length is the segment size");
  if (sf == NULL)
    return;
  ok (xs_segfile_grow (sf, 8 * SEG) == 0
      && seg_len (0) == 3 * SEG + PAGE && seg_len (1) == 3 * SEG + PAGE
      && seg_len (2) == 2 * SEG - 2 * PAGE,
      "  it grows by segments of that length");
  ok (xs_segfile_pread (sf, back, PAGE, 3 * SEG) == 0
      && memcmp (back, buf, PAGE) == 0, "  its data stays");
  xs_segfile_close (sf);
  sf = xs_segfile_open (path, SEG, "test");
  ok (sf && xs_segfile_segment_size (sf) == 3 * SEG + PAGE
      && xs_segfile_size (sf) == 8 * SEG, "  and reopens so");
  xs_segfile_close (sf);

  ok (truncate (path, 3 * SEG) == 0 && xs_segfile_open (path, SEG, "t") == NULL,
      "a shorter segment before the last: refused");
  error_contains ("damaged", "  as damaged");
  ok (truncate (path, 3 * SEG + PAGE) == 0 && truncate (path, 3 * SEG + PAGE) == 0
      && xs_segfile_recreate (path, 2 * SEG, SEG) == 0,
      "reset to 2 segments of %u", SEG);
  ok (seg_len (0) == SEG && seg_len (1) == SEG && seg_len (2) == -1,
      "  laid out afresh");
  sf = xs_segfile_open (path, SEG, "test");
  ok (sf && xs_segfile_size (sf) == 2 * SEG
      && xs_segfile_seek (sf, 0, SEEK_DATA) == -1 && errno == ENXIO,
      "  holding nothing");
  xs_segfile_close (sf);
}

int
main (void)
{
  dir = tap_tmpdir ();
  snprintf (path, sizeof path, "%s/data", dir);
  test_create ();
  test_io ();
  test_holes ();
  test_copy ();
  test_grow_and_cut ();
  test_legacy_and_damage ();
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
