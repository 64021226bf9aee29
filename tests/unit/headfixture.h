/* xsnap: what the head and seal unit tests share — a head in a temporary
 * directory with a file repository beside it, a model of its content,
 * and taking and reading back snapshots through lib calls alone.
 */
#ifndef XSNAP_HEADFIXTURE_H
#define XSNAP_HEADFIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/backend.h"
#include "crypto/chunkcrypt.h"
#include "head/head.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "head/seal.h"
#include "head/segfile.h"
#include "repo/snapreader.h"
#include "tap.h"

struct fixture {
  char *dir;
  char head_dir[4096];
  struct xs_backend *backend;
  struct xs_repo *repo;
  uint64_t size;
  uint32_t block_size;
  uint64_t epoch;               /* the dirty map's, as a catalog keeps it */
  bool encrypted;
  uint64_t segment_size;        /* of the head's data; 0: one segment */
  unsigned char key[XS_HEAD_KEY_LEN];
  uint8_t *model;               /* what the head should read as */
};

/* A new head of SIZE bytes in blocks of BLOCK_SIZE (encrypted or not),
 * all zero, with an empty repository.  Aborts on failure: no test can go
 * on without it.
 */
static inline void
fixture_init (struct fixture *f, uint64_t size, uint32_t block_size,
              bool encrypted)
{
  char *url;

  memset (f, 0, sizeof *f);
  f->dir = tap_tmpdir ();
  f->size = size;
  f->block_size = block_size;
  f->encrypted = encrypted;
  for (unsigned i = 0; i < XS_HEAD_KEY_LEN; i++)
    f->key[i] = (unsigned char) (i < XS_HEAD_KEY_LEN / 2 ? i + 1 : 0x80 + i);
  snprintf (f->head_dir, sizeof f->head_dir, "%s/head", f->dir);
  if (asprintf (&url, "file://%s/repo", f->dir) == -1)
    abort ();
  f->backend = xs_backend_open_new (url);
  f->repo = f->backend ? xs_repo_open (f->backend, "alice") : NULL;
  f->model = calloc (1, size);
  free (url);
  if (f->repo == NULL || f->model == NULL
      || xs_head_create (f->head_dir, size, block_size, 0, NULL) == -1)
    abort ();
}

/* The same, with the head's data in segments of SEGMENT_SIZE bytes
 * (segfile.h), as a volume larger than XS_SEGFILE_SEGMENT_SIZE has.
 */
static inline void
fixture_init_segmented (struct fixture *f, uint64_t size, uint32_t block_size,
                        bool encrypted, uint64_t segment_size)
{
  char data[4200];

  fixture_init (f, size, block_size, encrypted);
  f->segment_size = segment_size;
  snprintf (data, sizeof data, "%s/data", f->head_dir);
  if (unlink (data) == -1
      || xs_segfile_create (data, size, segment_size) == -1)
    abort ();
}

static inline void
fixture_free (struct fixture *f)
{
  xs_repo_close (f->repo);
  xs_backend_close (f->backend);
  tap_rmtree (f->dir);
  free (f->dir);
  free (f->model);
}

static inline struct xs_head *
fixture_open (struct fixture *f)
{
  struct xs_dirtymap_binding binding = { .epoch = f->epoch };

  return xs_head_open (f->head_dir, "v1", f->size, f->block_size, &binding,
                       NULL, NULL, NULL, f->encrypted ? f->key : NULL);
}

static inline uint64_t
fixture_nblocks (const struct fixture *f)
{
  return (f->size + f->block_size - 1) / f->block_size;
}

/* Bytes that differ from write to write (SEED) and from place to place. */
static inline void
fill_pattern (uint8_t *buf, size_t len, uint64_t seed)
{
  uint64_t x = seed * 0x9e3779b97f4a7c15u + 1;

  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = (uint8_t) x;
  }
}

/* Write LEN bytes of pattern SEED at OFFSET, to the head and the model. */
static inline int
write_model (struct fixture *f, struct xs_head *h, uint64_t offset,
             uint32_t len, uint64_t seed)
{
  uint8_t *buf = malloc (len);
  int r;

  if (buf == NULL)
    abort ();
  fill_pattern (buf, len, seed);
  r = xs_head_pwrite (h, buf, len, offset, false);
  if (r == 0)
    memcpy (f->model + offset, buf, len);
  free (buf);
  return r;
}

/* Whether the whole head reads as the model. */
static inline bool
head_matches_model (struct fixture *f, struct xs_head *h)
{
  uint8_t *buf = malloc (f->size);
  bool same;

  if (buf == NULL)
    abort ();
  same = xs_head_pread (h, buf, (uint32_t) f->size, 0) == 0
    && memcmp (buf, f->model, f->size) == 0;
  free (buf);
  return same;
}

/* Begin a snapshot of H relative to BASE (taken over; NULL: none). */
static inline struct xs_seal *
snapshot_begin (struct fixture *f, struct xs_head *h,
                const struct xs_manifest *base)
{
  struct xs_manifest *copy = base ? xs_manifest_copy (base) : NULL;
  struct xs_repo *map_repo = xs_repo_open (f->backend, "alice");

  if (map_repo == NULL)
    abort ();
  return xs_seal_begin (h, f->repo, map_repo, copy, true, NULL);
}

/* Run and commit SEAL; its manifest (the caller frees it) and STATS, or
 * NULL if it failed (then it is ended uncommitted).
 */
static inline struct xs_manifest *
snapshot_finish (struct fixture *f, struct xs_seal *seal, unsigned threads,
                 struct xs_seal_stats *stats)
{
  struct xs_manifest *m = NULL;

  if (xs_seal_run (seal, threads, NULL, NULL, NULL) == 0)
    m = xs_manifest_copy (xs_seal_manifest (seal));
  xs_seal_get_stats (seal, stats);
  if (m == NULL) {
    xs_seal_end (seal, false, 0);
    return NULL;
  }
  if (xs_seal_end (seal, true, f->epoch + 1) == -1) {
    xs_manifest_free (m);
    return NULL;
  }
  f->epoch++;
  return m;
}

static inline struct xs_manifest *
snapshot_take (struct fixture *f, struct xs_head *h,
               const struct xs_manifest *base, struct xs_seal_stats *stats)
{
  struct xs_seal *seal = snapshot_begin (f, h, base);

  return seal ? snapshot_finish (f, seal, 0, stats) : NULL;
}

/* A reader of snapshot M, through a copy of M (a reader takes its
 * manifest over).  Aborts on failure.
 */
static inline struct xs_snapreader *
snapshot_reader (struct fixture *f, const struct xs_manifest *m)
{
  struct xs_manifest *copy = xs_manifest_copy (m);
  struct xs_snapreader *reader = copy == NULL ? NULL
    : xs_snapreader_open (f->repo, copy, NULL, "snapshot v1@test");

  if (reader == NULL)
    abort ();
  return reader;
}

/* Whether snapshot M reads as EXPECT (f->size bytes). */
static inline bool
snapshot_matches (struct fixture *f, const struct xs_manifest *m,
                  const uint8_t *expect)
{
  struct xs_snapreader *reader = snapshot_reader (f, m);
  uint8_t *buf = malloc (f->size);
  bool same;

  if (buf == NULL)
    abort ();
  same = xs_snapreader_pread (reader, buf, (uint32_t) f->size, 0) == 0
    && memcmp (buf, expect, f->size) == 0;
  xs_snapreader_close (reader);
  free (buf);
  return same;
}

#endif /* XSNAP_HEADFIXTURE_H */
