/* xsnap: copying a snapshot to another account, another region, or both.
 *
 * The rules are those public clouds apply to cross-account and
 * cross-region snapshot copies:
 *
 *  - the source must be available;
 *  - to another account: the destination is in the source owner's
 *    organisation (a collaborator), and the caller holds
 *    xsnap:CopySnapshotCrossAccount on the source (a sharee copying a
 *    snapshot shared with it into its own account needs only the share);
 *  - to another region: the caller holds xsnap:CopySnapshotCrossRegion,
 *    the snapshot is at most 128 GiB (setting copy.max_cross_region_bytes),
 *    at most 5 cross-region copies of one account run at once (setting
 *    copy.max_cross_region_jobs; one more is refused, not queued), and the
 *    regions' groups allow it: never between two groups (mainland and
 *    intl), nor between regions of a group listed in the setting
 *    copy.isolated_groups (default "intl", whose regions do not copy
 *    among themselves);
 *  - names are at most 60 characters; a cross-region copy is called
 *    copy_<source-region>_<source-name> unless named.
 *
 * Encryption (the clouds' rules, and beyond them): a copy of an encrypted
 * snapshot is always encrypted, under KEY of the destination account, by
 * default the source's own key when the destination account owns it and
 * else the destination account's default key.  A custom key of another
 * account than the caller's must be granted to the caller.  The copy is
 * re-encrypted under a data key of its own (chunks decrypted, renamed and
 * sealed again) unless it stays in the same account and region under the
 * same key, where it shares the source's chunks.  A copy of an
 * unencrypted snapshot is encrypted when KEY or ENCRYPT asks.  Later
 * copies of the same volume to the same place under the same key reuse
 * the data key of the last copy and only re-encrypt the chunks that
 * copy did not have: incremental copies stay incremental.
 *
 * The destination gets a complete snapshot of its own (a manifest names
 * only chunks of its own namespace, so nothing done to the source can
 * break it): the
 * chunks its namespace lacks are copied first, verified, in parallel;
 * then the manifest (new id, logically full); then the catalog row, with
 * creation method "copy" and origin copiedFrom:ACCOUNT:REGION:ID.  A job
 * shows both sides the progress; deleting the source never breaks the
 * copy.
 */
#ifndef XSNAP_COPY_H
#define XSNAP_COPY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog/snapshot.h"
#include "catalog/store.h"

#define XS_COPY_MAX_CROSS_REGION_BYTES (UINT64_C (128) << 30)
#define XS_COPY_MAX_CROSS_REGION_JOBS 5

struct xs_copy_options {
  const char *to_account;       /* NULL: the caller's */
  const char *to_region;        /* NULL: the source's */
  const char *name;             /* NULL: the default */
  const char *description;      /* NULL: none */
  const char *key;              /* the destination account's key to encrypt
                                   under (name or id); NULL: see below */
  bool encrypt;                 /* encrypt an unencrypted source's copy */
  unsigned threads;             /* parallel transfers; 0: 4 */
  uint64_t bandwidth;           /* bytes per second; 0: no limit */
  bool queue;                   /* wait for a cross-region slot */
  bool verify_destination;      /* read back the chunks the destination
                                   has, replace the damaged ones */
  void (*progress) (uint64_t done, uint64_t total, void *opaque);
  void *opaque;
  /* Set (by a signal handler): stop between chunks.  The copy then
   * fails, its job failed and resumable.  NULL: never.
   */
  const volatile sig_atomic_t *stop;
};

struct xs_copy_report {
  char job_id[32];
  bool queued;                  /* waiting for a slot: nothing copied yet */
  uint64_t chunks;              /* distinct chunks the snapshot uses (of
                                   each batch of 65536 blocks: one in two
                                   batches counts twice) */
  uint64_t chunks_sent;         /* of those, copied (the rest were there) */
  uint64_t bytes_sent;          /* stored bytes copied */
  uint64_t chunks_replaced;     /* of the sent, over damaged objects */
};

/* Copy snapshot SPEC, as SCOPE->account sees it, following the rules
 * above.  *OUT is the new snapshot, unless the copy was queued
 * (REPORT->queued: OPTIONS->queue was set and the account's cross-region
 * copies were all running; `xsnap job resume`, `policy run-due` or the
 * daemon runs it later).
 */
extern int xs_copy_snapshot (struct xs_store *store,
                             const struct xs_scope *scope, const char *spec,
                             const struct xs_copy_options *options,
                             struct xs_snapshot *out,
                             struct xs_copy_report *report);

/* Run job ID again: a failed copy (its process died or it failed) or a
 * queued one.  The checks are made again; chunks already at the
 * destination are not sent again; the manifest and the row come last, so
 * nothing was visible before.  Only the job's actor or the administrator
 * may.  OPTIONS gives threads and progress (the rest is the job's).
 */
extern int xs_copy_resume (struct xs_store *store,
                           const struct xs_scope *scope, const char *job_id,
                           const struct xs_copy_options *options,
                           struct xs_snapshot *out,
                           struct xs_copy_report *report);

/* Run the queued copies that have a slot now (for run-due and the
 * daemon).  NOTE hears of each; STOP (may be NULL) as in the options.
 * Returns the number of failures.
 */
extern int xs_copy_run_queued (struct xs_store *store,
                               const volatile sig_atomic_t *stop,
                               void (*note) (const char *line, void *opaque),
                               void *opaque);

/* A verify found snapshot SNAPSHOT_ID of ACCOUNT in REGION damaged
 * (SNAPSHOT_ID NULL: a repair made it whole): until that repair, copies
 * to that repository read back every chunk they would count on there and
 * replace what is damaged, as with verify_destination.  0 or -1.
 */
extern int xs_copy_mark_damaged (struct xs_store *store, const char *account,
                                 const char *region, const char *snapshot_id);

/* Make every chunk of IDS (N, unencrypted; sorted and deduplicated in
 * place) present in repository TO, durably: those TO lacks are read from
 * FROM, verified and stored there, or with FROM NULL are reported
 * missing.  The same transfer as a copy's (a listing of TO where asking
 * costs a round trip, several threads).  *COPIED_BYTES (may be NULL):
 * what was stored.  0, or -1 with an error naming the chunk.
 */
struct xs_repo;
extern int xs_copy_make_present (struct xs_store *store, struct xs_repo *from,
                                 struct xs_repo *to, struct xs_hash128 *ids,
                                 size_t n, uint32_t block_size,
                                 uint64_t *copied_bytes);

#endif /* XSNAP_COPY_H */
