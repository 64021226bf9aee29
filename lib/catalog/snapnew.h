/* xsnap: taking a snapshot of a volume — the pending record, the seal,
 * the manifest, and the transaction that makes it available.
 *
 * ops/snaptake.h decides where a snapshot is taken (through the volume's
 * owner, or here when nothing holds it); this is what the taker runs.
 */
#ifndef XSNAP_SNAPNEW_H
#define XSNAP_SNAPNEW_H

#include <stdint.h>

#include "catalog/snapshot.h"
#include "catalog/store.h"
#include "catalog/volume.h"
#include "head/head.h"

/* Taking a snapshot of VOL, whose head H the caller owns.  START takes the
 * point in time and records the snapshot as pending (instant; *SNAP
 * describes it).  FINISH seals, writes the manifest, records it available
 * (*SNAP updated) and frees OP; on failure the pending record is removed
 * and the volume's changed-block map is as if nothing happened.
 * PROGRESS may be NULL.
 */
struct xs_snapshot_op;

extern struct xs_snapshot_op *xs_snapshot_start (struct xs_store *store,
                                                 struct xs_head *h,
                                                 const struct xs_volume *vol,
                                                 const char *name,
                                                 struct xs_snapshot *snap);
extern int xs_snapshot_finish (struct xs_snapshot_op *op,
                               void (*progress) (uint64_t done,
                                                 uint64_t total,
                                                 void *opaque),
                               void *opaque, struct xs_snapshot *snap);

#endif /* XSNAP_SNAPNEW_H */
