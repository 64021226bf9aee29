/* xsnap: tests for lib/repo/putqueue.c.
 *
 * Chunks queued are all stored once drained, new bytes are counted once,
 * and after a store fails the jobs before it are stored, none after it
 * is tried, and the failure names the job.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "repo/backend.h"
#include "repo/chunk.h"
#include "base/hash.h"
#include "repo/putqueue.h"
#include "repo/repo.h"
#include "tap.h"

#define BLOCK 65536
#define NCHUNKS 24

struct chunk {
  struct xs_hash128 id;
  void *stored;
  size_t len;
};

static void
encode (struct xs_chunk_codec *codec, int n, struct chunk *c)
{
  static char plain[BLOCK];

  for (size_t i = 0; i < BLOCK; i++)
    plain[i] = (char) (n * 7 + (int) (i % 11) * (n + 1));
  if (xs_chunk_encode (codec, plain, BLOCK, &c->id, &c->stored, &c->len)
      == -1)
    abort ();
}

/* The two hex digits that name the folder of C's file. */
static void
prefix_of (const struct chunk *c, char prefix[3])
{
  char hex[XS_HASH128_HEX_LEN + 1];

  xs_hash128_to_hex (&c->id, hex);
  memcpy (prefix, hex, 2);
  prefix[2] = '\0';
}

static void
test_in_order (struct xs_repo *repo, struct chunk *c, int n)
{
  struct xs_putqueue *q = xs_putqueue_new (repo, 4);
  uint64_t bytes = 0, want = 0, tag = 99;
  int i, present = 0;

  ok (q != NULL, "start a queue of 4");
  for (i = 0; i < n; i++) {
    is_int (xs_putqueue_add (q, &c[i].id, c[i].stored, c[i].len,
                             (uint64_t) i), 0, "queue chunk %d", i);
    want += c[i].len;
  }
  is_int (xs_putqueue_drain (q, &bytes, &tag), 0, "drain");
  ok (xs_putqueue_idle (q), "idle after draining");
  is_int ((int64_t) bytes, (int64_t) want, "the new bytes are counted");
  for (i = 0; i < n; i++)
    present += xs_repo_has_chunk (repo, &c[i].id) == 1;
  is_int (present, n, "every chunk is in the repository");
  bytes = 0;
  for (i = 0; i < 3; i++)
    xs_putqueue_add (q, &c[i].id, c[i].stored, c[i].len, (uint64_t) i);
  is_int (xs_putqueue_drain (q, &bytes, &tag), 0, "queue three again");
  is_int ((int64_t) bytes, 0, "present chunks count no new bytes");
  is_int ((int64_t) tag, 99, "no failure was reported");
  xs_putqueue_free (q, false);
}

/* Make ROOT/carol/chunks/PREFIX a plain file, so that a chunk whose
 * folder it is cannot be stored.
 */
static void
block_folder (const char *root, const char *prefix)
{
  char *path;
  int fd;

  if (asprintf (&path, "%s/carol", root) == -1)
    abort ();
  mkdir (path, 0755);
  free (path);
  if (asprintf (&path, "%s/carol/chunks", root) == -1)
    abort ();
  mkdir (path, 0755);
  free (path);
  if (asprintf (&path, "%s/carol/chunks/%s", root, prefix) == -1)
    abort ();
  fd = open (path, O_WRONLY | O_CREAT, 0644);
  ok (fd >= 0, "a plain file where chunk folder %s would be", prefix);
  close (fd);
  free (path);
}

static void
test_failure (struct xs_repo *repo, const char *root, struct chunk *c)
{
  struct xs_putqueue *q;
  char bad[3], other[3];
  int good[2] = { -1, -1 }, n = 0;
  uint64_t bytes = 0, tag = 0;

  /* Chunk 0 fails; two others, in other folders, go before and after. */
  prefix_of (&c[0], bad);
  for (int i = 1; i < NCHUNKS && n < 2; i++) {
    prefix_of (&c[i], other);
    if (strcmp (other, bad) != 0)
      good[n++] = i;
  }
  if (n < 2)
    abort ();
  block_folder (root, bad);

  q = xs_putqueue_new (repo, 2);
  is_int (xs_putqueue_add (q, &c[good[0]].id, c[good[0]].stored,
                           c[good[0]].len, 7), 0,
          "queue a chunk that can be stored");
  is_int (xs_putqueue_add (q, &c[0].id, c[0].stored, c[0].len, 8), 0,
          "queue one that cannot");
  xs_putqueue_add (q, &c[good[1]].id, c[good[1]].stored, c[good[1]].len, 9);
  is_int (xs_putqueue_drain (q, &bytes, &tag), -1,
          "drain reports the failure");
  is_int ((int64_t) tag, 8, "  naming the job that failed");
  is_int (xs_repo_has_chunk (repo, &c[good[0]].id), 1,
          "the job before it is stored");
  is_int (xs_repo_has_chunk (repo, &c[good[1]].id), 0,
          "the job after it was not tried");
  is_int ((int64_t) bytes, (int64_t) c[good[0]].len,
          "only the stored chunk is counted");
  is_int (xs_putqueue_add (q, &c[good[0]].id, c[good[0]].stored,
                           c[good[0]].len, 10), -1,
          "later jobs are refused");
  xs_putqueue_free (q, true);
}

int
main (void)
{
  char *dir = tap_tmpdir (), *url;
  struct xs_chunk_codec *codec = xs_chunk_codec_new (1);
  struct chunk c[NCHUNKS];
  struct xs_backend *backend;
  struct xs_repo *alice, *carol;

  if (asprintf (&url, "file://%s", dir) == -1)
    abort ();
  backend = xs_backend_open (url);
  ok (backend != NULL && codec != NULL, "backend and codec");
  if (backend == NULL || codec == NULL)
    return done_testing ();
  for (int i = 0; i < NCHUNKS; i++)
    encode (codec, i, &c[i]);
  alice = xs_repo_open (backend, "alice");
  carol = xs_repo_open (backend, "carol");
  test_in_order (alice, c, NCHUNKS);
  test_failure (carol, dir, c);
  xs_repo_close (alice);
  xs_repo_close (carol);
  for (int i = 0; i < NCHUNKS; i++)
    free (c[i].stored);
  xs_backend_close (backend);
  xs_chunk_codec_free (codec);
  free (url);
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
