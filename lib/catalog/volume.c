/* xsnap: live volumes (see volume.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "catalog/audit.h"
#include "base/error.h"
#include "base/fileio.h"
#include "catalog/keys.h"
#include "base/names.h"
#include "head/ownerlock.h"
#include "repo/repo.h"
#include "base/size.h"
#include "repo/snapreader.h"
#include "catalog/snapshot.h"
#include "catalog/volume.h"

#define VOLUME_COLUMNS \
  "id, account, region, name, size, block_size, created_ns, cbt_epoch," \
  " base_snapshot_id, source_snapshot_id, key_id, data_key, head_cipher," \
  " dirtymap_session"

void
xs_volume_clear (struct xs_volume *vol)
{
  free (vol->account);
  free (vol->region);
  free (vol->name);
  free (vol->base_snapshot_id);
  free (vol->source_snapshot_id);
  free (vol->key_id);
  free (vol->data_key);
  free (vol->head_cipher);
  memset (vol, 0, sizeof *vol);
}

int
xs_volume_check_block_size (uint64_t block_size)
{
  if (!xs_is_power_of_2 (block_size) || block_size < XS_BLOCK_SIZE_MIN
      || block_size > XS_BLOCK_SIZE_MAX) {
    xs_error ("invalid block size %" PRIu64 ": it must be a power of two "
              "from 4K to 4M", block_size);
    return -1;
  }
  return 0;
}

static int
check_size (const char *name, uint64_t size, uint32_t block_size)
{
  char text[32];

  if (size == 0) {
    xs_error ("invalid size for volume '%s': it must be greater than zero",
              name);
    return -1;
  }
  if (size % block_size != 0) {
    xs_size_format (block_size, text, sizeof text);
    xs_error ("invalid size %" PRIu64 " for volume '%s': not a multiple of "
              "the block size (%s)", size, name, text);
    return -1;
  }
  if (size > XS_VOLUME_SIZE_MAX) {
    xs_error ("invalid size %" PRIu64 " for volume '%s': larger than the "
              "limit of 64T", size, name);
    return -1;
  }
  return 0;
}

/* Fill VOL from the current row of STMT (selected with VOLUME_COLUMNS). */
static int
row_to_volume (sqlite3_stmt *stmt, struct xs_volume *vol)
{
  memset (vol, 0, sizeof *vol);
  snprintf (vol->id, sizeof vol->id, "%s",
            (const char *) sqlite3_column_text (stmt, 0));
  vol->account = strdup ((const char *) sqlite3_column_text (stmt, 1));
  vol->region = strdup ((const char *) sqlite3_column_text (stmt, 2));
  vol->name = strdup ((const char *) sqlite3_column_text (stmt, 3));
  vol->size = (uint64_t) sqlite3_column_int64 (stmt, 4);
  vol->block_size = (uint32_t) sqlite3_column_int64 (stmt, 5);
  vol->created_ns = sqlite3_column_int64 (stmt, 6);
  vol->cbt_epoch = (uint64_t) sqlite3_column_int64 (stmt, 7);
  vol->base_snapshot_id = strdup ((const char *) sqlite3_column_text (stmt, 8));
  vol->source_snapshot_id =
    strdup ((const char *) sqlite3_column_text (stmt, 9));
  vol->key_id = strdup ((const char *) sqlite3_column_text (stmt, 10));
  vol->data_key = strdup ((const char *) sqlite3_column_text (stmt, 11));
  vol->head_cipher = strdup ((const char *) sqlite3_column_text (stmt, 12));
  vol->dirtymap_session = (uint64_t) sqlite3_column_int64 (stmt, 13);
  if (vol->account == NULL || vol->region == NULL || vol->name == NULL
      || vol->base_snapshot_id == NULL || vol->source_snapshot_id == NULL
      || vol->key_id == NULL || vol->data_key == NULL
      || vol->head_cipher == NULL) {
    xs_error ("cannot read volume %s: %m", vol->id);
    xs_volume_clear (vol);
    return -1;
  }
  return 0;
}

int
xs_volume_find (struct xs_store *store, const struct xs_scope *scope,
                const char *name, bool quiet, struct xs_volume *vol)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat,
                             "SELECT " VOLUME_COLUMNS " FROM volumes"
                             " WHERE account = ?1 AND region = ?2"
                             " AND (name = ?3 OR id = ?3)",
                             "look up a volume");
  if (stmt == NULL)
    goto out;
  sqlite3_bind_text (stmt, 1, scope->account, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, scope->region, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, name, -1, SQLITE_STATIC);
  switch (sqlite3_step (stmt)) {
  case SQLITE_ROW:
    r = row_to_volume (stmt, vol);
    break;
  case SQLITE_DONE:
    if (!quiet)
      xs_error ("no volume '%s' in account '%s', region '%s'", name,
                scope->account, scope->region);
    r = 1;
    break;
  default:
    xs_catalog_report (cat, "look up a volume");
  }
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

int
xs_volume_list (struct xs_store *store, const struct xs_scope *scope,
                int (*fn) (const struct xs_volume *vol, void *opaque),
                void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  struct xs_volume vol;
  int r = -1, step;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat,
                             "SELECT " VOLUME_COLUMNS " FROM volumes"
                             " WHERE account = ? AND region = ?"
                             " ORDER BY name", "list volumes");
  if (stmt == NULL)
    goto out;
  sqlite3_bind_text (stmt, 1, scope->account, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, scope->region, -1, SQLITE_STATIC);
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW) {
    if (row_to_volume (stmt, &vol) == -1)
      goto done;
    r = fn (&vol, opaque);
    xs_volume_clear (&vol);
    if (r != 0)
      goto done;
  }
  if (step == SQLITE_DONE)
    r = 0;
  else
    xs_catalog_report (cat, "list volumes");
 done:
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

char *
xs_volume_dir (const struct xs_store *store, const struct xs_volume *vol)
{
  return xs_store_head_dir (store, vol->region, vol->id);
}

static int
insert_volume (struct xs_catalog *cat, const struct xs_volume *vol)
{
  sqlite3_stmt *stmt;
  int r = 0;

  stmt = xs_catalog_prepare (cat,
                             "INSERT INTO volumes (" VOLUME_COLUMNS ")"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                             " ?)",
                             "record the new volume");
  if (stmt == NULL)
    return -1;
  sqlite3_bind_text (stmt, 1, vol->id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, vol->account, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, vol->region, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 4, vol->name, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 5, (int64_t) vol->size);
  sqlite3_bind_int64 (stmt, 6, vol->block_size);
  sqlite3_bind_int64 (stmt, 7, vol->created_ns);
  sqlite3_bind_int64 (stmt, 8, (int64_t) vol->cbt_epoch);
  sqlite3_bind_text (stmt, 9, vol->base_snapshot_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 10, vol->source_snapshot_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 11, vol->key_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 12, vol->data_key, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 13, vol->head_cipher, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 14, (int64_t) vol->dirtymap_session);
  if (sqlite3_step (stmt) != SQLITE_DONE) {
    if (sqlite3_extended_errcode (xs_catalog_db (cat))
        == SQLITE_CONSTRAINT_UNIQUE)
      xs_error ("volume '%s' already exists in account '%s', region '%s'",
                vol->name, vol->account, vol->region);
    else
      xs_catalog_report (cat, "record the new volume");
    r = -1;
  }
  sqlite3_finalize (stmt);
  return r;
}

int
xs_volume_check_name_free (struct xs_store *store,
                           const struct xs_scope *scope, const char *name)
{
  struct xs_volume existing;
  int r;

  if (xs_name_check ("volume", name) == -1)
    return -1;
  r = xs_volume_find (store, scope, name, true, &existing);
  if (r == 0) {
    xs_error ("volume '%s' already exists in account '%s', region '%s'",
              name, scope->account, scope->region);
    xs_volume_clear (&existing);
    return -1;
  }
  return r == 1 ? 0 : -1;
}

/* How a new volume is encrypted: KEY_ID and DATA_KEY (wrapped), or "". */
struct encryption {
  const char *key_id;
  const char *data_key;
};

/* Fill *VOL as the row of a new volume (a fresh id); with SOURCE_ID a
 * clone of that snapshot; ENC (NULL: plain) its encryption.
 */
static int
new_row (const struct xs_scope *scope, const char *name, uint64_t size,
         uint32_t block_size, const char *source_id,
         const struct encryption *enc, struct xs_volume *vol)
{
  memset (vol, 0, sizeof *vol);
  if (xs_new_id ("vol", vol->id, sizeof vol->id) == -1)
    return -1;
  vol->account = strdup (scope->account);
  vol->region = strdup (scope->region);
  vol->name = strdup (name);
  vol->size = size;
  vol->block_size = block_size;
  vol->created_ns = xs_now_ns ();
  vol->cbt_epoch = 0;
  /* A clone's changed-block map is relative to its source. */
  vol->base_snapshot_id = strdup (source_id ? source_id : "");
  vol->source_snapshot_id = strdup (source_id ? source_id : "");
  vol->key_id = strdup (enc ? enc->key_id : "");
  vol->data_key = strdup (enc ? enc->data_key : "");
  vol->head_cipher = strdup (enc && enc->key_id[0] ? XS_HEAD_CIPHER : "");
  if (vol->account == NULL || vol->region == NULL || vol->name == NULL
      || vol->base_snapshot_id == NULL || vol->source_snapshot_id == NULL
      || vol->key_id == NULL || vol->data_key == NULL
      || vol->head_cipher == NULL) {
    xs_error ("cannot create volume '%s': %m", name);
    xs_volume_clear (vol);
    return -1;
  }
  return 0;
}

/* Create a volume; with SOURCE_ID a clone of that snapshot. */
static int
create_volume (struct xs_store *store, const struct xs_scope *scope,
               const char *name, uint64_t size, uint32_t block_size,
               const char *source_id, const struct encryption *enc,
               struct xs_volume *vol)
{
  char *dir = NULL;
  int r;

  memset (vol, 0, sizeof *vol);
  if (xs_volume_check_name_free (store, scope, name) == -1
      || xs_volume_check_block_size (block_size) == -1
      || check_size (name, size, block_size) == -1
      || new_row (scope, name, size, block_size, source_id, enc, vol) == -1)
    return -1;
  dir = xs_volume_dir (store, vol);
  if (dir == NULL
      || xs_head_create (dir, size, block_size, 0, source_id) == -1)
    goto fail;

  /* The row makes the volume visible: it goes in last. */
  xs_catalog_lock (xs_store_catalog (store));
  r = insert_volume (xs_store_catalog (store), vol);
  xs_catalog_unlock (xs_store_catalog (store));
  if (r == -1) {
    xs_remove_tree (dir);
    goto fail;
  }
  free (dir);
  return 0;

 fail:
  free (dir);
  xs_volume_clear (vol);
  return -1;
}

int
xs_volume_create (struct xs_store *store, const struct xs_scope *scope,
                  const char *name, uint64_t size, uint32_t block_size,
                  struct xs_volume *vol)
{
  return create_volume (store, scope, name, size, block_size, NULL, NULL,
                        vol);
}

int
xs_volume_create_encrypted (struct xs_store *store,
                            const struct xs_scope *scope, const char *name,
                            uint64_t size, uint32_t block_size,
                            const char *key_spec, struct xs_volume *vol)
{
  struct xs_key key;
  struct encryption enc;
  char *wrapped = NULL;
  int r = -1;

  memset (vol, 0, sizeof *vol);
  if (xs_name_check ("volume", name) == -1)
    return -1;
  if (key_spec ? xs_key_find (store, scope->account, key_spec, false,
                              &key) != 0
      : xs_key_default (store, scope->account, &key) != 0)
    return -1;
  if (xs_key_new_data_key (store, &key, &wrapped) == 0) {
    enc.key_id = key.id;
    enc.data_key = wrapped;
    r = create_volume (store, scope, name, size, block_size, NULL, &enc,
                       vol);
  }
  free (wrapped);
  xs_key_clear (&key);
  return r;
}

/* A new data key under key KEY_SPEC of SCOPE's account (NULL: its
 * default key): *KEY_ID and *DATA_KEY, malloc'd.
 */
static int
new_encryption (struct xs_store *store, const struct xs_scope *scope,
                const char *key_spec, char **key_id, char **data_key)
{
  struct xs_key key;
  int r = -1;

  if (key_spec ? xs_key_find (store, scope->account, key_spec, false,
                              &key) != 0
      : xs_key_default (store, scope->account, &key) != 0)
    return -1;
  if (xs_key_new_data_key (store, &key, data_key) == 0) {
    *key_id = strdup (key.id);
    if (*key_id == NULL) {
      xs_error ("cannot encrypt a volume: %m");
      free (*data_key);
      *data_key = NULL;
    }
    else
      r = 0;
  }
  xs_key_clear (&key);
  return r;
}

/* The encryption of a clone of SNAP (*KEY_ID and *DATA_KEY, malloc'd;
 * "" for none), by these rules:
 *
 *  - an unencrypted snapshot makes an unencrypted clone, or one under a
 *    new data key with ENCRYPT or KEY_SPEC;
 *  - an encrypted snapshot makes an encrypted clone.  Under the caller's
 *    own key that protects the snapshot, the clone keeps its data key (it
 *    reads through to the source's chunks, and its first snapshot reuses
 *    their ids).  Under any other key — always so for a sharee, whose
 *    disk must use a key of its own, by default its default key — the
 *    clone gets a new data key, and its first snapshot re-encrypts every
 *    block.
 *
 * The source's key was checked usable by the caller (access.c), and its
 * manifest is authenticated here before anything is made.
 */
static int
clone_encryption (struct xs_store *store, const struct xs_scope *scope,
                  const struct xs_snapshot *snap, bool encrypt,
                  const char *key_spec, char **key_id, char **data_key)
{
  struct xs_manifest *m;
  struct xs_repo *repo = NULL;
  struct xs_key key;
  bool keep;
  int r;

  *key_id = *data_key = NULL;
  if (snap->key_id[0] == '\0' && !encrypt && key_spec == NULL) {
    *key_id = strdup ("");
    *data_key = strdup ("");
    if (*key_id && *data_key)
      return 0;
    xs_error ("cannot create a volume: %m");
    return -1;
  }
  if (snap->key_id[0] == '\0')
    return new_encryption (store, scope, key_spec, key_id, data_key);
  /* Loading checks the key is enabled and the manifest authentic. */
  m = xs_snapshot_load_manifest_by_id (store, snap->id, &repo);
  xs_repo_close (repo);
  if (m == NULL)
    return -1;
  keep = strcmp (m->key_account, scope->account) == 0 && key_spec == NULL;
  if (key_spec && strcmp (m->key_account, scope->account) == 0) {
    r = xs_key_find (store, scope->account, key_spec, false, &key);
    if (r != 0) {
      xs_manifest_free (m);
      return -1;
    }
    keep = strcmp (key.id, m->key_id) == 0;
    xs_key_clear (&key);
  }
  if (keep) {
    *key_id = strdup (m->key_id);
    *data_key = strdup (m->data_key);
    r = *key_id && *data_key ? 0 : -1;
    if (r == -1)
      xs_error ("cannot create a volume: %m");
  }
  else
    r = new_encryption (store, scope, key_spec, key_id, data_key);
  xs_manifest_free (m);
  return r;
}

int
xs_volume_create_from_snapshot (struct xs_store *store,
                                const struct xs_scope *scope,
                                const char *name,
                                const struct xs_snapshot *snap, bool encrypt,
                                const char *key_spec, struct xs_volume *vol)
{
  struct encryption enc;
  char *key_id = NULL, *data_key = NULL;
  int r;

  memset (vol, 0, sizeof *vol);
  if (strcmp (snap->status, "available") != 0) {
    xs_error ("cannot create a volume from snapshot %s@%s: it is %s",
              snap->volume_name, snap->name, snap->status);
    return -1;
  }
  r = clone_encryption (store, scope, snap, encrypt, key_spec, &key_id,
                        &data_key);
  if (r == 0) {
    enc.key_id = key_id;
    enc.data_key = data_key;
    r = create_volume (store, scope, name, snap->size, snap->block_size,
                       snap->id, &enc, vol);
  }
  free (key_id);
  free (data_key);
  return r;
}

static int
lock_volume (struct xs_store *store, const struct xs_volume *vol, char **dir)
{
  char *lock = NULL, *what = NULL;
  int fd = -1;

  *dir = xs_volume_dir (store, vol);
  if (*dir == NULL)
    return -1;
  if (asprintf (&lock, "%s/lock", *dir) == -1
      || asprintf (&what, "volume '%s'", vol->name) == -1)
    xs_error ("cannot lock volume '%s': %m", vol->name);
  else
    fd = xs_owner_lock_take (lock, what);
  free (lock);
  free (what);
  if (fd == -1) {
    free (*dir);
    *dir = NULL;
  }
  return fd;
}

int
xs_volume_delete (struct xs_store *store, const char *actor,
                  const struct xs_volume *vol)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  char *dir;
  int lock_fd, r = -1;

  lock_fd = lock_volume (store, vol, &dir);
  if (lock_fd == -1)
    return -1;
  xs_catalog_lock (cat);
  stmt = xs_catalog_begin (cat) == -1 ? NULL
    : xs_catalog_prepare (cat, "DELETE FROM volumes WHERE id = ?",
                          "delete the volume");
  if (stmt != NULL) {
    sqlite3_bind_text (stmt, 1, vol->id, -1, SQLITE_STATIC);
    if (sqlite3_step (stmt) == SQLITE_DONE)
      r = 0;
    else
      xs_catalog_report (cat, "delete the volume");
    sqlite3_finalize (stmt);
  }
  /* The audit row is part of the delete: without it, nothing happened. */
  if (r == 0
      && (xs_audit_resource (store, actor, "xsnap:DeleteVolume", vol->region,
                             vol->account, "volume", vol->id,
                             vol->name) == -1
          || xs_catalog_commit (cat) == -1))
    r = -1;
  if (r == -1)
    xs_catalog_rollback (cat);
  xs_catalog_unlock (cat);
  /* Once the row is gone the volume is deleted; a failure to remove its
   * files only leaves an orphan for gc.
   */
  if (r == 0 && xs_remove_tree (dir) == -1)
    xs_error ("volume '%s' deleted, but its files remain in %s", vol->name,
              dir);
  xs_owner_lock_release (lock_fd);
  free (dir);
  return r;
}

static int
update_size (struct xs_catalog *cat, const struct xs_volume *vol,
             uint64_t new_size)
{
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "UPDATE volumes SET size = ? WHERE id = ?",
                             "record the new size");
  if (stmt != NULL) {
    sqlite3_bind_int64 (stmt, 1, (int64_t) new_size);
    sqlite3_bind_text (stmt, 2, vol->id, -1, SQLITE_STATIC);
    if (sqlite3_step (stmt) == SQLITE_DONE)
      r = 0;
    else
      xs_catalog_report (cat, "record the new size");
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return r;
}

int
xs_volume_resize (struct xs_store *store, struct xs_volume *vol,
                  uint64_t new_size)
{
  struct xs_head *head;
  int r;

  if (new_size < vol->size) {
    xs_error ("cannot shrink volume '%s' (volumes only grow)", vol->name);
    return -1;
  }
  if (check_size (vol->name, new_size, vol->block_size) == -1)
    return -1;
  if (new_size == vol->size)
    return 0;
  head = xs_volume_open_head (store, vol);
  if (head == NULL)
    return -1;
  /* The head first, all or nothing (its new segments made, its dirty map
   * grown), then the row, which makes the new size the volume's; a row
   * that cannot be written undoes the head's grow, so a resize that
   * fails anywhere leaves the volume as it was.  A crash between the two
   * leaves a head longer than the row says, with nothing written past
   * the row's size: opening it gives that back.
   */
  r = xs_head_grow (head, new_size);
  if (r == 0 && (r = update_size (xs_store_catalog (store), vol,
                                  new_size)) == -1)
    (void) xs_head_grow_undo (head, vol->size);
  if (xs_head_close (head) == -1)
    r = -1;
  if (r == 0)
    vol->size = new_size;
  return r;
}

/* The reader of a clone's source snapshot, or NULL with *FAILED unset if
 * VOL is not a clone.
 */
static struct xs_snapreader *
open_source (struct xs_store *store, const struct xs_volume *vol,
             struct xs_chunk_cache *cache, struct xs_repo **repo,
             bool *failed)
{
  struct xs_manifest *m;
  struct xs_snapreader *reader = NULL;
  char *label = NULL;

  *failed = false;
  *repo = NULL;
  if (vol->source_snapshot_id[0] == '\0')
    return NULL;
  *failed = true;
  m = xs_snapshot_load_manifest_by_id (store, vol->source_snapshot_id, repo);
  if (m && asprintf (&label, "snapshot %s (source of volume '%s')",
                              vol->source_snapshot_id, vol->name) != -1)
    reader = xs_snapreader_open (*repo, m, cache, label); /* takes m */
  else
    xs_manifest_free (m);
  free (label);
  if (reader)
    *failed = false;
  else {
    xs_repo_close (*repo);
    *repo = NULL;
  }
  return reader;
}

/* The key of VOL's head at rest: 0 and KEY, 1 if the head is kept in
 * plaintext, -1 (the volume's key is disabled, ...).
 */
static int
head_key (struct xs_store *store, const struct xs_volume *vol,
          unsigned char key[XS_HEAD_KEY_LEN])
{
  struct xs_data_key *dk;

  if (vol->head_cipher[0] == '\0')
    return 1;
  if (strcmp (vol->head_cipher, XS_HEAD_CIPHER) != 0) {
    xs_error ("cannot open volume '%s': its data is kept as '%s', which "
              "this xsnap does not know", vol->name, vol->head_cipher);
    return -1;
  }
  dk = xs_key_open_data_key (store, vol->account, vol->account, vol->key_id,
                             vol->data_key);
  if (dk == NULL)
    return -1;
  memcpy (key, dk->head, XS_HEAD_KEY_LEN);
  xs_data_key_free (dk);
  return 0;
}

/* The catalog's session of VOL's dirty map (dirtymap.h), read afresh:
 * another owner may have opened the volume since VOL was read.  0 and
 * *SESSION, or -1.  Holding the catalog lock.
 */
static int
map_session (struct xs_catalog *cat, const struct xs_volume *vol,
             uint64_t *session)
{
  int64_t value;
  int r = xs_catalog_query_int (cat, "read the dirty map's session", &value,
                                "SELECT dirtymap_session FROM volumes"
                                " WHERE id = ?", "s", vol->id);

  if (r == 1)
    xs_error ("cannot open volume '%s': it no longer exists", vol->name);
  *session = (uint64_t) value;
  return r == 0 ? 0 : -1;
}

/* The owner opening VOL's head starts a new session of its dirty map:
 * the catalog's (*PREVIOUS) counted up, committed before any write.
 */
struct map_owner {
  struct xs_store *store;
  const struct xs_volume *vol;
};

static int
start_map_session (uint64_t *previous, void *opaque)
{
  const struct map_owner *owner = opaque;
  struct xs_catalog *cat = xs_store_catalog (owner->store);
  int r = -1;

  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == 0
      && map_session (cat, owner->vol, previous) == 0
      && xs_catalog_run (cat, "record the dirty map's session",
                         "UPDATE volumes SET dirtymap_session = ?2"
                         " WHERE id = ?1", "si", owner->vol->id,
                         (int64_t) (*previous + 1)) == 1
      && xs_catalog_commit (cat) == 0)
    r = 0;
  else
    xs_catalog_rollback (cat);
  xs_catalog_unlock (cat);
  return r;
}

struct xs_head *
xs_volume_open_head_cached (struct xs_store *store,
                            const struct xs_volume *vol,
                            struct xs_chunk_cache *cache,
                            const char *handed_over)
{
  unsigned char key[XS_HEAD_KEY_LEN];
  struct xs_head *head;
  struct xs_snapreader *source;
  struct xs_repo *repo;
  char *dir;
  bool failed;
  int keyed;

  keyed = head_key (store, vol, key);
  if (keyed == -1)
    return NULL;
  dir = xs_volume_dir (store, vol);
  source = dir ? open_source (store, vol, cache, &repo, &failed) : NULL;
  if (dir == NULL || failed) {
    OPENSSL_cleanse (key, sizeof key);
    free (dir);
    return NULL;
  }
  head = xs_head_open (dir, vol->name, vol->size, vol->block_size,
                       &(struct xs_dirtymap_binding) {
                         .epoch = vol->cbt_epoch,
                         .start_session = start_map_session,
                         .opaque = &(struct map_owner) { store, vol } },
                       vol->source_snapshot_id, source, repo,
                       keyed == 0 ? key : NULL);
  OPENSSL_cleanse (key, sizeof key);
  free (dir);
  /* A new owner: snapshots left pending by the last one will never end,
   * unless it handed one over.
   */
  if (head && xs_snapshot_discard_stale (store, vol, handed_over) == -1) {
    xs_head_close (head);
    return NULL;
  }
  return head;
}

struct xs_head *
xs_volume_open_head (struct xs_store *store, const struct xs_volume *vol)
{
  return xs_volume_open_head_cached (store, vol, NULL, NULL);
}

int
xs_volume_in_use (const struct xs_store *store, const struct xs_volume *vol)
{
  char *dir = xs_volume_dir (store, vol), *lock = NULL;
  int r = -1;

  if (dir && asprintf (&lock, "%s/lock", dir) != -1)
    r = xs_owner_lock_probe (lock);
  free (dir);
  free (lock);
  return r;
}

bool
xs_volume_owned_by_sealer (const struct xs_store *store,
                           const struct xs_volume *vol)
{
  char *dir = xs_volume_dir (store, vol), *lock = NULL;
  bool r = false;

  if (dir && asprintf (&lock, "%s/lock", dir) != -1)
    r = xs_owner_lock_probe (lock) == 1
      && xs_owner_lock_holder_is (lock, "sealer");
  free (dir);
  free (lock);
  return r;
}

/* Run SQL with parameters ?1, ?2 (text) and ?3 (integer; unbound when
 * the statement has no ?3).
 */
static int
update_volume_row (struct xs_store *store, const char *sql, const char *p1,
                   const char *p2, int64_t n, const char *what)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, sql, what);
  if (stmt) {
    sqlite3_bind_text (stmt, 1, p1, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, p2, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 3, n);
    if (sqlite3_step (stmt) == SQLITE_DONE)
      r = 0;
    else
      xs_catalog_report (cat, what);
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return r;
}

int
xs_volume_set_base_locked (struct xs_catalog *cat, const char *volume_id,
                           const char *snapshot_id, uint64_t cbt_epoch)
{
  return xs_catalog_run (cat, "record the volume's new base",
                         "UPDATE volumes SET base_snapshot_id = ?,"
                         " cbt_epoch = ? WHERE id = ?", "sis", snapshot_id,
                         (int64_t) cbt_epoch, volume_id) == -1 ? -1 : 0;
}

int
xs_volume_mark_hydrated (struct xs_store *store, const struct xs_volume *vol)
{
  /* Every block is durable in the head: the source is no longer needed
   * (gc may now purge it if it was deleted).
   */
  return update_volume_row (store, "UPDATE volumes SET source_snapshot_id = ''"
                            " WHERE id = ?1 AND source_snapshot_id = ?2",
                            vol->id, vol->source_snapshot_id, 0,
                            "record the hydrated volume");
}

int
xs_volume_hydrate (struct xs_store *store, const struct xs_volume *vol,
                   const struct xs_hydrate_options *options,
                   uint64_t *copied)
{
  struct xs_hydrate_stats stats;
  struct xs_head *head;
  int r;

  *copied = 0;
  if (vol->source_snapshot_id[0] == '\0')
    return 0;                   /* nothing reads through */
  head = xs_volume_open_head (store, vol);
  if (head == NULL)
    return -1;
  r = xs_head_hydrate (head, options, &stats) == XS_HYDRATE_DONE ? 0 : -1;
  *copied = stats.copied;
  if (r == 0 && xs_volume_mark_hydrated (store, vol) == -1)
    r = -1;
  if (xs_head_close (head) == -1)
    r = -1;
  return r;
}

/* A volume reads through to the snapshot it is reset to, and its next
 * snapshot reuses that snapshot's chunk ids: both must be under the same
 * data key (or both unencrypted).
 */
static int
check_same_data_key (struct xs_store *store, const struct xs_volume *vol,
                     const struct xs_snapshot *snap)
{
  struct xs_manifest *m;
  struct xs_repo *repo;
  bool same;

  if (!xs_volume_is_encrypted (vol) && snap->key_id[0] == '\0')
    return 0;
  same = xs_volume_is_encrypted (vol) && snap->key_id[0] != '\0';
  if (same) {
    m = xs_snapshot_load_manifest_by_id (store, snap->id, &repo);
    xs_repo_close (repo);
    if (m == NULL)
      return -1;
    same = strcmp (m->data_key, vol->data_key) == 0;
    xs_manifest_free (m);
  }
  if (!same)
    xs_error ("cannot reset volume '%s' to snapshot %s@%s: they are not "
              "encrypted under the same data key (re-encryption is not "
              "supported yet)", vol->name, snap->volume_name, snap->name);
  return same ? 0 : -1;
}

int
xs_volume_reset (struct xs_store *store, struct xs_volume *vol,
                 const struct xs_snapshot *snap)
{
  char *dir = NULL, *base = NULL, *source = NULL;
  int lock_fd, r = -1;

  if (strcmp (snap->status, "available") != 0
      || snap->block_size != vol->block_size) {
    xs_error ("cannot reset volume '%s' to snapshot %s@%s: %s", vol->name,
              snap->volume_name, snap->name,
              snap->block_size != vol->block_size
              ? "its block size differs" : "it is not available");
    goto out;
  }
  if (check_same_data_key (store, vol, snap) == -1)
    goto out;
  lock_fd = lock_volume (store, vol, &dir);
  if (lock_fd == -1)
    goto out;
  /* The catalog first: if we stop half-way, the volume's row already
   * names the new source, and opening the head finds its present map
   * missing or old and fails loudly rather than serve a mixture.
   */
  if (update_volume_row (store, "UPDATE volumes SET source_snapshot_id = ?2,"
                         " base_snapshot_id = ?2, size = ?3,"
                         " cbt_epoch = cbt_epoch + 1 WHERE id = ?1",
                         vol->id, snap->id, (int64_t) snap->size,
                         "record the reset") == 0
      && xs_head_recreate_as_clone (dir, snap->size, snap->block_size,
                                    snap->id) == 0)
    r = 0;
  if (r == 0) {
    /* The dirty map of the old epoch is now meaningless: start afresh. */
    struct xs_catalog *cat = xs_store_catalog (store);
    uint64_t session;
    char *map;
    xs_catalog_lock (cat);
    r = map_session (cat, vol, &session);
    xs_catalog_unlock (cat);
    if (r == 0 && asprintf (&map, "%s/dirtymap", dir) == -1)
      r = -1;
    if (r == 0) {
      unlink (map);
      r = xs_dirtymap_create (map, vol->block_size,
                              (snap->size + vol->block_size - 1)
                              / vol->block_size, vol->cbt_epoch + 1,
                              session);
      free (map);
    }
  }
  xs_owner_lock_release (lock_fd);
  if (r == 0) {
    base = strdup (snap->id);
    source = strdup (snap->id);
    if (base && source) {
      free (vol->base_snapshot_id);
      free (vol->source_snapshot_id);
      vol->base_snapshot_id = base;
      vol->source_snapshot_id = source;
      base = source = NULL;
    }
    vol->size = snap->size;
    vol->cbt_epoch++;
  }
 out:
  free (base);
  free (source);
  free (dir);
  return r;
}

/* Staged creation (see volume.h).
 *
 * A staged head lives in volumes/.staging/ID and carries the file
 * "staged" from its creation until after its row is committed.  The
 * commit inserts the row, renames the directory to volumes/ID and commits,
 * all in one catalog transaction, so a crash leaves either the row and
 * the head in place or no row; a marked directory without a row (a crash
 * between the rename and the commit) is as dead as one still in staging.
 */

#define STAGING_DIR ".staging"
#define STAGED_MARK "staged"

/* volumes/.staging of REGION, or the staged head ID in it. */
static char *
staging_path (const struct xs_store *store, const char *region,
              const char *id)
{
  char *top = xs_store_head_dir (store, region, STAGING_DIR), *path = NULL;

  if (top == NULL || id == NULL)
    return top;
  if (asprintf (&path, "%s/%s", top, id) == -1) {
    xs_error ("cannot build the path of staged volume %s: %m", id);
    path = NULL;
  }
  free (top);
  return path;
}

/* Is there a row for volume ID (in any account)?  1, 0 or -1. */
static int
row_exists (struct xs_store *store, const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "SELECT 1 FROM volumes WHERE id = ?",
                             "look up a volume");
  if (stmt) {
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    switch (sqlite3_step (stmt)) {
    case SQLITE_ROW: r = 1; break;
    case SQLITE_DONE: r = 0; break;
    default: xs_catalog_report (cat, "look up a volume");
    }
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return r;
}

/* Call FN for each entry of DIR whose name does not start with '.'; a
 * missing DIR has none.
 */
static int
for_each_entry (const char *dir,
                int (*fn) (const char *dir, const char *name, void *opaque),
                void *opaque)
{
  struct dirent *d;
  DIR *dp = opendir (dir);
  int r = 0;

  if (dp == NULL) {
    if (errno == ENOENT)
      return 0;
    xs_error ("cannot list %s: %m", dir);
    return -1;
  }
  while (r == 0 && (errno = 0, d = readdir (dp)) != NULL)
    if (d->d_name[0] != '.')
      r = fn (dir, d->d_name, opaque);
  if (r == 0 && errno != 0) {
    xs_error ("cannot list %s: %m", dir);
    r = -1;
  }
  closedir (dp);
  return r;
}

struct clean_pass {
  struct xs_store *store;
  uint64_t *removed;
};

static int
remove_staged (const char *dir, const char *name, void *opaque)
{
  struct clean_pass *pass = opaque;
  char *path;
  int r = -1;

  if (asprintf (&path, "%s/%s", dir, name) == -1) {
    xs_error ("cannot remove staged volume %s: %m", name);
    return -1;
  }
  if (xs_remove_tree (path) == 0) {
    (*pass->removed)++;
    r = 0;
  }
  free (path);
  return r;
}

/* A head in place that still has its mark: without a row its commit never
 * happened; with one, only the unmarking did.
 */
static int
check_marked (const char *dir, const char *name, void *opaque)
{
  struct clean_pass *pass = opaque;
  char *mark;
  int r = 0;

  if (asprintf (&mark, "%s/%s/" STAGED_MARK, dir, name) == -1) {
    xs_error ("cannot check volume directory %s: %m", name);
    return -1;
  }
  if (access (mark, F_OK) == 0) {
    r = row_exists (pass->store, name);
    if (r == 0)
      r = remove_staged (dir, name, opaque);
    else if (r == 1) {
      r = 0;
      if (unlink (mark) == -1 && errno != ENOENT) {
        xs_error ("cannot remove %s: %m", mark);
        r = -1;
      }
    }
  }
  free (mark);
  return r;
}

int
xs_volume_clean_staging (struct xs_store *store, const char *region,
                         uint64_t *removed)
{
  struct clean_pass pass = { .store = store, .removed = removed };
  char *top = staging_path (store, region, NULL), *slash;
  int r = -1;

  *removed = 0;
  if (top == NULL)
    return -1;
  if (for_each_entry (top, remove_staged, &pass) == 0) {
    slash = strrchr (top, '/');
    *slash = '\0';              /* the volumes directory */
    r = for_each_entry (top, check_marked, &pass);
  }
  free (top);
  return r;
}

/* The region's gc lock, shared, for a staged creation.  When no one else
 * holds it (no creator, sealer or receiver is running), the staged heads
 * left behind are dead: clean them up first.
 */
static int
stage_lock (struct xs_store *store, const char *region)
{
  uint64_t removed;
  int fd = xs_snapshot_gc_lock (store, region, false);

  if (fd == -1)
    return -1;
  if (flock (fd, LOCK_EX | LOCK_NB) == 0
      && xs_volume_clean_staging (store, region, &removed) == -1) {
    close (fd);
    return -1;
  }
  /* A failed conversion may have dropped the shared lock: take it again
   * (waiting for gc, if it came in between).
   */
  if (flock (fd, LOCK_SH) == -1) {
    xs_error ("cannot lock region '%s': %m", region);
    close (fd);
    return -1;
  }
  return fd;
}

/* Create an empty file NAME in DIR, durably. */
static int
create_mark (const char *dir, const char *name)
{
  char *path;
  int fd = -1, r = -1;

  if (asprintf (&path, "%s/%s", dir, name) == -1) {
    xs_error ("cannot mark %s: %m", dir);
    return -1;
  }
  fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1)
    xs_error ("cannot create %s: %m", path);
  else if (close (fd) == -1)
    xs_error ("cannot create %s: %m", path);
  else
    r = xs_fsync_dir (dir);
  free (path);
  return r;
}

static int
make_staging_dir (const struct xs_store *store, const char *region)
{
  char *top = staging_path (store, region, NULL);
  int r = -1;

  if (top == NULL)
    return -1;
  if (mkdir (top, 0700) == 0)
    r = xs_fsync_parent (top);
  else if (errno == EEXIST)
    r = 0;
  else
    xs_error ("cannot create %s: %m", top);
  free (top);
  return r;
}

int
xs_volume_stage_begin (struct xs_store *store, const struct xs_scope *scope,
                       const char *name, uint64_t size, uint32_t block_size,
                       struct xs_volume_stage *stage)
{
  memset (stage, 0, sizeof *stage);
  stage->gc_lock_fd = -1;
  if (xs_volume_check_name_free (store, scope, name) == -1
      || xs_volume_check_block_size (block_size) == -1
      || check_size (name, size, block_size) == -1
      || new_row (scope, name, size, block_size, NULL, NULL,
                  &stage->vol) == -1)
    return -1;
  stage->gc_lock_fd = stage_lock (store, scope->region);
  if (stage->gc_lock_fd == -1
      || make_staging_dir (store, scope->region) == -1)
    goto fail;
  stage->dir = staging_path (store, scope->region, stage->vol.id);
  if (stage->dir == NULL
      || xs_head_create (stage->dir, size, block_size, 0, NULL) == -1
      || create_mark (stage->dir, STAGED_MARK) == -1)
    goto fail;
  return 0;

 fail:
  xs_volume_stage_end (stage);
  return -1;
}

struct xs_head *
xs_volume_stage_open_head (struct xs_volume_stage *stage)
{
  const struct xs_volume *vol = &stage->vol;

  /* No row yet: the map keeps the session a new row starts with. */
  return xs_head_open (stage->dir, vol->name, vol->size, vol->block_size,
                       &(struct xs_dirtymap_binding) {
                         .epoch = vol->cbt_epoch,
                         .session = vol->dirtymap_session },
                       vol->source_snapshot_id, NULL, NULL, NULL);
}

/* Insert the row and move the head into place, holding the catalog lock.
 * Returns 0, or -1 with *RENAMED telling where the head is.
 */
static int
commit_locked (struct xs_catalog *cat, const struct xs_volume_stage *stage,
               const char *dir, bool *renamed)
{
  *renamed = false;
  if (xs_catalog_begin (cat) == -1)
    return -1;
  if (insert_volume (cat, &stage->vol) == 0) {
    if (rename (stage->dir, dir) == -1)
      xs_error ("cannot move volume '%s' into place: %s: %m",
                stage->vol.name, dir);
    else {
      *renamed = true;
      if (xs_fsync_parent (dir) == 0 && xs_fsync_parent (stage->dir) == 0
          && xs_catalog_commit (cat) == 0)
        return 0;
    }
  }
  xs_catalog_rollback (cat);
  return -1;
}

int
xs_volume_stage_commit (struct xs_store *store,
                        struct xs_volume_stage *stage)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *dir = xs_volume_dir (store, &stage->vol), *mark = NULL;
  bool renamed;
  int r;

  if (dir == NULL)
    return -1;
  xs_catalog_lock (cat);
  r = commit_locked (cat, stage, dir, &renamed);
  xs_catalog_unlock (cat);
  if (r == -1) {
    /* No row: the head, wherever it is, is nobody's. */
    if (renamed)
      xs_remove_tree (dir);
    free (dir);
    return -1;
  }
  free (stage->dir);
  stage->dir = NULL;            /* it is the volume's now */
  /* A mark left by a crash here is removed by gc, which finds the row. */
  if (asprintf (&mark, "%s/" STAGED_MARK, dir) != -1)
    unlink (mark);
  free (mark);
  free (dir);
  return 0;
}

void
xs_volume_stage_end (struct xs_volume_stage *stage)
{
  if (stage->dir)
    xs_remove_tree (stage->dir);
  free (stage->dir);
  if (stage->gc_lock_fd >= 0)
    close (stage->gc_lock_fd);
  xs_volume_clear (&stage->vol);
  stage->dir = NULL;
  stage->gc_lock_fd = -1;
}

/* Naming a volume for the modules that keep its id in their rows. */

int
xs_volume_name_by_id (struct xs_store *store, const char *id, char **name)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  *name = NULL;
  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "look up a volume",
                                  "SELECT name FROM volumes WHERE id = ?",
                                  "s", id);
  if (stmt == NULL)
    goto out;
  switch (sqlite3_step (stmt)) {
  case SQLITE_ROW:
    *name = strdup ((const char *) sqlite3_column_text (stmt, 0));
    if (*name == NULL)
      xs_error ("cannot look up volume %s: %m", id);
    else
      r = 0;
    break;
  case SQLITE_DONE:
    r = 1;
    break;
  default:
    xs_catalog_report (cat, "look up a volume");
  }
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}
