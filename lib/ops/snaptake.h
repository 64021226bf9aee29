/* xsnap: taking a snapshot of a volume wherever it lives.
 *
 * An attached volume is snapshotted by its owner (the nbdkit plugin) over
 * the owner's control socket, which takes the point in time between two
 * writes; a volume nobody owns is snapshotted in this process.  An owner
 * that is closing the volume has stopped answering but holds it until its
 * final sync is done, which may take seconds after a large write: it is
 * waited for (up to five minutes, with an xs_notice after a second), then
 * the snapshot is taken here.  The CLI and the scheduler both snapshot
 * through this.
 */
#ifndef XSNAP_SNAPTAKE_H
#define XSNAP_SNAPTAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog/snapshot.h"
#include "catalog/store.h"
#include "catalog/volume.h"

/* Snapshot VOL as NAME (NULL: its id).  With WAIT, return once it is
 * available (in-process snapshots always are).  PROGRESS (may be NULL)
 * reports sealing done here.  *SNAP describes the snapshot.
 */
extern int xs_snapshot_take (struct xs_store *store,
                             const struct xs_volume *vol, const char *name,
                             bool wait,
                             void (*progress) (uint64_t done, uint64_t total,
                                               void *opaque),
                             void *opaque, struct xs_snapshot *snap);

#endif /* XSNAP_SNAPTAKE_H */
