/* xsnap: copying a snapshot to another account, another region, or both.
 *
 * The rules come from the clouds xsnap is modelled on (seeds 000/001:
 * cross-account copy; 002: cross-region copy):
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
 *    copy.isolated_groups (default "intl", as in the seeds);
 *  - names are at most 60 characters; a cross-region copy is called
 *    copy_<source-region>_<source-name> unless named.
 *
 * The destination gets a complete snapshot of its own (invariant 2): the
 * chunks its namespace lacks are copied first, verified, in parallel;
 * then the manifest (new id, logically full); then the catalog row, with
 * creation method "copy" and origin copiedFrom:ACCOUNT:REGION:ID.  A job
 * shows both sides the progress; deleting the source never breaks the
 * copy.
 */
#ifndef XSNAP_COPY_H
#define XSNAP_COPY_H

#include <stdint.h>

#include "snapshot.h"
#include "store.h"

#define XS_COPY_MAX_CROSS_REGION_BYTES (UINT64_C (128) << 30)
#define XS_COPY_MAX_CROSS_REGION_JOBS 5

struct xs_copy_options {
  const char *to_account;       /* NULL: the caller's */
  const char *to_region;        /* NULL: the source's */
  const char *name;             /* NULL: the default */
  const char *description;      /* NULL: none */
  unsigned threads;             /* parallel transfers; 0: 4 */
  void (*progress) (uint64_t done, uint64_t total, void *opaque);
  void *opaque;
};

struct xs_copy_report {
  char job_id[32];
  uint64_t chunks;              /* distinct chunks the snapshot uses */
  uint64_t chunks_sent;         /* of those, copied (the rest were there) */
  uint64_t bytes_sent;          /* stored bytes copied */
};

/* Copy snapshot SPEC, as SCOPE->account sees it, following the rules
 * above.  *OUT is the new snapshot.
 */
extern int xs_copy_snapshot (struct xs_store *store,
                             const struct xs_scope *scope, const char *spec,
                             const struct xs_copy_options *options,
                             struct xs_snapshot *out,
                             struct xs_copy_report *report);

#endif /* XSNAP_COPY_H */
