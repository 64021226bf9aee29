/* xsnap: import and export through NBD.
 *
 * People bring disks from elsewhere (a qcow2 behind qemu-nbd, another
 * nbdkit, a block device behind nbd-server) and take snapshots out to
 * anything that speaks NBD.  Import copies any NBD export, given as a
 * URI that libnbd's nbd_connect_uri accepts, into a new volume, reading
 * only what the server does not report as zero; export writes a snapshot
 * to any writable NBD export.  Both keep several requests in flight, on
 * several connections when the server advertises multi-conn (as nbdcopy
 * does).  Both also move only what changed: an import into the volume
 * that holds the last copy reads what the export's qemu dirty bitmap
 * marks (QEMU's incremental backup), and an export to a target that
 * holds an earlier snapshot writes what differs from it.
 */
#ifndef XSNAP_NBDXFER_H
#define XSNAP_NBDXFER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog/store.h"
#include "catalog/volume.h"

/* Flags for xs_export_nbd. */
#define XS_EXPORT_TARGET_IS_ZERO 1u  /* the target reads as zeroes already */
#define XS_EXPORT_VERIFY_BASE 2u     /* with a base: check the target holds
                                        it where sampled, first */

/* How many blocks of the base XS_EXPORT_VERIFY_BASE compares, beside the
 * first and the last: drawn at random, so that a target that does not
 * hold the base is found whatever part of it differs, in proportion to
 * how much does.
 */
#define XS_EXPORT_VERIFY_SAMPLES 64u

struct xs_transfer_report {
  char id[XS_ID_MAX];           /* the new volume's id, or the snapshot's */
  char name[128];               /* the volume's name, or "VOLUME@SNAPSHOT" */
  uint64_t size;                /* the volume's or the snapshot's size */
  uint64_t source_size;         /* import: the export's size */
  uint32_t block_size;
  bool rounded;                 /* import: size > source_size */
  uint64_t bytes_read;          /* read from the source (import), or
                                   decoded from chunks (export) */
  uint64_t bytes_written;       /* data written to the destination */
  uint64_t bytes_zeroed;        /* export: zero blocks sent to the target
                                   as zero requests or written zeroes */
  uint64_t holes_skipped;       /* import: bytes the source reported as
                                   zero, not read; export: zero blocks
                                   left alone (target is zero) */
  uint64_t zeros_skipped;       /* import: bytes read as all zero, not
                                   written (they stay holes) */
  uint64_t bytes_dirty;         /* incremental import: bytes to copy (dirty
                                   in the source's bitmap, or changed in
                                   the volume since its last snapshot) */
  uint64_t clean_skipped;       /* incremental import: bytes left alone;
                                   export with a base: bytes equal to it,
                                   not written */
  uint64_t base_blocks_verified; /* export: blocks of the base found on the
                                    target (XS_EXPORT_VERIFY_BASE) */
  unsigned connections;         /* NBD connections used */
  double seconds;               /* from connecting to the end */
};

/* PROGRESS, if not NULL, is called with (bytes done, bytes in all) as
 * work completes, from any thread but never from two at once; the last
 * call has done == total.
 */
typedef void (*xs_transfer_progress_fn) (uint64_t done, uint64_t total,
                                         void *opaque);

/* Copy the NBD export at URI into a new volume NAME of SCOPE.  The
 * volume's size is the export's size rounded up to BLOCK_SIZE.  Ranges
 * the server reports as zero (base:allocation) are not read, and ranges
 * read as all zero are not written: both stay holes.  The volume's head
 * is filled in staging (xs_volume_stage_begin) and becomes visible only
 * when complete and durable; if anything fails (or *STOP, if STOP is not
 * NULL, becomes non-zero) the staged head is removed, and one left by a
 * crash is removed by gc or the next import.  A name that is taken is
 * refused before connecting.  Returns 0 with *REPORT filled, or -1 with
 * the reason reported.
 */
extern int xs_import_nbd (struct xs_store *store,
                          const struct xs_scope *scope, const char *uri,
                          const char *name, uint32_t block_size,
                          const atomic_int *stop, xs_transfer_progress_fn progress,
                          void *opaque, struct xs_transfer_report *report);

/* Incremental import (changed-block tracking as QEMU does it): copy into
 * VOLUME, an existing volume of SCOPE that holds an earlier copy of the
 * disk at URI, only the runs that the export's dirty bitmap BITMAP
 * (block status context "qemu:dirty-bitmap:BITMAP", as qemu-nbd -B
 * serves a qcow2's persistent bitmap) marks dirty, and the blocks of the
 * volume that changed since its last snapshot, so that the volume ends
 * equal to the export.  Dirty runs that read as zeroes are zeroed
 * (punched) in the volume, so that its changed-block map records them.
 * The export must be the volume's size (up to the rounding of an
 * import), its bitmap no finer than 512 bytes, and the volume detached
 * (it is opened here as its owner), its changed-block map trusted.  With
 * SNAPSHOT, a snapshot of that name is taken before the volume is let go
 * (*SNAP describes it).  Needs xsnap:ImportVolume on the volume (and
 * xsnap:CreateSnapshot with SNAPSHOT).  On failure the volume may hold
 * part of the changes (said with xs_notice); its snapshots are intact
 * and the same import completes it.  Returns 0 with *REPORT filled, or -1
 * with the reason reported.
 */
struct xs_snapshot;
extern int xs_import_nbd_dirty (struct xs_store *store,
                                const struct xs_scope *scope,
                                const char *uri, const char *volume,
                                const char *bitmap, const char *snapshot,
                                const atomic_int *stop,
                                xs_transfer_progress_fn progress,
                                void *opaque,
                                struct xs_transfer_report *report,
                                struct xs_snapshot *snap);

/* Write snapshot SNAPSHOT_SPEC (of SCOPE) to the NBD export at URI,
 * which must be writable and at least as large as the snapshot; bytes
 * past the snapshot's size are left alone.  Zero blocks are skipped with
 * XS_EXPORT_TARGET_IS_ZERO, else sent as zero requests where the target
 * supports them, else written.  With BASE_SPEC (not NULL), a snapshot of
 * the same geometry that the target holds already, only the blocks whose
 * manifest entries differ between the two are written (or zeroed), as
 * diff finds them, and with XS_EXPORT_VERIFY_BASE the target is first
 * compared with BASE_SPEC at its first and last blocks and
 * XS_EXPORT_VERIFY_SAMPLES random ones, and refused, with nothing
 * written, if one differs.  The target is flushed at the end.  Returns 0
 * with *REPORT filled, or -1 with the reason reported (the target may
 * then hold part of the snapshot).
 */
extern int xs_export_nbd (struct xs_store *store,
                          const struct xs_scope *scope,
                          const char *snapshot_spec, const char *base_spec,
                          const char *uri, unsigned flags,
                          const atomic_int *stop,
                          xs_transfer_progress_fn progress, void *opaque,
                          struct xs_transfer_report *report);

#endif /* XSNAP_NBDXFER_H */
