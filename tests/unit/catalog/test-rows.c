/* Unit tests: what the catalog's owners answer about their rows for the
 * modules above (automatic policies, copy tasks, shares): snapshot
 * retention, marks and chain summaries, region and volume lookups.
 */
#include <unistd.h>

#include "tap.h"

#include "catalog/account.h"
#include "catalog/catalog.h"
#include "catalog/region.h"
#include "catalog/snapshot.h"
#include "catalog/store.h"
#include "catalog/volume.h"

/* A snapshot row of volume VOLUME_ID in region "local". */
struct row {
  const char *id, *account, *volume_id, *name, *status;
  int64_t created_ns;
  const char *policy_id, *task_id, *origin, *method;
  int64_t size, stored;
};

#define SNAP(id_, account_, volume_, name_, status_, at_, ...)         \
  { .id = id_, .account = account_, .volume_id = volume_, .name = name_, \
    .status = status_, .created_ns = at_, __VA_ARGS__ }

static int
insert_snapshot (struct xs_catalog *cat, const struct row *r)
{
  return xs_catalog_run (cat, "insert a snapshot",
                         "INSERT INTO snapshots (id, account, region,"
                         " volume_id, volume_name, name, status, size,"
                         " block_size, created_ns, policy_id, task_id,"
                         " origin, creation_method, stored_bytes)"
                         " VALUES (?, ?, 'local', ?, 'v', ?, ?, ?, 4096, ?,"
                         " ?, ?, ?, ?, ?)", "sssssiissssi", r->id,
                         r->account, r->volume_id, r->name, r->status,
                         r->size ? r->size : (int64_t) 4096, r->created_ns,
                         r->policy_id ? r->policy_id : "",
                         r->task_id ? r->task_id : "",
                         r->origin ? r->origin : "",
                         r->method ? r->method : "manual",
                         r->stored) == 1 ? 0 : -1;
}

static int
insert_job (struct xs_catalog *cat, const char *id, const char *source,
            const char *dest, const char *name, const char *description,
            const char *status)
{
  return xs_catalog_run (cat, "insert a job",
                         "INSERT INTO jobs (id, kind, actor, source_account,"
                         " source_region, source_snapshot, dest_account,"
                         " dest_region, dest_snapshot, name, description,"
                         " status, created_ns, updated_ns) VALUES (?, 'copy',"
                         " 'admin', 'admin', 'local', ?, 'bob', 'local', ?,"
                         " ?, ?, ?, 1, 1)", "ssssss", id, source, dest, name,
                         description, status) == 1 ? 0 : -1;
}

/* The text of column COLUMN of snapshot ID ("?" if unreadable). */
static const char *
snapshot_column (struct xs_catalog *cat, const char *column, const char *id)
{
  static char value[64];
  char sql[128];
  sqlite3_stmt *stmt;

  snprintf (sql, sizeof sql, "SELECT %s FROM snapshots WHERE id = ?",
            column);
  snprintf (value, sizeof value, "?");
  stmt = xs_catalog_prepare_bind (cat, "read a snapshot", sql, "s", id);
  if (stmt && sqlite3_step (stmt) == SQLITE_ROW)
    snprintf (value, sizeof value, "%s",
              (const char *) sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);
  return value;
}

/* IDS (N of them) joined by commas, "" if none. */
static const char *
joined (char **ids, size_t n)
{
  static char text[256];
  size_t len = 0;

  text[0] = '\0';
  for (size_t i = 0; i < n; i++)
    len += snprintf (text + len, sizeof text - len, "%s%s", i ? "," : "",
                     ids[i]);
  return text;
}

static void
test_retention (struct xs_store *store)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  static const struct row rows[] = {
    /* Policy asp-1's snapshots of vol-1, oldest first. */
    SNAP ("s1", "admin", "vol-1", "n1", "available", 1, .policy_id = "asp-1"),
    SNAP ("s2", "admin", "vol-1", "n2", "available", 2, .policy_id = "asp-1"),
    SNAP ("s3", "admin", "vol-1", "n3", "available", 3, .policy_id = "asp-1"),
    SNAP ("s4", "admin", "vol-1", "n4", "available", 4, .policy_id = "asp-1"),
    SNAP ("s5", "admin", "vol-1", "n5", "available", 5, .policy_id = "asp-1"),
    SNAP ("s0", "admin", "vol-1", "n0", "deleted", 0, .policy_id = "asp-1"),
    SNAP ("m1", "admin", "vol-1", "manual", "available", 6),
    /* Task task-1's copies in bob, the newest a copy of s2. */
    SNAP ("d1", "bob", "vol-1", "n1", "available", 10, .task_id = "task-1",
          .origin = "copiedFrom:admin:local:s1", .method = "copy"),
    SNAP ("d3", "bob", "vol-1", "n3", "available", 11, .task_id = "task-1",
          .origin = "copiedFrom:admin:local:s3", .method = "copy"),
    SNAP ("d2", "bob", "vol-1", "n2", "available", 12, .task_id = "task-1",
          .origin = "copiedFrom:admin:local:s2", .method = "copy"),
  };
  char **ids;
  size_t n, i;
  int ok_rows = 1;

  for (i = 0; i < sizeof rows / sizeof rows[0]; i++)
    ok_rows &= insert_snapshot (cat, &rows[i]) == 0;
  ok (ok_rows
      && xs_catalog_run (cat, "insert a policy",
                         "INSERT INTO auto_policies (id, account, region,"
                         " name, every_s, retain, created_ns) VALUES"
                         " ('asp-1', 'admin', 'local', 'p', 3600, 2, 1)",
                         "") == 1
      && xs_catalog_run (cat, "insert a task",
                         "INSERT INTO copy_tasks (id, policy_id,"
                         " dest_account, dest_region, retain, created_ns)"
                         " VALUES ('task-1', 'asp-1', 'bob', 'local', 2, 1)",
                         "") == 1,
      "a policy, its task and their snapshots recorded");

  ok (xs_snapshot_policy_expired (store, "asp-1", "admin", "vol-1", 2, &ids,
                                  &n) == 0, "policy retention reads");
  is_str (joined (ids, n), "s3,s1",
          "  beyond the newest 2, newest first, all but the task's base"
          " (s2)");
  xs_snapshot_free_ids (ids, n);

  ok (insert_job (cat, "job-1", "s1", "c1", "n1", "", "queued") == 0,
      "a copy of s1 is queued");
  ok (xs_snapshot_policy_expired (store, "asp-1", "admin", "vol-1", 2, &ids,
                                  &n) == 0, "policy retention reads again");
  is_str (joined (ids, n), "s3", "  what a queued copy copies is kept");
  xs_snapshot_free_ids (ids, n);
  ok (xs_snapshot_policy_expired (store, "asp-1", "admin", "vol-1", 1, &ids,
                                  &n) == 0, "with retain 1");
  is_str (joined (ids, n), "s4,s3", "  newest first, held ones kept");
  xs_snapshot_free_ids (ids, n);
  ok (xs_snapshot_policy_expired (store, "asp-1", "bob", "vol-1", 1, &ids,
                                  &n) == 0 && n == 0,
      "  only the snapshots the policy took in its account");
  xs_snapshot_free_ids (ids, n);

  ok (xs_snapshot_task_expired (store, "task-1", "bob", "vol-1", 2, &ids,
                                &n) == 0, "task retention reads");
  is_str (joined (ids, n), "d1", "  beyond the newest 2 copies");
  xs_snapshot_free_ids (ids, n);
  ok (xs_snapshot_task_expired (store, "task-1", "bob", "vol-2", 0, &ids,
                                &n) == 0 && n == 0,
      "  none of another volume");
  xs_snapshot_free_ids (ids, n);

  ok (xs_snapshot_mark_auto (store, "m1", "asp-1") == 0,
      "mark a snapshot as a policy's");
  is_str (snapshot_column (cat, "policy_id", "m1"), "asp-1",
          "  its policy recorded");
  is_str (snapshot_column (cat, "creation_method", "m1"), "auto",
          "  made automatically");
  ok (xs_snapshot_mark_auto (store, "nothing", "asp-1") == 0,
      "  a missing snapshot is no error");

  ok (xs_snapshot_mark_task_copy (store, "m1", "task-x") == 0,
      "mark a copy for a task that does not exist");
  is_str (snapshot_column (cat, "task_id", "m1"), "", "  nothing changed");
  ok (xs_snapshot_mark_task_copy (store, "m1", "task-1") == 0,
      "mark a copy for task-1");
  is_str (snapshot_column (cat, "task_id", "m1"), "task-1",
          "  its task recorded");

  ok (xs_catalog_run (cat, "delete a task",
                      "DELETE FROM copy_tasks WHERE id = 'task-1'", "") == 1,
      "task-1 deleted");
  ok (xs_snapshot_task_expired (store, "task-1", "bob", "vol-1", 0, &ids,
                                &n) == 0 && n == 0,
      "  a deleted task's copies do not expire");
  xs_snapshot_free_ids (ids, n);
}

static void
test_adopt (struct xs_store *store)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  static const struct row rows[] = {
    SNAP ("a1", "admin", "vol-a", "a1", "available", 1, .policy_id = "asp-2"),
    SNAP ("a2", "admin", "vol-a", "a2", "available", 2, .policy_id = "asp-2"),
    SNAP ("a3", "admin", "vol-a", "a3", "available", 3, .policy_id = "asp-2"),
    SNAP ("c1", "bob", "vol-a", "a1", "available", 4,
          .origin = "copiedFrom:admin:local:a1", .method = "copy"),
    SNAP ("c2", "bob", "vol-a", "a2", "available", 5,
          .origin = "copiedFrom:admin:local:a2", .method = "copy"),
    SNAP ("c3", "bob", "vol-a", "renamed", "available", 6,
          .origin = "copiedFrom:admin:local:a3", .method = "copy"),
  };
  int ok_rows = 1;

  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    ok_rows &= insert_snapshot (cat, &rows[i]) == 0;
  ok (ok_rows
      && xs_catalog_run (cat, "insert a policy",
                         "INSERT INTO auto_policies (id, account, region,"
                         " name, every_s, retain, created_ns) VALUES"
                         " ('asp-2', 'admin', 'local', 'q', 3600, 2, 1)",
                         "") == 1
      && xs_catalog_run (cat, "insert a task",
                         "INSERT INTO copy_tasks (id, policy_id,"
                         " dest_account, dest_region, retain, created_ns)"
                         " VALUES ('task-2', 'asp-2', 'bob', 'local', 2, 1)",
                         "") == 1
      && insert_job (cat, "job-a1", "a1", "c1", "a1", "", "done") == 0
      && insert_job (cat, "job-a2", "a2", "c2", "a2", "by hand", "done") == 0
      && insert_job (cat, "job-a3", "a3", "c3", "renamed", "", "done") == 0,
      "finished copies of a policy's snapshots recorded");
  ok (xs_snapshot_adopt_task_copies (store, "task-2") == 0,
      "adopt the task's copies");
  is_str (snapshot_column (cat, "task_id", "c1"), "task-2",
          "  a copy named as its source, without a description, is the "
          "task's");
  is_str (snapshot_column (cat, "task_id", "c2"), "",
          "  one with a description is not");
  is_str (snapshot_column (cat, "task_id", "c3"), "",
          "  one named otherwise is not");
  ok (xs_snapshot_adopt_task_copies (store, "task-none") == 0,
      "  a task that does not exist adopts nothing");
}

static void
test_chain_summary (struct xs_store *store)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  static const struct row rows[] = {
    SNAP ("k1", "admin", "vol-k", "k1", "available", 1, .size = 1000,
          .stored = 10),
    SNAP ("k2", "admin", "vol-k", "k2", "available", 2, .size = 2000,
          .stored = 20),
    SNAP ("k3", "admin", "vol-k", "k3", "deleted", 3, .size = 4000,
          .stored = 40),
  };
  uint64_t points = 9, total = 9, stored = 9;
  int ok_rows = 1;

  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    ok_rows &= insert_snapshot (cat, &rows[i]) == 0;
  ok (ok_rows, "a chain recorded");
  ok (xs_snapshot_chain_summary (store, "vol-k", "local", &points, &total,
                                 &stored) == 0, "summarise the chain");
  ok (points == 2 && total == 3000 && stored == 30,
      "  its available snapshots counted (%" PRIu64 ", %" PRIu64 ", %"
      PRIu64 ")", points, total, stored);
  ok (xs_snapshot_chain_summary (store, "vol-k", "mars", &points, &total,
                                 &stored) == 0
      && points == 0 && total == 0 && stored == 0,
      "  none in another region");
}

static void
test_lookups (struct xs_store *store)
{
  struct xs_scope scope;
  struct xs_volume vol;
  char *name = NULL;

  is_int (xs_region_exists (store, "local"), 1, "region 'local' exists");
  is_int (xs_region_exists (store, "mars"), 0, "region 'mars' does not");

  xs_store_scope (store, NULL, NULL, &scope);
  ok (xs_volume_create (store, &scope, "data", 1 << 20, 4096, &vol) == 0,
      "create a volume");
  is_int (xs_volume_name_by_id (store, vol.id, &name), 0,
          "name a volume by its id");
  is_str (name ? name : "", "data", "  its name");
  free (name);
  is_int (xs_volume_name_by_id (store, "vol-none", &name), 1,
          "a missing volume has no name");
  ok (name == NULL, "  and none is returned");
  xs_volume_clear (&vol);
  xs_scope_clear (&scope);
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
    test_retention (store);
    test_adopt (store);
    test_chain_summary (store);
    test_lookups (store);
    xs_store_close (store);
  }
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
