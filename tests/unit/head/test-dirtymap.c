/* Unit tests: dirty-map persistence, unclean-stop detection and the
 * map's binding to the catalog (epoch and session).
 *
 * An unclean stop is simulated two ways: abandoning an open map in this
 * process (what kill -9 leaves: the file marked open), and a child process
 * that opens, writes and dies with _exit without closing.  The catalog's
 * side of the binding is a variable here.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

#include "base/byteorder.h"
#include "head/dirtymap.h"
#include "base/hash.h"
#include "head/head.h"

#define BS 4096
#define NBLOCKS 100000          /* several 4 KiB pages of map */

/* The catalog's record of the map's session, and how often it changed. */
static uint64_t catalog_session;
static int sessions_recorded;
static bool catalog_refuses;

static int
start_session (uint64_t *previous, void *opaque)
{
  if (catalog_refuses) {
    xs_error ("cannot record the dirty map's session: database is locked");
    return -1;
  }
  *previous = catalog_session++;
  sessions_recorded++;
  return 0;
}

static struct xs_dirtymap *
open_map (const char *path, uint64_t nblocks, uint64_t epoch)
{
  struct xs_dirtymap_binding binding = {
    .epoch = epoch, .start_session = start_session,
  };

  return xs_dirtymap_open (path, BS, nblocks, &binding);
}

static void
test_clean_round_trip (const char *path)
{
  struct xs_dirtymap *dm;
  struct xs_dirtymap_view view;

  ok (xs_dirtymap_create (path, BS, NBLOCKS, 0, 0) == 0, "create a map");
  ok (xs_dirtymap_create (path, BS, NBLOCKS, 0, 0) == -1,
      "creating over an existing map is refused");
  dm = open_map (path, NBLOCKS, 0);
  ok (dm != NULL, "open the new map");
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_TRUSTED, "a new map is trusted");
  xs_dirtymap_mark (dm, 3, 2);
  xs_dirtymap_mark (dm, 70000, 1);
  xs_dirtymap_mark (dm, NBLOCKS - 1, 5);        /* clamped at the end */
  ok (xs_dirtymap_close (dm) == 0, "clean close");

  ok (xs_dirtymap_read (path, catalog_session, &view) == 0, "read the closed map");
  ok (view.clean, "it says clean");
  is_int (view.doubt, XS_DIRTYMAP_TRUSTED, "it is trusted");
  is_int (xs_bitmap_count (&view.bits), 4, "four blocks marked");
  ok (xs_bitmap_get (&view.bits, 3) && xs_bitmap_get (&view.bits, 4)
      && xs_bitmap_get (&view.bits, 70000)
      && xs_bitmap_get (&view.bits, NBLOCKS - 1), "the right ones");
  xs_dirtymap_view_free (&view);

  dm = open_map (path, NBLOCKS, 0);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_TRUSTED,
          "reopened after a clean close: trusted");
  is_int (xs_bitmap_count (xs_dirtymap_bits (dm)), 4, "bits were kept");
  ok (xs_dirtymap_read (path, catalog_session, &view) == 0 && !view.clean,
      "while open, the file says not clean");
  xs_dirtymap_view_free (&view);
  xs_dirtymap_close (dm);
}

/* A large map is mostly holes in its file, and only its data is read
 * back: bits in pages far apart (the first, the last, one alone in the
 * middle), in a sparse file and in the same file copied without holes.
 */
static void
test_sparse_map (const char *dir)
{
  const uint64_t nblocks = UINT64_C (1) << 26;  /* an 8 MiB map */
  const uint64_t marked[] = { 0, 65535, 12345678, 40000000, nblocks - 1 };
  char path[4096], dense[4096], cmd[9000];
  struct xs_dirtymap *dm;
  struct stat st;
  bool right;
  size_t i;

  uint64_t session;

  snprintf (path, sizeof path, "%s/sparse-map", dir);
  snprintf (dense, sizeof dense, "%s/dense-map", dir);
  catalog_session = 0;
  ok (xs_dirtymap_create (path, BS, nblocks, 0, 0) == 0, "a map of 2^26 blocks");
  dm = open_map (path, nblocks, 0);
  for (i = 0; i < sizeof marked / sizeof marked[0]; i++)
    xs_dirtymap_mark (dm, marked[i], 1);
  ok (dm && xs_dirtymap_close (dm) == 0, "five blocks marked far apart");
  session = catalog_session;    /* each open below starts from it */
  ok (stat (path, &st) == 0 && (uint64_t) st.st_blocks * 512 < (1u << 20),
      "the file is mostly holes (%lld KiB on disk)",
      (long long) st.st_blocks / 2);
  snprintf (cmd, sizeof cmd, "cp --sparse=never '%s' '%s'", path, dense);
  ok (system (cmd) == 0, "a copy without holes");
  for (i = 0; i < 2; i++) {
    catalog_session = session;
    dm = open_map (i == 0 ? path : dense, nblocks, 0);
    right = dm && xs_dirtymap_doubt (dm) == XS_DIRTYMAP_TRUSTED
      && xs_bitmap_count (xs_dirtymap_bits (dm)) == 5;
    for (size_t j = 0; right && j < sizeof marked / sizeof marked[0]; j++)
      right = xs_bitmap_get (xs_dirtymap_bits (dm), marked[j]);
    ok (right, "%s: reopened, trusted, with exactly those blocks",
        i == 0 ? "sparse" : "without holes");
    if (dm)
      xs_dirtymap_close (dm);
  }
}

/* A take followed by a new epoch writes only the pages whose bits
 * changed, and the file still says exactly what is in memory.
 */
static void
test_take_and_commit (const char *path)
{
  struct xs_dirtymap *dm;
  struct xs_dirtymap_view view;
  struct xs_bitmap taken;

  ok (xs_dirtymap_create (path, BS, NBLOCKS, 0, 0) == 0, "a map for take");
  dm = open_map (path, NBLOCKS, 0);
  xs_dirtymap_mark (dm, 10, 1);                 /* page 0 */
  xs_dirtymap_mark (dm, 40000, 1);              /* page 1 */
  ok (xs_dirtymap_persist (dm) == 0, "two pages persisted");
  ok (xs_dirtymap_take (dm, &taken) == 0 && xs_bitmap_count (&taken) == 2,
      "take gives both blocks");
  xs_dirtymap_mark (dm, 90000, 1);              /* page 2, new */
  ok (xs_dirtymap_commit_epoch (dm, 7) == 0, "commit the new epoch");
  ok (xs_dirtymap_close (dm) == 0, "close");
  ok (xs_dirtymap_read (path, catalog_session, &view) == 0
      && view.epoch == 7 && xs_bitmap_count (&view.bits) == 1
      && xs_bitmap_get (&view.bits, 90000),
      "the file holds the new epoch and only the block marked since");
  xs_dirtymap_view_free (&view);
  xs_bitmap_free (&taken);
}

static void
test_unclean_stop (const char *path)
{
  struct xs_dirtymap *dm;
  struct xs_dirtymap_view view;

  dm = open_map (path, NBLOCKS, 0);
  xs_dirtymap_mark (dm, 10, 1);
  ok (xs_dirtymap_persist (dm) == 0, "persist at a flush");
  xs_dirtymap_mark (dm, 20, 1);          /* after the flush: may be lost */
  xs_dirtymap_abandon (dm);              /* as kill -9 would leave it */

  ok (xs_dirtymap_read (path, catalog_session, &view) == 0, "read after the crash");
  ok (xs_bitmap_get (&view.bits, 10), "the flushed bit is on disk");
  ok (!view.clean, "the file is not clean");
  xs_dirtymap_view_free (&view);

  dm = open_map (path, NBLOCKS, 0);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_UNCLEAN_STOP,
          "the next owner sees an unclean stop");
  ok (strstr (xs_dirtymap_doubt_text (XS_DIRTYMAP_UNCLEAN_STOP), "unclean")
      != NULL, "the reason says so");
  ok (xs_dirtymap_close (dm) == 0, "and closes it cleanly");

  dm = open_map (path, NBLOCKS, 0);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_UNCLEAN_STOP,
          "a clean close does not restore trust (sticky)");
  ok (xs_dirtymap_read (path, catalog_session, &view) == 0
      && view.doubt == XS_DIRTYMAP_UNCLEAN_STOP,
      "a reader sees the doubt too");
  xs_dirtymap_view_free (&view);
  ok (xs_dirtymap_reset (dm, 1) == 0, "reset to a new epoch");
  is_int (xs_bitmap_count (xs_dirtymap_bits (dm)), 0, "reset clears bits");
  xs_dirtymap_close (dm);
  dm = open_map (path, NBLOCKS, 1);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_TRUSTED,
          "after a reset the map is trusted again");
  xs_dirtymap_close (dm);
}

static void
test_killed_child (const char *path)
{
  struct xs_dirtymap *dm;
  pid_t pid;
  int status;

  pid = fork ();
  if (pid == 0) {
    dm = open_map (path, NBLOCKS, 1);
    xs_dirtymap_mark (dm, 42, 1);
    xs_dirtymap_persist (dm);
    _exit (0);                  /* no close: the process just ends */
  }
  waitpid (pid, &status, 0);
  ok (WIFEXITED (status), "child that owned the map ended");
  dm = open_map (path, NBLOCKS, 1);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_UNCLEAN_STOP,
          "a process ending without close is an unclean stop");
  ok (xs_bitmap_get (xs_dirtymap_bits (dm), 42),
      "its flushed bit is still there");
  xs_dirtymap_reset (dm, 2);
  xs_dirtymap_close (dm);
}

static void
test_mismatches (const char *path)
{
  struct xs_dirtymap *dm;
  int fd;
  unsigned char byte;

  dm = open_map (path, NBLOCKS, 7);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_WRONG_EPOCH,
          "a map of another epoch is not trusted");
  xs_dirtymap_reset (dm, 7);
  xs_dirtymap_mark (dm, 5, 1);
  xs_dirtymap_close (dm);

  dm = open_map (path, NBLOCKS + 50, 7);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_TRUSTED,
          "a map of a volume that grew stays trusted");
  ok (xs_bitmap_get (xs_dirtymap_bits (dm), 5), "  and keeps its bits");
  xs_dirtymap_close (dm);
  dm = open_map (path, NBLOCKS, 7);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_WRONG_GEOMETRY,
          "a map larger than the volume is not trusted");
  xs_dirtymap_reset (dm, 7);
  xs_dirtymap_close (dm);

  /* Flip one bit of the bitmap on disk behind the map's back. */
  fd = open (path, O_RDWR);
  pread (fd, &byte, 1, 4096 + 100);
  byte ^= 0x10;
  pwrite (fd, &byte, 1, 4096 + 100);
  close (fd);
  dm = open_map (path, NBLOCKS, 7);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_DAMAGED,
          "a flipped bitmap bit is detected by the checksum");
  xs_dirtymap_reset (dm, 7);
  xs_dirtymap_close (dm);

  /* Damage the header. */
  fd = open (path, O_RDWR);
  pwrite (fd, "garbage!", 8, 0);
  close (fd);
  dm = open_map (path, NBLOCKS, 7);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_DAMAGED,
          "a damaged header is detected");
  xs_dirtymap_reset (dm, 7);
  xs_dirtymap_close (dm);
}

/* The whole file, to put it back later as an attacker or a backup would. */
static size_t
save_file (const char *path, unsigned char **bytes)
{
  int fd = open (path, O_RDONLY);
  off_t len = lseek (fd, 0, SEEK_END);

  *bytes = malloc (len);
  pread (fd, *bytes, len, 0);
  close (fd);
  return (size_t) len;
}

static void
restore_file (const char *path, const unsigned char *bytes, size_t len)
{
  int fd = open (path, O_WRONLY | O_TRUNC);

  pwrite (fd, bytes, len, 0);
  close (fd);
}

static void
test_missing (const char *path)
{
  struct xs_dirtymap *dm;
  struct xs_dirtymap_view view;

  unlink (path);
  ok (xs_dirtymap_read (path, catalog_session, &view) == 0
      && view.doubt == XS_DIRTYMAP_MISSING,
      "a reader of a missing map sees it missing, not an error");
  xs_dirtymap_view_free (&view);
  dm = open_map (path, NBLOCKS, 9);
  ok (dm != NULL, "a missing map does not stop the owner");
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_MISSING,
          "  it is recreated, untrusted");
  ok (access (path, F_OK) == 0, "  the file is back");
  xs_dirtymap_mark (dm, 1, 1);
  xs_dirtymap_close (dm);
  dm = open_map (path, NBLOCKS, 9);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_MISSING,
          "  and stays untrusted after a clean close");
  ok (xs_bitmap_get (xs_dirtymap_bits (dm), 1), "  keeping what it marked");
  xs_dirtymap_reset (dm, 9);
  xs_dirtymap_close (dm);
  dm = open_map (path, NBLOCKS, 9);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_TRUSTED,
          "  until a reset");
  xs_dirtymap_close (dm);
}

static void
test_rolled_back (const char *path)
{
  struct xs_dirtymap *dm;
  struct xs_dirtymap_view view;
  unsigned char *old;
  size_t len;
  int before;

  len = save_file (path, &old);         /* clean, trusted, epoch 9 */
  before = sessions_recorded;
  dm = open_map (path, NBLOCKS, 9);
  is_int (sessions_recorded - before, 1, "an open records one new session");
  xs_dirtymap_mark (dm, 77, 1);
  xs_dirtymap_persist (dm);
  xs_dirtymap_close (dm);
  is_int (sessions_recorded - before, 1,
          "  flushes and the close record none");
  restore_file (path, old, len);
  ok (xs_dirtymap_read (path, catalog_session, &view) == 0
      && view.doubt == XS_DIRTYMAP_ROLLED_BACK,
      "a clean map of an earlier session is doubted by a reader");
  xs_dirtymap_view_free (&view);
  dm = open_map (path, NBLOCKS, 9);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_ROLLED_BACK,
          "  and by the owner: the write since is not missed");
  xs_dirtymap_reset (dm, 9);
  xs_dirtymap_close (dm);

  /* The clean map of before a crash, put back after it. */
  free (old);
  len = save_file (path, &old);
  dm = open_map (path, NBLOCKS, 9);
  xs_dirtymap_mark (dm, 78, 1);
  xs_dirtymap_persist (dm);
  xs_dirtymap_abandon (dm);
  restore_file (path, old, len);
  dm = open_map (path, NBLOCKS, 9);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_ROLLED_BACK,
          "the clean map of before a crash is not trusted after it");
  xs_dirtymap_reset (dm, 9);
  xs_dirtymap_close (dm);

  /* A catalog that cannot record the session: the open fails before the
   * file changes, so the map stays trusted.
   */
  free (old);
  len = save_file (path, &old);
  catalog_refuses = true;
  ok (open_map (path, NBLOCKS, 9) == NULL,
      "an open whose session cannot be recorded fails");
  catalog_refuses = false;
  {
    unsigned char *now;
    size_t now_len = save_file (path, &now);
    ok (now_len == len && memcmp (now, old, len) == 0,
        "  before the file was touched");
    free (now);
  }
  dm = open_map (path, NBLOCKS, 9);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_TRUSTED,
          "  so the next open trusts it");
  xs_dirtymap_close (dm);
  free (old);
}

/* A map written before sessions (version 1: checksum at 56, no session)
 * is accepted while the catalog has recorded no session, then bound.
 */
static void
test_version_1 (const char *path)
{
  struct xs_dirtymap *dm;
  unsigned char header[64];
  int fd;

  unlink (path);
  catalog_session = 0;
  xs_dirtymap_create (path, BS, NBLOCKS, 9, 0);
  fd = open (path, O_RDWR);
  pread (fd, header, sizeof header, 0);
  xs_put_le32 (header + 8, 1);
  xs_put_le64 (header + 56, xs_hash64 (header, 56));
  pwrite (fd, header, sizeof header, 0);
  pwrite (fd, (char[8]) { 0 }, 8, 64);          /* no v2 checksum left */
  close (fd);
  dm = open_map (path, NBLOCKS, 9);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_TRUSTED,
          "a version 1 map is accepted while the catalog has no session");
  xs_dirtymap_close (dm);
  fd = open (path, O_RDWR);
  pwrite (fd, header, sizeof header, 0);
  pwrite (fd, (char[8]) { 0 }, 8, 64);
  close (fd);
  dm = open_map (path, NBLOCKS, 9);
  is_int (xs_dirtymap_doubt (dm), XS_DIRTYMAP_ROLLED_BACK,
          "  once: after an open has recorded one, it is not");
  xs_dirtymap_reset (dm, 9);
  xs_dirtymap_close (dm);
}

static void
test_newer_version (const char *path)
{
  int fd;
  unsigned char header[72];

  fd = open (path, O_RDWR);
  pread (fd, header, sizeof header, 0);
  close (fd);
  /* Version 3 with a valid checksum: the map must be refused, not doubted. */
  header[8] = 3;
  xs_put_le64 (header + 64, xs_hash64 (header, 64));
  fd = open (path, O_RDWR);
  pwrite (fd, header, sizeof header, 0);
  close (fd);
  ok (open_map (path, NBLOCKS, 7) == NULL,
      "a newer map format version is refused");
  error_contains ("newer than this xsnap supports", "  with a clear message");
}

static void
test_head (const char *dir)
{
  char path[4096], buf[8192];
  struct xs_head *h, *h2;

  snprintf (path, sizeof path, "%s/head", dir);
  ok (xs_head_create (path, 1 << 20, 4096, 0, NULL) == 0, "create a head");
  h = xs_head_open (path, "h", 1 << 20, 4096,
                    &(struct xs_dirtymap_binding) { 0 }, NULL, NULL, NULL,
                    NULL);
  ok (h != NULL, "open it");
  h2 = xs_head_open (path, "h", 1 << 20, 4096,
                     &(struct xs_dirtymap_binding) { 0 }, NULL, NULL, NULL,
                     NULL);
  ok (h2 == NULL, "a second owner is refused");
  error_contains ("volume 'h' is in use by another process",
                  "  with a clear message");
  memset (buf, 'x', sizeof buf);
  ok (xs_head_pwrite (h, buf, 100, 4090, false) == 0,
      "write across a block boundary");
  ok (xs_head_zero (h, 4096, 65536, XS_HEAD_MAY_TRIM) == 0, "zero a block");
  ok (xs_head_trim (h, 10, 200000, false) == 0, "trim a few bytes");
  ok (xs_head_pwrite (h, buf, 10, (1 << 20) - 5, false) == -1,
      "a write past the end is refused");
  ok (xs_head_flush (h) == 0, "flush");
  {
    const struct xs_bitmap *bits = xs_dirtymap_bits (xs_head_dirtymap (h));
    ok (xs_bitmap_count (bits) == 4 && xs_bitmap_get (bits, 0)
        && xs_bitmap_get (bits, 1) && xs_bitmap_get (bits, 16)
        && xs_bitmap_get (bits, 48), "write, zero and trim marked 4 blocks");
  }
  ok (xs_head_pread (h, buf, 100, 4090) == 0 && buf[0] == 'x'
      && buf[99] == 'x', "read back");
  ok (xs_head_close (h) == 0, "close");
}

int
main (void)
{
  char *dir = tap_tmpdir (), path[4096];

  snprintf (path, sizeof path, "%s/dirtymap", dir);
  test_clean_round_trip (path);
  test_unclean_stop (path);
  test_killed_child (path);
  test_mismatches (path);
  test_missing (path);
  test_rolled_back (path);
  test_version_1 (path);
  test_newer_version (path);
  test_head (dir);
  test_sparse_map (dir);
  snprintf (path, sizeof path, "%s/dirtymap-take", dir);
  test_take_and_commit (path);
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
