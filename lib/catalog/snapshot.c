/* xsnap: snapshot records and the orchestration of taking one (see
 * snapshot.h).  The sealing itself is in seal.c.
 */
#include <fcntl.h>
#include <inttypes.h>
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
xs_snapshot_delete_locked (struct xs_store *store, const char *actor,
                           const char *detail,
                           const struct xs_snapshot *snap)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  if (strcmp (snap->status, "pending") == 0) {
    xs_error ("cannot delete snapshot %s@%s: it is still pending",
              snap->volume_name, snap->name);
    return -1;
  }
  r = xs_catalog_run (cat, "delete the snapshot",
                      "UPDATE snapshots SET status = 'deleted'"
                      " WHERE id = ? AND status = 'available'", "s",
                      snap->id);
  if (r == 0)
    xs_error ("cannot delete snapshot %s: it is no longer available",
              snap->id);
  if (r != 1
      || audit_snapshot (store, actor, "xsnap:DeleteSnapshot", snap,
                         detail) == -1)
    return -1;
  return 0;
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
  if (pid > 0 && xs_process_gone (pid))
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
    if (m) {
      xs_manifest_attach (m, repo);
      repo = NULL;
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
                           const struct xs_volume *vol, const char *keep)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "discard stale pending snapshots",
                      "DELETE FROM snapshots"
                      " WHERE volume_id = ? AND status = 'pending'"
                      " AND id != ?", "ss", vol->id, keep ? keep : "");
  xs_catalog_unlock (cat);
  if (r > 0)
    xs_debug ("volume '%s': discarded %d pending snapshot(s) of a previous "
              "owner", vol->name, r);
  return r < 0 ? -1 : 0;
}

/* The rows of a snapshot being taken (snapnew.c). */

int
xs_snapshot_insert_locked (struct xs_catalog *cat,
                           const struct xs_snapshot *snap, pid_t owner)
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

int
xs_snapshot_record_pending (struct xs_store *store,
                            const struct xs_snapshot *snap)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int r;

  /* A pending record need not survive a crash (the next owner removes
   * it anyway), so it is committed without waiting for the disk: taking
   * the point in time stays instant.
   */
  xs_catalog_lock (cat);
  xs_catalog_exec (cat, "PRAGMA synchronous = NORMAL", "relax syncing");
  r = xs_snapshot_insert_locked (cat, snap, getpid ());
  xs_catalog_exec (cat, "PRAGMA synchronous = FULL", "restore syncing");
  xs_catalog_unlock (cat);
  return r;
}

void
xs_snapshot_delete_pending (struct xs_store *store, const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);

  xs_catalog_lock (cat);
  xs_catalog_run (cat, "remove the failed snapshot",
                  "DELETE FROM snapshots WHERE id = ? AND status = 'pending'",
                  "s", id);
  xs_catalog_unlock (cat);
}

int
xs_snapshot_mark_available_locked (struct xs_catalog *cat, const char *id,
                                   const char *root_hash,
                                   uint64_t changed_blocks,
                                   uint64_t stored_bytes)
{
  int64_t r;

  r = xs_catalog_run (cat, "record the snapshot",
                      "UPDATE snapshots SET status = 'available',"
                      " root_hash = ?, changed_blocks = ?,"
                      " stored_bytes = ? WHERE id = ?", "siis", root_hash,
                      (int64_t) changed_blocks, (int64_t) stored_bytes, id);
  if (r == 0)
    xs_error ("cannot record snapshot %s: its pending record is gone", id);
  return r == 1 ? 0 : -1;
}

int
xs_snapshot_adopt_pending (struct xs_store *store, const char *id,
                           const char *volume_id, const char *parent_id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "take over the pending snapshot",
                      "UPDATE snapshots SET owner_pid = ?, parent_id = ?"
                      " WHERE id = ? AND volume_id = ?"
                      " AND status = 'pending'", "isss",
                      (int64_t) getpid (), parent_id, id, volume_id);
  xs_catalog_unlock (cat);
  if (r == 0)
    xs_error ("cannot take over snapshot %s: it is no longer pending", id);
  return r == 1 ? 0 : -1;
}

pid_t
xs_snapshot_sealer (struct xs_store *store, const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t owner = 0;

  xs_catalog_lock (cat);
  if (xs_catalog_query_int (cat, "look up a snapshot's sealer", &owner,
                            "SELECT owner_pid FROM snapshots"
                            " WHERE id = ? AND status = 'pending'",
                            "s", id) != 0)
    owner = 0;
  xs_catalog_unlock (cat);
  return (pid_t) owner;
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
  r = xs_snapshot_insert_locked (cat, &row, 0);
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

/* The snapshots automatic policies take, copy tasks copy and shared
 * chains show: their retention, their marks and their summaries.
 */

/* The snapshots of a policy's volume that retention must keep beyond
 * its newest RETAIN (?1 the policy, ?3 the volume): those a queued or
 * running copy is copying, and each copy task's incremental base, the
 * source of the task's newest copy (an encrypted copy names its chunks
 * as its base's copy did: without the base the next copy is full).
 */
#define HELD_BY_COPIES                                                  \
  " SELECT source_snapshot FROM jobs"                                   \
  "  WHERE kind = 'copy' AND status IN ('queued', 'running')"           \
  " UNION SELECT s.id FROM copy_tasks AS t"                             \
  "  JOIN snapshots AS d ON d.task_id = t.id AND d.volume_id = ?3"      \
  "   AND d.status = 'available'"                                       \
  "   AND d.created_ns = (SELECT max (created_ns) FROM snapshots"       \
  "                        WHERE task_id = t.id AND volume_id = ?3"     \
  "                          AND status = 'available')"                 \
  "  JOIN snapshots AS s ON d.origin = 'copiedFrom:' || s.account"      \
  "   || ':' || s.region || ':' || s.id"                                \
  "  WHERE t.policy_id = ?1"

/* Beyond the newest RETAIN (?4) available snapshots of volume ?3 that
 * policy ?1 took in account ?2, those not held by copies.
 */
#define POLICY_EXPIRED                                                  \
  "SELECT id FROM (SELECT id FROM snapshots"                            \
  "  WHERE policy_id = ?1 AND account = ?2 AND volume_id = ?3"          \
  "    AND status = 'available'"                                        \
  "  ORDER BY created_ns DESC, id DESC LIMIT -1 OFFSET ?4)"             \
  " WHERE id NOT IN (" HELD_BY_COPIES ")"

/* Beyond the newest RETAIN (?4) copies of volume ?3 that task ?1 made in
 * account ?2, while the task exists: a destination that deleted its task
 * during a pass keeps its copies.
 */
#define TASK_EXPIRED                                                    \
  "SELECT id FROM snapshots"                                            \
  " WHERE task_id = ?1 AND account = ?2 AND volume_id = ?3"             \
  "   AND status = 'available'"                                         \
  "   AND EXISTS (SELECT 1 FROM copy_tasks WHERE id = ?1)"              \
  " ORDER BY created_ns DESC, id DESC LIMIT -1 OFFSET ?4"

/* Walking the ids a query returns (its first column), and collecting
 * them.
 */
struct id_visit {
  int (*fn) (const char *id, void *opaque);
  void *opaque;
};

static int
each_id (sqlite3_stmt *stmt, void *opaque)
{
  struct id_visit *visit = opaque;

  return visit->fn ((const char *) sqlite3_column_text (stmt, 0),
                    visit->opaque);
}

/* Call FN with each id STMT (bound; NULL if preparing it failed) returns,
 * holding the catalog lock; STMT is finalized.  0, or -1.
 */
static int
visit_ids (struct xs_catalog *cat, sqlite3_stmt *stmt, const char *what,
           int (*fn) (const char *id, void *opaque), void *opaque)
{
  struct id_visit visit = { fn, opaque };

  return stmt ? xs_catalog_each_row (cat, stmt, what, each_id, &visit) : -1;
}

struct id_list {
  char **ids;
  size_t n;
};

static int
append_id (const char *id, void *opaque)
{
  struct id_list *list = opaque;
  char **more = realloc (list->ids, (list->n + 1) * sizeof *more);

  if (more == NULL || (more[list->n] = strdup (id)) == NULL) {
    xs_error ("cannot list snapshots: %m");
    if (more)
      list->ids = more;
    return -1;
  }
  list->ids = more;
  list->n++;
  return 0;
}

static int
expired (struct xs_store *store, const char *sql, const char *id,
         const char *account, const char *volume_id, int64_t retain,
         char ***ids, size_t *n)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct id_list list = { NULL, 0 };
  sqlite3_stmt *stmt;
  int r;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "apply retention", sql, "sssi", id,
                                  account, volume_id, retain);
  r = visit_ids (cat, stmt, "apply retention", append_id, &list);
  xs_catalog_unlock (cat);
  if (r == -1) {
    xs_snapshot_free_ids (list.ids, list.n);
    list.ids = NULL;
    list.n = 0;
  }
  *ids = list.ids;
  *n = list.n;
  return r;
}

int
xs_snapshot_policy_expired (struct xs_store *store, const char *policy_id,
                            const char *account, const char *volume_id,
                            int64_t retain, char ***ids, size_t *n)
{
  return expired (store, POLICY_EXPIRED, policy_id, account, volume_id,
                  retain, ids, n);
}

int
xs_snapshot_task_expired (struct xs_store *store, const char *task_id,
                          const char *account, const char *volume_id,
                          int64_t retain, char ***ids, size_t *n)
{
  return expired (store, TASK_EXPIRED, task_id, account, volume_id, retain,
                  ids, n);
}

void
xs_snapshot_free_ids (char **ids, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (ids[i]);
  free (ids);
}

int
xs_snapshot_mark_auto (struct xs_store *store, const char *snapshot_id,
                       const char *policy_id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "mark a snapshot",
                      "UPDATE snapshots SET policy_id = ?,"
                      " creation_method = 'auto' WHERE id = ?", "ss",
                      policy_id, snapshot_id);
  xs_catalog_unlock (cat);
  return r == -1 ? -1 : 0;
}

int
xs_snapshot_mark_task_copy (struct xs_store *store, const char *snapshot_id,
                            const char *task_id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "mark a snapshot",
                      "UPDATE snapshots SET task_id = ?1 WHERE id = ?2"
                      " AND EXISTS (SELECT 1 FROM copy_tasks WHERE id = ?1)",
                      "ss", task_id, snapshot_id);
  xs_catalog_unlock (cat);
  return r == -1 ? -1 : 0;
}

int
xs_snapshot_adopt_task_copies (struct xs_store *store, const char *task_id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "count resumed copies by their task",
                      "UPDATE snapshots SET task_id = ?1"
                      " WHERE task_id = '' AND creation_method = 'copy'"
                      "   AND id IN (SELECT j.dest_snapshot FROM jobs AS j"
                      "     JOIN copy_tasks AS t ON t.id = ?1"
                      "     JOIN snapshots AS s ON s.id = j.source_snapshot"
                      "    WHERE j.kind = 'copy' AND j.status = 'done'"
                      "      AND j.dest_account = t.dest_account"
                      "      AND j.dest_region = t.dest_region"
                      "      AND s.policy_id = t.policy_id"
                      "      AND j.actor = s.account AND j.name = s.name"
                      "      AND j.description = '')", "s", task_id);
  xs_catalog_unlock (cat);
  return r == -1 ? -1 : 0;
}

int
xs_snapshot_chain_summary (struct xs_store *store, const char *volume_id,
                           const char *region, uint64_t *points,
                           uint64_t *total_bytes, uint64_t *stored_bytes)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "describe a shared chain",
                                  "SELECT count(*), COALESCE(sum(size), 0),"
                                  " COALESCE(sum(stored_bytes), 0)"
                                  " FROM snapshots WHERE volume_id = ?"
                                  " AND region = ? AND status = 'available'",
                                  "ss", volume_id, region);
  if (stmt && sqlite3_step (stmt) == SQLITE_ROW) {
    *points = (uint64_t) sqlite3_column_int64 (stmt, 0);
    *total_bytes = (uint64_t) sqlite3_column_int64 (stmt, 1);
    *stored_bytes = (uint64_t) sqlite3_column_int64 (stmt, 2);
    r = 0;
  }
  else if (stmt)
    xs_catalog_report (cat, "describe a shared chain");
  sqlite3_finalize (stmt);
  xs_catalog_unlock (cat);
  return r;
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

/* Call FN with the id of each row SQL (parameters: the account, the
 * region) returns.
 */
static int
list_ids_for_gc (struct xs_store *store, const char *sql, const char *account,
                 const char *region,
                 int (*fn) (const char *id, void *opaque), void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "read the catalog for gc", sql, "ss",
                                  account, region);
  r = visit_ids (cat, stmt, "read the catalog for gc", fn, opaque);
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

struct usage_list {
  int (*fn) (const struct xs_snapshot_usage *u, void *opaque);
  void *opaque;
};

static int
each_usage (sqlite3_stmt *stmt, void *opaque)
{
  struct usage_list *list = opaque;
  struct xs_snapshot_usage u = {
    .account = (const char *) sqlite3_column_text (stmt, 0),
    .region = (const char *) sqlite3_column_text (stmt, 1),
    .snapshots = (uint64_t) sqlite3_column_int64 (stmt, 2),
    .stored_bytes = (uint64_t) sqlite3_column_int64 (stmt, 3),
  };

  return list->fn (&u, list->opaque);
}

int
xs_snapshot_usage (struct xs_store *store,
                   int (*fn) (const struct xs_snapshot_usage *u,
                              void *opaque),
                   void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct usage_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "SELECT account, region, count(*),"
                             " total (stored_bytes) FROM snapshots"
                             " GROUP BY account, region"
                             " ORDER BY account, region",
                             "sum what snapshots stored");
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "sum what snapshots stored",
                             each_usage, &list);
  xs_catalog_unlock (cat);
  return r;
}

struct newest_list {
  int (*fn) (const char *volume_id, const char *snapshot_id,
             int64_t created_ns, void *opaque);
  void *opaque;
};

static int
each_newest (sqlite3_stmt *stmt, void *opaque)
{
  struct newest_list *list = opaque;

  return list->fn ((const char *) sqlite3_column_text (stmt, 0),
                   (const char *) sqlite3_column_text (stmt, 1),
                   sqlite3_column_int64 (stmt, 2), list->opaque);
}

int
xs_snapshot_newest_by_volume (struct xs_store *store,
                              int (*fn) (const char *volume_id,
                                         const char *snapshot_id,
                                         int64_t created_ns, void *opaque),
                              void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct newest_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  /* SQLite takes the bare columns from the row that holds the max.  A
   * copy keeps its source's volume id: only the volume's own account and
   * region count.
   */
  stmt = xs_catalog_prepare (cat, "SELECT s.volume_id, s.id,"
                             " max (s.created_ns) FROM snapshots AS s"
                             " JOIN volumes AS v ON v.id = s.volume_id"
                             "  AND v.account = s.account"
                             "  AND v.region = s.region"
                             " WHERE s.status = 'available'"
                             " GROUP BY s.volume_id ORDER BY s.volume_id",
                             "find volumes' newest snapshots");
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "find volumes' newest snapshots",
                             each_newest, &list);
  xs_catalog_unlock (cat);
  return r;
}

struct pending_list {
  int (*fn) (const struct xs_snapshot_pending *p, void *opaque);
  void *opaque;
};

static int
each_pending (sqlite3_stmt *stmt, void *opaque)
{
  struct pending_list *list = opaque;
  struct xs_snapshot_pending p = {
    .id = (const char *) sqlite3_column_text (stmt, 0),
    .account = (const char *) sqlite3_column_text (stmt, 1),
    .region = (const char *) sqlite3_column_text (stmt, 2),
    .volume_name = (const char *) sqlite3_column_text (stmt, 3),
    .name = (const char *) sqlite3_column_text (stmt, 4),
    .created_ns = sqlite3_column_int64 (stmt, 5),
    .owner_pid = sqlite3_column_int64 (stmt, 6),
  };

  return list->fn (&p, list->opaque);
}

int
xs_snapshot_list_pending (struct xs_store *store,
                          int (*fn) (const struct xs_snapshot_pending *p,
                                     void *opaque),
                          void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct pending_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "SELECT id, account, region, volume_name,"
                             " name, created_ns, owner_pid FROM snapshots"
                             " WHERE status = 'pending'"
                             " ORDER BY created_ns, id",
                             "list pending snapshots");
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "list pending snapshots",
                             each_pending, &list);
  xs_catalog_unlock (cat);
  return r;
}
