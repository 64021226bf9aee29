/* xsnap: snapshots — catalog records, and taking them.
 *
 * A snapshot is named VOLUME@NAME (names are unique per volume name among
 * snapshots not deleted) or by its id ("snap-" and 16 hex digits).  It is
 * 'pending' from its point in time until its manifest is durable, then
 * 'available'.  Commit order: chunks durable, then the
 * manifest (atomic, durable), then the catalog row says 'available'.  A
 * crash anywhere leaves either no snapshot or a complete one; a pending
 * row whose owner died is removed by the next owner or by gc.
 *
 * Deleting a snapshot hides it at once; its manifest stays as long as a
 * volume needs it (as the base of its changed-block map or the source of
 * an unhydrated clone), and gc reclaims it and any chunk no manifest uses.
 */
#ifndef XSNAP_SNAPSHOT_H
#define XSNAP_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "head/head.h"
#include "repo/manifest.h"
#include "catalog/store.h"
#include "catalog/volume.h"

struct xs_snapshot {
  char id[XS_ID_MAX];
  char *account;
  char *region;
  char *volume_id;
  char *volume_name;
  char *name;
  char *parent_id;              /* "" if none */
  char *status;                 /* pending, available (deleted: hidden) */
  char *root_hash;              /* hex, "" while pending */
  char *creation_method;        /* manual, received, shared, ... */
  char *shared_from;            /* "sharedFrom:OWNER:REGION:ID" when seen
                                   through a share, else NULL */
  char *origin;                 /* "copiedFrom:ACCOUNT:REGION:ID", or "" */
  char *description;
  char *key_id;                 /* encrypted: the account key, else "" */
  char *source_root;            /* received re-encrypted: the sender's root
                                   hash, else "" */
  uint64_t size;
  uint32_t block_size;
  int64_t created_ns;
  uint64_t changed_blocks;      /* blocks that differ from the parent */
  uint64_t stored_bytes;        /* new chunk bytes it added */
};

extern void xs_snapshot_clear (struct xs_snapshot *snap);

/* The JSON form of a snapshot (xsnap --json, control replies). */
#include <jansson.h>
extern json_t *xs_snapshot_to_json (const struct xs_snapshot *snap);

/* Find a visible snapshot of SCOPE by "VOLUME@NAME" or id.  Returns 0, 1
 * if there is none (reported unless QUIET), or -1.
 */
extern int xs_snapshot_find (struct xs_store *store,
                             const struct xs_scope *scope, const char *spec,
                             bool quiet, struct xs_snapshot *snap);

/* Call FN for each visible snapshot of SCOPE (of VOLUME_NAME only, unless
 * NULL), oldest first.
 */
extern int xs_snapshot_list (struct xs_store *store,
                             const struct xs_scope *scope,
                             const char *volume_name,
                             int (*fn) (const struct xs_snapshot *snap,
                                        void *opaque),
                             void *opaque);

/* ACTOR hides SNAP (see above), audited as xsnap:DeleteSnapshot (DETAIL:
 * why, NULL for a request of ACTOR's own): holding the catalog lock, in
 * the caller's transaction, so that no snapshot is deleted without its
 * audit row, nor without its shares going in the same transaction
 * (access/share.h: xs_share_delete_snapshot, which callers use).  The
 * caller has checked the permission.  Pending snapshots, and those no
 * longer available, cannot be deleted.
 */
extern int xs_snapshot_delete_locked (struct xs_store *store,
                                      const char *actor, const char *detail,
                                      const struct xs_snapshot *snap);

/* Load and verify a snapshot's manifest from its repository, by id (which
 * may be a deleted snapshot still retained).  The manifest must be what
 * the catalog records of ID: its id, size, block size and root hash (so
 * a manifest copied over another's, or a record edited, is refused with
 * an error and nothing is read through it); a pending snapshot is
 * refused with who is sealing it.  An encrypted snapshot's
 * manifest is authenticated under its data key, which is left open in
 * m->dk for reading its chunks: this fails if the key is disabled, the
 * master key is missing, or anything was tampered with.
 */
extern struct xs_manifest *xs_snapshot_load_manifest (struct xs_store *store,
                                                      const char *account,
                                                      const char *region,
                                                      const char *id);
/* The same without opening an encrypted manifest's key: its entries and
 * fields, not authenticated (for a raw stream's receiver, which may not
 * hold the key and checks what it builds against the stream's root).
 */
extern struct xs_manifest *
xs_snapshot_load_manifest_unopened (struct xs_store *store,
                                    const char *account, const char *region,
                                    const char *id);

/* Load the manifest of snapshot ID wherever it lives (any account,
 * region or status; a clone of a shared snapshot reads its source from
 * the owner's namespace) and open that namespace's repository (*REPO).
 */
struct xs_repo;
extern struct xs_manifest *xs_snapshot_load_manifest_by_id
  (struct xs_store *store, const char *id, struct xs_repo **repo);



/* Remove pending records of VOL (called by a new owner: whoever took them
 * is gone), except KEEP (NULL: none), one its last owner handed over to
 * this one.
 */
extern int xs_snapshot_discard_stale (struct xs_store *store,
                                      const struct xs_volume *vol,
                                      const char *keep);

/* The region-wide lock between sealing (shared) and gc (exclusive). */
extern int xs_snapshot_gc_lock (struct xs_store *store, const char *region,
                                bool exclusive);

/* Receiving snapshots (lib/ops/receive.c).  A received snapshot keeps the
 * sender's id, so later incremental streams find their base by id.
 *
 * LOOKUP_ID finds snapshot ID in any account, region and status (ids are
 * unique in a store): 0 found, 1 none, -1 on error.
 */
extern int xs_snapshot_lookup_id (struct xs_store *store, const char *id,
                                  struct xs_snapshot *snap);

/* Record the snapshot of manifest M (durable already), received into
 * SCOPE, as available: creation method 'received', parent M->parent_id.
 * SOURCE_ROOT (hex, or NULL) is its sender's root when it differs from
 * its own (it was encrypted on arrival).  *OUT describes it.  Refused if
 * the id or the name is taken.
 */
extern int xs_snapshot_record_received (struct xs_store *store,
                                        const struct xs_scope *scope,
                                        const struct xs_manifest *m,
                                        uint64_t changed_blocks,
                                        uint64_t stored_bytes,
                                        const char *source_root,
                                        struct xs_snapshot *out);

/* The same for a snapshot that arrived another way: METHOD is its
 * creation method ("copy"), ORIGIN where it came from, DESCRIPTION the
 * user's text.
 */
extern int xs_snapshot_record_arrived (struct xs_store *store,
                                       const struct xs_scope *scope,
                                       const struct xs_manifest *m,
                                       const char *method,
                                       const char *origin,
                                       const char *description,
                                       uint64_t changed_blocks,
                                       uint64_t stored_bytes,
                                       struct xs_snapshot *out);

/* The rows of a snapshot being taken (catalog/snapnew.c).  INSERT_LOCKED
 * records SNAP as it is (holding the catalog lock), naming OWNER as the
 * process sealing it; RECORD_PENDING records a new pending snapshot of
 * this process without waiting for the disk (a crash loses only a record
 * the next owner would remove).  DELETE_PENDING removes a pending record
 * that failed (nothing reported).  MARK_AVAILABLE_LOCKED makes a pending
 * snapshot available with its root, holding the catalog lock in the
 * caller's transaction.  0 or -1.
 */
extern int xs_snapshot_insert_locked (struct xs_catalog *cat,
                                      const struct xs_snapshot *snap,
                                      pid_t owner);
extern int xs_snapshot_record_pending (struct xs_store *store,
                                       const struct xs_snapshot *snap);
extern void xs_snapshot_delete_pending (struct xs_store *store,
                                        const char *id);
extern int xs_snapshot_mark_available_locked (struct xs_catalog *cat,
                                              const char *id,
                                              const char *root_hash,
                                              uint64_t changed_blocks,
                                              uint64_t stored_bytes);

/* ADOPT_PENDING: this process takes over pending snapshot ID of volume
 * VOLUME_ID, handed over by the volume's last owner: it is now the one
 * sealing it, as a child of PARENT_ID ("" for none: what this owner
 * finds the volume's base to be).  0, or -1 (reported: it is no longer
 * pending).  SEALER: the pid of the process sealing pending snapshot ID,
 * 0 if none is recorded or it is not pending (reports nothing).
 */
extern int xs_snapshot_adopt_pending (struct xs_store *store, const char *id,
                                      const char *volume_id,
                                      const char *parent_id);
extern pid_t xs_snapshot_sealer (struct xs_store *store, const char *id);

/* The snapshots automatic policies take, copy tasks copy and shared
 * chains show.
 *
 * POLICY_EXPIRED: the ids (*IDS, *N; free with xs_snapshot_free_ids) of
 * the available snapshots of VOLUME_ID that policy POLICY_ID took in
 * ACCOUNT beyond its newest RETAIN, newest first, except those a queued
 * or running copy is copying and each of the policy's copy tasks'
 * incremental base (the source of the task's newest copy of the
 * volume).  TASK_EXPIRED: the same for the copies copy task TASK_ID made
 * in ACCOUNT, none once the task is gone.  0, or -1 (*IDS NULL).
 */
extern int xs_snapshot_policy_expired (struct xs_store *store,
                                       const char *policy_id,
                                       const char *account,
                                       const char *volume_id,
                                       int64_t retain, char ***ids,
                                       size_t *n);
extern int xs_snapshot_task_expired (struct xs_store *store,
                                     const char *task_id,
                                     const char *account,
                                     const char *volume_id, int64_t retain,
                                     char ***ids, size_t *n);
extern void xs_snapshot_free_ids (char **ids, size_t n);

/* Record snapshot SNAPSHOT_ID as taken by policy POLICY_ID (creation
 * method 'auto').  0 (also if there is no such snapshot), or -1.
 */
extern int xs_snapshot_mark_auto (struct xs_store *store,
                                  const char *snapshot_id,
                                  const char *policy_id);

/* Record snapshot SNAPSHOT_ID as a copy made by copy task TASK_ID, if
 * the task still exists (its retention counts only its own copies).
 * 0 (also when nothing changed), or -1.
 */
extern int xs_snapshot_mark_task_copy (struct xs_store *store,
                                       const char *snapshot_id,
                                       const char *task_id);

/* Record as copies of task TASK_ID the finished copies made for it that
 * no pass saw finish (a resumed or queued job): copies of a snapshot of
 * the task's policy, by the policy's account, to the task's destination,
 * named as their source and without a description.  0, or -1.
 */
extern int xs_snapshot_adopt_task_copies (struct xs_store *store,
                                          const char *task_id);

/* The pending snapshots of the store (sealing, or left by a sealer that
 * died until their volume's next owner or gc removes them), oldest
 * first.  FN runs under the catalog lock (recursive).
 */
struct xs_snapshot_pending {
  const char *id, *account, *region, *volume_name, *name;
  int64_t created_ns;
  int64_t owner_pid;            /* the process sealing it, 0 if none */
};
extern int xs_snapshot_list_pending (struct xs_store *store,
                                     int (*fn) (const struct
                                                xs_snapshot_pending *p,
                                                void *opaque),
                                     void *opaque);

/* What the snapshots the catalog keeps in each repository stored when
 * they were made: for each account and region (that exist) with any,
 * how many rows (*SNAPSHOTS: available, pending, or deleted and not yet
 * purged) and the sum of their stored_bytes.  One aggregate query.
 */
struct xs_snapshot_usage {
  const char *account, *region;
  uint64_t snapshots, stored_bytes;
};
extern int xs_snapshot_usage (struct xs_store *store,
                              int (*fn) (const struct xs_snapshot_usage *u,
                                         void *opaque),
                              void *opaque);

/* The newest available snapshot of each volume in the volume's own
 * account and region (not its copies): its id and when it was taken
 * (for the age of a volume's last snapshot).  FN runs under the
 * catalog lock (recursive).
 */
extern int xs_snapshot_newest_by_volume (struct xs_store *store,
                                         int (*fn) (const char *volume_id,
                                                    const char *snapshot_id,
                                                    int64_t created_ns,
                                                    void *opaque),
                                         void *opaque);

/* The available snapshots of volume VOLUME_ID in REGION: how many
 * (*POINTS), the sum of their sizes (*TOTAL_BYTES) and of the bytes they
 * stored (*STORED_BYTES).  0, or -1.
 */
extern int xs_snapshot_chain_summary (struct xs_store *store,
                                      const char *volume_id,
                                      const char *region, uint64_t *points,
                                      uint64_t *total_bytes,
                                      uint64_t *stored_bytes);
/* What gc reclaims and keeps, and what a copy learns from an earlier
 * one.
 *
 * A volume needs a snapshot as the base of its changed-block map or as
 * the source of an unhydrated clone.  RECLAIMABLE calls FN with the id of
 * each deleted snapshot of ACCOUNT in REGION that no volume needs;
 * RETAINED, in id order, with each whose manifest must stay: those
 * available and those deleted that a volume needs (pending ones are in
 * neither).  Both stop at FN's -1 and return 0 or -1.
 */
extern int xs_snapshot_list_reclaimable (struct xs_store *store,
                                         const char *account,
                                         const char *region,
                                         int (*fn) (const char *id,
                                                    void *opaque),
                                         void *opaque);
extern int xs_snapshot_list_retained (struct xs_store *store,
                                      const char *account,
                                      const char *region,
                                      int (*fn) (const char *id,
                                                 void *opaque),
                                      void *opaque);

/* Forget the row of snapshot ID, whose manifest gc has removed.  Returns
 * the rows removed (0 if there was none), or -1.
 */
extern int64_t xs_snapshot_forget_reclaimed (struct xs_store *store,
                                             const char *id);

/* Forget every pending snapshot of REGION: called by gc holding the
 * region's gc lock exclusively, when none is being sealed (sealing holds
 * it shared), so whoever took them is gone.  Returns the rows removed,
 * or -1.
 */
extern int64_t xs_snapshot_forget_pending_in_region (struct xs_store *store,
                                                     const char *region);

/* The newest available snapshot of DEST (account and region) under key
 * KEY_ID that was copied from a snapshot still available of volume
 * VOLUME_ID with BLOCK_SIZE: 0 with the id of that source in SOURCE_ID
 * and its own in DEST_ID (XS_ID_MAX bytes each), 1 if there is none, or
 * -1.
 */
extern int xs_snapshot_find_previous_copy (struct xs_store *store,
                                           const struct xs_scope *dest,
                                           const char *key_id,
                                           const char *volume_id,
                                           uint32_t block_size,
                                           char *source_id, char *dest_id);

#endif /* XSNAP_SNAPSHOT_H */
