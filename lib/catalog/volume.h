/* xsnap: live volumes — catalog rows plus heads on disk.
 *
 * A volume belongs to one account in one region and is named uniquely
 * there; on disk it is known only by its id ("vol-" and 16 hex digits), so
 * names never reach paths.  Creation makes the head first and the catalog
 * row last; deletion removes the row first: a crash in between leaves an
 * orphan directory, never a row without its head.  A volume that must be
 * filled before it is seen (import) is staged: see xs_volume_stage_begin.
 */
#ifndef XSNAP_VOLUME_H
#define XSNAP_VOLUME_H

#include <stdint.h>

#include "head/head.h"
#include "repo/manifest.h"
#include "catalog/store.h"

#define XS_ID_MAX 32
#define XS_BLOCK_SIZE_MIN XS_MANIFEST_MIN_BLOCK_SIZE
#define XS_BLOCK_SIZE_MAX XS_MANIFEST_MAX_BLOCK_SIZE
#define XS_BLOCK_SIZE_DEFAULT (512u << 10)
#define XS_VOLUME_SIZE_MAX (UINT64_C (64) << 40)    /* 64 TiB */

struct xs_volume {
  char id[XS_ID_MAX];
  char *account;
  char *region;
  char *name;
  uint64_t size;
  uint32_t block_size;
  int64_t created_ns;
  uint64_t cbt_epoch;
  uint64_t dirtymap_session;    /* the owner's open its dirty map is of */
  char *base_snapshot_id;       /* what the dirty map is relative to, or "" */
  char *source_snapshot_id;     /* a clone's source while unhydrated, or "" */
  char *key_id;                 /* encrypted: the account key, else "" */
  char *data_key;               /* encrypted: the data key wrapped by it */
  char *head_cipher;            /* XS_HEAD_CIPHER: the head's data is
                                   encrypted at rest; "": plaintext */
};

/* The head cipher of encrypted volumes: AES-128-XTS per 4 KiB sector. */
#define XS_HEAD_CIPHER "aes128-xts-4k"

extern void xs_volume_clear (struct xs_volume *vol);

/* Check a block size: a power of two from 4K to 4M.  Reports why not. */
extern int xs_volume_check_block_size (uint64_t block_size);

/* Create a volume NAME of SIZE bytes in SCOPE.  On success *VOL describes
 * it (the caller clears it).
 */
extern int xs_volume_create (struct xs_store *store,
                             const struct xs_scope *scope, const char *name,
                             uint64_t size, uint32_t block_size,
                             struct xs_volume *vol);

/* The same, encrypted: the snapshots of the volume are sealed under a new
 * data key wrapped by key KEY_SPEC of the account (NULL: its default
 * key, made on first use).
 */
extern int xs_volume_create_encrypted (struct xs_store *store,
                                       const struct xs_scope *scope,
                                       const char *name, uint64_t size,
                                       uint32_t block_size,
                                       const char *key_spec,
                                       struct xs_volume *vol);

static inline int
xs_volume_is_encrypted (const struct xs_volume *vol)
{
  return vol->key_id != NULL && vol->key_id[0] != '\0';
}

/* Find a volume of SCOPE by name or id.  A missing volume is reported
 * ("no volume 'x' in account 'a', region 'r'") unless QUIET, and returns 1
 * (no error) then.
 */
extern int xs_volume_find (struct xs_store *store,
                           const struct xs_scope *scope, const char *name,
                           bool quiet, struct xs_volume *vol);

/* Call FN for each volume of SCOPE, by name. */
extern int xs_volume_list (struct xs_store *store,
                           const struct xs_scope *scope,
                           int (*fn) (const struct xs_volume *vol,
                                      void *opaque),
                           void *opaque);

/* ACTOR deletes VOL, audited as xsnap:DeleteVolume in the same
 * transaction, so no volume is deleted without its audit row.  The caller
 * has checked the permission.  Refused while another process owns it.
 */
extern int xs_volume_delete (struct xs_store *store, const char *actor,
                             const struct xs_volume *vol);

/* Grow VOL to NEW_SIZE (a multiple of its block size).  Refused while
 * another process owns it.  Updates *VOL.
 */
extern int xs_volume_resize (struct xs_store *store, struct xs_volume *vol,
                             uint64_t new_size);

/* Whether another process owns VOL (serves it): 1, 0, or -1 if unknown. */
extern int xs_volume_in_use (const struct xs_store *store,
                             const struct xs_volume *vol);

/* Whether the process that owns VOL is a detached sealer (ops/server.h),
 * which holds it only while its snapshots seal: not an attachment.
 */
extern bool xs_volume_owned_by_sealer (const struct xs_store *store,
                                       const struct xs_volume *vol);

/* Open VOL's head as its owner; pending snapshots of VOL that an earlier
 * owner left are removed.  CACHE (may be NULL) serves a clone's reads of
 * its source snapshot.  HANDED_OVER (may be NULL) is the id of a pending
 * snapshot the last owner handed over to this one, which is kept.
 */
struct xs_chunk_cache;
extern struct xs_head *xs_volume_open_head (struct xs_store *store,
                                            const struct xs_volume *vol);
extern struct xs_head *xs_volume_open_head_cached (struct xs_store *store,
                                                   const struct xs_volume *vol,
                                                   struct xs_chunk_cache *cache,
                                                   const char *handed_over);

/* Create volume NAME in SCOPE from SNAP, which the caller has found as
 * SCOPE's account may see it (ops/clone.h): an instant clone whose blocks
 * read through to the snapshot until written or hydrated.  ENCRYPT and
 * KEY_SPEC (may be NULL) say what the caller asked of encryption.  A
 * clone of an encrypted snapshot is always encrypted: under the
 * snapshot's own data key when the caller owns its key and names no
 * other, else under a new data key of the caller's key KEY_SPEC (default:
 * its default key), as a sharee must.  A clone of an unencrypted
 * snapshot is encrypted if asked.  A clone under a new data key is
 * re-encrypted by its first snapshot.
 */
struct xs_snapshot;
extern int xs_volume_create_from_snapshot (struct xs_store *store,
                                           const struct xs_scope *scope,
                                           const char *name,
                                           const struct xs_snapshot *snap,
                                           bool encrypt,
                                           const char *key_spec,
                                           struct xs_volume *vol);

/* Copy every block of a clone into its head (as OPTIONS say, which may
 * be NULL: head.h); afterwards the volume no longer needs its source
 * snapshot.  Refused while attached.
 */
struct xs_hydrate_options;
extern int xs_volume_hydrate (struct xs_store *store,
                              const struct xs_volume *vol,
                              const struct xs_hydrate_options *options,
                              uint64_t *copied);

/* Make SNAPSHOT_ID the base of volume VOLUME_ID, whose dirty map is now
 * of epoch CBT_EPOCH: holding the catalog lock, in the transaction that
 * makes the snapshot available (catalog/snapnew.c).  0 or -1.
 */
struct xs_catalog;
extern int xs_volume_set_base_locked (struct xs_catalog *cat,
                                      const char *volume_id,
                                      const char *snapshot_id,
                                      uint64_t cbt_epoch);

/* Record that VOL, a clone whose head was fully hydrated by its owner, no
 * longer needs its source.
 */
extern int xs_volume_mark_hydrated (struct xs_store *store,
                                    const struct xs_volume *vol);

/* Roll VOL back to SNAP (of the same block size), found by the caller
 * as VOL's account may see it (ops/clone.h): VOL becomes a clone of it.
 * Refused while attached.
 */
extern int xs_volume_reset (struct xs_store *store, struct xs_volume *vol,
                            const struct xs_snapshot *snap);

/* Staged creation, for a volume that is filled before anyone may see it
 * (import).  Its head is built in REGION/volumes/.staging/ID, which no
 * catalog row names, and becomes the volume at commit: in one catalog
 * transaction the row is inserted and the directory renamed into place.
 * Until its commit or abort the creator holds the region's gc lock
 * shared, so gc (which holds it exclusively) knows that every staged head
 * it finds was left by a creator that died, and removes it.
 */
struct xs_volume_stage {
  struct xs_volume vol;         /* the row to be */
  char *dir;                    /* where the head is built */
  int gc_lock_fd;
};

/* Fail with "volume 'NAME' already exists ..." if NAME is not a valid,
 * free volume name in SCOPE.
 */
extern int xs_volume_check_name_free (struct xs_store *store,
                                      const struct xs_scope *scope,
                                      const char *name);

/* Check NAME is free and build an empty head for it in staging.  Removes
 * staged heads of dead creators when no other creator or sealer is
 * running.
 */
extern int xs_volume_stage_begin (struct xs_store *store,
                                  const struct xs_scope *scope,
                                  const char *name, uint64_t size,
                                  uint32_t block_size,
                                  struct xs_volume_stage *stage);

/* Open the staged head as its owner (to fill it). */
extern struct xs_head *xs_volume_stage_open_head (struct xs_volume_stage
                                                  *stage);

/* Make the staged volume visible.  Its head must be closed (durable).
 * The name is checked again.  On success STAGE->vol is the new volume;
 * either way STAGE is finished (clear it with xs_volume_stage_end); on
 * failure the staged head is removed.
 */
extern int xs_volume_stage_commit (struct xs_store *store,
                                   struct xs_volume_stage *stage);

/* Remove the staged head if it was not committed, release the lock and
 * free STAGE's contents.
 */
extern void xs_volume_stage_end (struct xs_volume_stage *stage);

/* Remove the staged heads of REGION, and heads renamed into place whose
 * commit never happened.  The caller holds the region's gc lock
 * exclusively.  *REMOVED counts them.
 */
extern int xs_volume_clean_staging (struct xs_store *store,
                                    const char *region, uint64_t *removed);

/* The head directory of VOL (malloc'd). */
extern char *xs_volume_dir (const struct xs_store *store,
                            const struct xs_volume *vol);

/* Naming a volume for the modules that keep its id in their rows. */

/* The name of volume ID, in any account and region: 0 and *NAME
 * (malloc'd), 1 if there is no such volume (not reported), or -1.
 */
extern int xs_volume_name_by_id (struct xs_store *store, const char *id,
                                 char **name);

#endif /* XSNAP_VOLUME_H */
