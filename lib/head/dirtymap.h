/* xsnap: the persistent changed-block (dirty) map of a volume.
 *
 * Every write, zero or trim sets the bits of the blocks it touches.  The map
 * lives in memory while the volume is open and is written to its file at
 * every flush and at close.  The file records whether it was closed
 * cleanly: the owner marks it "open" before accepting writes and "clean"
 * only after the last bits are on disk, so a map found "open" by the next
 * owner proves an unclean stop (kill -9, crash, power loss) and the map is
 * then untrustworthy — writes after the last flush may be on disk without
 * their bits.  Untrustworthiness is sticky: it survives later clean closes
 * until the map is reset (by a snapshot that compared every block).
 *
 * The map is bound to the catalog: it carries the CBT epoch it belongs to
 * and the session (the catalog's count of owners' opens) it was written
 * in, so a map of another epoch, or one put back from an earlier moment,
 * is never trusted; a lost map is recreated, untrusted.
 *
 * Format: docs/FORMAT.md, "Dirty map".
 */
#ifndef XSNAP_DIRTYMAP_H
#define XSNAP_DIRTYMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/bitmap.h"

/* Why a map cannot be trusted (stored in the file, so it outlives the
 * process that found out).
 */
enum xs_dirtymap_doubt {
  XS_DIRTYMAP_TRUSTED = 0,
  XS_DIRTYMAP_UNCLEAN_STOP = 1,   /* was not closed cleanly */
  XS_DIRTYMAP_DAMAGED = 2,        /* header or bitmap checksum wrong */
  XS_DIRTYMAP_WRONG_EPOCH = 3,    /* belongs to another snapshot epoch */
  XS_DIRTYMAP_WRONG_GEOMETRY = 4, /* block count or size disagree */
  XS_DIRTYMAP_MISSING = 5,        /* the file was gone (recreated) */
  XS_DIRTYMAP_ROLLED_BACK = 6,    /* not of the catalog's last session */
};

/* A sentence describing DOUBT, for messages. */
extern const char *xs_dirtymap_doubt_text (enum xs_dirtymap_doubt doubt);

/* Create a new, clean, empty map file at PATH (fails if it exists) of
 * CBT epoch EPOCH and the catalog's current SESSION.
 */
extern int xs_dirtymap_create (const char *path, uint32_t block_size,
                               uint64_t nblocks, uint64_t epoch,
                               uint64_t session);

/* What the catalog knows of a volume's map.  START_SESSION must, in one
 * durable catalog transaction, read the volume's session into *PREVIOUS
 * and record *PREVIOUS + 1; it is called once per open, by the owner
 * (holding the volume's lock), before the file is marked open and so
 * before any write is accepted.  NULL for a head the catalog does not
 * know yet (a staged import): the map keeps SESSION.
 */
struct xs_dirtymap_binding {
  uint64_t epoch;               /* volumes.cbt_epoch */
  uint64_t session;             /* without START_SESSION only */
  int (*start_session) (uint64_t *previous, void *opaque);
  void *opaque;
};

struct xs_dirtymap;

/* Open the map as the volume's owner (the caller holds the volume lock).
 * Checks how it was left, then starts a new session (BINDING) and marks
 * the file open.  BLOCK_SIZE, NBLOCKS and the binding are what the
 * catalog expects; any disagreement makes the map untrustworthy, as does
 * an unclean stop.  A missing file is recreated, untrusted.  A map file
 * of a newer format version is an error.
 */
extern struct xs_dirtymap *
xs_dirtymap_open (const char *path, uint32_t block_size, uint64_t nblocks,
                  const struct xs_dirtymap_binding *binding);

/* Mark blocks [FIRST, FIRST + COUNT) changed.  Thread-safe, lock-free. */
extern void xs_dirtymap_mark (struct xs_dirtymap *dm,
                              uint64_t first, uint64_t count);

/* Write changed parts of the map to disk and make them durable.  The file
 * stays marked open.  Thread-safe.
 */
extern int xs_dirtymap_persist (struct xs_dirtymap *dm);

/* Resize to NBLOCKS, all or nothing (0, or -1 reported with the map as
 * it was): a volume's grow, whose new blocks are unchanged, or the undo
 * of one, whose blocks dropped were not written since.
 */
extern int xs_dirtymap_resize (struct xs_dirtymap *dm, uint64_t nblocks);

/* Snapshot support.  TAKE moves the current bits into *TAKEN (the caller
 * frees it) and starts over with no bits set; MERGE ORs bits back (a
 * snapshot that failed); COMMIT_EPOCH records that the map is now relative
 * to a new snapshot (EPOCH), is trusted, and writes it out.  TAKE and MERGE
 * must not run concurrently with xs_dirtymap_mark.
 */
extern int xs_dirtymap_take (struct xs_dirtymap *dm, struct xs_bitmap *taken);
extern void xs_dirtymap_merge (struct xs_dirtymap *dm,
                               const struct xs_bitmap *bits);
extern int xs_dirtymap_commit_epoch (struct xs_dirtymap *dm, uint64_t epoch);

/* Start a new epoch: all bits clear, trusted again, file updated. */
extern int xs_dirtymap_reset (struct xs_dirtymap *dm, uint64_t epoch);

extern enum xs_dirtymap_doubt xs_dirtymap_doubt (const struct xs_dirtymap *dm);
extern const struct xs_bitmap *xs_dirtymap_bits (const struct xs_dirtymap *dm);

/* Persist everything and mark the file clean; frees DM.  On failure the
 * file stays marked open (so the next owner distrusts it) and DM is still
 * freed.
 */
extern int xs_dirtymap_close (struct xs_dirtymap *dm);

/* Free DM without marking the file clean, as a crash would leave it. */
extern void xs_dirtymap_abandon (struct xs_dirtymap *dm);

/* A read-only look at a map file, for a process that is not the owner. */
struct xs_dirtymap_view {
  uint32_t version;
  uint32_t block_size;
  uint64_t nblocks;
  uint64_t epoch;
  uint64_t generation;          /* how many times it was written */
  uint64_t session;             /* the owner's open it was written in */
  bool has_session;             /* false for a version 1 file */
  bool clean;                   /* closed cleanly */
  enum xs_dirtymap_doubt doubt; /* recorded doubt, or DAMAGED if unreadable */
  struct xs_bitmap bits;
};

/* Read the map file at PATH; SESSION is the catalog's (a map of another
 * session is doubted as rolled back).  A missing file reads as no bits,
 * doubted as missing.
 */
extern int xs_dirtymap_read (const char *path, uint64_t session,
                             struct xs_dirtymap_view *view);
extern void xs_dirtymap_view_free (struct xs_dirtymap_view *view);

#endif /* XSNAP_DIRTYMAP_H */
