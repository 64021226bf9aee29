/* xsnap: garbage collection of a region's repository.
 *
 * Chunks are shared between snapshots and never rewritten, so deleting a
 * snapshot frees nothing by itself; gc does.  Under the region's gc lock
 * held exclusively (every sealer holds it shared from the moment it
 * records a pending snapshot until that snapshot is committed or gone, so
 * gc waits for them and they wait for gc), it:
 *
 *   0. checks, from the backend, that the region's repository is this
 *      store's (the owner mark, store.h); another store's is refused;
 *   1. removes pending records (under the lock, their takers are dead);
 *   2. for each account, loads the manifest of every snapshot the catalog
 *      keeps in the region (not from a listing): one that is missing or
 *      unreadable stops gc before anything of the account is deleted;
 *   3. purges deleted snapshots that no volume still needs (as the base
 *      of its changed-block map or the source of an unhydrated clone):
 *      manifest, then row;
 *   4. removes manifests that have no row (a crash between writing a
 *      manifest and recording it);
 *   5. removes every chunk that no kept manifest references and no
 *      interrupted receive holds (it may yet be resumed);
 *   6. removes temporary files left by writers that died;
 *   7. removes the staged heads of volume creations (imports) that died
 *      before their commit (volume.h).
 */
#ifndef XSNAP_GC_H
#define XSNAP_GC_H

#include <stdint.h>

#include "catalog/store.h"

struct xs_gc_report {
  uint64_t stale_pending;       /* pending records removed */
  uint64_t purged_snapshots;    /* deleted snapshots purged */
  uint64_t orphan_manifests;    /* manifests without a record removed */
  uint64_t manifests;           /* manifests kept */
  uint64_t chunks_kept;
  uint64_t chunks_deleted;
  uint64_t pages_kept;          /* pages of block maps */
  uint64_t pages_deleted;
  uint64_t temps_removed;
  uint64_t staged_removed;      /* staged volume heads removed */
};

extern int xs_gc_region (struct xs_store *store, const char *region,
                         struct xs_gc_report *report);

#endif /* XSNAP_GC_H */
