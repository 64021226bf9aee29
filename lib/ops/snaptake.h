/* xsnap: taking a snapshot of a volume wherever it lives.
 *
 * An attached volume is snapshotted by its owner (the nbdkit plugin) over
 * the owner's control socket, which takes the point in time between two
 * writes; so is a volume that a detached sealer owns (ops/server.h).  A
 * volume nobody owns is snapshotted by a detached sealer that the caller
 * starts (the CLI: a process of its own, so that it returns once the
 * point in time is taken), or in this process (the scheduler, which
 * waits anyway).  An owner that is closing the volume has stopped
 * answering but holds it until its final sync is done, which may take
 * seconds after a large write: it is waited for (up to five minutes, with
 * an xs_notice after a second), then the snapshot is taken as for a free
 * volume.
 */
#ifndef XSNAP_SNAPTAKE_H
#define XSNAP_SNAPTAKE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "catalog/snapshot.h"
#include "catalog/store.h"
#include "catalog/volume.h"

/* What starting a detached sealer did. */
enum xs_sealer_start {
  XS_SEALER_START_TAKEN,        /* *SNAP: pending, or with WAIT available */
  XS_SEALER_START_FAILED,       /* reported */
  XS_SEALER_START_BUSY,         /* another process took the volume first:
                                   look again (not reported) */
};

/* How a volume nobody owns is snapshotted: by a detached sealer that
 * START starts for VOL, snapshot NAME, waiting for it to be sealed with
 * WAIT (OPAQUE is passed on).
 */
struct xs_sealer_starter {
  enum xs_sealer_start (*start) (const struct xs_volume *vol,
                                 const char *name, bool wait,
                                 struct xs_snapshot *snap, void *opaque);
  void *opaque;
};

/* Snapshot VOL as NAME (NULL: its id).  With WAIT, return once it is
 * available (in-process snapshots always are).  A volume nobody owns is
 * snapshotted by STARTER's detached sealer, or here if STARTER is NULL;
 * PROGRESS (may be NULL) reports sealing done here.  *SNAP describes the
 * snapshot.
 */
extern int xs_snapshot_take (struct xs_store *store,
                             const struct xs_volume *vol, const char *name,
                             bool wait,
                             const struct xs_sealer_starter *starter,
                             void (*progress) (uint64_t done, uint64_t total,
                                               void *opaque),
                             void *opaque, struct xs_snapshot *snap);

/* Wait until pending snapshot ID (of volume VOLUME_NAME), which a
 * detached sealer handed over to process TAKER (a server that attached
 * the volume), is available.  0 with *SNAP, or -1 (reported) once it
 * failed, or neither the process recorded as sealing it nor TAKER runs.
 */
extern int xs_snapshot_wait_sealed (struct xs_store *store, const char *id,
                                    const char *volume_name, pid_t taker,
                                    struct xs_snapshot *snap);

#endif /* XSNAP_SNAPTAKE_H */
