/* xsnap: checking chunks, quietly, and verifying whole snapshots (see
 * verify.h).  The checks themselves are chunk.c's (xs_chunk_decode_quiet);
 * this module adds the block's length and the reason text for callers.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/chunk.h"
#include "base/error.h"
#include "base/hash.h"
#include "base/idmap.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "repo/verify.h"

/* Threads that check chunks, the calling one included. */
#define VERIFY_THREADS 4

/* How often the calling thread, its own work done, reports the others'. */
#define PROGRESS_POLL_US 20000

struct xs_chunk_decoder {
  struct xs_chunk_codec *codec;
};

struct xs_chunk_decoder *
xs_chunk_decoder_new (void)
{
  struct xs_chunk_decoder *decoder = malloc (sizeof *decoder);

  if (decoder == NULL) {
    xs_error ("cannot allocate chunk decoder: %m");
    return NULL;
  }
  decoder->codec = xs_chunk_codec_new (0);
  if (decoder->codec == NULL) {
    free (decoder);
    errno = ENOMEM;
    return NULL;
  }
  return decoder;
}

void
xs_chunk_decoder_free (struct xs_chunk_decoder *decoder)
{
  if (decoder == NULL)
    return;
  xs_chunk_codec_free (decoder->codec);
  free (decoder);
}

/* Record why a chunk is bad; returns 1 for "bad" with errno = EIO. */
static int
chunk_is_bad (char reason[XS_CHUNK_REASON_MAX], const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static int
chunk_is_bad (char reason[XS_CHUNK_REASON_MAX], const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  vsnprintf (reason, XS_CHUNK_REASON_MAX, fmt, args);
  va_end (args);
  errno = EIO;
  return 1;
}

int
xs_chunk_decode_checked (struct xs_chunk_decoder *decoder,
                         const void *stored, size_t stored_len,
                         const struct xs_hash128 *id,
                         void *plain, size_t plain_len,
                         char reason[XS_CHUNK_REASON_MAX])
{
  ssize_t r;

  r = xs_chunk_decode_quiet (decoder->codec, stored, stored_len, id, plain,
                             plain_len, reason);
  if (r == -1)
    return 1;                   /* reason set, errno = EIO */
  if ((size_t) r != plain_len)
    return chunk_is_bad (reason, "plaintext of %zd bytes, the block has %zu",
                         r, plain_len);
  return 0;
}

int
xs_chunk_fetch_checked (struct xs_repo *repo,
                        struct xs_chunk_decoder *decoder,
                        const struct xs_hash128 *id,
                        void *plain, size_t plain_len,
                        char reason[XS_CHUNK_REASON_MAX])
{
  void *stored;
  size_t stored_len;
  int r, saved_errno;

  r = xs_repo_get_chunk_raw (repo, id, &stored, &stored_len);
  if (r == 1)
    return chunk_is_bad (reason, "missing");
  if (r == -1)
    return -1;
  r = xs_chunk_decode_checked (decoder, stored, stored_len, id,
                               plain, plain_len, reason);
  saved_errno = errno;
  free (stored);
  errno = saved_errno;
  return r;
}

/* Verification of a whole snapshot. */

/* One non-zero manifest entry. */
struct chunk_ref {
  struct xs_hash128 id;
  uint64_t block;
};

/* The blocks refs[first .. first + count) share one chunk. */
struct chunk_group {
  size_t first;
  size_t count;
  char *reason;                 /* NULL: good (or not checked) */
};

struct verify_job {
  struct xs_repo *repo;
  struct xs_manifest *m;
  struct chunk_ref *refs;
  size_t nrefs, refs_cap;
  /* The distinct pages of m's map, as the walk meets them, each to be
   * checked once.  The walk reads them; nothing checks more of them yet.
   */
  struct xs_idmap pages;
  struct chunk_group *groups;
  size_t ngroups;
  atomic_size_t next;           /* next group to check */
  atomic_size_t done;           /* groups checked */
  atomic_int failed_errno;      /* 0, or errno of the error that stopped */
};

/* What each checking thread owns. */
struct verify_worker {
  struct verify_job *job;
  struct xs_chunk_decoder *decoder;
  void *plain;
  pthread_t thread;
  bool started;
};

static size_t
block_length (const struct xs_manifest *m, uint64_t block)
{
  uint64_t start = block * m->block_size;

  return m->size - start < m->block_size
    ? (size_t) (m->size - start) : m->block_size;
}

static int
compare_refs (const void *a, const void *b)
{
  const struct chunk_ref *x = a, *y = b;
  int c = xs_hash128_compare (&x->id, &y->id);

  if (c != 0)
    return c;
  return x->block < y->block ? -1 : x->block > y->block;
}

/* For the walk: note each page of the map.  Every page is gone into,
 * even one met before, since a bad chunk is reported for every block
 * that uses it.
 */
static int
note_page (const struct xs_hash128 *id, unsigned level, void *opaque)
{
  struct verify_job *job = opaque;

  return xs_idmap_put (&job->pages, id, NULL, NULL) == -1 ? -1 : 0;
}

static int
add_ref (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  struct verify_job *job = opaque;
  size_t cap = job->refs_cap ? 2 * job->refs_cap : 1024;
  struct chunk_ref *more = NULL;

  if (job->nrefs == job->refs_cap) {
    if (cap <= SIZE_MAX / sizeof *more)
      more = realloc (job->refs, cap * sizeof *more);
    if (more == NULL) {
      errno = ENOMEM;
      xs_error ("cannot allocate the list of %zu chunks to verify: %m",
                cap);
      return -1;
    }
    job->refs = more;
    job->refs_cap = cap;
  }
  job->refs[job->nrefs++] = (struct chunk_ref) { .id = *id, .block = block };
  return 0;
}

/* The non-zero entries of m, sorted by chunk id then block. */
static int
collect_refs (struct verify_job *job, struct xs_verify_report *report)
{
  const struct xs_manifest_visitor visitor = {
    .page = note_page, .block = add_ref, .opaque = job,
  };

  if (xs_manifest_walk (job->m, &visitor) != 0)
    return -1;
  report->zero_blocks = job->m->nblocks - job->nrefs;
  if (job->nrefs > 0)
    qsort (job->refs, job->nrefs, sizeof *job->refs, compare_refs);
  return 0;
}

/* refs a and b name the same chunk with the same block length. */
static bool
same_chunk (const struct verify_job *job, size_t a, size_t b)
{
  return xs_hash128_equal (&job->refs[a].id, &job->refs[b].id)
    && block_length (job->m, job->refs[a].block)
       == block_length (job->m, job->refs[b].block);
}

/* Runs of refs with the same chunk id and block length: each is read
 * once.  (Only a partial last block could share an id with a full one,
 * and then one of them is bad, so it is checked on its own.)
 */
static int
group_refs (struct verify_job *job)
{
  size_t i;

  job->groups = malloc ((job->nrefs > 0 ? job->nrefs : 1)
                        * sizeof *job->groups);
  if (job->groups == NULL) {
    xs_error ("cannot allocate the list of chunks to verify: %m");
    return -1;
  }
  for (i = 0; i < job->nrefs; i++) {
    struct chunk_group *last = job->ngroups > 0
      ? &job->groups[job->ngroups - 1] : NULL;

    if (last != NULL && same_chunk (job, last->first, i)) {
      last->count++;
      continue;
    }
    job->groups[job->ngroups++] = (struct chunk_group) {
      .first = i, .count = 1, .reason = NULL,
    };
  }
  return 0;
}

static void
stop_job (struct verify_job *job, int error)
{
  int none = 0;

  atomic_compare_exchange_strong (&job->failed_errno, &none,
                                  error != 0 ? error : EIO);
}

/* Read and check one distinct chunk. */
static void
check_group (struct verify_worker *w, struct chunk_group *group)
{
  struct verify_job *job = w->job;
  const struct chunk_ref *ref = &job->refs[group->first];
  char reason[XS_CHUNK_REASON_MAX];
  int r;

  r = xs_chunk_fetch_checked (job->repo, w->decoder, &ref->id, w->plain,
                              block_length (job->m, ref->block), reason);
  if (r == -1 && errno == EIO) {
    snprintf (reason, sizeof reason, "unreadable (input/output error)");
    r = 1;
  }
  if (r == -1) {
    stop_job (job, errno);
    return;
  }
  if (r == 1 && (group->reason = strdup (reason)) == NULL) {
    xs_error ("cannot allocate a verification result: %m");
    stop_job (job, ENOMEM);
  }
}

/* Check groups until none is left.  The calling thread also reports
 * progress.
 */
static void
check_groups (struct verify_worker *w,
              void (*progress) (uint64_t done, uint64_t total,
                                void *opaque),
              void *opaque)
{
  struct verify_job *job = w->job;
  size_t i, last_reported = SIZE_MAX;

  while (atomic_load (&job->failed_errno) == 0
         && (i = atomic_fetch_add (&job->next, 1)) < job->ngroups) {
    size_t done;

    check_group (w, &job->groups[i]);
    done = atomic_fetch_add (&job->done, 1) + 1;
    if (progress != NULL && done != last_reported && done < job->ngroups) {
      progress (done, job->ngroups, opaque);
      last_reported = done;
    }
  }
}

static void *
run_worker (void *arg)
{
  check_groups (arg, NULL, NULL);
  return NULL;
}

/* The calling thread has no group left to take: report the others'
 * progress until they are done (or one failed), so that progress goes on
 * however the threads were scheduled.
 */
static void
report_until_done (struct verify_job *job,
                   void (*progress) (uint64_t done, uint64_t total,
                                     void *opaque),
                   void *opaque)
{
  size_t done, last_reported = SIZE_MAX;

  if (progress == NULL)
    return;
  while (atomic_load (&job->failed_errno) == 0
         && (done = atomic_load (&job->done)) < job->ngroups) {
    if (done != last_reported) {
      progress (done, job->ngroups, opaque);
      last_reported = done;
    }
    usleep (PROGRESS_POLL_US);
  }
}

static int
prepare_worker (struct verify_worker *w, struct verify_job *job)
{
  w->job = job;
  w->decoder = xs_chunk_decoder_new ();
  if (w->decoder == NULL
      || xs_chunk_codec_set_key (w->decoder->codec, job->m->dk) == -1)
    return -1;
  w->plain = malloc (job->m->block_size);
  if (w->plain == NULL) {
    xs_error ("cannot allocate a %" PRIu32 " byte block buffer: %m",
              job->m->block_size);
    return -1;
  }
  return 0;
}

static void
release_worker (struct verify_worker *w)
{
  xs_chunk_decoder_free (w->decoder);
  free (w->plain);
}

/* Check every group with up to VERIFY_THREADS threads, this one included.
 * Helpers that cannot be started are simply not used.
 */
static int
check_all (struct verify_job *job,
           void (*progress) (uint64_t done, uint64_t total, void *opaque),
           void *opaque)
{
  struct verify_worker workers[VERIFY_THREADS];
  size_t nworkers = job->ngroups < VERIFY_THREADS
    ? (job->ngroups > 0 ? job->ngroups : 1) : VERIFY_THREADS;
  size_t i;
  int r = 0;

  memset (workers, 0, sizeof workers);
  for (i = 0; i < nworkers; i++)
    if (prepare_worker (&workers[i], job) == -1) {
      r = -1;
      goto out;
    }
  if (progress != NULL && job->ngroups > 0)
    progress (0, job->ngroups, opaque);       /* the work is known */
  for (i = 1; i < nworkers; i++)
    workers[i].started = pthread_create (&workers[i].thread, NULL,
                                         run_worker, &workers[i]) == 0;
  check_groups (&workers[0], progress, opaque);
  report_until_done (job, progress, opaque);
  for (i = 1; i < nworkers; i++)
    if (workers[i].started)
      pthread_join (workers[i].thread, NULL);

 out:
  for (i = 0; i < nworkers; i++)
    release_worker (&workers[i]);
  return r;
}

struct bad_block {
  uint64_t block;
  size_t group;
};

static int
compare_bad_blocks (const void *a, const void *b)
{
  const struct bad_block *x = a, *y = b;

  return x->block < y->block ? -1 : x->block > y->block;
}

/* Call bad () for every block of every bad group, in block order. */
static int
report_bad_blocks (struct verify_job *job, struct xs_verify_report *report,
                   void (*bad) (uint64_t block, const struct xs_hash128 *id,
                                const char *reason, void *opaque),
                   void *opaque)
{
  struct bad_block *list;
  size_t g, k, n = 0;

  for (g = 0; g < job->ngroups; g++)
    if (job->groups[g].reason != NULL)
      n += job->groups[g].count;
  report->bad_blocks = n;
  if (n == 0 || bad == NULL)
    return 0;
  list = malloc (n * sizeof *list);
  if (list == NULL) {
    xs_error ("cannot allocate the list of %zu bad blocks: %m", n);
    return -1;
  }
  n = 0;
  for (g = 0; g < job->ngroups; g++)
    for (k = 0; job->groups[g].reason != NULL && k < job->groups[g].count;
         k++)
      list[n++] = (struct bad_block) {
        .block = job->refs[job->groups[g].first + k].block, .group = g,
      };
  qsort (list, n, sizeof *list, compare_bad_blocks);
  for (k = 0; k < n; k++) {
    const struct chunk_group *group = &job->groups[list[k].group];

    bad (list[k].block, &job->refs[group->first].id, group->reason, opaque);
  }
  free (list);
  return 0;
}

static void
free_job (struct verify_job *job)
{
  size_t g;

  for (g = 0; g < job->ngroups; g++)
    free (job->groups[g].reason);
  free (job->groups);
  free (job->refs);
  xs_idmap_clear (&job->pages);
}

int
xs_verify_snapshot (struct xs_repo *repo, struct xs_manifest *m,
                    struct xs_verify_report *report,
                    void (*bad) (uint64_t block, const struct xs_hash128 *id,
                                 const char *reason, void *opaque),
                    void (*progress) (uint64_t done, uint64_t total,
                                      void *opaque),
                    void *opaque)
{
  struct verify_job job = { .repo = repo, .m = m };
  int r = -1, saved_errno;

  memset (report, 0, sizeof *report);
  report->blocks = m->nblocks;
  if (xs_manifest_is_encrypted (m) && m->dk == NULL) {
    xs_error ("cannot verify snapshot %s: it is encrypted and its key is "
              "not open", m->snapshot_id);
    return -1;
  }
  atomic_init (&job.next, 0);
  atomic_init (&job.done, 0);
  atomic_init (&job.failed_errno, 0);

  if (collect_refs (&job, report) == -1 || group_refs (&job) == -1
      || check_all (&job, progress, opaque) == -1)
    goto out;
  report->chunks_checked = atomic_load (&job.done);
  if (atomic_load (&job.failed_errno) != 0) {
    errno = atomic_load (&job.failed_errno);
    goto out;
  }
  if (progress != NULL)
    progress (job.ngroups, job.ngroups, opaque);
  if (report_bad_blocks (&job, report, bad, opaque) == -1)
    goto out;
  r = report->bad_blocks > 0 ? 1 : 0;

 out:
  saved_errno = errno;
  free_job (&job);
  errno = saved_errno;
  return r;
}

/* Repair. */

/* Put back chunk ID (a block of LEN bytes) in REPO from FROM: 0
 * repaired, 1 not (REASON set), -1 error.
 */
static int
repair_chunk (struct xs_repo *repo, struct xs_repo *from,
              struct xs_chunk_decoder *decoder, const struct xs_hash128 *id,
              void *plain, size_t len, char reason[XS_CHUNK_REASON_MAX])
{
  char why[XS_CHUNK_REASON_MAX];
  void *stored;
  size_t stored_len;
  int r;

  r = xs_repo_get_chunk_raw (from, id, &stored, &stored_len);
  if (r == 1)
    return chunk_is_bad (reason, "missing there too");
  if (r == -1)
    return -1;
  r = xs_chunk_decode_checked (decoder, stored, stored_len, id, plain, len,
                               why);
  if (r == 0)
    r = xs_repo_replace_chunk (repo, id, stored, stored_len);
  else
    chunk_is_bad (reason, "damaged there too: %s", why);
  free (stored);
  if (r != 0)
    return r;
  /* What is there now is what was verified. */
  r = xs_chunk_fetch_checked (repo, decoder, id, plain, len, why);
  if (r == 1)
    chunk_is_bad (reason, "still bad after it was replaced: %s", why);
  return r;
}

static int
compare_ids (const void *a, const void *b)
{
  return xs_hash128_compare (&((const struct chunk_ref *) a)->id,
                             &((const struct chunk_ref *) b)->id);
}

int
xs_verify_repair (struct xs_repo *repo, struct xs_repo *from,
                  struct xs_manifest *m, const uint64_t *bad_blocks,
                  size_t n, struct xs_repair_report *report,
                  void (*not_repaired) (const struct xs_hash128 *id,
                                        const char *reason, void *opaque),
                  void *opaque)
{
  struct xs_chunk_decoder *decoder = NULL;
  char reason[XS_CHUNK_REASON_MAX];
  struct chunk_ref *refs;
  void *plain = NULL;
  size_t i;
  int r = -1, one;

  memset (report, 0, sizeof *report);
  refs = malloc ((n ? n : 1) * sizeof *refs);
  plain = malloc (m->block_size);
  if (refs == NULL || plain == NULL) {
    xs_error ("cannot repair snapshot %s: %m", m->snapshot_id);
    goto out;
  }
  decoder = xs_chunk_decoder_new ();
  if (decoder == NULL
      || xs_chunk_codec_set_key (decoder->codec, m->dk) == -1)
    goto out;
  for (i = 0; i < n; i++) {
    if (xs_manifest_get_block (m, bad_blocks[i], &refs[i].id) == -1)
      goto out;
    refs[i].block = bad_blocks[i];
  }
  qsort (refs, n, sizeof *refs, compare_ids);
  r = 0;
  for (i = 0; i < n; i++) {
    if (i > 0 && xs_hash128_equal (&refs[i].id, &refs[i - 1].id))
      continue;
    report->chunks++;
    one = repair_chunk (repo, from, decoder, &refs[i].id, plain,
                        block_length (m, refs[i].block), reason);
    if (one == -1) {
      r = -1;
      break;
    }
    if (one == 0)
      report->repaired++;
    else {
      r = 1;
      if (not_repaired)
        not_repaired (&refs[i].id, reason, opaque);
    }
  }
 out:
  xs_chunk_decoder_free (decoder);
  free (plain);
  free (refs);
  return r;
}
