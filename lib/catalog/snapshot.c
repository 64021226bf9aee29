/* xsnap: snapshot records and the orchestration of taking one (see
 * snapshot.h).  The sealing itself is in seal.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "catalog/audit.h"
#include "base/error.h"
#include "base/fileio.h"
#include "catalog/keys.h"
#include "base/names.h"
#include "repo/repo.h"
#include "head/seal.h"
#include "catalog/snapshot.h"

#define SNAPSHOT_COLUMNS                                                \
  "id, account, region, volume_id, volume_name, name, parent_id, status," \
  " root_hash, creation_method, size, block_size, created_ns,"          \
  " changed_blocks, stored_bytes, origin, description, key_id, source_root"

void
xs_snapshot_clear (struct xs_snapshot *snap)
{
  free (snap->account);
  free (snap->region);
  free (snap->volume_id);
  free (snap->volume_name);
  free (snap->name);
  free (snap->parent_id);
  free (snap->status);
  free (snap->root_hash);
  free (snap->creation_method);
  free (snap->shared_from);
  free (snap->origin);
  free (snap->description);
  free (snap->key_id);
  free (snap->source_root);
  memset (snap, 0, sizeof *snap);
}

json_t *
xs_snapshot_to_json (const struct xs_snapshot *snap)
{
  char created[32];

  xs_format_utc (snap->created_ns, created, sizeof created);
  return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I,"
                    " s:s, s:I, s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:b,"
                    " s:s}",
                    "id", snap->id, "name", snap->name,
                    "volume", snap->volume_name,
                    "volume_id", snap->volume_id,
                    "account", snap->account, "region", snap->region,
                    "parent", snap->parent_id, "status", snap->status,
                    "size", (json_int_t) snap->size,
                    "block_size", (json_int_t) snap->block_size,
                    "created", created,
                    "created_ns", (json_int_t) snap->created_ns,
                    "root_hash", snap->root_hash,
                    "changed_blocks", (json_int_t) snap->changed_blocks,
                    "stored_bytes", (json_int_t) snap->stored_bytes,
                    "creation_method", snap->creation_method,
                    "shared_from",
                    snap->shared_from ? snap->shared_from : "",
                    "origin", snap->origin ? snap->origin : "",
                    "description",
                    snap->description ? snap->description : "",
                    "encrypted", snap->key_id && snap->key_id[0] != '\0',
                    "key_id", snap->key_id ? snap->key_id : "");
}

static int
row_to_snapshot (sqlite3_stmt *stmt, struct xs_snapshot *snap)
{
  bool failed = false;

  memset (snap, 0, sizeof *snap);
  snprintf (snap->id, sizeof snap->id, "%s",
            (const char *) sqlite3_column_text (stmt, 0));
  snap->account = xs_catalog_column_dup (stmt, 1, &failed);
  snap->region = xs_catalog_column_dup (stmt, 2, &failed);
  snap->volume_id = xs_catalog_column_dup (stmt, 3, &failed);
  snap->volume_name = xs_catalog_column_dup (stmt, 4, &failed);
  snap->name = xs_catalog_column_dup (stmt, 5, &failed);
  snap->parent_id = xs_catalog_column_dup (stmt, 6, &failed);
  snap->status = xs_catalog_column_dup (stmt, 7, &failed);
  snap->root_hash = xs_catalog_column_dup (stmt, 8, &failed);
  snap->creation_method = xs_catalog_column_dup (stmt, 9, &failed);
  snap->size = (uint64_t) sqlite3_column_int64 (stmt, 10);
  snap->block_size = (uint32_t) sqlite3_column_int64 (stmt, 11);
  snap->created_ns = sqlite3_column_int64 (stmt, 12);
  snap->changed_blocks = (uint64_t) sqlite3_column_int64 (stmt, 13);
  snap->stored_bytes = (uint64_t) sqlite3_column_int64 (stmt, 14);
  snap->origin = xs_catalog_column_dup (stmt, 15, &failed);
  snap->description = xs_catalog_column_dup (stmt, 16, &failed);
  snap->key_id = xs_catalog_column_dup (stmt, 17, &failed);
  snap->source_root = xs_catalog_column_dup (stmt, 18, &failed);
  if (failed) {
    xs_error ("cannot read snapshot %s: %m", snap->id);
    xs_snapshot_clear (snap);
    return -1;
  }
  return 0;
}

/* Is the snapshot row shared with the caller (?1) at time ?6?  Only
 * available snapshots are shared; a share counts once its sharee accepted
 * it and until it expires; a chain share covers every snapshot of one
 * volume, present and future.
 */
#define SHARED_WITH_CALLER                                              \
  " (status = 'available' AND EXISTS (SELECT 1 FROM shares AS sh"       \
  "   WHERE sh.sharee = ?1 AND sh.status = 'accepted'"                  \
  "   AND sh.expires_ns > ?6 AND sh.region = snapshots.region"          \
  "   AND (sh.kind = 'snapshot' AND sh.resource_id = snapshots.id"      \
  "        OR sh.kind = 'chain'"                                        \
  "           AND sh.resource_id = snapshots.volume_id)))"

/* A snapshot of another account seen through a share is shown as the
 * clouds show it: creation method "shared", and where it came from.
 */
static int
mark_if_shared (const struct xs_scope *scope, struct xs_snapshot *snap)
{
  char *method = NULL;

  if (strcmp (snap->account, scope->account) == 0)
    return 0;
  free (snap->shared_from);
  snap->shared_from = NULL;
  if (asprintf (&snap->shared_from, "sharedFrom:%s:%s:%s", snap->account,
                snap->region, snap->id) == -1
      || (method = strdup ("shared")) == NULL) {
    snap->shared_from = NULL;
    xs_error ("cannot describe shared snapshot %s: %m", snap->id);
    return -1;
  }
  free (snap->creation_method);
  snap->creation_method = method;
  return 0;
}

/* Split "VOL@NAME" into its halves (malloc'd); an id has no '@'. */
static int
split_spec (const char *spec, char **volume, char **name)
{
  const char *at = strchr (spec, '@');

  *volume = *name = NULL;
  if (at == NULL)
    return 0;
  *volume = strndup (spec, (size_t) (at - spec));
  *name = strdup (at + 1);
  if (*volume == NULL || *name == NULL) {
    xs_error ("cannot look up snapshot '%s': %m", spec);
    free (*volume);
    free (*name);
    return -1;
  }
  return 0;
}

int
xs_snapshot_find (struct xs_store *store, const struct xs_scope *scope,
                  const char *spec, bool quiet, struct xs_snapshot *snap)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  char *volume, *name;
  int r = -1;

  if (split_spec (spec, &volume, &name) == -1)
    return -1;
  xs_catalog_lock (cat);
  /* Shared snapshots are found by id only: their names belong to their
   * owner's namespace.
   */
  stmt = xs_catalog_prepare_bind (cat, "look up a snapshot",
                                  "SELECT " SNAPSHOT_COLUMNS " FROM snapshots"
                                  " WHERE region = ?2 AND status != 'deleted'"
                                  " AND (account = ?1"
                                  "      AND (?3 IS NULL AND id = ?5"
                                  "           OR volume_name = ?3"
                                  "              AND name = ?4)"
                                  "      OR ?3 IS NULL AND id = ?5"
                                  "         AND account != ?1 AND"
                                  SHARED_WITH_CALLER ")", "sssssi",
                                  scope->account, scope->region, volume,
                                  name, spec, xs_wall_clock_ns ());
  if (stmt == NULL)
    goto out;
  switch (sqlite3_step (stmt)) {
  case SQLITE_ROW:
    r = row_to_snapshot (stmt, snap);
    if (r == 0)
      r = mark_if_shared (scope, snap);
    break;
  case SQLITE_DONE:
    if (!quiet)
      xs_error ("no snapshot '%s' in account '%s', region '%s'", spec,
                scope->account, scope->region);
    r = 1;
    break;
  default:
    xs_catalog_report (cat, "look up a snapshot");
  }
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  free (volume);
  free (name);
  return r;
}

int
xs_snapshot_list (struct xs_store *store, const struct xs_scope *scope,
                  const char *volume_name,
                  int (*fn) (const struct xs_snapshot *snap, void *opaque),
                  void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  struct xs_snapshot snap;
  int r = -1, step;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "list snapshots",
                                  "SELECT " SNAPSHOT_COLUMNS " FROM snapshots"
                                  " WHERE region = ?2 AND status != 'deleted'"
                                  " AND (?3 IS NULL OR volume_name = ?3)"
                                  " AND (account = ?1 OR account != ?1 AND"
                                  SHARED_WITH_CALLER ")"
                                  " ORDER BY created_ns, id", "sssssi",
                                  scope->account, scope->region, volume_name,
                                  NULL, NULL, xs_wall_clock_ns ());
  if (stmt == NULL)
    goto out;
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW) {
    if (row_to_snapshot (stmt, &snap) == -1)
      goto done;
    if (mark_if_shared (scope, &snap) == -1) {
      xs_snapshot_clear (&snap);
      goto done;
    }
    r = fn (&snap, opaque);
    xs_snapshot_clear (&snap);
    if (r != 0)
      goto done;
  }
  if (step == SQLITE_DONE)
    r = 0;
  else
    xs_catalog_report (cat, "list snapshots");
 done:
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

/* Run one UPDATE or DELETE with text parameters; returns rows changed or
 * -1.  Holding the catalog lock.
 */
static int
run_change (struct xs_catalog *cat, const char *sql, const char *what,
            const char *p1, const char *p2)
{
  sqlite3_stmt *stmt = xs_catalog_prepare (cat, sql, what);
  int r = -1;

  if (stmt == NULL)
    return -1;
  sqlite3_bind_text (stmt, 1, p1, -1, SQLITE_STATIC);
  if (p2)
    sqlite3_bind_text (stmt, 2, p2, -1, SQLITE_STATIC);
  if (sqlite3_step (stmt) == SQLITE_DONE)
    r = sqlite3_changes (xs_catalog_db (cat));
  else
    xs_catalog_report (cat, what);
  sqlite3_finalize (stmt);
  return r;
}

/* The audit row of a change to SNAP; DETAIL NULL names it VOLUME@NAME. */
static int
audit_snapshot (struct xs_store *store, const char *actor, const char *action,
                const struct xs_snapshot *snap, const char *detail)
{
  char name[160];

  snprintf (name, sizeof name, "%s@%s", snap->volume_name, snap->name);
  return xs_audit_resource (store, actor, action, snap->region,
                            snap->account, "snapshot", snap->id,
                            detail ? detail : name);
}

int
xs_snapshot_delete (struct xs_store *store, const char *actor,
                    const char *detail, const struct xs_snapshot *snap)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int r;

  if (strcmp (snap->status, "pending") == 0) {
    xs_error ("cannot delete snapshot %s@%s: it is still pending",
              snap->volume_name, snap->name);
    return -1;
  }
  /* Its shares go with it: nobody sees a deleted snapshot. */
  xs_catalog_lock (cat);
  r = xs_catalog_begin (cat);
  if (r == 0)
    r = run_change (cat, "UPDATE snapshots SET status = 'deleted'"
                    " WHERE id = ? AND status = 'available'",
                    "delete the snapshot", snap->id, NULL);
  if (r > 0
      && (run_change (cat, "DELETE FROM shares WHERE kind = 'snapshot'"
                      " AND resource_id = ?", "remove the snapshot's shares",
                      snap->id, NULL) == -1
          || audit_snapshot (store, actor, "xsnap:DeleteSnapshot", snap,
                             detail) == -1))
    r = -1;
  if (r > 0 && xs_catalog_commit (cat) == -1)
    r = -1;
  if (r <= 0)
    xs_catalog_rollback (cat);
  xs_catalog_unlock (cat);
  if (r == 0) {
    xs_error ("cannot delete snapshot %s: it is no longer available",
              snap->id);
    return -1;
  }
  return r < 0 ? -1 : 0;
}

/* A pending snapshot has no manifest to read yet: say who is sealing it
 * and what to do, rather than that its manifest is missing.
 */
static void
report_pending (struct xs_store *store, const struct xs_snapshot *snap)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t owner = 0;
  pid_t pid;

  xs_catalog_lock (cat);
  if (xs_catalog_query_int (cat, "look up a snapshot's owner", &owner,
                            "SELECT owner_pid FROM snapshots WHERE id = ?",
                            "s", snap->id) != 0)
    owner = 0;
  xs_catalog_unlock (cat);
  pid = (pid_t) owner;
  if (pid > 0 && kill (pid, 0) == -1 && errno == ESRCH)
    xs_error ("snapshot %s@%s (%s) is still pending, but the process that "
              "was sealing it (process %d) no longer runs: it will never be "
              "available; the volume's next owner or gc removes it",
              snap->volume_name, snap->name, snap->id, (int) pid);
  else if (pid > 0)
    xs_error ("snapshot %s@%s (%s) is still being sealed (pending) by "
              "process %d; retry when it is available (snapshot create "
              "--wait waits for sealing), or later",
              snap->volume_name, snap->name, snap->id, (int) pid);
  else
    xs_error ("snapshot %s@%s (%s) is still being sealed (pending); retry "
              "when it is available (snapshot create --wait waits for "
              "sealing), or later", snap->volume_name, snap->name, snap->id);
}

/* Manifest M, read as snapshot ID's, must be what the catalog records of
 * ID: the same id (a manifest copied over another's is refused), the
 * same geometry and the same root (which covers every entry), and, if
 * the snapshot is encrypted, under the recorded key (an encrypted
 * manifest cannot be swapped for an unencrypted one).
 */
static int
check_record (const struct xs_snapshot *rec, const struct xs_manifest *m)
{
  const char *id = rec->id;
  char root[XS_HASH128_HEX_LEN + 1];

  if (strcmp (m->snapshot_id, id) != 0) {
    xs_error ("the manifest of snapshot %s describes snapshot %s (replaced "
              "or misplaced): refusing to read it", id, m->snapshot_id);
    return -1;
  }
  if (m->size != rec->size || m->block_size != rec->block_size) {
    xs_error ("the manifest of snapshot %s is of %" PRIu64 " bytes in "
              "%" PRIu32 "-byte blocks, the catalog records %" PRIu64
              " bytes in %" PRIu32 "-byte blocks (tampered with): refusing "
              "to read it", id, m->size, m->block_size, rec->size,
              rec->block_size);
    return -1;
  }
  xs_hash128_to_hex (&m->root, root);
  if (strcmp (root, rec->root_hash) != 0) {
    xs_error ("the manifest of snapshot %s has root %s, the catalog records "
              "root %s (tampered with): refusing to read it", id, root,
              rec->root_hash);
    return -1;
  }
  if (rec->key_id[0] != '\0'
      && (!xs_manifest_is_encrypted (m)
          || strcmp (m->key_id, rec->key_id) != 0)) {
    xs_error ("manifest %s: snapshot %s is encrypted under key %s, the "
              "manifest says otherwise (tampered with)", id, id,
              rec->key_id);
    return -1;
  }
  return 0;
}

/* Open the data key of encrypted manifest M (checked against its record)
 * as ACCOUNT and check its MAC, which covers the id, the root and the
 * key fields.  The key's account may be another than the snapshot's (a
 * raw stream's snapshot stays under its sender's key).
 */
static int
open_key (struct xs_store *store, const char *account, struct xs_manifest *m)
{
  struct xs_data_key *dk;

  if (!xs_manifest_is_encrypted (m))
    return 0;
  dk = xs_key_open_data_key (store, account, m->key_account, m->key_id,
                             m->data_key);
  if (dk == NULL)
    return -1;
  return xs_manifest_authenticate (m, dk);
}

/* Every manifest is loaded here: the catalog's record first (a pending
 * snapshot has none to read yet), then the manifest, checked against it
 * before anyone reads through it.
 */
static struct xs_manifest *
load_manifest (struct xs_store *store, const char *account,
               const char *region, const char *id, bool with_key)
{
  struct xs_repo *repo = NULL;
  struct xs_manifest *m = NULL;
  struct xs_snapshot rec;
  void *data = NULL;
  size_t len;
  int r;

  r = xs_snapshot_lookup_id (store, id, &rec);
  if (r == 1)
    xs_error ("snapshot %s has no record in the catalog: its manifest "
              "cannot be checked, so it is not read", id);
  if (r != 0)
    return NULL;
  if (strcmp (rec.status, "pending") == 0) {
    report_pending (store, &rec);
    goto out;
  }
  repo = xs_store_repo (store, account, region);
  if (repo == NULL)
    goto out;
  r = xs_repo_get_manifest (repo, id, &data, &len);
  if (r == 1)
    xs_error ("the manifest of snapshot %s is missing from region '%s'", id,
              region);
  else if (r == 0) {
    m = xs_manifest_parse (data, len, id);
    if (m && (check_record (&rec, m) == -1
              || (with_key && open_key (store, account, m) == -1))) {
      xs_manifest_free (m);
      m = NULL;
    }
  }
 out:
  free (data);
  xs_repo_close (repo);
  xs_snapshot_clear (&rec);
  return m;
}

struct xs_manifest *
xs_snapshot_load_manifest (struct xs_store *store, const char *account,
                           const char *region, const char *id)
{
  return load_manifest (store, account, region, id, true);
}

struct xs_manifest *
xs_snapshot_load_manifest_unopened (struct xs_store *store,
                                    const char *account, const char *region,
                                    const char *id)
{
  return load_manifest (store, account, region, id, false);
}

int
xs_snapshot_gc_lock (struct xs_store *store, const char *region,
                     bool exclusive)
{
  char *path;
  int fd;

  if (asprintf (&path, "%s/regions/%s/gc.lock", xs_store_path (store),
                region) == -1) {
    xs_error ("cannot lock region '%s': %m", region);
    return -1;
  }
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1 || flock (fd, exclusive ? LOCK_EX : LOCK_SH) == -1) {
    xs_error ("cannot lock region '%s': %s: %m", region, path);
    if (fd >= 0)
      close (fd);
    fd = -1;
  }
  free (path);
  return fd;
}

int
xs_snapshot_discard_stale (struct xs_store *store,
                           const struct xs_volume *vol)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int r;

  xs_catalog_lock (cat);
  r = run_change (cat, "DELETE FROM snapshots"
                  " WHERE volume_id = ? AND status = 'pending'",
                  "discard stale pending snapshots", vol->id, NULL);
  xs_catalog_unlock (cat);
  if (r > 0)
    xs_debug ("volume '%s': discarded %d pending snapshot(s) of a previous "
              "owner", vol->name, r);
  return r < 0 ? -1 : 0;
}

/* Taking a snapshot. */

struct xs_snapshot_op {
  struct xs_store *store;
  struct xs_repo *repo;
  struct xs_seal *seal;
  struct xs_data_key *dk;       /* an encrypted volume's data key */
  char *key_id, *key_account, *data_key;
  int gc_lock_fd;               /* shared: gc waits for us */
  char *volume_id;
  uint64_t new_epoch;
};

/* Insert the row of SNAP (any status), holding the catalog lock. */
static int
insert_row (struct xs_catalog *cat, const struct xs_snapshot *snap,
            pid_t owner)
{
  sqlite3_stmt *stmt;
  int r = -1, code;

  stmt = xs_catalog_prepare (cat,
                             "INSERT INTO snapshots (id, account, region,"
                             " volume_id, volume_name, name, parent_id,"
                             " status, size, block_size, created_ns,"
                             " root_hash, changed_blocks, stored_bytes,"
                             " creation_method, owner_pid, origin,"
                             " description, key_id, source_root)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                             " ?, ?, ?, ?, ?, ?, ?)", "record the snapshot");
  if (stmt == NULL)
    return -1;
  sqlite3_bind_text (stmt, 1, snap->id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, snap->account, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, snap->region, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 4, snap->volume_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 5, snap->volume_name, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 6, snap->name, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 7, snap->parent_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 8, snap->status, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 9, (int64_t) snap->size);
  sqlite3_bind_int64 (stmt, 10, snap->block_size);
  sqlite3_bind_int64 (stmt, 11, snap->created_ns);
  sqlite3_bind_text (stmt, 12, snap->root_hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 13, (int64_t) snap->changed_blocks);
  sqlite3_bind_int64 (stmt, 14, (int64_t) snap->stored_bytes);
  sqlite3_bind_text (stmt, 15, snap->creation_method, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 16, owner);
  sqlite3_bind_text (stmt, 17, snap->origin ? snap->origin : "", -1,
                     SQLITE_STATIC);
  sqlite3_bind_text (stmt, 18, snap->description ? snap->description : "",
                     -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 20, snap->source_root ? snap->source_root : "",
                     -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 19, snap->key_id ? snap->key_id : "", -1,
                     SQLITE_STATIC);
  if (sqlite3_step (stmt) == SQLITE_DONE)
    r = 0;
  else {
    code = sqlite3_extended_errcode (xs_catalog_db (cat));
    if (code == SQLITE_CONSTRAINT_PRIMARYKEY)
      xs_error ("snapshot %s already exists in this store", snap->id);
    else if (code == SQLITE_CONSTRAINT_UNIQUE)
      xs_error ("snapshot '%s@%s' already exists", snap->volume_name,
                snap->name);
    else
      xs_catalog_report (cat, "record the snapshot");
  }
  sqlite3_finalize (stmt);
  return r;
}

/* Fill the record of a new pending snapshot of VOL. */
static int
describe_new (const struct xs_volume *vol, const char *name,
              const char *parent_id, struct xs_snapshot *snap)
{
  memset (snap, 0, sizeof *snap);
  if (xs_new_id ("snap", snap->id, sizeof snap->id) == -1)
    return -1;
  snap->account = strdup (vol->account);
  snap->region = strdup (vol->region);
  snap->volume_id = strdup (vol->id);
  snap->volume_name = strdup (vol->name);
  snap->name = strdup (name ? name : snap->id);
  snap->parent_id = strdup (parent_id);
  snap->status = strdup ("pending");
  snap->root_hash = strdup ("");
  snap->creation_method = strdup ("manual");
  snap->key_id = strdup (vol->key_id);
  snap->size = vol->size;
  snap->block_size = vol->block_size;
  snap->created_ns = xs_now_ns ();
  if (!snap->account || !snap->region || !snap->volume_id
      || !snap->volume_name || !snap->name || !snap->parent_id
      || !snap->status || !snap->root_hash || !snap->creation_method
      || !snap->key_id) {
    xs_error ("cannot snapshot volume '%s': %m", vol->name);
    xs_snapshot_clear (snap);
    return -1;
  }
  return 0;
}

/* The manifest the volume's dirty map is relative to, if it can be had.
 * *MATCHES says whether the map may be used against it.  The base of a
 * clone of a snapshot in another namespace (shared with the volume's
 * account) cannot be a parent: a manifest references chunks of its own
 * namespace only (so that nothing done in another namespace can break
 * it), so the first snapshot of such a clone
 * stores every block it has, found by a full compare.
 */
static struct xs_manifest *
load_base (struct xs_store *store, const struct xs_volume *vol,
           bool *matches, bool *is_parent)
{
  struct xs_manifest *base;
  struct xs_snapshot row;
  bool foreign;

  *matches = true;
  *is_parent = false;
  if (vol->base_snapshot_id[0] == '\0')
    return NULL;                /* relative to the empty volume */
  if (xs_snapshot_lookup_id (store, vol->base_snapshot_id, &row) == 0) {
    foreign = strcmp (row.account, vol->account) != 0
      || strcmp (row.region, vol->region) != 0;
    xs_snapshot_clear (&row);
    if (foreign) {
      *matches = false;
      return NULL;
    }
  }
  base = xs_snapshot_load_manifest (store, vol->account, vol->region,
                                    vol->base_snapshot_id);
  if (base == NULL) {
    xs_error ("volume '%s': its base snapshot %s cannot be read; this "
              "snapshot compares every block", vol->name,
              vol->base_snapshot_id);
    *matches = false;
  }
  else
    *is_parent = true;
  return base;
}

static void
free_op (struct xs_snapshot_op *op)
{
  if (op->gc_lock_fd >= 0)
    close (op->gc_lock_fd);
  xs_repo_close (op->repo);
  xs_data_key_free (op->dk);
  free (op->key_id);
  free (op->key_account);
  free (op->data_key);
  free (op->volume_id);
  free (op);
}

/* Open an encrypted volume's data key for sealing (a disabled key
 * refuses), and keep what its manifests record.
 */
static int
open_volume_key (struct xs_snapshot_op *op, const struct xs_volume *vol)
{
  if (!xs_volume_is_encrypted (vol))
    return 0;
  op->dk = xs_key_open_data_key (op->store, vol->account, vol->account,
                                 vol->key_id, vol->data_key);
  if (op->dk == NULL)
    return -1;
  op->key_id = strdup (vol->key_id);
  op->key_account = strdup (vol->account);
  op->data_key = strdup (vol->data_key);
  if (op->key_id == NULL || op->key_account == NULL || op->data_key == NULL) {
    xs_error ("cannot snapshot volume '%s': %m", vol->name);
    return -1;
  }
  return 0;
}

/* A base can be patched only if its chunks are named and sealed as the
 * new snapshot's will be: the same data key, or both unencrypted.
 */
static bool
base_fits (const struct xs_manifest *base, const struct xs_volume *vol)
{
  if (xs_manifest_is_encrypted (base) != xs_volume_is_encrypted (vol))
    return false;
  return !xs_volume_is_encrypted (vol)
    || strcmp (base->data_key, vol->data_key) == 0;
}

static void
delete_pending (struct xs_store *store, const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);

  xs_catalog_lock (cat);
  run_change (cat, "DELETE FROM snapshots WHERE id = ? AND status = 'pending'",
              "remove the failed snapshot", id, NULL);
  xs_catalog_unlock (cat);
}

struct xs_snapshot_op *
xs_snapshot_start (struct xs_store *store, struct xs_head *h,
                   const struct xs_volume *vol, const char *name,
                   struct xs_snapshot *snap)
{
  struct xs_snapshot_op *op;
  struct xs_manifest *base;
  bool matches, is_parent;
  int r;

  if (name && xs_name_check ("snapshot", name) == -1)
    return NULL;
  op = calloc (1, sizeof *op);
  if (op == NULL || (op->volume_id = strdup (vol->id)) == NULL) {
    xs_error ("cannot snapshot volume '%s': %m", vol->name);
    free (op);
    return NULL;
  }
  op->store = store;
  op->new_epoch = vol->cbt_epoch + 1;
  op->gc_lock_fd = xs_snapshot_gc_lock (store, vol->region, false);
  op->repo = xs_store_repo (store, vol->account, vol->region);
  if (op->gc_lock_fd == -1 || op->repo == NULL
      || open_volume_key (op, vol) == -1) {
    free_op (op);
    return NULL;
  }
  base = load_base (store, vol, &matches, &is_parent);
  if (base && !base_fits (base, vol)) {
    xs_manifest_free (base);
    base = NULL;
    matches = is_parent = false;
  }
  if (op->gc_lock_fd == -1 || op->repo == NULL
      || describe_new (vol, name, is_parent ? vol->base_snapshot_id : "",
                       snap) == -1) {
    xs_manifest_free (base);
    free_op (op);
    return NULL;
  }

  /* A pending record need not survive a crash (the next owner removes
   * it anyway), so it is committed without waiting for the disk: taking
   * the point in time stays instant.
   */
  xs_catalog_lock (xs_store_catalog (store));
  xs_catalog_exec (xs_store_catalog (store), "PRAGMA synchronous = NORMAL",
                   "relax syncing");
  r = insert_row (xs_store_catalog (store), snap, getpid ());
  xs_catalog_exec (xs_store_catalog (store), "PRAGMA synchronous = FULL",
                   "restore syncing");
  xs_catalog_unlock (xs_store_catalog (store));
  if (r == -1)
    goto fail;
  op->seal = xs_seal_begin (h, op->repo, base, matches, op->dk);
  base = NULL;                  /* taken over by xs_seal_begin */
  if (op->seal == NULL) {
    delete_pending (store, snap->id);
    goto fail;
  }
  return op;

 fail:
  xs_manifest_free (base);
  xs_snapshot_clear (snap);
  free_op (op);
  return NULL;
}

static int
write_manifest (struct xs_snapshot_op *op, const struct xs_snapshot *snap)
{
  struct xs_manifest *m = xs_seal_manifest (op->seal);
  char created[32];
  void *data;
  size_t len;
  int r;

  snprintf (created, sizeof created, "%" PRId64, snap->created_ns);
  if (xs_manifest_set (m, "snapshot_id", snap->id) == -1
      || xs_manifest_set (m, "volume_id", snap->volume_id) == -1
      || xs_manifest_set (m, "volume_name", snap->volume_name) == -1
      || xs_manifest_set (m, "account", snap->account) == -1
      || xs_manifest_set (m, "region", snap->region) == -1
      || xs_manifest_set (m, "parent_id", snap->parent_id) == -1
      || xs_manifest_set (m, "name", snap->name) == -1
      || xs_manifest_set (m, "status", "available") == -1)
    return -1;
  m->created_ns = snap->created_ns;
  if (op->dk && xs_manifest_set_encryption (m, op->key_id, op->key_account,
                                            op->data_key, op->dk) == -1)
    return -1;
  xs_manifest_seal (m);
  if (xs_manifest_serialize (m, &data, &len) == -1)
    return -1;
  r = xs_repo_put_manifest (op->repo, snap->id, data, len);
  free (data);
  return r == -1 ? -1 : 0;
}

/* The catalog half of the commit: the snapshot is available and the
 * volume's changed-block map is now relative to it.
 */
/* Run STMT (already bound) expecting it to change exactly WANT rows
 * (any number if WANT < 0); finalizes it.
 */
static int
step_once (struct xs_catalog *cat, sqlite3_stmt *stmt, int want,
           const char *what)
{
  int r = 0;

  if (stmt == NULL)
    return -1;
  if (sqlite3_step (stmt) != SQLITE_DONE
      || (want >= 0 && sqlite3_changes (xs_catalog_db (cat)) != want)) {
    xs_catalog_report (cat, what);
    r = -1;
  }
  sqlite3_finalize (stmt);
  return r;
}

/* The catalog half of the commit, in one transaction: the snapshot is
 * available and the volume's changed-block map is now relative to it.
 * Holding the catalog lock.
 */
static int
commit_rows (struct xs_snapshot_op *op, const struct xs_snapshot *snap,
             const char *root, const struct xs_seal_stats *stats)
{
  struct xs_catalog *cat = xs_store_catalog (op->store);
  sqlite3_stmt *stmt;

  if (xs_catalog_begin (cat) == -1)
    return -1;
  stmt = xs_catalog_prepare (cat,
                             "UPDATE snapshots SET status = 'available',"
                             " root_hash = ?, changed_blocks = ?,"
                             " stored_bytes = ? WHERE id = ?",
                             "record the snapshot");
  if (stmt) {
    sqlite3_bind_text (stmt, 1, root, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, (int64_t) stats->changed_blocks);
    sqlite3_bind_int64 (stmt, 3, (int64_t) stats->stored_bytes);
    sqlite3_bind_text (stmt, 4, snap->id, -1, SQLITE_STATIC);
  }
  if (step_once (cat, stmt, 1, "record the snapshot") == -1)
    goto rollback;
  stmt = xs_catalog_prepare (cat,
                             "UPDATE volumes SET base_snapshot_id = ?,"
                             " cbt_epoch = ? WHERE id = ?",
                             "record the volume's new base");
  if (stmt) {
    sqlite3_bind_text (stmt, 1, snap->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, (int64_t) op->new_epoch);
    sqlite3_bind_text (stmt, 3, op->volume_id, -1, SQLITE_STATIC);
  }
  if (step_once (cat, stmt, -1, "record the volume's new base") == -1
      || xs_catalog_commit (cat) == -1)
    goto rollback;
  return 0;

 rollback:
  xs_catalog_rollback (cat);
  return -1;
}

static int
record_available (struct xs_snapshot_op *op, struct xs_snapshot *snap,
                  const struct xs_seal_stats *stats)
{
  struct xs_catalog *cat = xs_store_catalog (op->store);
  char root[XS_HASH128_HEX_LEN + 1];
  char *status, *root_copy;
  int r;

  xs_hash128_to_hex (&xs_seal_manifest (op->seal)->root, root);
  xs_catalog_lock (cat);
  r = commit_rows (op, snap, root, stats);
  xs_catalog_unlock (cat);
  if (r == -1)
    return -1;
  status = strdup ("available");
  root_copy = strdup (root);
  if (status && root_copy) {
    free (snap->status);
    free (snap->root_hash);
    snap->status = status;
    snap->root_hash = root_copy;
  }
  else {
    free (status);
    free (root_copy);
  }
  snap->changed_blocks = stats->changed_blocks;
  snap->stored_bytes = stats->stored_bytes;
  return 0;
}

int
xs_snapshot_finish (struct xs_snapshot_op *op,
                    void (*progress) (uint64_t done, uint64_t total,
                                      void *opaque),
                    void *opaque, struct xs_snapshot *snap)
{
  struct xs_seal_stats stats;
  int r;

  r = xs_seal_run (op->seal, 0, progress, opaque);
  xs_seal_get_stats (op->seal, &stats);
  if (r == 0)
    r = write_manifest (op, snap);
  if (r == 0)
    r = record_available (op, snap, &stats);
  if (r == -1)
    delete_pending (op->store, snap->id);
  /* A manifest written without its row is an orphan that gc removes.  If
   * the dirty map cannot take the new epoch (reported), the snapshot
   * still stands: the next open finds the map of the wrong epoch and the
   * next snapshot compares every block.
   */
  xs_seal_end (op->seal, r == 0, op->new_epoch);
  free_op (op);
  return r;
}

/* Receiving snapshots (see snapshot.h). */

struct xs_manifest *
xs_snapshot_load_manifest_by_id (struct xs_store *store, const char *id,
                                 struct xs_repo **repo)
{
  struct xs_snapshot row;
  struct xs_manifest *m = NULL;
  int r;

  *repo = NULL;
  r = xs_snapshot_lookup_id (store, id, &row);
  if (r == 1)
    xs_error ("cannot read snapshot %s: it no longer exists", id);
  if (r != 0)
    return NULL;
  m = xs_snapshot_load_manifest (store, row.account, row.region, id);
  if (m) {
    *repo = xs_store_repo (store, row.account, row.region);
    if (*repo == NULL) {
      xs_manifest_free (m);
      m = NULL;
    }
  }
  xs_snapshot_clear (&row);
  return m;
}

int
xs_snapshot_lookup_id (struct xs_store *store, const char *id,
                       struct xs_snapshot *snap)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "SELECT " SNAPSHOT_COLUMNS
                             " FROM snapshots WHERE id = ?",
                             "look up a snapshot");
  if (stmt) {
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    switch (sqlite3_step (stmt)) {
    case SQLITE_ROW: r = row_to_snapshot (stmt, snap); break;
    case SQLITE_DONE: r = 1; break;
    default: xs_catalog_report (cat, "look up a snapshot");
    }
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return r;
}

static int
record_row (struct xs_store *store, const struct xs_scope *scope,
            const struct xs_manifest *m, const char *method,
            const char *origin, const char *description,
            uint64_t changed_blocks, uint64_t stored_bytes,
            const char *source_root, struct xs_snapshot *out)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char root[XS_HASH128_HEX_LEN + 1];
  struct xs_snapshot row = {
    .account = scope->account, .region = scope->region,
    .volume_id = m->volume_id, .volume_name = m->volume_name,
    .name = m->name, .parent_id = m->parent_id,
    .status = (char *) "available", .root_hash = root,
    .creation_method = (char *) method,
    .origin = (char *) origin, .description = (char *) description,
    .size = m->size, .block_size = m->block_size,
    .created_ns = m->created_ns, .changed_blocks = changed_blocks,
    .stored_bytes = stored_bytes, .key_id = m->key_id,
    .source_root = (char *) source_root,
  };
  int r;

  if (strlen (m->snapshot_id) >= sizeof row.id) {
    xs_error ("cannot record snapshot '%s': the id is too long",
              m->snapshot_id);
    return -1;
  }
  memcpy (row.id, m->snapshot_id, strlen (m->snapshot_id) + 1);
  xs_hash128_to_hex (&m->root, root);
  xs_catalog_lock (cat);
  r = insert_row (cat, &row, 0);
  xs_catalog_unlock (cat);
  if (r == -1)
    return -1;
  return xs_snapshot_find (store, scope, m->snapshot_id, false, out) == 0
    ? 0 : -1;
}

int
xs_snapshot_record_arrived (struct xs_store *store,
                            const struct xs_scope *scope,
                            const struct xs_manifest *m, const char *method,
                            const char *origin, const char *description,
                            uint64_t changed_blocks, uint64_t stored_bytes,
                            struct xs_snapshot *out)
{
  return record_row (store, scope, m, method, origin, description,
                     changed_blocks, stored_bytes, "", out);
}

int
xs_snapshot_record_received (struct xs_store *store,
                             const struct xs_scope *scope,
                             const struct xs_manifest *m,
                             uint64_t changed_blocks, uint64_t stored_bytes,
                             const char *source_root,
                             struct xs_snapshot *out)
{
  return record_row (store, scope, m, "received", "", "", changed_blocks,
                     stored_bytes, source_root ? source_root : "", out);
}

/* What gc reclaims and keeps, and what a copy learns from an earlier
 * one.
 */

/* The snapshots some volume needs: as the base of its changed-block map
 * or the source of an unhydrated clone.  A deleted snapshot that none
 * needs is reclaimed; every other non-pending one is kept.  (NULLs are
 * left out: "x NOT IN" a set with a NULL is never true.)
 */
#define NEEDED "(SELECT base_snapshot_id FROM volumes" \
  " WHERE base_snapshot_id IS NOT NULL" \
  " UNION SELECT source_snapshot_id FROM volumes" \
  " WHERE source_snapshot_id IS NOT NULL)"
#define RECLAIMABLE "status = 'deleted' AND id NOT IN " NEEDED
#define RETAINED "(status = 'available' OR (status = 'deleted' AND id IN " \
  NEEDED "))"

struct id_list {
  int (*fn) (const char *id, void *opaque);
  void *opaque;
};

static int
each_id (sqlite3_stmt *stmt, void *opaque)
{
  struct id_list *list = opaque;

  return list->fn ((const char *) sqlite3_column_text (stmt, 0),
                   list->opaque);
}

/* Call FN with the id of each row SQL (parameters: the account, the
 * region) returns.
 */
static int
list_ids_for_gc (struct xs_store *store, const char *sql, const char *account,
                 const char *region,
                 int (*fn) (const char *id, void *opaque), void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct id_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "read the catalog for gc", sql, "ss",
                                  account, region);
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "read the catalog for gc", each_id,
                             &list);
  xs_catalog_unlock (cat);
  return r;
}

int
xs_snapshot_list_reclaimable (struct xs_store *store, const char *account,
                              const char *region,
                              int (*fn) (const char *id, void *opaque),
                              void *opaque)
{
  return list_ids_for_gc (store, "SELECT id FROM snapshots WHERE account = ?1"
                          " AND region = ?2 AND " RECLAIMABLE, account,
                          region, fn, opaque);
}

int
xs_snapshot_list_retained (struct xs_store *store, const char *account,
                           const char *region,
                           int (*fn) (const char *id, void *opaque),
                           void *opaque)
{
  return list_ids_for_gc (store, "SELECT id FROM snapshots WHERE account = ?1"
                          " AND region = ?2 AND " RETAINED " ORDER BY id",
                          account, region, fn, opaque);
}

int64_t
xs_snapshot_forget_reclaimed (struct xs_store *store, const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "purge a deleted snapshot",
                      "DELETE FROM snapshots WHERE id = ?", "s", id);
  xs_catalog_unlock (cat);
  return r;
}

int64_t
xs_snapshot_forget_pending_in_region (struct xs_store *store,
                                      const char *region)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "remove stale pending snapshots",
                      "DELETE FROM snapshots WHERE region = ?"
                      " AND status = 'pending'", "s", region);
  xs_catalog_unlock (cat);
  return r;
}

int
xs_snapshot_find_previous_copy (struct xs_store *store,
                                const struct xs_scope *dest,
                                const char *key_id, const char *volume_id,
                                uint32_t block_size, char *source_id,
                                char *dest_id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind
    (cat, "look up earlier copies",
     "SELECT d.id, s.id FROM snapshots d JOIN snapshots s"
     "  ON d.origin = 'copiedFrom:' || s.account || ':' || s.region || ':'"
     "                || s.id"
     " WHERE d.account = ? AND d.region = ? AND d.key_id = ?"
     "   AND d.status = 'available' AND s.volume_id = ?"
     "   AND s.status = 'available' AND s.block_size = ?"
     " ORDER BY d.created_ns DESC LIMIT 1", "ssssi",
     dest->account, dest->region, key_id, volume_id, (int64_t) block_size);
  if (stmt) {
    switch (sqlite3_step (stmt)) {
    case SQLITE_ROW:
      snprintf (dest_id, XS_ID_MAX, "%s", sqlite3_column_text (stmt, 0));
      snprintf (source_id, XS_ID_MAX, "%s", sqlite3_column_text (stmt, 1));
      r = 0;
      break;
    case SQLITE_DONE: r = 1; break;
    default: xs_catalog_report (cat, "look up earlier copies");
    }
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return r;
}
