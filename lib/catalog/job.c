/* xsnap: jobs in the catalog (see job.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "catalog/job.h"

#define JOB_COLUMNS                                                     \
  "id, kind, actor, source_account, source_region, source_snapshot,"   \
  " dest_account, dest_region, dest_snapshot, status, error,"          \
  " total_bytes, done_bytes, sent_bytes, created_ns, updated_ns, name,"  \
  " description, bandwidth, dest_key, encrypt, owner_pid"

void
xs_job_clear (struct xs_job *job)
{
  free (job->kind);
  free (job->actor);
  free (job->source_account);
  free (job->source_region);
  free (job->source_snapshot);
  free (job->dest_account);
  free (job->dest_region);
  free (job->dest_key);
  free (job->dest_snapshot);
  free (job->status);
  free (job->error);
  free (job->name);
  free (job->description);
  memset (job, 0, sizeof *job);
}

json_t *
xs_job_to_json (const struct xs_job *job)
{
  char created[32], updated[32];

  xs_format_utc (job->created_ns, created, sizeof created);
  xs_format_utc (job->updated_ns, updated, sizeof updated);
  return json_pack ("{s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s},"
                    " s:s, s:s, s:I, s:I, s:I, s:f, s:s, s:s, s:s, s:I}",
                    "id", job->id, "kind", job->kind, "actor", job->actor,
                    "source", "account", job->source_account,
                    "region", job->source_region,
                    "snapshot", job->source_snapshot,
                    "destination", "account", job->dest_account,
                    "region", job->dest_region,
                    "snapshot", job->dest_snapshot,
                    "status", job->status, "error", job->error,
                    "total_bytes", (json_int_t) job->total_bytes,
                    "done_bytes", (json_int_t) job->done_bytes,
                    "sent_bytes", (json_int_t) job->sent_bytes,
                    "progress", job->total_bytes
                    ? (double) job->done_bytes / (double) job->total_bytes
                    : (strcmp (job->status, "done") == 0 ? 1.0 : 0.0),
                    "created", created, "updated", updated,
                    "name", job->name,
                    "bandwidth", (json_int_t) job->bandwidth);
}

/* Fail running jobs whose process is gone (holding the lock). */
static int
reap_orphans_locked (struct xs_catalog *cat)
{
  sqlite3_stmt *stmt;
  int64_t pid;
  int step, r = 0;

  stmt = xs_catalog_prepare (cat, "SELECT DISTINCT owner_pid FROM jobs"
                             " WHERE status = 'running'", "look at jobs");
  if (stmt == NULL)
    return -1;
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW) {
    pid = sqlite3_column_int64 (stmt, 0);
    if (pid > 0 && xs_process_gone ((pid_t) pid)
        && xs_catalog_run (cat, "fail an abandoned job",
                           "UPDATE jobs SET status = 'failed',"
                           " error = 'the process running it stopped',"
                           " updated_ns = ? WHERE status = 'running'"
                           " AND owner_pid = ?", "ii", xs_wall_clock_ns (),
                           pid) == -1)
      r = -1;
  }
  if (step != SQLITE_DONE) {
    xs_catalog_report (cat, "look at jobs");
    r = -1;
  }
  sqlite3_finalize (stmt);
  return r;
}

/* Are LIMIT cross-region jobs of ACTOR running already (holding the
 * lock)?  1 busy, 0 not, -1.
 */
static int
cross_region_busy_locked (struct xs_catalog *cat, const char *actor,
                          int64_t limit, int64_t *running)
{
  if (xs_catalog_query_int (cat, "count running copies", running,
                            "SELECT count(*) FROM jobs WHERE actor = ?"
                            " AND status = 'running'"
                            " AND source_region != dest_region", "s",
                            actor) != 0)
    return -1;
  return *running >= limit;
}

static void
report_busy (const char *actor, int64_t running, int64_t limit)
{
  xs_error ("cannot start another cross-region copy for account '%s': "
            "%" PRId64 " are running and at most %" PRId64 " may run at "
            "once (start it again when one ends, or queue it with "
            "--queue; see 'xsnap job list')", actor, running, limit);
}

int
xs_job_start (struct xs_store *store, struct xs_job *job, bool cross_region,
              int64_t max_cross_region, bool queue)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t now = xs_wall_clock_ns (), running = 0;
  int r = -1, busy = 0;

  if (xs_new_id ("job", job->id, sizeof job->id) == -1)
    return -1;
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  if (reap_orphans_locked (cat) == -1
      || (cross_region
          && (busy = cross_region_busy_locked (cat, job->actor,
                                               max_cross_region,
                                               &running)) == -1))
    goto rollback;
  if (busy && !queue) {
    report_busy (job->actor, running, max_cross_region);
    goto rollback;
  }
  if (xs_catalog_run (cat, "record a job",
                      "INSERT INTO jobs (id, kind, actor, source_account,"
                      " source_region, source_snapshot, dest_account,"
                      " dest_region, dest_snapshot, name, description,"
                      " bandwidth, status, total_bytes, created_ns,"
                      " updated_ns, owner_pid, dest_key, encrypt)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                      " ?, ?, ?, ?)", "sssssssssssisiiiisi", job->id,
                      job->kind,
                      job->actor, job->source_account, job->source_region,
                      job->source_snapshot, job->dest_account,
                      job->dest_region, job->dest_snapshot,
                      job->name ? job->name : "",
                      job->description ? job->description : "",
                      (int64_t) job->bandwidth,
                      busy ? "queued" : "running",
                      (int64_t) job->total_bytes, now, now,
                      (int64_t) (busy ? 0 : getpid ()),
                      job->dest_key ? job->dest_key : "",
                      (int64_t) job->encrypt) == -1)
    goto rollback;
  r = xs_catalog_commit (cat);
  if (r == 0) {
    r = busy;
    goto out;
  }
 rollback:
  xs_catalog_rollback (cat);
 out:
  xs_catalog_unlock (cat);
  return r;
}

/* Why job ID cannot be resumed, reported (-1), or 0 (holding the lock,
 * in a transaction).
 */
static int
refuse_unless_resumable_locked (struct xs_catalog *cat, const char *id)
{
  sqlite3_stmt *stmt;
  int r = -1;

  stmt = xs_catalog_prepare_bind (cat, "look up a job",
                                  "SELECT status, owner_pid FROM jobs"
                                  " WHERE id = ?", "s", id);
  if (stmt == NULL)
    return -1;
  if (sqlite3_step (stmt) == SQLITE_ROW) {
    const char *status = (const char *) sqlite3_column_text (stmt, 0);

    if (strcmp (status, "running") == 0)
      xs_error ("cannot resume job %s: it is running (pid %" PRId64 "); "
                "wait for it to end ('xsnap job list') or cancel it "
                "('xsnap job cancel %s')", id,
                (int64_t) sqlite3_column_int64 (stmt, 1),
                id);
    else if (strcmp (status, "queued") != 0 && strcmp (status, "failed") != 0)
      xs_error ("cannot resume job %s: it is %s", id, status);
    else
      r = 0;
  }
  else
    xs_error ("no job '%s'", id);
  sqlite3_finalize (stmt);
  return r;
}

int
xs_job_check_resumable (struct xs_store *store, const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int r;

  xs_catalog_lock (cat);
  r = reap_orphans_locked (cat) == -1 ? -1
    : refuse_unless_resumable_locked (cat, id);
  xs_catalog_unlock (cat);
  return r;
}

int
xs_job_restart (struct xs_store *store, const char *id, bool cross_region,
                int64_t max_cross_region)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t running = 0, changed;
  struct xs_job job;
  int r = -1, busy = 0;

  if (xs_job_find (store, id, &job) == -1)
    return -1;
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  if (reap_orphans_locked (cat) == -1
      || (cross_region
          && (busy = cross_region_busy_locked (cat, job.actor,
                                               max_cross_region,
                                               &running)) == -1))
    goto rollback;
  if (busy) {
    r = 1;
    goto rollback;
  }
  /* Its state now, in this transaction: another process may have
   * resumed it since it was read.
   */
  if (refuse_unless_resumable_locked (cat, id) == -1)
    goto rollback;
  changed = xs_catalog_run (cat, "restart a job",
                            "UPDATE jobs SET status = 'running', error = '',"
                            " owner_pid = ?, updated_ns = ? WHERE id = ?"
                            " AND status IN ('queued', 'failed')", "iis",
                            (int64_t) getpid (), xs_wall_clock_ns (), id);
  if (changed == 0)
    xs_error ("cannot resume job %s: it changed while it was resumed", id);
  if (changed != 1)
    goto rollback;
  r = xs_catalog_commit (cat);
  if (r == 0)
    goto out;
 rollback:
  xs_catalog_rollback (cat);
 out:
  xs_catalog_unlock (cat);
  xs_job_clear (&job);
  return r;
}

int
xs_job_progress (struct xs_store *store, const char *id, uint64_t done_bytes,
                 uint64_t sent_bytes)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "record a job's progress",
                      "UPDATE jobs SET done_bytes = ?, sent_bytes = ?,"
                      " updated_ns = ? WHERE id = ? AND status = 'running'",
                      "iiis", (int64_t) done_bytes, (int64_t) sent_bytes,
                      xs_wall_clock_ns (), id);
  xs_catalog_unlock (cat);
  if (r == 0)
    xs_error ("job %s was cancelled", id);
  return r == 1 ? 0 : -1;
}

int
xs_job_cancel (struct xs_store *store, const char *actor, const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char why[128];
  int64_t r;

  snprintf (why, sizeof why, "cancelled by account '%s'", actor);
  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "cancel a job",
                      "UPDATE jobs SET status = 'failed', error = ?,"
                      " updated_ns = ? WHERE id = ?"
                      " AND status IN ('queued', 'running')", "sis", why,
                      xs_wall_clock_ns (), id);
  xs_catalog_unlock (cat);
  if (r == 0)
    xs_error ("cannot cancel job %s: it is not queued or running", id);
  return r == 1 ? 0 : -1;
}

/* Job ids are 20 characters: five of them and their states fit. */
#define MAX_NAMED_JOBS 5

/* The jobs that keep a region or an account from going: those queued
 * or running that copy from or to it.
 */
static const char *const users_sql[] = {
  [XS_JOB_USES_REGION] =
    "SELECT id, status, owner_pid FROM jobs"
    " WHERE status IN ('queued', 'running')"
    " AND (source_region = ?1 OR dest_region = ?1) ORDER BY created_ns",
  [XS_JOB_USES_ACCOUNT] =
    "SELECT id, status, owner_pid FROM jobs"
    " WHERE status IN ('queued', 'running')"
    " AND (source_account = ?1 OR dest_account = ?1 OR actor = ?1)"
    " ORDER BY created_ns",
};

int
xs_job_refuse_users_locked (struct xs_catalog *cat, enum xs_job_use use,
                            const char *name, const char *refusal)
{
  char list[512] = "";
  size_t n = 0, len = 0;
  sqlite3_stmt *stmt;
  int step;

  if (reap_orphans_locked (cat) == -1)
    return -1;
  stmt = xs_catalog_prepare_bind (cat, "look at jobs", users_sql[use], "s",
                                  name);
  if (stmt == NULL)
    return -1;
  /* The first few by name; the count says how many. */
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW) {
    const char *id = (const char *) sqlite3_column_text (stmt, 0);
    const char *status = (const char *) sqlite3_column_text (stmt, 1);

    if (n < MAX_NAMED_JOBS && strcmp (status, "running") == 0)
      len += (size_t) snprintf (list + len, sizeof list - len,
                                "%s%s (running, pid %" PRId64 ")",
                                n ? ", " : "", id,
                                (int64_t) sqlite3_column_int64 (stmt, 2));
    else if (n < MAX_NAMED_JOBS)
      len += (size_t) snprintf (list + len, sizeof list - len, "%s%s (%s)",
                                n ? ", " : "", id, status);
    else if (n == MAX_NAMED_JOBS)
      len += (size_t) snprintf (list + len, sizeof list - len, ", ...");
    n++;
  }
  if (step != SQLITE_DONE)
    xs_catalog_report (cat, "look at jobs");
  sqlite3_finalize (stmt);
  if (step != SQLITE_DONE)
    return -1;
  if (n == 0)
    return 0;
  xs_error ("%s: %zu copy job(s) use it: %s; wait for them to end "
            "('xsnap job list') or cancel them ('xsnap job cancel JOB')",
            refusal, n, list);
  return -1;
}

int
xs_job_finish (struct xs_store *store, const char *id,
               const char *dest_snapshot, const char *error)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "end a job",
                      "UPDATE jobs SET status = ?, error = ?,"
                      " dest_snapshot = CASE WHEN ? = '' THEN dest_snapshot"
                      " ELSE ? END,"
                      " done_bytes = CASE WHEN ? = 'done' THEN total_bytes"
                      " ELSE done_bytes END, updated_ns = ? WHERE id = ?",
                      "sssssis", error ? "failed" : "done",
                      error ? error : "", dest_snapshot ? dest_snapshot : "",
                      dest_snapshot ? dest_snapshot : "",
                      error ? "failed" : "done", xs_wall_clock_ns (), id);
  xs_catalog_unlock (cat);
  return r == -1 ? -1 : 0;
}

static int
row_to_job (sqlite3_stmt *stmt, struct xs_job *job)
{
  bool failed = false;

  memset (job, 0, sizeof *job);
  snprintf (job->id, sizeof job->id, "%s",
            (const char *) sqlite3_column_text (stmt, 0));
  job->kind = xs_catalog_column_dup (stmt, 1, &failed);
  job->actor = xs_catalog_column_dup (stmt, 2, &failed);
  job->source_account = xs_catalog_column_dup (stmt, 3, &failed);
  job->source_region = xs_catalog_column_dup (stmt, 4, &failed);
  job->source_snapshot = xs_catalog_column_dup (stmt, 5, &failed);
  job->dest_account = xs_catalog_column_dup (stmt, 6, &failed);
  job->dest_region = xs_catalog_column_dup (stmt, 7, &failed);
  job->dest_snapshot = xs_catalog_column_dup (stmt, 8, &failed);
  job->status = xs_catalog_column_dup (stmt, 9, &failed);
  job->error = xs_catalog_column_dup (stmt, 10, &failed);
  job->total_bytes = (uint64_t) sqlite3_column_int64 (stmt, 11);
  job->done_bytes = (uint64_t) sqlite3_column_int64 (stmt, 12);
  job->sent_bytes = (uint64_t) sqlite3_column_int64 (stmt, 13);
  job->created_ns = sqlite3_column_int64 (stmt, 14);
  job->updated_ns = sqlite3_column_int64 (stmt, 15);
  job->name = xs_catalog_column_dup (stmt, 16, &failed);
  job->description = xs_catalog_column_dup (stmt, 17, &failed);
  job->bandwidth = (uint64_t) sqlite3_column_int64 (stmt, 18);
  job->dest_key = xs_catalog_column_dup (stmt, 19, &failed);
  job->encrypt = sqlite3_column_int (stmt, 20) != 0;
  job->owner_pid = sqlite3_column_int64 (stmt, 21);
  if (failed) {
    xs_error ("cannot read job %s: %m", job->id);
    xs_job_clear (job);
    return -1;
  }
  return 0;
}

int
xs_job_find (struct xs_store *store, const char *id, struct xs_job *job)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  if (reap_orphans_locked (cat) == 0) {
    stmt = xs_catalog_prepare_bind (cat, "look up a job",
                                    "SELECT " JOB_COLUMNS " FROM jobs"
                                    " WHERE id = ?", "s", id);
    if (stmt && sqlite3_step (stmt) == SQLITE_ROW)
      r = row_to_job (stmt, job);
    else if (stmt)
      xs_error ("no job '%s'", id);
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return r;
}

struct job_list {
  int (*fn) (const struct xs_job *job, void *opaque);
  void *opaque;
};

static int
each_job (sqlite3_stmt *stmt, void *opaque)
{
  struct job_list *list = opaque;
  struct xs_job job;
  int r;

  if (row_to_job (stmt, &job) == -1)
    return -1;
  r = list->fn (&job, list->opaque);
  xs_job_clear (&job);
  return r;
}

int
xs_job_list (struct xs_store *store, const char *account,
             enum xs_job_direction direction, const char *source_snapshot,
             const char *status,
             int (*fn) (const struct xs_job *job, void *opaque), void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct job_list list = { fn, opaque };
  sqlite3_stmt *stmt = NULL;
  int r = -1;

  xs_catalog_lock (cat);
  if (reap_orphans_locked (cat) == 0)
    stmt = xs_catalog_prepare_bind (cat, "list jobs",
                                    "SELECT " JOB_COLUMNS " FROM jobs"
                                    " WHERE (?1 IS NULL"
                                    "  OR ?3 != 2 AND (actor = ?1"
                                    "                  OR source_account = ?1)"
                                    "  OR ?3 != 1 AND dest_account = ?1"
                                    "     AND (?3 = 0 OR source_account != ?1))"
                                    " AND (?2 IS NULL OR source_snapshot = ?2)"
                                    " AND (?4 IS NULL OR status = ?4)"
                                    " ORDER BY created_ns DESC, id", "ssis",
                                    account, source_snapshot,
                                    (int64_t) direction, status);
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "list jobs", each_job, &list);
  xs_catalog_unlock (cat);
  return r;
}

struct status_counts {
  int (*fn) (const char *status, uint64_t count, void *opaque);
  void *opaque;
};

static int
each_status_count (sqlite3_stmt *stmt, void *opaque)
{
  struct status_counts *counts = opaque;

  return counts->fn ((const char *) sqlite3_column_text (stmt, 0),
                     (uint64_t) sqlite3_column_int64 (stmt, 1),
                     counts->opaque);
}

int
xs_job_count_by_status (struct xs_store *store,
                        int (*fn) (const char *status, uint64_t count,
                                   void *opaque),
                        void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct status_counts counts = { fn, opaque };
  sqlite3_stmt *stmt = NULL;
  int r = -1;

  xs_catalog_lock (cat);
  if (reap_orphans_locked (cat) == 0)
    stmt = xs_catalog_prepare (cat, "SELECT status, count(*) FROM jobs"
                               " GROUP BY status ORDER BY status",
                               "count jobs");
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "count jobs", each_status_count,
                             &counts);
  xs_catalog_unlock (cat);
  return r;
}
