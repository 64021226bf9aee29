/* xsnap: tests for lib/repo/maptree.c.
 *
 * A tree read and changed at random agrees with a flat model, before and
 * after a commit and when opened again from its top id; the same map
 * built any way (by sets, from flat entries, after changes undone) has
 * the same top; a child that changes a few blocks writes only the pages
 * on their paths and a diff reads only the pages that differ; a map of
 * 2^27 blocks (64 TiB in 512 KiB blocks) costs what changed; changed
 * pages are written out early so that memory stays bounded; a damaged,
 * swapped or missing page is an error naming it, never wrong data; the
 * page parser refuses every malformed page; many threads read at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/byteorder.h"
#include "base/hash.h"
#include "repo/backend.h"
#include "repo/maptree.h"
#include "repo/repo.h"
#include "repofixture.h"
#include "tap.h"

struct fixture {
  char *dir;
  struct xs_backend *backend;
  struct xs_repo *repo;
};

static void
fixture_open (struct fixture *f)
{
  repo_fixture_open (&f->dir, &f->backend, &f->repo);
}

static void
fixture_close (struct fixture *f)
{
  repo_fixture_close (f->dir, f->backend, f->repo);
}

static uint64_t
next_random (uint64_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

static struct xs_hash128
id_of (uint64_t n)
{
  struct xs_hash128 id;

  xs_hash128 (&n, sizeof n, &id);
  return id;
}

static struct xs_maptree *
open_tree (struct fixture *f, uint64_t nblocks, const struct xs_hash128 *top)
{
  struct xs_maptree *t = xs_maptree_new (nblocks, top);

  if (t == NULL)
    abort ();
  xs_maptree_set_repo (t, f->repo);
  return t;
}

/* Whether T reads as MODEL everywhere. */
static bool
matches (struct xs_maptree *t, const struct xs_hash128 *model,
         uint64_t nblocks)
{
  uint64_t i;

  for (i = 0; i < nblocks; i++) {
    struct xs_hash128 id;

    if (xs_maptree_get (t, i, &id) == -1
        || !xs_hash128_equal (&id, &model[i])) {
      printf ("# block %" PRIu64 " differs\n", i);
      return false;
    }
  }
  return true;
}

/* for_each must give exactly the non-zero model entries, in order. */
struct each_check {
  const struct xs_hash128 *model;
  uint64_t next, seen;
  bool ok;
};

static int
each_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  struct each_check *c = opaque;

  if (block < c->next || xs_hash128_is_zero (id)
      || !xs_hash128_equal (id, &c->model[block]))
    c->ok = false;
  c->next = block + 1;
  c->seen++;
  return 0;
}

static uint64_t
count_nonzero (const struct xs_hash128 *model, uint64_t first, uint64_t end)
{
  uint64_t i, n = 0;

  for (i = first; i < end; i++)
    n += !xs_hash128_is_zero (&model[i]);
  return n;
}

static void
test_depth (void)
{
  is_int (xs_maptree_depth (0), 1, "depth of an empty map");
  is_int (xs_maptree_depth (256), 1, "256 blocks: one page");
  is_int (xs_maptree_depth (257), 2, "257 blocks: two levels");
  is_int (xs_maptree_depth (65536), 2, "65536 blocks: two levels");
  is_int (xs_maptree_depth (UINT64_C (1) << 27), 4, "2^27 blocks: four");
  is_int (xs_maptree_depth (UINT64_C (1) << 32), 4, "2^32 blocks: four");
}

#define MODEL_BLOCKS 70001u

static void
test_model (void)
{
  struct fixture f;
  struct xs_hash128 *model = calloc (MODEL_BLOCKS, sizeof *model);
  struct xs_hash128 top, top2, top3;
  struct xs_maptree *t, *again, *flat;
  struct each_check c = { .ok = true };
  uint64_t state = 42, i;
  int changed = 0, same = 0;

  fixture_open (&f);
  t = open_tree (&f, MODEL_BLOCKS, NULL);
  for (i = 0; i < 3000; i++) {
    uint64_t b = next_random (&state) % MODEL_BLOCKS;
    struct xs_hash128 id = id_of (next_random (&state) % 500);
    int r = xs_maptree_set (t, b, &id);

    if (r == 1)
      changed++;
    else if (r == 0)
      same++;
    if (!xs_hash128_equal (&model[b], &id) != (r == 1))
      break;
    model[b] = id;
  }
  ok (i == 3000 && changed > 0, "3000 sets say whether they changed "
      "anything (%d changed, %d same)", changed, same);
  ok (xs_maptree_set (t, 5, &model[5]) == 0, "setting what is there is 0");
  ok (matches (t, model, MODEL_BLOCKS), "reads as the model before commit");
  ok (xs_maptree_commit (t, &top) == 0 && !xs_hash128_is_zero (&top),
      "commit gives a top id");
  ok (matches (t, model, MODEL_BLOCKS), "reads as the model after commit");

  again = open_tree (&f, MODEL_BLOCKS, &top);
  ok (matches (again, model, MODEL_BLOCKS), "opened from its top: the same");
  c.model = model;
  ok (xs_maptree_for_each (again, 0, MODEL_BLOCKS, each_block, &c) == 0
      && c.ok && c.seen == count_nonzero (model, 0, MODEL_BLOCKS),
      "for_each gives every non-zero block in order (%" PRIu64 ")", c.seen);
  c = (struct each_check) { .model = model, .next = 1000, .ok = true };
  ok (xs_maptree_for_each (again, 1000, 30000, each_block, &c) == 0 && c.ok
      && c.seen == count_nonzero (model, 1000, 31000) && c.next <= 31000,
      "for_each of a range gives only that range");

  flat = xs_maptree_from_entries (MODEL_BLOCKS, model);
  xs_maptree_set_repo (flat, f.repo);
  ok (flat && matches (flat, model, MODEL_BLOCKS)
      && xs_maptree_commit (flat, &top2) == 0
      && xs_hash128_equal (&top, &top2),
      "built from flat entries: same map, same top");

  /* Change and undo: the top comes back. */
  {
    struct xs_hash128 other = id_of (999999);
    struct xs_hash128 saved = model[777];

    ok (xs_maptree_set (again, 777, &other) == 1
        && xs_maptree_commit (again, &top3) == 0
        && !xs_hash128_equal (&top3, &top)
        && xs_maptree_set (again, 777, &saved) == 1
        && xs_maptree_commit (again, &top3) == 0
        && xs_hash128_equal (&top3, &top),
        "a change undone gives the same top again");
  }

  /* Everything back to zero: the top is zero, nothing is read. */
  for (i = 0; i < MODEL_BLOCKS; i++)
    if (!xs_hash128_is_zero (&model[i])) {
      struct xs_hash128 zero = { { 0 } };

      if (xs_maptree_set (t, i, &zero) != 1)
        break;
    }
  ok (i == MODEL_BLOCKS && xs_maptree_commit (t, &top3) == 0
      && xs_hash128_is_zero (&top3), "all zero again: the top is zero");

  xs_maptree_free (flat);
  xs_maptree_free (again);
  xs_maptree_free (t);
  free (model);
  fixture_close (&f);
}

/* Diffs are gathered into runs. */
struct runs {
  uint64_t first[64], count[64];
  unsigned n;
};

static int
add_run (uint64_t first, uint64_t count, void *opaque)
{
  struct runs *r = opaque;

  if (r->n < 64) {
    r->first[r->n] = first;
    r->count[r->n] = count;
  }
  r->n++;
  return 0;
}

/* 2^27 blocks: 64 TiB in 512 KiB blocks. */
#define BIG_BLOCKS (UINT64_C (1) << 27)

static void
test_big_and_sharing (void)
{
  struct fixture f;
  struct xs_maptree *parent, *child, *reopened_parent, *reopened_child;
  struct xs_maptree_stats stats;
  struct xs_hash128 top_parent, top_child, id;
  struct runs runs = { .n = 0 };
  uint64_t state = 7, blocks[64], i;
  bool sorted_ok = true;

  fixture_open (&f);
  parent = open_tree (&f, BIG_BLOCKS, NULL);
  for (i = 0; i < 1000; i++) {
    id = id_of (i + 1);
    if (xs_maptree_set (parent, (next_random (&state) % BIG_BLOCKS), &id)
        == -1)
      break;
  }
  ok (i == 1000 && xs_maptree_commit (parent, &top_parent) == 0,
      "1000 scattered blocks of 2^27 set and committed");
  xs_maptree_stats (parent, &stats);
  ok (stats.pages_written <= 1000 * 3 + 1 + 256,
      "%" PRIu64 " pages written for 1000 blocks (at most one per level "
      "each)", stats.pages_written);

  reopened_parent = open_tree (&f, BIG_BLOCKS, &top_parent);
  child = open_tree (&f, BIG_BLOCKS, &top_parent);
  /* 64 blocks apart from each other, sorted, so the runs are known. */
  for (i = 0; i < 64; i++)
    blocks[i] = i * (BIG_BLOCKS / 64) + next_random (&state) % 1000;
  for (i = 0; i < 64; i++) {
    id = id_of (1000000 + i);
    if (xs_maptree_set (child, blocks[i], &id) != 1)
      break;
  }
  ok (i == 64 && xs_maptree_commit (child, &top_child) == 0,
      "a child changes 64 blocks");
  xs_maptree_stats (child, &stats);
  ok (stats.pages_written <= 64 * 4,
      "the child wrote %" PRIu64 " pages: only those on changed paths",
      stats.pages_written);
  ok (stats.pages_cached <= 64 * 4 + 8,
      "the child holds %" PRIu64 " pages in memory", stats.pages_cached);

  reopened_child = open_tree (&f, BIG_BLOCKS, &top_child);
  ok (xs_maptree_diff (reopened_parent, reopened_child, add_run, &runs) == 0
      && runs.n == 64, "the diff finds 64 runs (%u)", runs.n);
  for (i = 0; i < 64 && i < runs.n; i++)
    if (runs.first[i] != blocks[i] || runs.count[i] != 1)
      sorted_ok = false;
  ok (sorted_ok, "each run is one changed block, in order");
  xs_maptree_stats (reopened_child, &stats);
  ok (stats.pages_read <= 64 * 4 + 1,
      "the diff read %" PRIu64 " pages of the child", stats.pages_read);

  runs.n = 0;
  ok (xs_maptree_diff (reopened_child, reopened_child, add_run, &runs) == 0
      && runs.n == 0, "a map does not differ from itself");

  xs_maptree_free (reopened_child);
  xs_maptree_free (reopened_parent);
  xs_maptree_free (child);
  xs_maptree_free (parent);
  fixture_close (&f);
}

/* Writing every block of a big map keeps memory bounded. */
static void
test_bounded_memory (void)
{
  struct fixture f;
  /* 6000 leaves' worth of blocks, one set each. */
  uint64_t nblocks = 6000 * 256, i;
  struct xs_maptree *t, *again;
  struct xs_maptree_stats stats;
  struct xs_hash128 top, id;
  bool all = true;

  fixture_open (&f);
  t = open_tree (&f, nblocks, NULL);
  for (i = 0; i < nblocks; i += 256) {
    id = id_of (i);
    if (xs_maptree_set (t, i, &id) != 1)
      break;
  }
  xs_maptree_stats (t, &stats);
  ok (i >= nblocks && stats.pages_cached <= 2 * 4096 + 64,
      "6000 leaves changed, %" PRIu64 " pages in memory (written out "
      "early, %" PRIu64 " so far)", stats.pages_cached, stats.pages_written);
  ok (xs_maptree_commit (t, &top) == 0, "then committed");
  again = open_tree (&f, nblocks, &top);
  for (i = 0; i < nblocks && all; i += 97) {
    struct xs_hash128 got, want = { { 0 } };

    if (i % 256 == 0)
      want = id_of (i);
    all = xs_maptree_get (again, i, &got) == 0
      && xs_hash128_equal (&got, &want);
  }
  ok (all, "and reads back from its top");
  xs_maptree_free (again);
  xs_maptree_free (t);
  fixture_close (&f);
}

/* The path of the stored page of ID. */
static char *
page_path (struct fixture *f, const struct xs_hash128 *id)
{
  char hex[XS_HASH128_HEX_LEN + 1], *path;

  xs_hash128_to_hex (id, hex);
  if (asprintf (&path, "%s/alice/pages/%.2s/%s", f->dir, hex, hex) == -1)
    abort ();
  return path;
}

static void
test_damage (void)
{
  struct fixture f;
  struct xs_maptree *t, *again;
  struct xs_hash128 top, id, got, top_other;
  char *path;
  int fd;

  fixture_open (&f);
  t = open_tree (&f, 1000, NULL);
  id = id_of (1);
  xs_maptree_set (t, 300, &id);
  if (xs_maptree_commit (t, &top) == -1)
    abort ();
  xs_maptree_free (t);

  /* A flipped byte in the top page. */
  path = page_path (&f, &top);
  fd = open (path, O_WRONLY);
  ok (fd >= 0 && pwrite (fd, "X", 1, 20) == 1, "damage the top page");
  close (fd);
  again = open_tree (&f, 1000, &top);
  tap_take_error ();
  ok (xs_maptree_get (again, 300, &got) == -1
      && strstr (tap_take_error (), "does not match its id"),
      "a damaged page is an error naming it");
  xs_maptree_free (again);

  /* Another map's valid page in its place. */
  t = open_tree (&f, 1000, NULL);
  id = id_of (2);
  xs_maptree_set (t, 300, &id);
  if (xs_maptree_commit (t, &top_other) == -1)
    abort ();
  xs_maptree_free (t);
  {
    char *other = page_path (&f, &top_other);

    ok (rename (other, path) == 0, "a valid page of another map swapped in");
    free (other);
  }
  again = open_tree (&f, 1000, &top);
  ok (xs_maptree_get (again, 300, &got) == -1
      && strstr (tap_take_error (), "another page in its place"),
      "a swapped page is an error, not the other map's data");
  xs_maptree_free (again);

  unlink (path);
  again = open_tree (&f, 1000, &top);
  ok (xs_maptree_get (again, 300, &got) == -1
      && strstr (tap_take_error (), "is missing"),
      "a missing page is an error");
  ok (xs_maptree_get (again, 3, &got) == -1,
      "and so is any block under it");
  xs_maptree_free (again);
  free (path);
  fixture_close (&f);
}

static void
test_page_parser (void)
{
  struct xs_hash128 entries[XS_MAPTREE_FANOUT], out[XS_MAPTREE_FANOUT];
  char reason[XS_MAPTREE_REASON_MAX];
  uint8_t page[XS_MAPTREE_PAGE_MAX], bad[XS_MAPTREE_PAGE_MAX];
  struct xs_hash128 id;
  size_t len;

  memset (entries, 0, sizeof entries);
  ok (xs_maptree_page_encode (0, entries, page) == 0,
      "a page of zeros is never encoded");
  entries[3] = id_of (3);
  entries[9] = id_of (9);
  len = xs_maptree_page_encode (0, entries, page);
  is_int (len, XS_MAPTREE_PAGE_HEADER + 10 * 16, "trailing zeros trimmed");
  xs_maptree_page_id (page, len, &id);
  ok (xs_maptree_page_parse (page, len, &id, 0, 0, 1000, out, reason) == 0
      && memcmp (out, entries, sizeof out) == 0, "a good page parses");

#define REFUSED(buf, n, lvl, idx, nb, what)                             \
  ok (xs_maptree_page_parse (buf, n, NULL, lvl, idx, nb, out, reason)   \
      == -1 && errno == EIO, "refused: %s (%s)", what, reason)

  REFUSED (page, len, 1, 0, 1000, "wrong level");
  REFUSED (page, len - 1, 0, 0, 1000, "cut short");
  REFUSED (page, 8, 0, 0, 1000, "shorter than a header");
  REFUSED (page, len, 0, 0, 5, "entry past the map's end");
  memcpy (bad, page, len);
  bad[0] = 'Y';
  REFUSED (bad, len, 0, 0, 1000, "bad magic");
  memcpy (bad, page, len);
  bad[8] = 2;
  REFUSED (bad, len, 0, 0, 1000, "unknown version");
  memcpy (bad, page, len);
  bad[13] = 1;
  REFUSED (bad, len, 0, 0, 1000, "reserved bytes set");
  memcpy (bad, page, len);
  xs_put_le16 (bad + 10, 11);
  REFUSED (bad, len, 0, 0, 1000, "count disagrees with length");
  memcpy (bad, page, len);
  memset (bad + len - 16, 0, 16);
  REFUSED (bad, len, 0, 0, 1000, "trailing zero entry");
  ok (xs_maptree_page_parse (page, len, &entries[3], 0, 0, 1000, out,
                             reason) == -1, "refused: not its id");
}

/* A map moved to another repository: pages read from the old one, and a
 * commit adopts every page it names, so the new repository stands alone.
 */
static void
test_adopt (void)
{
  struct fixture a, b;
  uint64_t nblocks = 200000, i, state = 11;
  struct xs_hash128 *model = calloc (nblocks, sizeof *model), top, top_b;
  struct xs_maptree *t, *moved, *alone;
  struct xs_maptree_stats stats;

  fixture_open (&a);
  fixture_open (&b);
  t = open_tree (&a, nblocks, NULL);
  for (i = 0; i < 3000; i++) {
    uint64_t block = next_random (&state) % nblocks;

    model[block] = id_of (block + 1);
    xs_maptree_set (t, block, &model[block]);
  }
  if (xs_maptree_commit (t, &top) == -1)
    abort ();
  moved = open_tree (&b, nblocks, &top);
  xs_maptree_set_source (moved, a.repo);
  model[7] = id_of (777777);
  ok (xs_maptree_set (moved, 7, &model[7]) == 1,
      "a block changed in the moved map (its pages read from the old home)");
  ok (xs_maptree_commit (moved, &top_b) == 0, "committed in the new home");
  xs_maptree_stats (moved, &stats);
  ok (stats.pages_written > 2, "it adopted the pages it names (%" PRIu64
      " written)", stats.pages_written);
  alone = open_tree (&b, nblocks, &top_b);
  ok (matches (alone, model, nblocks),
      "the new home alone reads the whole map");
  xs_maptree_free (alone);
  xs_maptree_free (moved);

  /* Again, once adopted: nothing more to copy. */
  moved = open_tree (&b, nblocks, &top);
  xs_maptree_set_source (moved, a.repo);
  ok (xs_maptree_commit (moved, &top_b) == 0
      && xs_hash128_equal (&top_b, &top), "the parent's map moved as it is");
  xs_maptree_stats (moved, &stats);
  ok (stats.pages_written == 3, "only the pages the new home lacked: "
      "the three on the changed path "
      "(%" PRIu64 ")", stats.pages_written);
  xs_maptree_free (moved);
  xs_maptree_free (t);
  free (model);
  fixture_close (&b);
  fixture_close (&a);
}

/* Readers on several threads at once. */
struct reader {
  struct xs_maptree *t;
  const struct xs_hash128 *model;
  uint64_t nblocks;
  bool ok;
};

static void *
read_all (void *opaque)
{
  struct reader *r = opaque;
  uint64_t state = (uint64_t) (uintptr_t) r | 1, i;

  r->ok = true;
  for (i = 0; i < 20000 && r->ok; i++) {
    uint64_t b = next_random (&state) % r->nblocks;
    struct xs_hash128 got;

    r->ok = xs_maptree_get (r->t, b, &got) == 0
      && xs_hash128_equal (&got, &r->model[b]);
  }
  return NULL;
}

static void
test_threads (void)
{
  struct fixture f;
  uint64_t nblocks = 300000, i, state = 3;
  struct xs_hash128 *model = calloc (nblocks, sizeof *model), top;
  struct xs_maptree *t, *shared;
  struct reader readers[4];
  pthread_t threads[4];
  bool all = true;

  fixture_open (&f);
  t = open_tree (&f, nblocks, NULL);
  for (i = 0; i < 20000; i++) {
    uint64_t b = next_random (&state) % nblocks;

    model[b] = id_of (b);
    xs_maptree_set (t, b, &model[b]);
  }
  if (xs_maptree_commit (t, &top) == -1)
    abort ();
  shared = open_tree (&f, nblocks, &top);
  for (i = 0; i < 4; i++) {
    readers[i] = (struct reader) { shared, model, nblocks, false };
    pthread_create (&threads[i], NULL, read_all, &readers[i]);
  }
  for (i = 0; i < 4; i++) {
    pthread_join (threads[i], NULL);
    all = all && readers[i].ok;
  }
  ok (all, "four threads read one map at once, every block right");
  xs_maptree_free (shared);
  xs_maptree_free (t);
  free (model);
  fixture_close (&f);
}

int
main (void)
{
  test_depth ();
  test_model ();
  test_big_and_sharing ();
  test_bounded_memory ();
  test_damage ();
  test_page_parser ();
  test_threads ();
  test_adopt ();
  return done_testing ();
}
