/* Unit tests: the snapshot rows gc reclaims, keeps and forgets, and the
 * lookup of a copy's previous copy (catalog/snapshot.h).
 */
#include <unistd.h>

#include "tap.h"

#include "catalog/catalog.h"
#include "catalog/snapshot.h"
#include "catalog/store.h"
#include "catalog/volume.h"

/* Ids handed to a listing, joined by spaces. */
struct seen {
  char text[512];
  int stop_after;               /* return -1 after this many (0: never) */
  int count;
};

static int
see_id (const char *id, void *opaque)
{
  struct seen *seen = opaque;
  size_t len = strlen (seen->text);

  snprintf (seen->text + len, sizeof seen->text - len, "%s%s",
            len ? " " : "", id);
  seen->count++;
  return seen->stop_after && seen->count >= seen->stop_after ? -1 : 0;
}

static int
run (struct xs_store *store, const char *sql)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int r;

  xs_catalog_lock (cat);
  r = xs_catalog_exec (cat, sql, "set up the test");
  xs_catalog_unlock (cat);
  return r;
}

/* Add a snapshot row: the columns that matter here, the rest defaults. */
static int
add_snapshot (struct xs_store *store, const char *id, const char *account,
              const char *region, const char *volume_id, const char *status,
              int64_t created_ns, const char *origin, const char *key_id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "add a snapshot row",
                      "INSERT INTO snapshots (id, account, region, volume_id,"
                      " volume_name, name, status, size, block_size,"
                      " created_ns, origin, key_id)"
                      " VALUES (?, ?, ?, ?, 'v', ?, ?, 65536, 4096, ?, ?, ?)",
                      "ssssssiss", id, account, region, volume_id, id,
                      status, created_ns, origin, key_id);
  xs_catalog_unlock (cat);
  return r == 1 ? 0 : -1;
}

static int
exists (struct xs_store *store, const char *id)
{
  struct xs_snapshot snap;
  int r = xs_snapshot_lookup_id (store, id, &snap);

  if (r == 0)
    xs_snapshot_clear (&snap);
  return r == 0;
}

static void
test_gc_rows (struct xs_store *store, const struct xs_scope *scope)
{
  struct xs_volume vol;
  struct seen seen;
  char sql[256];

  ok (run (store, "INSERT INTO accounts (id, created_ns) VALUES ('bob', 1);"
           "INSERT INTO regions (name, backend, created_ns)"
           " VALUES ('far', 'file:///nowhere', 1)") == 0,
      "a second account and region");
  ok (xs_volume_create (store, scope, "v1", 1 << 20, 4096, &vol) == 0,
      "create a volume");
  ok (add_snapshot (store, "snap-a-avail", "admin", "local", vol.id,
                    "available", 1, "", "") == 0
      && add_snapshot (store, "snap-b-free", "admin", "local", vol.id,
                       "deleted", 2, "", "") == 0
      && add_snapshot (store, "snap-c-base", "admin", "local", vol.id,
                       "deleted", 3, "", "") == 0
      && add_snapshot (store, "snap-d-source", "admin", "local", vol.id,
                       "deleted", 4, "", "") == 0
      && add_snapshot (store, "snap-e-pending", "admin", "local", vol.id,
                       "pending", 5, "", "") == 0
      && add_snapshot (store, "snap-f-bob", "bob", "local", vol.id,
                       "deleted", 6, "", "") == 0
      && add_snapshot (store, "snap-g-far", "admin", "far", vol.id,
                       "pending", 7, "", "") == 0,
      "snapshot rows of every kind");
  snprintf (sql, sizeof sql, "UPDATE volumes SET base_snapshot_id ="
            " 'snap-c-base', source_snapshot_id = 'snap-d-source'"
            " WHERE id = '%s'", vol.id);
  ok (run (store, sql) == 0, "the volume needs two deleted snapshots");

  seen = (struct seen) { .count = 0 };
  ok (xs_snapshot_list_reclaimable (store, "admin", "local", see_id,
                                    &seen) == 0, "list reclaimable");
  is_str (seen.text, "snap-b-free",
          "  only the deleted snapshot no volume needs");
  seen = (struct seen) { .count = 0 };
  ok (xs_snapshot_list_reclaimable (store, "bob", "local", see_id,
                                    &seen) == 0, "list bob's reclaimable");
  is_str (seen.text, "snap-f-bob", "  of that account only");
  seen = (struct seen) { .count = 0 };
  ok (xs_snapshot_list_retained (store, "admin", "local", see_id,
                                 &seen) == 0, "list retained");
  is_str (seen.text, "snap-a-avail snap-c-base snap-d-source",
          "  available and needed deleted ones, by id, no pending one");
  seen = (struct seen) { .stop_after = 1 };
  is_int (xs_snapshot_list_retained (store, "admin", "local", see_id,
                                     &seen), -1,
          "a listing stops when its function fails");
  is_int (seen.count, 1, "  after the first id");

  is_int (xs_snapshot_forget_pending_in_region (store, "local"), 1,
          "forget the pending rows of a region");
  ok (!exists (store, "snap-e-pending") && exists (store, "snap-g-far"),
      "  those of that region only");
  is_int (xs_snapshot_forget_pending_in_region (store, "local"), 0,
          "  none left the second time");

  is_int (xs_snapshot_forget_reclaimed (store, "snap-b-free"), 1,
          "forget a reclaimed snapshot");
  ok (!exists (store, "snap-b-free") && exists (store, "snap-c-base"),
      "  its row only");
  is_int (xs_snapshot_forget_reclaimed (store, "snap-b-free"), 0,
          "  nothing to forget the second time");

  xs_volume_clear (&vol);
}

static void
test_previous_copy (struct xs_store *store)
{
  struct xs_scope bob = { (char *) "bob", (char *) "local" };
  struct xs_scope far = { (char *) "bob", (char *) "far" };
  char source[XS_ID_MAX], dest[XS_ID_MAX];

  ok (add_snapshot (store, "snap-src1", "admin", "local", "vol-x",
                    "available", 10, "", "") == 0
      && add_snapshot (store, "snap-copy1", "bob", "local", "vol-y",
                       "available", 11, "copiedFrom:admin:local:snap-src1",
                       "key-1") == 0
      && add_snapshot (store, "snap-copy2", "bob", "local", "vol-y",
                       "available", 12, "copiedFrom:admin:local:snap-src1",
                       "key-1") == 0
      && add_snapshot (store, "snap-copy3", "bob", "local", "vol-y",
                       "deleted", 13, "copiedFrom:admin:local:snap-src1",
                       "key-1") == 0,
      "a source and its copies");
  ok (xs_snapshot_find_previous_copy (store, &bob, "key-1", "vol-x", 4096,
                                      source, dest) == 0,
      "find the previous copy");
  is_str (dest, "snap-copy2", "  the newest available copy");
  is_str (source, "snap-src1", "  and its source");
  is_int (xs_snapshot_find_previous_copy (store, &bob, "key-2", "vol-x",
                                          4096, source, dest), 1,
          "none under another key");
  is_int (xs_snapshot_find_previous_copy (store, &bob, "key-1", "vol-x",
                                          8192, source, dest), 1,
          "none with another block size");
  is_int (xs_snapshot_find_previous_copy (store, &far, "key-1", "vol-x",
                                          4096, source, dest), 1,
          "none in another region");
  ok (run (store, "UPDATE snapshots SET status = 'deleted'"
           " WHERE id = 'snap-src1'") == 0, "delete the source");
  is_int (xs_snapshot_find_previous_copy (store, &bob, "key-1", "vol-x",
                                          4096, source, dest), 1,
          "none once the source is gone");
}

int
main (void)
{
  char *dir = tap_tmpdir ();
  char path[4096];
  struct xs_store *store;
  struct xs_scope scope;

  snprintf (path, sizeof path, "%s/store", dir);
  ok (xs_store_init (path, NULL, NULL) == 0, "init a store");
  store = xs_store_open (path);
  ok (store != NULL && xs_store_scope (store, NULL, NULL, &scope) == 0,
      "open it");
  if (store) {
    test_gc_rows (store, &scope);
    test_previous_copy (store);
    xs_scope_clear (&scope);
    xs_store_close (store);
  }
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
