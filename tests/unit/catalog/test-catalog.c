/* Unit tests: catalog creation, migrations, version checks, stores. */
#include <unistd.h>

#include "tap.h"

#include "catalog/catalog.h"
#include "catalog/region.h"
#include "catalog/store.h"
#include "catalog/volume.h"

static int
count_rows (struct xs_catalog *cat, const char *sql)
{
  sqlite3_stmt *stmt = xs_catalog_prepare (cat, sql, "count");
  int n = -1;

  if (stmt && sqlite3_step (stmt) == SQLITE_ROW)
    n = sqlite3_column_int (stmt, 0);
  sqlite3_finalize (stmt);
  return n;
}

static void
test_migrations (const char *dir)
{
  char path[4096];
  struct xs_catalog *cat;
  int latest = xs_catalog_latest_version ();

  snprintf (path, sizeof path, "%s/migrate.db", dir);
  ok (latest >= 2, "at least two schema versions exist (%d)", latest);

  /* A catalog made by an older xsnap (version 1), with data in it. */
  cat = xs_catalog_open_at_version (path, 1);
  ok (cat != NULL, "created a version 1 catalog");
  is_int (xs_catalog_version (cat), 1, "it is at version 1");
  ok (xs_catalog_exec (cat, "INSERT INTO accounts (id, created_ns)"
                       " VALUES ('alice', 1)", "insert") == 0,
      "version 1 data written");
  is_int (count_rows (cat, "SELECT count(*) FROM sqlite_master"
                      " WHERE name = 'volumes'"), 0,
          "version 1 has no volumes table");
  xs_catalog_close (cat);

  /* Opening it with this build migrates it to the latest version. */
  cat = xs_catalog_open (path, false);
  ok (cat != NULL, "reopened with migrations");
  is_int (xs_catalog_version (cat), latest, "migrated to the latest version");
  is_int (count_rows (cat, "SELECT count(*) FROM accounts WHERE id = 'alice'"),
          1, "data of version 1 survived the migration");
  is_int (count_rows (cat, "SELECT count(*) FROM sqlite_master"
                      " WHERE name = 'volumes'"), 1,
          "the volumes table now exists");
  ok (xs_catalog_exec (cat, "PRAGMA user_version = 999", "bump") == 0,
      "pretend a newer xsnap wrote the file");
  xs_catalog_close (cat);

  cat = xs_catalog_open (path, false);
  ok (cat == NULL, "a newer schema is refused");
  error_contains ("newer than this xsnap supports", "  with a clear message");

  snprintf (path, sizeof path, "%s/missing.db", dir);
  ok (xs_catalog_open (path, false) == NULL, "missing catalog refused");
  error_contains ("cannot open catalog", "  with a message");
}

static void
test_wal_and_settings (const char *dir)
{
  char path[4096], *value = NULL;
  struct xs_catalog *cat;
  sqlite3_stmt *stmt;

  snprintf (path, sizeof path, "%s/settings.db", dir);
  cat = xs_catalog_open (path, true);
  stmt = xs_catalog_prepare (cat, "PRAGMA journal_mode", "journal mode");
  ok (stmt && sqlite3_step (stmt) == SQLITE_ROW
      && strcmp ((const char *) sqlite3_column_text (stmt, 0), "wal") == 0,
      "catalog runs in WAL mode");
  sqlite3_finalize (stmt);
  is_int (xs_catalog_get_setting (cat, "nothing", &value), 1,
          "missing setting returns 1");
  ok (xs_catalog_set_setting (cat, "k", "v1") == 0
      && xs_catalog_set_setting (cat, "k", "v2") == 0, "set twice");
  ok (xs_catalog_get_setting (cat, "k", &value) == 0 && value
      && strcmp (value, "v2") == 0, "setting overwritten");
  free (value);
  is_int (xs_catalog_reset_setting (cat, "k", "reset a setting"), 1,
          "reset a setting");
  is_int (xs_catalog_get_setting (cat, "k", &value), 1, "  it is gone");
  is_int (xs_catalog_reset_setting (cat, "k", "reset a setting"), 0,
          "  resetting it again removes nothing");
  xs_catalog_close (cat);
}

static void
test_region_lookup (struct xs_store *store)
{
  char *group = NULL, *backend = NULL;
  int64_t created_ns = 0;

  ok (xs_region_lookup (store, "local", &group, &created_ns, &backend) == 0,
      "look up the first region");
  is_str (group, "default", "  its group");
  ok (backend && strncmp (backend, "file://", 7) == 0
      && strstr (backend, "/regions/local/repo") != NULL,
      "  its backend, inside the store");
  ok (created_ns > 0, "  when it was made");
  free (group);
  free (backend);
  group = backend = NULL;
  ok (xs_region_lookup (store, "local", NULL, NULL, &backend) == 0
      && backend != NULL, "  asking only for its backend");
  free (backend);
  backend = (char *) "unchanged";
  is_int (xs_region_lookup (store, "mars", &group, &created_ns, &backend), 1,
          "no such region");
  ok (group == NULL && backend == NULL, "  and nothing returned");
  is_str (tap_take_error (), "", "  not reported");
}

static void
test_store (const char *dir)
{
  char path[4096];
  struct xs_store *store;
  struct xs_scope scope;
  struct xs_volume vol;

  snprintf (path, sizeof path, "%s/store", dir);
  ok (xs_store_open (path) == NULL, "opening a missing store fails");
  error_contains ("no xsnap store at", "  with a hint");
  ok (xs_store_init (path, NULL, NULL) == 0, "init a store");
  ok (xs_store_init (path, NULL, NULL) == -1, "a second init is refused");
  error_contains ("already holds an xsnap store", "  with a message");
  store = xs_store_open (path);
  ok (store != NULL, "open the store");
  ok (xs_store_scope (store, NULL, NULL, &scope) == 0
      && strcmp (scope.account, "admin") == 0
      && strcmp (scope.region, "local") == 0,
      "default scope is admin in local");
  xs_scope_clear (&scope);
  ok (xs_store_scope (store, "nobody", NULL, &scope) == -1,
      "unknown account refused");
  error_contains ("no account 'nobody'", "  named in the message");
  ok (xs_store_scope (store, NULL, "mars", &scope) == -1,
      "unknown region refused");
  error_contains ("no region 'mars'", "  named in the message");

  test_region_lookup (store);

  xs_store_scope (store, NULL, NULL, &scope);
  ok (xs_volume_create (store, &scope, "v1", 1 << 20, 4096, &vol) == 0,
      "create a volume");
  xs_volume_clear (&vol);
  ok (xs_volume_create (store, &scope, "v1", 1 << 20, 4096, &vol) == -1,
      "duplicate name refused");
  error_contains ("already exists", "  with a message");
  ok (xs_volume_create (store, &scope, "v2", 1 << 20, 3000, &vol) == -1,
      "block size not a power of two refused");
  ok (xs_volume_create (store, &scope, "v2", 1 << 20, 8 << 20, &vol) == -1,
      "block size above 4M refused");
  ok (xs_volume_create (store, &scope, "v2", 5000, 4096, &vol) == -1,
      "size not a multiple of the block size refused");
  error_contains ("not a multiple of the block size", "  with the reason");
  ok (xs_volume_find (store, &scope, "v2", true, &vol) == 1,
      "refused creations left nothing behind");
  ok (xs_volume_find (store, &scope, "v1", false, &vol) == 0
      && vol.size == 1 << 20 && vol.block_size == 4096, "find v1 by name");
  {
    struct xs_volume by_id;
    ok (xs_volume_find (store, &scope, vol.id, false, &by_id) == 0
        && strcmp (by_id.name, "v1") == 0, "find v1 by id");
    xs_volume_clear (&by_id);
  }
  ok (xs_volume_resize (store, &vol, 2 << 20) == 0 && vol.size == 2 << 20,
      "grow v1");
  ok (xs_volume_resize (store, &vol, 1 << 20) == -1, "shrink refused");
  error_contains ("cannot shrink", "  with a message");
  ok (xs_volume_delete (store, "admin", &vol) == 0, "delete v1");
  xs_volume_clear (&vol);
  ok (xs_volume_find (store, &scope, "v1", true, &vol) == 1, "v1 is gone");
  xs_scope_clear (&scope);
  xs_store_close (store);
}

int
main (void)
{
  char *dir = tap_tmpdir ();

  test_migrations (dir);
  test_wal_and_settings (dir);
  test_store (dir);
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
