/* xsnap: taking a snapshot of a volume — the pending record, the seal,
 * the manifest, and the transaction that makes it available.
 *
 * ops/snaptake.h decides where a snapshot is taken (through the volume's
 * owner, or here when nothing holds it); this is what the taker runs.
 */
#ifndef XSNAP_SNAPNEW_H
#define XSNAP_SNAPNEW_H

#include <stdatomic.h>
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
 *
 * STOP (may be NULL) stops the sealing once set (looked at every 10 ms):
 * the changed-block map is as if nothing happened, as on failure, but the
 * pending record stays, for the volume's next owner to take over.  That
 * is how a detached sealer hands a volume over (ops/server.h): the next
 * owner opens the head (xs_volume_open_head_cached, keeping the record)
 * before anything can write to it, so its content is still the point in
 * time's, and RESUME takes the point in time again for the same record.
 */
struct xs_snapshot_op;

/* How FINISH ended. */
enum xs_snapshot_outcome {
  XS_SNAPSHOT_AVAILABLE,        /* committed: *SNAP is available */
  XS_SNAPSHOT_FAILED,           /* reported; the pending record is gone */
  XS_SNAPSHOT_STOPPED,          /* STOP was set; the pending record stays */
};

extern struct xs_snapshot_op *xs_snapshot_start (struct xs_store *store,
                                                 struct xs_head *h,
                                                 const struct xs_volume *vol,
                                                 const char *name,
                                                 struct xs_snapshot *snap);
extern struct xs_snapshot_op *xs_snapshot_resume (struct xs_store *store,
                                                  struct xs_head *h,
                                                  const struct xs_volume *vol,
                                                  const char *id,
                                                  struct xs_snapshot *snap);
extern enum xs_snapshot_outcome
xs_snapshot_finish (struct xs_snapshot_op *op, const atomic_int *stop,
                    void (*progress) (uint64_t done, uint64_t total,
                                      void *opaque),
                    void *opaque, struct xs_snapshot *snap);

#endif /* XSNAP_SNAPNEW_H */
