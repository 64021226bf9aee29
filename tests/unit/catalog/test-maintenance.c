/* Unit tests: what the metrics read from the catalog — the last gc and
 * verify of each repository and gc's chunk counts (catalog/maintenance),
 * what snapshots stored per repository, each volume's newest snapshot in
 * its own namespace (not its copies'), the pending snapshots, and jobs
 * by state.
 */
#include <string.h>
#include <unistd.h>

#include "tap.h"

#include "catalog/account.h"
#include "catalog/catalog.h"
#include "catalog/job.h"
#include "catalog/maintenance.h"
#include "catalog/snapshot.h"
#include "catalog/store.h"
#include "catalog/volume.h"

static int
insert_snapshot (struct xs_catalog *cat, const char *id, const char *account,
                 const char *volume_id, const char *status,
                 int64_t created_ns, int64_t stored)
{
  return xs_catalog_run (cat, "insert a snapshot",
                         "INSERT INTO snapshots (id, account, region,"
                         " volume_id, volume_name, name, status, size,"
                         " block_size, created_ns, stored_bytes)"
                         " VALUES (?1, ?2, 'local', ?3, 'v', ?1, ?4, 4096,"
                         " 4096, ?5, ?6)", "ssssii", id, account, volume_id,
                         status, created_ns, stored) == 1 ? 0 : -1;
}

struct seen {
  char text[512];
};

static void
seen_add (struct seen *seen, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static void
seen_add (struct seen *seen, const char *fmt, ...)
{
  size_t len = strlen (seen->text);
  va_list args;

  va_start (args, fmt);
  vsnprintf (seen->text + len, sizeof seen->text - len, fmt, args);
  va_end (args);
}

static int
see_run (const struct xs_maintenance_run *run, void *opaque)
{
  seen_add (opaque, "%s:%s:%s:%s:%s;", run->kind, run->account, run->region,
            run->result, run->detail);
  return 0;
}

static int
see_chunks (const struct xs_repository_chunks *c, void *opaque)
{
  seen_add (opaque, "%s:%s:%" PRIu64 ";", c->account, c->region, c->chunks);
  return 0;
}

static int
see_usage (const struct xs_snapshot_usage *u, void *opaque)
{
  seen_add (opaque, "%s:%s:%" PRIu64 ":%" PRIu64 ";", u->account, u->region,
            u->snapshots, u->stored_bytes);
  return 0;
}

static int
see_newest (const char *volume_id, const char *snapshot_id,
            int64_t created_ns, void *opaque)
{
  seen_add (opaque, "%s:%s:%" PRId64 ";", volume_id, snapshot_id,
            created_ns);
  return 0;
}

static int
see_pending (const struct xs_snapshot_pending *p, void *opaque)
{
  seen_add (opaque, "%s;", p->id);
  return 0;
}

static int
see_jobs (const char *status, uint64_t count, void *opaque)
{
  seen_add (opaque, "%s:%" PRIu64 ";", status, count);
  return 0;
}

static void
test_runs (struct xs_store *store)
{
  struct seen seen = { "" };

  ok (xs_maintenance_record_run (store, "gc", "", "local", 1,
                                 XS_RUN_FAILED, "disk full") == 0
      && xs_maintenance_record_run (store, "gc", "", "local", 2,
                                    XS_RUN_OK, "3 chunks deleted") == 0
      && xs_maintenance_record_run (store, "verify", "bob", "local", 3,
                                    XS_RUN_DAMAGED, "2 bad") == 0
      && xs_maintenance_record_run (store, "verify", "gone", "local", 3,
                                    XS_RUN_OK, "") == 0
      && xs_maintenance_record_run (store, "gc", "", "nowhere", 3,
                                    XS_RUN_OK, "") == 0,
      "record runs");
  ok (xs_maintenance_runs (store, see_run, &seen) == 0, "list the runs");
  is_str (seen.text, "gc::local:ok:3 chunks deleted;"
          "verify:bob:local:damaged:2 bad;",
          "the last run of each kind and repository, of accounts and "
          "regions that exist");
  ok (xs_maintenance_record_run (store, "scrub", "", "local", 1, XS_RUN_OK,
                                 "") == -1, "an unknown kind is refused");

  memset (&seen, 0, sizeof seen);
  ok (xs_maintenance_record_chunks (store, "bob", "local", 7) == 0
      && xs_maintenance_record_chunks (store, "bob", "local", 5) == 0
      && xs_maintenance_record_chunks (store, "admin", "local", 0) == 0
      && xs_maintenance_record_chunks (store, "bob", "nowhere", 9) == 0,
      "record chunk counts");
  ok (xs_maintenance_chunks (store, see_chunks, &seen) == 0,
      "list the counts");
  is_str (seen.text, "admin:local:0;bob:local:5;",
          "the last count of each repository that exists");
}

static void
test_snapshots (struct xs_store *store)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_scope bob = { .account = (char *) "bob",
                          .region = (char *) "local" };
  struct xs_volume vol;
  struct seen seen = { "" };
  char expected[256];

  ok (xs_volume_create (store, &bob, "v", 1 << 20, 4096, &vol) == 0,
      "create bob's volume");
  ok (insert_snapshot (cat, "snap-1", "bob", vol.id, "available", 10, 100)
      == 0
      && insert_snapshot (cat, "snap-2", "bob", vol.id, "available", 30,
                          50) == 0
      && insert_snapshot (cat, "snap-3", "bob", vol.id, "deleted", 40, 20)
      == 0
      && insert_snapshot (cat, "snap-4", "bob", vol.id, "pending", 50, 0)
      == 0
      /* A copy in another account keeps its source's volume id. */
      && insert_snapshot (cat, "snap-5", "admin", vol.id, "available", 60,
                          170) == 0,
      "insert snapshots of it, and a copy in another account");
  ok (xs_snapshot_usage (store, see_usage, &seen) == 0, "sum per repository");
  is_str (seen.text, "admin:local:1:170;bob:local:4:170;",
          "every row kept counts, with what it stored");
  memset (&seen, 0, sizeof seen);
  ok (xs_snapshot_newest_by_volume (store, see_newest, &seen) == 0,
      "the newest snapshot per volume");
  snprintf (expected, sizeof expected, "%s:snap-2:30;", vol.id);
  is_str (seen.text, expected,
          "the newest available one of its own account, not a copy's");
  memset (&seen, 0, sizeof seen);
  ok (xs_snapshot_list_pending (store, see_pending, &seen) == 0
      && strcmp (seen.text, "snap-4;") == 0, "the pending snapshots");
  xs_volume_clear (&vol);
}

static void
test_jobs (struct xs_store *store)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct seen seen = { "" };
  static const char *const rows[][2] = {
    { "job-1", "done" }, { "job-2", "done" }, { "job-3", "failed" },
    /* A running job whose process is gone counts as failed. */
    { "job-4", "running" },
  };

  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    xs_catalog_run (cat, "insert a job",
                    "INSERT INTO jobs (id, kind, actor, source_account,"
                    " source_region, source_snapshot, dest_account,"
                    " dest_region, dest_snapshot, status, created_ns,"
                    " updated_ns, owner_pid) VALUES (?, 'copy', 'bob', 'bob',"
                    " 'local', 's', 'bob', 'local', 'd', ?, 1, 1,"
                    " 2147483646)", "ss", rows[i][0], rows[i][1]);
  ok (xs_job_count_by_status (store, see_jobs, &seen) == 0,
      "count jobs by status");
  is_str (seen.text, "done:2;failed:2;", "a dead process's job is failed");
}

int
main (void)
{
  char *dir = tap_tmpdir (), path[4096];
  struct xs_store *store;

  snprintf (path, sizeof path, "%s/store", dir);
  ok (xs_store_init (path, NULL, NULL) == 0, "init a store");
  store = xs_store_open (path);
  ok (store != NULL
      && xs_account_create (store, NULL, "bob", NULL, NULL, NULL) == 0,
      "open it, with account bob");
  if (store) {
    test_runs (store);
    test_snapshots (store);
    test_jobs (store);
    xs_store_close (store);
  }
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
