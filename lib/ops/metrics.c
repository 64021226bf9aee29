/* xsnap: the store's metrics and the volumes' states (see metrics.h).
 *
 * Each metric family is written into a buffer of its own while the
 * catalog is read once, then the buffers are joined in a fixed order:
 * the exposition format wants every sample of a family together, after
 * its HELP and TYPE lines.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "base/error.h"
#include "base/fileio.h"
#include "catalog/account.h"
#include "catalog/job.h"
#include "catalog/maintenance.h"
#include "catalog/region.h"
#include "catalog/snapshot.h"
#include "head/dirtymap.h"
#include "ops/metrics.h"
#include "ops/schedule.h"

#define NS_PER_S 1000000000.0

/* ----- Volumes ----- */

struct names {
  char **items;
  size_t n;
};

static void
names_free (struct names *names)
{
  for (size_t i = 0; i < names->n; i++)
    free (names->items[i]);
  free (names->items);
  names->items = NULL;
  names->n = 0;
}

static int
names_add (struct names *names, const char *name)
{
  char **more = realloc (names->items, (names->n + 1) * sizeof *more);

  if (more == NULL || (more[names->n] = strdup (name)) == NULL) {
    if (more)
      names->items = more;
    xs_error ("cannot list the store's volumes: %m");
    return -1;
  }
  names->items = more;
  names->n++;
  return 0;
}

static int
add_account (const struct xs_account *account, void *opaque)
{
  return names_add (opaque, account->id);
}

static int
add_region (const struct xs_region *region, void *opaque)
{
  return names_add (opaque, region->name);
}

/* Each volume's newest snapshot, sorted by volume id. */
struct newest {
  char volume_id[XS_ID_MAX];
  int64_t created_ns;
};

struct newest_list {
  struct newest *items;
  size_t n;
};

static int
add_newest (const char *volume_id, const char *snapshot_id,
            int64_t created_ns, void *opaque)
{
  struct newest_list *list = opaque;
  struct newest *more = realloc (list->items,
                                 (list->n + 1) * sizeof *more);

  (void) snapshot_id;
  if (more == NULL) {
    xs_error ("cannot find volumes' snapshots: %m");
    return -1;
  }
  list->items = more;
  snprintf (more[list->n].volume_id, sizeof more[list->n].volume_id, "%s",
            volume_id);
  more[list->n++].created_ns = created_ns;
  return 0;
}

static int
compare_newest (const void *a, const void *b)
{
  return strcmp (((const struct newest *) a)->volume_id,
                 ((const struct newest *) b)->volume_id);
}

struct volume_pass {
  struct xs_store *store;
  const struct newest_list *newest;
  int (*fn) (const struct xs_volume_state *state, void *opaque);
  void *opaque;
};

/* Read VOL's dirty map file as it is, without owning the volume. */
static int
read_map (struct xs_store *store, const struct xs_volume *vol,
          struct xs_dirtymap_view *view)
{
  char *dir = xs_volume_dir (store, vol), *path = NULL;
  int r = -1;

  if (dir == NULL || asprintf (&path, "%s/dirtymap", dir) == -1) {
    path = NULL;
    xs_error ("cannot read the map of volume '%s': %m", vol->name);
  }
  else
    r = xs_dirtymap_read (path, vol->dirtymap_session, view);
  free (dir);
  free (path);
  return r;
}

/* The bytes the map marks (a short last block counts what it holds). */
static uint64_t
marked_bytes (const struct xs_volume *vol, const struct xs_bitmap *bits)
{
  uint64_t nblocks = (vol->size + vol->block_size - 1) / vol->block_size;
  uint64_t bytes = xs_bitmap_count (bits) * vol->block_size;

  if (bits->nbits >= nblocks && nblocks > 0
      && xs_bitmap_get (bits, nblocks - 1)
      && vol->size % vol->block_size != 0)
    bytes -= vol->block_size - vol->size % vol->block_size;
  return bytes;
}

/* Why VOL's map cannot be trusted, or TRUSTED.  The map says what its
 * owners found; without an owner now, a map left open is an unclean stop
 * the next owner will find, and a map of another epoch is stale.  (With
 * an owner, its map moves on with each snapshot: its own word counts.)
 */
static enum xs_dirtymap_doubt
map_doubt (struct xs_store *store, const struct xs_volume *vol,
           struct xs_dirtymap_view *view, bool owned)
{
  if (view->doubt != XS_DIRTYMAP_TRUSTED || owned)
    return view->doubt;
  if (!view->clean) {
    /* An owner may have closed it cleanly since: look once more. */
    xs_dirtymap_view_free (view);
    if (read_map (store, vol, view) == -1)
      return XS_DIRTYMAP_DAMAGED;
    if (!view->clean && xs_volume_in_use (store, vol) == 0)
      return XS_DIRTYMAP_UNCLEAN_STOP;
  }
  if (view->doubt == XS_DIRTYMAP_TRUSTED && view->epoch != vol->cbt_epoch)
    return XS_DIRTYMAP_WRONG_EPOCH;
  return view->doubt;
}

static int
each_volume (const struct xs_volume *vol, void *opaque)
{
  struct volume_pass *pass = opaque;
  struct xs_volume_state state = { .vol = vol };
  struct xs_dirtymap_view view;
  struct newest key, *found;
  enum xs_dirtymap_doubt doubt;
  int r;

  state.owned = xs_volume_in_use (pass->store, vol) == 1;
  state.attached = state.owned
    && !xs_volume_owned_by_sealer (pass->store, vol);
  if (read_map (pass->store, vol, &view) == -1)
    return -1;
  doubt = map_doubt (pass->store, vol, &view, state.owned);
  state.cbt_trusted = doubt == XS_DIRTYMAP_TRUSTED;
  state.cbt_doubt = state.cbt_trusted ? "" : xs_dirtymap_doubt_text (doubt);
  state.changed_bytes = marked_bytes (vol, &view.bits);
  xs_dirtymap_view_free (&view);
  snprintf (key.volume_id, sizeof key.volume_id, "%s", vol->id);
  found = pass->newest->n == 0 ? NULL
    : bsearch (&key, pass->newest->items, pass->newest->n,
               sizeof *found, compare_newest);
  state.last_snapshot_ns = found ? found->created_ns : 0;
  r = pass->fn (&state, pass->opaque);
  return r;
}

int
xs_volume_states (struct xs_store *store,
                  int (*fn) (const struct xs_volume_state *state,
                             void *opaque),
                  void *opaque)
{
  struct names accounts = { 0 }, regions = { 0 };
  struct newest_list newest = { NULL, 0 };
  struct volume_pass pass = { store, &newest, fn, opaque };
  struct xs_scope scope;
  int r = -1;

  if (xs_account_list (store, add_account, &accounts) == -1
      || xs_region_list (store, add_region, &regions) == -1
      || xs_snapshot_newest_by_volume (store, add_newest, &newest) == -1)
    goto out;
  if (newest.n > 1)
    qsort (newest.items, newest.n, sizeof *newest.items, compare_newest);
  for (size_t a = 0; a < accounts.n; a++)
    for (size_t g = 0; g < regions.n; g++) {
      scope.account = accounts.items[a];
      scope.region = regions.items[g];
      if (xs_volume_list (store, &scope, each_volume, &pass) == -1)
        goto out;
    }
  r = 0;
 out:
  names_free (&accounts);
  names_free (&regions);
  free (newest.items);
  return r;
}

int
xs_metrics_store_space (struct xs_store *store, uint64_t *size,
                        uint64_t *free_bytes)
{
  struct statvfs st;

  if (statvfs (xs_store_path (store), &st) == -1) {
    xs_error ("cannot measure the file system of store %s: %m",
              xs_store_path (store));
    return -1;
  }
  *size = (uint64_t) st.f_blocks * st.f_frsize;
  *free_bytes = (uint64_t) st.f_bavail * st.f_frsize;
  return 0;
}

/* ----- The exposition ----- */

enum family {
  F_COLLECTED,
  F_VOLUME_SIZE, F_VOLUME_ATTACHED, F_VOLUME_CBT_TRUSTED,
  F_VOLUME_CHANGED, F_VOLUME_SNAPSHOT_AGE,
  F_SNAPSHOTS_PENDING,
  F_TASK_LAG, F_TASK_SUCCESS, F_TASK_FAILURE, F_TASK_FAILING,
  F_JOBS,
  F_REPO_STORED, F_REPO_SNAPSHOTS, F_REPO_CHUNKS, F_REPO_COUNTED,
  F_GC_TIME, F_GC_DURATION, F_GC_SUCCESS,
  F_VERIFY_TIME, F_VERIFY_SUCCESS, F_VERIFY_DAMAGED,
  F_FS_SIZE, F_FS_FREE,
  F_COUNT
};

static const struct {
  const char *name, *help;
} families[F_COUNT] = {
  [F_COLLECTED] = { "xsnap_metrics_collected_timestamp_seconds",
    "When these metrics were collected (unix time)." },
  [F_VOLUME_SIZE] = { "xsnap_volume_size_bytes",
    "The size of the volume." },
  [F_VOLUME_ATTACHED] = { "xsnap_volume_attached",
    "1 if the volume is attached (served by a server), else 0." },
  [F_VOLUME_CBT_TRUSTED] = { "xsnap_volume_cbt_trusted",
    "1 if the volume's changed-block map is trusted, 0 if its next "
    "snapshot must compare every block." },
  [F_VOLUME_CHANGED] = { "xsnap_volume_changed_bytes",
    "Bytes changed since the volume's last snapshot (an attached volume's "
    "as of its last flush; with an untrusted map, the volume's size)." },
  [F_VOLUME_SNAPSHOT_AGE] = { "xsnap_volume_last_snapshot_age_seconds",
    "Seconds since the volume's newest available snapshot was taken "
    "(since the volume was created, if it has none)." },
  [F_SNAPSHOTS_PENDING] = { "xsnap_snapshots_pending",
    "Snapshots not yet sealed (pending)." },
  [F_TASK_LAG] = { "xsnap_copy_task_rpo_lag_seconds",
    "Age of the point in time of the newest copy of the volume at the "
    "copy task's destination (the RPO lag); since the volume was attached "
    "to the policy if it has no copy yet." },
  [F_TASK_SUCCESS] = { "xsnap_copy_task_last_success_timestamp_seconds",
    "When a copy of the task last succeeded (unix time; 0: never)." },
  [F_TASK_FAILURE] = { "xsnap_copy_task_last_failure_timestamp_seconds",
    "When a copy of the task last failed (unix time; 0: never)." },
  [F_TASK_FAILING] = { "xsnap_copy_task_failing",
    "1 if the task's last copy failed, else 0." },
  [F_JOBS] = { "xsnap_jobs",
    "Copy jobs by state (running jobs whose process died count as "
    "failed)." },
  [F_REPO_STORED] = { "xsnap_repository_stored_bytes",
    "Bytes the snapshots the catalog keeps in the repository stored when "
    "they were made (chunks as stored: compressed, encrypted)." },
  [F_REPO_SNAPSHOTS] = { "xsnap_repository_snapshots",
    "Snapshots the catalog keeps in the repository (available, pending, "
    "or deleted and not yet purged by gc)." },
  [F_REPO_CHUNKS] = { "xsnap_repository_chunks",
    "Chunks in the repository as counted by its last gc." },
  [F_REPO_COUNTED] = { "xsnap_repository_chunks_counted_timestamp_seconds",
    "When gc last counted the repository's chunks (unix time)." },
  [F_GC_TIME] = { "xsnap_gc_last_run_timestamp_seconds",
    "When the region's last gc ended (unix time)." },
  [F_GC_DURATION] = { "xsnap_gc_last_run_duration_seconds",
    "How long the region's last gc ran." },
  [F_GC_SUCCESS] = { "xsnap_gc_last_run_success",
    "1 if the region's last gc finished, 0 if it failed." },
  [F_VERIFY_TIME] = { "xsnap_verify_last_run_timestamp_seconds",
    "When the last verify of a snapshot of the repository ended (unix "
    "time)." },
  [F_VERIFY_SUCCESS] = { "xsnap_verify_last_run_success",
    "1 if the repository's last verify found every chunk intact, else 0." },
  [F_VERIFY_DAMAGED] = { "xsnap_verify_last_run_damaged",
    "1 if the repository's last verify found damaged or missing chunks, "
    "else 0." },
  [F_FS_SIZE] = { "xsnap_store_filesystem_size_bytes",
    "Size of the file system that holds the store." },
  [F_FS_FREE] = { "xsnap_store_filesystem_free_bytes",
    "Bytes of the store's file system still free to its users." },
};

struct exposition {
  FILE *fp[F_COUNT];
  char *buf[F_COUNT];
  size_t len[F_COUNT];
  int64_t now_ns;
  bool failed;
};

static void
exposition_clear (struct exposition *e)
{
  for (int f = 0; f < F_COUNT; f++) {
    if (e->fp[f])
      fclose (e->fp[f]);
    free (e->buf[f]);
  }
}

/* A label value as the format wants it: \, " and newline escaped. */
static void
put_label_value (FILE *fp, const char *value)
{
  for (const char *p = value; *p; p++) {
    if (*p == '\\' || *p == '"')
      fprintf (fp, "\\%c", *p);
    else if (*p == '\n')
      fputs ("\\n", fp);
    else
      fputc (*p, fp);
  }
}

/* Start a sample of family F: its name and the labels given as name,
 * value pairs ending with NULL.
 */
static FILE *
sample (struct exposition *e, enum family f, ...)
{
  FILE *fp = e->fp[f];
  const char *name, *sep = "{";
  va_list args;

  fputs (families[f].name, fp);
  va_start (args, f);
  while ((name = va_arg (args, const char *)) != NULL) {
    fprintf (fp, "%s%s=\"", sep, name);
    put_label_value (fp, va_arg (args, const char *));
    fputc ('"', fp);
    sep = ",";
  }
  va_end (args);
  if (*sep == ',')
    fputc ('}', fp);
  return fp;
}

#define COUNT(fp, n) fprintf ((fp), " %" PRIu64 "\n", (uint64_t) (n))
#define SECONDS(fp, ns) fprintf ((fp), " %.3f\n", (double) (ns) / NS_PER_S)

/* ----- Gathering ----- */

static int
put_volume (const struct xs_volume_state *s, void *opaque)
{
  struct exposition *e = opaque;
  const struct xs_volume *v = s->vol;
  int64_t since = s->last_snapshot_ns ? s->last_snapshot_ns : v->created_ns;

#define VOLUME_LABELS "account", v->account, "region", v->region, \
    "volume", v->name, "id", v->id, NULL
  COUNT (sample (e, F_VOLUME_SIZE, VOLUME_LABELS), v->size);
  COUNT (sample (e, F_VOLUME_ATTACHED, VOLUME_LABELS), s->attached);
  COUNT (sample (e, F_VOLUME_CBT_TRUSTED, VOLUME_LABELS), s->cbt_trusted);
  COUNT (sample (e, F_VOLUME_CHANGED, VOLUME_LABELS),
         s->cbt_trusted ? s->changed_bytes : v->size);
  SECONDS (sample (e, F_VOLUME_SNAPSHOT_AGE, VOLUME_LABELS),
           e->now_ns > since ? e->now_ns - since : 0);
#undef VOLUME_LABELS
  return 0;
}

static int
count_pending (const struct xs_snapshot_pending *p, void *opaque)
{
  (*(uint64_t *) opaque)++;
  return 0;
}

struct task_pass {
  struct exposition *e;
  char last_task[XS_ID_MAX];
};

static int
put_task (const struct xs_copy_task_state *t, void *opaque)
{
  struct task_pass *pass = opaque;
  struct exposition *e = pass->e;
  int64_t since = t->newest_copy_ns ? t->newest_copy_ns : t->attached_ns;

#define TASK_LABELS "task", t->id, "policy", t->policy_name,            \
    "source_account", t->source_account, "source_region", t->source_region, \
    "dest_account", t->dest_account, "dest_region", t->dest_region
  SECONDS (sample (e, F_TASK_LAG, TASK_LABELS, "volume",
                   t->volume_name[0] ? t->volume_name : t->volume_id, NULL),
           e->now_ns > since ? e->now_ns - since : 0);
  /* Rows come by task: the task's own samples once. */
  if (strcmp (pass->last_task, t->id) != 0) {
    snprintf (pass->last_task, sizeof pass->last_task, "%s", t->id);
    SECONDS (sample (e, F_TASK_SUCCESS, TASK_LABELS, NULL),
             t->last_success_ns);
    SECONDS (sample (e, F_TASK_FAILURE, TASK_LABELS, NULL),
             t->last_failure_ns);
    COUNT (sample (e, F_TASK_FAILING, TASK_LABELS, NULL),
           t->last_failure_ns > t->last_success_ns);
  }
#undef TASK_LABELS
  return 0;
}

static const char *const job_states[] = {
  "queued", "running", "done", "failed",
};

static int
note_job_count (const char *status, uint64_t count, void *opaque)
{
  uint64_t *counts = opaque;

  for (size_t i = 0; i < sizeof job_states / sizeof job_states[0]; i++)
    if (strcmp (status, job_states[i]) == 0)
      counts[i] = count;
  return 0;
}

static int
put_usage (const struct xs_snapshot_usage *u, void *opaque)
{
  struct exposition *e = opaque;

  COUNT (sample (e, F_REPO_STORED, "account", u->account, "region",
                 u->region, NULL), u->stored_bytes);
  COUNT (sample (e, F_REPO_SNAPSHOTS, "account", u->account, "region",
                 u->region, NULL), u->snapshots);
  return 0;
}

static int
put_chunks (const struct xs_repository_chunks *c, void *opaque)
{
  struct exposition *e = opaque;

  COUNT (sample (e, F_REPO_CHUNKS, "account", c->account, "region",
                 c->region, NULL), c->chunks);
  SECONDS (sample (e, F_REPO_COUNTED, "account", c->account, "region",
                   c->region, NULL), c->measured_ns);
  return 0;
}

static int
put_run (const struct xs_maintenance_run *run, void *opaque)
{
  struct exposition *e = opaque;
  bool ok = strcmp (run->result, XS_RUN_OK) == 0;

  if (strcmp (run->kind, "gc") == 0) {
    SECONDS (sample (e, F_GC_TIME, "region", run->region, NULL),
             run->finished_ns);
    SECONDS (sample (e, F_GC_DURATION, "region", run->region, NULL),
             run->finished_ns - run->started_ns);
    COUNT (sample (e, F_GC_SUCCESS, "region", run->region, NULL), ok);
  }
  else {
#define REPO_LABELS "account", run->account, "region", run->region, NULL
    SECONDS (sample (e, F_VERIFY_TIME, REPO_LABELS), run->finished_ns);
    COUNT (sample (e, F_VERIFY_SUCCESS, REPO_LABELS), ok);
    COUNT (sample (e, F_VERIFY_DAMAGED, REPO_LABELS),
           strcmp (run->result, XS_RUN_DAMAGED) == 0);
#undef REPO_LABELS
  }
  return 0;
}

static int
gather (struct xs_store *store, struct exposition *e)
{
  struct task_pass tasks = { .e = e };
  uint64_t pending = 0, jobs[4] = { 0 }, size, free_bytes;

  SECONDS (sample (e, F_COLLECTED, NULL), e->now_ns);
  if (xs_volume_states (store, put_volume, e) == -1
      || xs_snapshot_list_pending (store, count_pending, &pending) == -1
      || xs_copy_task_states (store, put_task, &tasks) == -1
      || xs_job_count_by_status (store, note_job_count, jobs) == -1
      || xs_snapshot_usage (store, put_usage, e) == -1
      || xs_maintenance_chunks (store, put_chunks, e) == -1
      || xs_maintenance_runs (store, put_run, e) == -1
      || xs_metrics_store_space (store, &size, &free_bytes) == -1)
    return -1;
  COUNT (sample (e, F_SNAPSHOTS_PENDING, NULL), pending);
  for (size_t i = 0; i < sizeof job_states / sizeof job_states[0]; i++)
    COUNT (sample (e, F_JOBS, "state", job_states[i], NULL), jobs[i]);
  COUNT (sample (e, F_FS_SIZE, NULL), size);
  COUNT (sample (e, F_FS_FREE, NULL), free_bytes);
  return 0;
}

/* Join the families: HELP, TYPE, then the samples of each. */
static char *
join (struct exposition *e, size_t *len)
{
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream (&text, &size);
  int f;

  if (out == NULL)
    return NULL;
  for (f = 0; f < F_COUNT; f++) {
    if (fclose (e->fp[f]) == EOF)
      e->failed = true;
    e->fp[f] = NULL;
    fprintf (out, "# HELP %s %s\n# TYPE %s gauge\n", families[f].name,
             families[f].help, families[f].name);
    fwrite (e->buf[f], 1, e->len[f], out);
  }
  if (fclose (out) == EOF || e->failed) {
    free (text);
    return NULL;
  }
  *len = size;
  return text;
}

char *
xs_metrics_text (struct xs_store *store, int64_t now_ns, size_t *len)
{
  struct exposition e = { .now_ns = now_ns };
  char *text = NULL;
  int f;

  for (f = 0; f < F_COUNT; f++)
    if ((e.fp[f] = open_memstream (&e.buf[f], &e.len[f])) == NULL) {
      xs_error ("cannot collect metrics: %m");
      goto out;
    }
  if (gather (store, &e) == -1)
    goto out;
  text = join (&e, len);
  if (text == NULL)
    xs_error ("cannot collect metrics: %m");
 out:
  exposition_clear (&e);
  return text;
}
