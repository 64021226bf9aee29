/* xsnap: taking a snapshot of a volume (see snapnew.h).
 *
 * The point in time is the seal's (head/seal.h); this module puts the
 * rest around it: the pending record, the base manifest the volume's
 * dirty map is relative to, the data key of an encrypted volume, the
 * manifest written to the repository, and the one catalog transaction
 * that makes the snapshot available and the volume's base.  It sits
 * above snapshot.c and volume.c, whose rows it changes through them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/names.h"
#include "catalog/keys.h"
#include "catalog/snapnew.h"
#include "catalog/snapshot.h"
#include "catalog/volume.h"
#include "head/seal.h"
#include "repo/repo.h"

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

/* What taking and resuming a snapshot of VOL share: the op (holding the
 * region's gc lock shared, the repository and an encrypted volume's data
 * key), the base manifest the dirty map is relative to (*BASE, may be
 * NULL), whether the map may be used against it (*MATCHES) and whether
 * it is the new snapshot's parent (*IS_PARENT).  NULL (reported).
 */
static struct xs_snapshot_op *
new_op (struct xs_store *store, const struct xs_volume *vol,
        struct xs_manifest **base, bool *matches, bool *is_parent)
{
  struct xs_snapshot_op *op = calloc (1, sizeof *op);

  *base = NULL;
  if (op == NULL || (op->volume_id = strdup (vol->id)) == NULL) {
    xs_error ("cannot snapshot volume '%s': %m", vol->name);
    free (op);
    return NULL;
  }
  op->store = store;
  op->new_epoch = vol->cbt_epoch + 1;
  op->gc_lock_fd = xs_snapshot_gc_lock (store, vol->region, false);
  op->repo = op->gc_lock_fd == -1 ? NULL
    : xs_store_repo (store, vol->account, vol->region);
  if (op->repo == NULL || open_volume_key (op, vol) == -1) {
    free_op (op);
    return NULL;
  }
  *base = load_base (store, vol, matches, is_parent);
  if (*base && !base_fits (*base, vol)) {
    xs_manifest_free (*base);
    *base = NULL;
    *matches = *is_parent = false;
  }
  return op;
}

/* Take the point in time of OP on H, relative to BASE (taken over). */
static int
begin_seal (struct xs_snapshot_op *op, struct xs_head *h,
            const struct xs_volume *vol, struct xs_manifest *base,
            bool matches)
{
  /* The seal's manifest keeps its block map in the same repository. */
  struct xs_repo *map_repo = xs_store_repo (op->store, vol->account,
                                            vol->region);

  if (map_repo == NULL) {
    xs_manifest_free (base);
    return -1;
  }
  op->seal = xs_seal_begin (h, op->repo, map_repo, base, matches, op->dk);
  return op->seal ? 0 : -1;
}

struct xs_snapshot_op *
xs_snapshot_start (struct xs_store *store, struct xs_head *h,
                   const struct xs_volume *vol, const char *name,
                   struct xs_snapshot *snap)
{
  struct xs_snapshot_op *op;
  struct xs_manifest *base;
  bool matches, is_parent;

  if (name && xs_name_check ("snapshot", name) == -1)
    return NULL;
  op = new_op (store, vol, &base, &matches, &is_parent);
  if (op == NULL)
    return NULL;
  if (describe_new (vol, name, is_parent ? vol->base_snapshot_id : "",
                    snap) == -1) {
    xs_manifest_free (base);
    free_op (op);
    return NULL;
  }
  if (xs_snapshot_record_pending (store, snap) == -1) {
    xs_manifest_free (base);
    goto fail;
  }
  if (begin_seal (op, h, vol, base, matches) == -1) {
    xs_snapshot_delete_pending (store, snap->id);
    goto fail;
  }
  return op;

 fail:
  xs_snapshot_clear (snap);
  free_op (op);
  return NULL;
}

/* SNAP (ID's record) is a pending snapshot of VOL. */
static int
check_handed_over (const struct xs_volume *vol, const char *id, int found,
                   const struct xs_snapshot *snap)
{
  if (found == 1)
    xs_error ("cannot take over snapshot %s of volume '%s': it has no "
              "record", id, vol->name);
  else if (found == 0 && (strcmp (snap->volume_id, vol->id) != 0
                          || strcmp (snap->status, "pending") != 0))
    xs_error ("cannot take over snapshot %s of volume '%s': it is %s, of "
              "volume %s", id, vol->name, snap->status, snap->volume_id);
  else
    return found;
  return -1;
}

struct xs_snapshot_op *
xs_snapshot_resume (struct xs_store *store, struct xs_head *h,
                    const struct xs_volume *vol, const char *id,
                    struct xs_snapshot *snap)
{
  struct xs_snapshot_op *op;
  struct xs_manifest *base;
  bool matches, is_parent;
  const char *parent;
  char *parent_copy;
  int found;

  found = xs_snapshot_lookup_id (store, id, snap);
  if (check_handed_over (vol, id, found, snap) == -1) {
    if (found == 0)
      xs_snapshot_clear (snap);
    return NULL;
  }
  op = new_op (store, vol, &base, &matches, &is_parent);
  if (op == NULL) {
    xs_snapshot_delete_pending (store, id);
    xs_snapshot_clear (snap);
    return NULL;
  }
  /* The parent is what this owner finds the base to be (it is what the
   * last owner found, unless the base has become unreadable meanwhile).
   */
  parent = is_parent ? vol->base_snapshot_id : "";
  parent_copy = strdup (parent);
  if (parent_copy == NULL) {
    xs_error ("cannot take over snapshot %s: %m", id);
    xs_manifest_free (base);
    goto fail;
  }
  free (snap->parent_id);
  snap->parent_id = parent_copy;
  if (xs_snapshot_adopt_pending (store, id, vol->id, parent) == -1) {
    xs_manifest_free (base);
    goto fail;
  }
  if (begin_seal (op, h, vol, base, matches) == -1)
    goto fail;
  return op;

 fail:
  xs_snapshot_delete_pending (store, id);
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
  if (xs_manifest_seal (m) == -1
      || xs_manifest_serialize (m, &data, &len) == -1)
    return -1;
  r = xs_repo_put_manifest (op->repo, snap->id, data, len);
  free (data);
  return r == -1 ? -1 : 0;
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

  if (xs_catalog_begin (cat) == -1)
    return -1;
  if (xs_snapshot_mark_available_locked (cat, snap->id, root,
                                         stats->changed_blocks,
                                         stats->stored_bytes) == -1
      || xs_volume_set_base_locked (cat, op->volume_id, snap->id,
                                    op->new_epoch) == -1
      || xs_catalog_commit (cat) == -1) {
    xs_catalog_rollback (cat);
    return -1;
  }
  return 0;
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

enum xs_snapshot_outcome
xs_snapshot_finish (struct xs_snapshot_op *op, const atomic_int *stop,
                    void (*progress) (uint64_t done, uint64_t total,
                                      void *opaque),
                    void *opaque, struct xs_snapshot *snap)
{
  enum xs_snapshot_outcome outcome = XS_SNAPSHOT_AVAILABLE;
  struct xs_seal_stats stats;
  int r;

  r = xs_seal_run (op->seal, 0, stop, progress, opaque);
  xs_seal_get_stats (op->seal, &stats);
  if (r == 0)
    r = write_manifest (op, snap);
  if (r == 0)
    r = record_available (op, snap, &stats);
  if (r == -1 && xs_seal_stopped (op->seal))
    outcome = XS_SNAPSHOT_STOPPED;     /* the record is handed over */
  else if (r == -1) {
    outcome = XS_SNAPSHOT_FAILED;
    xs_snapshot_delete_pending (op->store, snap->id);
  }
  /* A manifest written without its row is an orphan that gc removes.  If
   * the dirty map cannot take the new epoch (reported), the snapshot
   * still stands: the next open finds the map of the wrong epoch and the
   * next snapshot compares every block.
   */
  xs_seal_end (op->seal, r == 0, op->new_epoch);
  free_op (op);
  return outcome;
}
