/* xsnap: live volumes — catalog rows plus heads on disk.
 *
 * A volume belongs to one account in one region and is named uniquely
 * there; on disk it is known only by its id ("vol-" and 16 hex digits), so
 * names never reach paths.  Creation makes the head first and the catalog
 * row last; deletion removes the row first: a crash in between leaves an
 * orphan directory (reclaimed by gc), never a row without its head.
 */
#ifndef XSNAP_VOLUME_H
#define XSNAP_VOLUME_H

#include <stdint.h>

#include "head.h"
#include "store.h"

#define XS_ID_MAX 32
#define XS_BLOCK_SIZE_MIN 4096u
#define XS_BLOCK_SIZE_MAX (4u << 20)
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
  char *base_snapshot_id;       /* what the dirty map is relative to, or "" */
  char *source_snapshot_id;     /* a clone's source while unhydrated, or "" */
  char *key_id;                 /* encrypted: the account key, else "" */
  char *data_key;               /* encrypted: the data key wrapped by it */
};

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

/* Delete VOL.  Refused while another process owns it. */
extern int xs_volume_delete (struct xs_store *store,
                             const struct xs_volume *vol);

/* Grow VOL to NEW_SIZE (a multiple of its block size).  Refused while
 * another process owns it.  Updates *VOL.
 */
extern int xs_volume_resize (struct xs_store *store, struct xs_volume *vol,
                             uint64_t new_size);

/* Whether another process owns VOL (serves it): 1, 0, or -1 if unknown. */
extern int xs_volume_in_use (const struct xs_store *store,
                             const struct xs_volume *vol);

/* Open VOL's head as its owner.  CACHE (may be NULL) serves a clone's
 * reads of its source snapshot.
 */
struct xs_chunk_cache;
extern struct xs_head *xs_volume_open_head (struct xs_store *store,
                                            const struct xs_volume *vol);
extern struct xs_head *xs_volume_open_head_cached (struct xs_store *store,
                                                   const struct xs_volume *vol,
                                                   struct xs_chunk_cache *cache);

/* Create volume NAME in SCOPE from snapshot SNAPSHOT_ID (of SCOPE): an
 * instant clone whose blocks read through to the snapshot until written
 * or hydrated.
 */
extern int xs_volume_create_from_snapshot (struct xs_store *store,
                                           const struct xs_scope *scope,
                                           const char *name,
                                           const char *snapshot_spec,
                                           struct xs_volume *vol);

/* The same, saying what the caller asked of encryption: ENCRYPT and
 * KEY_SPEC (may be NULL).  A clone of an encrypted snapshot is encrypted
 * under the snapshot's key and data key; asking for another key, or for
 * encryption of an unencrypted snapshot's clone, is refused for now (the
 * clone reads through to its source's chunks and ids).
 */
extern int xs_volume_create_from_snapshot_ex (struct xs_store *store,
                                              const struct xs_scope *scope,
                                              const char *name,
                                              const char *snapshot_spec,
                                              bool encrypt,
                                              const char *key_spec,
                                              struct xs_volume *vol);

/* Copy every block of a clone into its head; afterwards the volume no
 * longer needs its source snapshot.  Refused while attached.
 */
extern int xs_volume_hydrate (struct xs_store *store,
                              const struct xs_volume *vol,
                              void (*progress) (uint64_t done,
                                                uint64_t total,
                                                void *opaque),
                              void *opaque, uint64_t *copied);

/* Record that VOL, a clone whose head was fully hydrated by its owner, no
 * longer needs its source.
 */
extern int xs_volume_mark_hydrated (struct xs_store *store,
                                    const struct xs_volume *vol);

/* Roll VOL back to snapshot SNAPSHOT_SPEC (of the same block size): VOL
 * becomes a clone of it.  Refused while attached.
 */
extern int xs_volume_reset (struct xs_store *store, struct xs_volume *vol,
                            const char *snapshot_spec);

/* The head directory of VOL (malloc'd). */
extern char *xs_volume_dir (const struct xs_store *store,
                            const struct xs_volume *vol);

#endif /* XSNAP_VOLUME_H */
