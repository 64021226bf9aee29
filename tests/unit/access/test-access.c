/* xsnap: tests for lib/access/access.c, admin.c and share.c, over the rows
 * of lib/catalog/account.c — who may do what, in a real store.
 *
 * The decision order of access.h, each step against the next: a deny
 * beats ownership and administration; the owner and the administrator may
 * act; a sharee may read and make disks but not delete; an allow reaches
 * another account's resource only when its owner (or the administrator)
 * attached it.  Sharing: acceptance, organisations, limits from the
 * settings, expiry on the injected clock, no re-sharing, unsharing.
 * Accounts: organisations, the uid map, deletion refused while owning.
 * Administration (accounts, regions, settings, the uid map) decided by
 * the same evaluator, a deny holding against the administrator too; and
 * every delete's audit row written in the delete's transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "access/admin.h"
#include "catalog/account.h"
#include "catalog/audit.h"
#include "catalog/catalog.h"
#include "catalog/config.h"
#include "base/fileio.h"
#include "head/head.h"
#include "catalog/region.h"
#include "access/share.h"
#include "catalog/snapnew.h"
#include "catalog/snapshot.h"
#include "catalog/store.h"
#include "tap.h"

static const char allow_snapshots[] =
  "{\"version\": \"2.0\", \"statement\": [{\"effect\": \"allow\","
  " \"action\": \"xsnap:*Snapshot*\","
  " \"resource\": \"xsnap:*:alice:snapshot/*\"}]}";
static const char deny_delete[] =
  "{\"version\": \"2.0\", \"statement\": [{\"effect\": \"deny\","
  " \"action\": [\"xsnap:DeleteSnapshot\"], \"resource\": \"*\"}]}";

static const char deny_admin[] =
  "{\"version\": \"2.0\", \"statement\": [{\"effect\": \"deny\","
  " \"action\": [\"xsnap:DeleteAccount\", \"xsnap:CreateAccount\","
  " \"xsnap:CreateRegion\", \"xsnap:DeleteRegion\","
  " \"xsnap:SetConfig\", \"xsnap:MapUid\"], \"resource\": \"*\"}]}";
static const char allow_regions[] =
  "{\"version\": \"2.0\", \"statement\": [{\"effect\": \"allow\","
  " \"action\": \"xsnap:CreateRegion\", \"resource\": \"*\"}]}";

static struct xs_scope
scope_of (const char *account)
{
  return (struct xs_scope) { .account = (char *) account,
                             .region = (char *) "local" };
}

/* A snapshot of a new 1 MiB volume NAME of ACCOUNT. */
static void
make_snapshot (struct xs_store *store, const char *account, const char *name,
               struct xs_snapshot *snap)
{
  struct xs_scope scope = scope_of (account);
  struct xs_volume vol;

  struct xs_snapshot_op *op;
  struct xs_head *h;

  if (xs_volume_create (store, &scope, name, 1 << 20, 65536, &vol) == -1
      || (h = xs_volume_open_head (store, &vol)) == NULL
      || (op = xs_snapshot_start (store, h, &vol, "s1", snap)) == NULL
      || xs_snapshot_finish (op, NULL, NULL, NULL, snap) != XS_SNAPSHOT_AVAILABLE
      || xs_head_close (h) == -1)
    abort ();
  xs_volume_clear (&vol);
}

struct audit_count {
  const char *outcome, *action;
  long n;
};

static int
count_audit (const struct xs_audit_entry *entry, void *opaque)
{
  struct audit_count *c = opaque;

  if (strcmp (entry->outcome, c->outcome) == 0
      && strcmp (entry->action, c->action) == 0)
    c->n++;
  return 0;
}

static long
audited (struct xs_store *store, const char *outcome, const char *action)
{
  struct audit_count c = { outcome, action, 0 };

  if (xs_audit_list (store, NULL, 0, count_audit, &c) == -1)
    abort ();
  return c.n;
}

static void
test_accounts (struct xs_store *store)
{
  char *account;

  ok (xs_account_create (store, NULL, "alice", "Alice", "alice@example.com",
                         NULL) == 0, "create alice");
  ok (xs_account_create (store, NULL, "bob", NULL, NULL, NULL) == 0, "create bob");
  ok (xs_account_create (store, NULL, "carol", NULL, NULL, "alice") == 0,
      "create carol, a collaborator of alice");
  ok (xs_account_create (store, NULL, "dave", NULL, NULL, "carol") == 0,
      "create dave, a collaborator of carol");
  ok (xs_account_create (store, NULL, "alice", NULL, NULL, NULL) == -1,
      "a second alice is refused");
  error_contains ("already exists", "... saying it exists");
  ok (xs_account_create (store, NULL, "eve", NULL, "not-an-email", NULL) == -1,
      "a bad email is refused");
  ok (xs_account_create (store, NULL, "eve", NULL, NULL, "nobody") == -1,
      "a collaborator of nobody is refused");
  is_int (xs_account_same_organisation (store, "dave", "alice"), 1,
          "dave is in alice's organisation");
  is_int (xs_account_same_organisation (store, "bob", "alice"), 0,
          "bob is not");
  is_int (xs_account_is_collaborator (store, "dave", "alice"), 1,
          "dave is a collaborator of alice (through carol)");
  is_int (xs_account_is_collaborator (store, "alice", "dave"), 0,
          "alice is not a collaborator of dave");
  ok (xs_account_is_admin (store, "admin") && !xs_account_is_admin (store,
                                                                   "bob"),
      "admin is the administrator, bob is not");

  ok (xs_admin_map_uid (store, "admin", 1234, "bob") == 0, "map uid 1234 to bob");
  ok (xs_account_lookup_uid (store, 1234, &account) == 0
      && strcmp (account, "bob") == 0, "uid 1234 is bob");
  free (account);
  ok (xs_account_lookup_uid (store, 0, &account) == 0
      && strcmp (account, "admin") == 0, "root is the administrator");
  free (account);
  is_int (xs_account_lookup_uid (store, 4321, &account), 1,
          "an unmapped uid is nobody");
  ok (xs_admin_map_uid (store, "admin", 0, "bob") == -1, "root cannot be mapped");
  /* An unmap removes the mapping its permission was checked on, and no
   * other: one remapped in between stays.
   */
  ok (xs_account_unmap_uid (store, "admin", 1234, "alice") == -1,
      "unmapping uid 1234 from alice, which it no longer names: refused");
  error_contains ("uid 1234 is not mapped to 'alice'", "... saying so");
  ok (xs_account_lookup_uid (store, 1234, &account) == 0
      && strcmp (account, "bob") == 0, "uid 1234 is still bob");
  free (account);
  ok (xs_admin_map_uid (store, "admin", 1234, NULL) == 0
      && xs_account_lookup_uid (store, 1234, &account) == 1,
      "the administrator unmaps it");
  ok (xs_admin_map_uid (store, "admin", 1234, NULL) == -1,
      "unmapping it again: refused");
  error_contains ("uid 1234 is not mapped", "... saying so");
  ok (xs_admin_map_uid (store, "admin", 1234, "bob") == 0, "map it again");
  ok (xs_account_resolve_actor (store, 1234, "alice", &account) == -1,
      "bob may not act as alice");
  error_contains ("may not act as", "... saying so");
  ok (xs_account_resolve_actor (store, 0, "alice", &account) == 0
      && strcmp (account, "alice") == 0, "root may act as alice");
  free (account);
  ok (xs_admin_delete_account (store, "admin", "bob") == -1,
      "bob cannot be deleted while a uid maps to him");
  error_contains ("mapped uid", "... naming what it still has");
  ok (xs_admin_delete_account (store, "admin", "admin") == -1,
      "the administrator cannot be deleted");
}

static void
test_decisions (struct xs_store *store, const struct xs_snapshot *snap)
{
  struct xs_snapshot found;
  struct xs_scope bob = scope_of ("bob");

  ok (xs_access_snapshot (store, "alice", "xsnap:DeleteSnapshot", snap) == 0,
      "the owner may delete");
  ok (xs_access_snapshot (store, "admin", "xsnap:DeleteSnapshot", snap) == 0,
      "the administrator may delete");
  ok (xs_access_snapshot (store, "bob", "xsnap:ReadSnapshot", snap) == -1,
      "another account may not read");
  error_contains ("no policy document", "... and is told why");
  is_int (xs_access_find_snapshot (store, &bob, snap->id,
                                   "xsnap:ReadSnapshot", true, &found), 1,
          "to another account the snapshot looks missing");

  /* An allow bob attaches to himself reaches nothing of alice's. */
  ok (xs_access_attach_policy (store, "bob", "bob", "self", allow_snapshots,
                               strlen (allow_snapshots), "self.json") == 0,
      "bob attaches an allow to himself");
  ok (xs_access_snapshot (store, "bob", "xsnap:ReadSnapshot", snap) == -1,
      "which does not reach alice's snapshot");
  ok (xs_access_detach_policy (store, "bob", "bob", "self") == 0,
      "bob detaches it");

  /* Attached by the administrator, it does. */
  ok (xs_access_attach_policy (store, "admin", "bob", "grant",
                               allow_snapshots, strlen (allow_snapshots),
                               "grant.json") == 0,
      "the administrator attaches the same allow to bob");
  ok (xs_access_snapshot (store, "bob", "xsnap:ReadSnapshot", snap) == 0,
      "now bob may read alice's snapshot");
  is_int (xs_access_find_snapshot (store, &bob, snap->id,
                                   "xsnap:ReadSnapshot", true, &found), 0,
          "and finds it by id");
  xs_snapshot_clear (&found);
  ok (xs_access_snapshot (store, "bob", "xsnap:CreateVolume", snap) == -1,
      "the allow covers only the actions it names");

  /* A deny beats everything, the owner included. */
  ok (xs_access_attach_policy (store, "admin", "alice", "nodelete",
                               deny_delete, strlen (deny_delete),
                               "nodelete.json") == 0,
      "a deny of DeleteSnapshot attached to alice");
  ok (xs_access_snapshot (store, "alice", "xsnap:DeleteSnapshot",
                          snap) == -1,
      "alice may no longer delete her own snapshot");
  error_contains ("denies", "... because a policy denies it");
  ok (xs_access_snapshot (store, "alice", "xsnap:ReadSnapshot", snap) == 0,
      "but may still read it");
  ok (xs_access_attach_policy (store, "bob", "alice", "x", deny_delete,
                               strlen (deny_delete), "x.json") == -1,
      "bob may not attach documents to alice");
  ok (xs_access_attach_policy (store, "alice", "carol", "x", deny_delete,
                               strlen (deny_delete), "x.json") == 0,
      "alice may attach documents to her collaborator carol");
  ok (xs_access_attach_policy (store, "admin", "bob", "bad", "{\"version\":",
                               12, "bad.json") == -1,
      "a malformed document is refused");
  error_contains ("bad.json:1", "... naming the file and line");
  ok (xs_access_detach_policy (store, "admin", "alice", "nodelete") == 0
      && xs_access_detach_policy (store, "admin", "bob", "grant") == 0
      && xs_access_detach_policy (store, "alice", "carol", "x") == 0,
      "detach them");
  ok (audited (store, "denied", "xsnap:ReadSnapshot") >= 2,
      "denied reads are audited");
  ok (audited (store, "denied", "xsnap:AttachPolicyDoc") == 1,
      "the refused attach is audited");
}

static void
test_sharing (struct xs_store *store, const struct xs_snapshot *snap)
{
  struct xs_scope alice = scope_of ("alice"), bob = scope_of ("bob");
  struct xs_scope carol = scope_of ("carol");
  const char *with_bob[] = { "bob" }, *with_carol[] = { "carol" };
  const char *with_three[] = { "bob", "carol", "dave" };
  struct xs_snapshot seen, other;
  char id[XS_ID_MAX], now[32];
  int64_t year = INT64_C (365) * 86400 * 1000000000;

  ok (xs_share_snapshot (store, &alice, snap, with_bob, 1, 0) == 0,
      "alice shares her snapshot with bob");
  is_int (xs_snapshot_find (store, &bob, snap->id, true, &seen), 1,
          "bob does not see it before accepting");
  ok (xs_share_snapshot (store, &alice, snap, with_carol, 1, 0) == 0,
      "and with carol, of her organisation");
  is_int (xs_snapshot_find (store, &carol, snap->id, true, &seen), 0,
          "carol sees it at once");
  is_str (seen.creation_method, "shared", "... created by sharing");
  ok (seen.shared_from && strstr (seen.shared_from, "sharedFrom:alice:local:"),
      "... from alice");
  ok (xs_access_snapshot (store, "carol", "xsnap:CreateVolumeFromSnapshot",
                          &seen) == 0, "carol may make a disk from it");
  ok (xs_access_snapshot (store, "carol", "xsnap:DeleteSnapshot",
                          &seen) == -1, "but not delete it");
  ok (xs_share_snapshot (store, &carol, &seen, with_bob, 1, 0) == -1,
      "nor share it on");
  error_contains ("cannot be shared on", "... saying so");
  xs_snapshot_clear (&seen);

  ok (xs_catalog_set_setting (xs_store_catalog (store), "share.max_sharees",
                              "2") == 0, "limit: two sharees a snapshot");
  ok (xs_share_snapshot (store, &alice, snap, with_three, 3, 0) == -1,
      "a third sharee is refused");
  error_contains ("at most 2", "... naming the limit");
  ok (xs_share_snapshot (store, &alice, snap, with_bob, 1, 0) == 0,
      "renewing an existing share is not a new sharee");
  ok (xs_catalog_set_setting (xs_store_catalog (store), "share.max_shared",
                              "1") == 0, "limit: one shared snapshot");
  make_snapshot (store, "alice", "second", &other);
  ok (xs_share_snapshot (store, &alice, &other, with_bob, 1, 0) == -1,
      "a second shared snapshot is refused");
  error_contains ("at most 1", "... naming the limit");
  ok (audited (store, "failed", "xsnap:ShareSnapshot") == 2,
      "both refusals are audited");
  ok (xs_share_snapshot (store, &alice, snap, with_bob, 1,
                         xs_wall_clock_ns () + 4 * year) == -1,
      "a share longer than three years is refused");

  /* Accept, then expire on the injected clock. */
  {
    struct xs_catalog *cat = xs_store_catalog (store);
    sqlite3_stmt *stmt;

    xs_catalog_lock (cat);
    stmt = xs_catalog_prepare_bind (cat, "t", "SELECT id FROM shares WHERE"
                                    " sharee = 'bob'", "");
    ok (stmt && sqlite3_step (stmt) == SQLITE_ROW, "bob has a share");
    snprintf (id, sizeof id, "%s", sqlite3_column_text (stmt, 0));
    sqlite3_finalize (stmt);
    xs_catalog_unlock (cat);
  }
  ok (xs_share_accept (store, &carol, id) == -1,
      "carol cannot accept bob's share");
  ok (xs_share_accept (store, &bob, id) == 0, "bob accepts");
  is_int (xs_snapshot_find (store, &bob, snap->id, true, &seen), 0,
          "now bob sees it");
  xs_snapshot_clear (&seen);
  snprintf (now, sizeof now, "%lld",
            (long long) ((xs_wall_clock_ns () + 4 * year) / 1000000000));
  setenv ("XSNAP_NOW", now, 1);
  is_int (xs_snapshot_find (store, &bob, snap->id, true, &seen), 1,
          "four years on, the share has expired");
  unsetenv ("XSNAP_NOW");
  ok (xs_unshare (store, &alice, "snapshot", snap->id, "snapshot s1",
                  with_bob, 1) == 0, "alice unshares it from bob");
  is_int (xs_snapshot_find (store, &bob, snap->id, true, &seen), 1,
          "bob no longer sees it");
  ok (xs_unshare (store, &alice, "snapshot", snap->id, "snapshot s1",
                  with_bob, 1) == -1, "unsharing twice is refused");
  ok (xs_share_delete_snapshot (store, "alice", NULL, &other) == 0, "delete the second snapshot");
  xs_snapshot_clear (&other);
}

/* Store administration goes through the evaluator: a deny attached to
 * the administrator holds; ownership gives nothing over accounts,
 * regions and settings; only an allow the administrator attached
 * delegates.
 */
static void
test_administration (struct xs_store *store)
{
  struct xs_account found;

  ok (xs_account_create (store, NULL, "ivy", NULL, NULL, "carol") == 0
      && xs_account_create (store, NULL, "jay", NULL, NULL, NULL) == 0,
      "create ivy (below carol, below alice) and jay");
  ok (xs_access_attach_policy (store, "admin", "admin", "deny", deny_admin,
                               strlen (deny_admin), "deny.json") == 0,
      "a deny of administration attached to the administrator");
  ok (xs_admin_delete_account (store, "admin", "jay") == -1,
      "the administrator may not delete an account under it");
  error_contains ("denies", "... because a policy denies it");
  is_int (xs_account_find (store, "jay", true, &found), 0,
          "jay is still there");
  xs_account_clear (&found);
  ok (xs_admin_create_account (store, "admin", "kim", NULL, NULL, NULL) == -1,
      "nor create one");
  ok (xs_admin_add_region (store, "admin", "r9", NULL, NULL) == -1,
      "nor add a region");
  error_contains ("denies", "... because a policy denies it");
  ok (xs_admin_remove_region (store, "admin", "local") == -1,
      "nor remove one");
  ok (xs_admin_set_config (store, "admin", "share.max_days", "5") == -1,
      "nor change a setting");
  ok (xs_admin_map_uid (store, "admin", 777, "jay") == -1,
      "nor map a uid");
  is_int (audited (store, "denied", "xsnap:DeleteAccount"), 1,
          "the refused delete is audited");
  is_int (audited (store, "denied", "xsnap:SetConfig"), 1,
          "the refused setting is audited");
  ok (xs_access_detach_policy (store, "admin", "admin", "deny") == 0,
      "detach the deny");
  ok (xs_admin_delete_account (store, "admin", "jay") == 0,
      "now the administrator deletes jay");
  is_int (audited (store, "allowed", "xsnap:DeleteAccount"), 1,
          "... audited");

  ok (xs_admin_delete_account (store, "bob", "bob") == -1,
      "an account may not delete itself");
  ok (xs_admin_delete_account (store, "bob", "ivy") == -1,
      "nor one outside its organisation");
  ok (xs_admin_create_account (store, "alice", "lee", NULL, NULL, "carol") == 0,
      "alice may create an account below carol, below her");
  ok (xs_admin_delete_account (store, "alice", "lee") == 0,
      "and delete it");
  ok (xs_admin_map_uid (store, "alice", 778, "carol") == -1,
      "but the uid map is the administrator's alone");
  ok (xs_admin_set_config (store, "alice", "share.max_days", "5") == -1,
      "as are the settings");
  error_contains ("only the administrator", "... saying so");

  ok (xs_access_store (store, "bob", "xsnap:CreateRegion", "region",
                       "r9") == -1, "bob may not add regions");
  ok (xs_access_attach_policy (store, "bob", "bob", "self", allow_regions,
                               strlen (allow_regions), "self.json") == 0
      && xs_access_store (store, "bob", "xsnap:CreateRegion", "region",
                          "r9") == -1,
      "an allow he attached himself does not delegate it");
  ok (xs_access_detach_policy (store, "bob", "bob", "self") == 0
      && xs_access_attach_policy (store, "admin", "bob", "granted",
                                  allow_regions, strlen (allow_regions),
                                  "granted.json") == 0
      && xs_access_store (store, "bob", "xsnap:CreateRegion", "region",
                          "r9") == 0,
      "one the administrator attached does");
  ok (xs_access_store (store, "bob", "xsnap:DeleteRegion", "region",
                       "r9") == -1, "... for the actions it names only");
  ok (xs_access_detach_policy (store, "admin", "bob", "granted") == 0,
      "detach it");
  ok (xs_access_list_policies (store, "bob", "alice", NULL, NULL) == -1,
      "bob may not read alice's policy documents");
}

static int
refuse_audit_rows (struct xs_store *store, bool on)
{
  return sqlite3_exec (xs_catalog_db (xs_store_catalog (store)),
                       on ? "CREATE TEMP TRIGGER refuse_audit BEFORE INSERT"
                            " ON main.audit BEGIN SELECT RAISE(ABORT,"
                            " 'the audit log is unavailable'); END"
                          : "DROP TRIGGER temp.refuse_audit",
                       NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* A change and its audit row commit together: when the row cannot be
 * written, the change does not happen.
 */
static void
test_audit_in_transaction (struct xs_store *store)
{
  struct xs_scope alice = scope_of ("alice");
  struct xs_snapshot snap, seen;
  struct xs_volume vol, again;
  struct xs_account found;
  char *value;

  make_snapshot (store, "alice", "tx", &snap);
  if (xs_volume_find (store, &alice, "tx", false, &vol) != 0
      || xs_account_create (store, NULL, "mia", NULL, NULL, NULL) == -1)
    abort ();
  ok (refuse_audit_rows (store, true) == 0,
      "the catalog refuses audit rows");
  ok (xs_share_delete_snapshot (store, "alice", NULL, &snap) == -1,
      "a snapshot delete then fails");
  ok (xs_snapshot_lookup_id (store, snap.id, &seen) == 0
      && strcmp (seen.status, "available") == 0,
      "... and the snapshot is still available");
  xs_snapshot_clear (&seen);
  ok (xs_volume_delete (store, "alice", &vol) == -1,
      "a volume delete fails");
  is_int (xs_volume_find (store, &alice, "tx", true, &again), 0,
          "... and the volume is still there");
  xs_volume_clear (&again);
  ok (xs_admin_delete_account (store, "admin", "mia") == -1,
      "an account delete fails");
  is_int (xs_account_find (store, "mia", true, &found), 0,
          "... and the account is still there");
  xs_account_clear (&found);
  ok (xs_admin_set_config (store, "admin", "share.max_days", "7") == -1,
      "a setting fails");
  ok (xs_catalog_get_setting (xs_store_catalog (store), "share.max_days",
                              &value) != 0, "... and is not set");
  ok (refuse_audit_rows (store, false) == 0, "audit rows are back");
  ok (xs_share_delete_snapshot (store, "alice", NULL, &snap) == 0
      && xs_volume_delete (store, "alice", &vol) == 0
      && xs_admin_delete_account (store, "admin", "mia") == 0,
      "now the deletes work");
  is_int (audited (store, "allowed", "xsnap:DeleteVolume"), 1,
          "... each audited once");
  xs_snapshot_clear (&snap);
  xs_volume_clear (&vol);
}

/* A decision that cannot be made is not a refusal: a stored document
 * that no longer parses makes a filtering lookup fail, where it used to
 * hide the snapshot as if it were missing.
 */
static void
test_undecided (struct xs_store *store, const struct xs_snapshot *snap)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_access_target target = {
    .owner = snap->account, .region = snap->region, .type = "snapshot",
    .id = snap->id, .label = "the snapshot",
  };
  struct xs_scope bob = scope_of ("bob");
  struct xs_snapshot found;
  int64_t changed;

  is_int (xs_access_decide (store, "bob", "xsnap:ReadSnapshot", &target,
                            true), XS_ACCESS_DENIED,
          "another account's read: denied");
  ok (xs_access_attach_policy (store, "admin", "bob", "damaged",
                               allow_snapshots, strlen (allow_snapshots),
                               "damaged.json") == 0,
      "a document attached to bob");
  xs_catalog_lock (cat);
  changed = xs_catalog_run (cat, "damage a document",
                            "UPDATE policy_docs SET document = '{\"Vers'"
                            " WHERE account = 'bob' AND name = 'damaged'",
                            "");
  xs_catalog_unlock (cat);
  is_int (changed, 1, "its stored text damaged behind xsnap's back");
  is_int (xs_access_decide (store, "bob", "xsnap:ReadSnapshot", &target,
                            true), XS_ACCESS_UNDECIDED,
          "a decision over it cannot be made");
  error_contains ("stored policy document", "... and says why");
  is_int (xs_access_find_snapshot (store, &bob, snap->id,
                                   "xsnap:ReadSnapshot", true, &found), -1,
          "finding the snapshot by id fails rather than calling it missing");
  ok (xs_access_detach_policy (store, "admin", "bob", "damaged") == 0,
      "detach it");
  is_int (xs_access_find_snapshot (store, &bob, snap->id,
                                   "xsnap:ReadSnapshot", true, &found), 1,
          "then the snapshot looks missing to bob again");
}

int
main (void)
{
  char *dir = tap_tmpdir (), *path;
  struct xs_store *store;
  struct xs_snapshot snap;

  if (asprintf (&path, "%s/store", dir) == -1)
    abort ();
  ok (xs_store_init (path, NULL, NULL) == 0, "init a store");
  store = xs_store_open (path);
  if (store == NULL)
    abort ();
  test_accounts (store);
  make_snapshot (store, "alice", "data", &snap);
  test_decisions (store, &snap);
  test_undecided (store, &snap);
  test_sharing (store, &snap);
  test_administration (store);
  test_audit_in_transaction (store);
  ok (xs_admin_delete_account (store, "admin", "alice") == -1,
      "alice cannot be deleted while she has volumes");
  xs_snapshot_clear (&snap);
  xs_store_close (store);
  tap_rmtree (dir);
  free (path);
  free (dir);
  return done_testing ();
}
