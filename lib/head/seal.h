/* xsnap: sealing a snapshot of a live head.
 *
 * Taking a snapshot has two halves.  The point in time is instant: with
 * the head's gate held for writing (no change in flight) the dirty map's
 * bits become the set S of blocks to seal and the map starts afresh.
 * Then S is sealed — each block read, hashed, compressed and stored as a
 * chunk if the repository lacks it — while writes go on.  A write to a
 * block of S that is not sealed yet first copies the part it changes aside
 * (copy-before-write, to a spill file, within the head's budget; else it
 * seals the block itself), so no later write leaks into the snapshot.
 * The head does not call the seal by name: while a snapshot is pending,
 * the seal is registered with the head as its write guard
 * (head-internal.h), which every change calls first, and the point in
 * time is when that guard is installed.  The result is the base manifest
 * with S's entries replaced: cost O(changed blocks), not O(size).
 *
 * When the dirty map cannot be trusted, or there is no base manifest it is
 * relative to, S is every block and each is compared by hash (blocks that
 * are holes in the data file are zero without being read).
 *
 * This module knows nothing of the catalog; snapshot.c records the result.
 */
#ifndef XSNAP_SEAL_H
#define XSNAP_SEAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "head/head.h"
#include "repo/manifest.h"
#include "repo/repo.h"

struct xs_seal;

struct xs_seal_stats {
  uint64_t blocks_to_seal;      /* |S| */
  uint64_t changed_blocks;      /* entries that differ from the base */
  uint64_t new_chunks;          /* chunks the repository did not have */
  uint64_t stored_bytes;        /* their stored (compressed) size */
  uint64_t bytes_read;          /* read from the head to seal */
  bool full_compare;            /* S was every block */
  uint64_t copied_bytes;        /* copied aside by writes (see seal.c) */
  uint64_t sealed_by_writes;    /* blocks a write sealed first (budget
                                   spent) */
};

/* Take the point in time.  Chunks are stored in REPO, which must outlive
 * the seal.  BASE is the manifest the head's dirty map is relative to
 * (this takes it over), or NULL when the head was never snapshotted;
 * MAP_MATCHES_BASE says whether the map really is relative to BASE (false
 * forces a full compare).  MAP_REPO is another handle on REPO's
 * repository, taken over: the manifest the seal makes when there is no
 * BASE, or BASE is of another geometry, keeps its block map there (BASE
 * has its own).  DK, for an encrypted volume, is its data key (copied):
 * chunks are then encrypted and named under it; NULL for unencrypted
 * chunks.  Fails if a snapshot of the head is already pending.
 */
struct xs_data_key;
extern struct xs_seal *xs_seal_begin (struct xs_head *h, struct xs_repo *repo,
                                      struct xs_repo *map_repo,
                                      struct xs_manifest *base,
                                      bool map_matches_base,
                                      const struct xs_data_key *dk);

/* Seal every block not yet sealed, with THREADS threads (0 = default).
 * PROGRESS, if not NULL, is called now and then with blocks done and
 * total.  Returns 0 or -1 (reported; also if a copy-before-write failed).
 * STOP, if not NULL, is looked at when the run starts and every 10 ms:
 * once it is set, the sealers stop after the blocks they are sealing and
 * the run returns -1 without reporting anything; xs_seal_stopped then
 * says so.
 */
extern int xs_seal_run (struct xs_seal *seal, unsigned threads,
                        const atomic_int *stop,
                        void (*progress) (uint64_t done, uint64_t total,
                                          void *opaque),
                        void *opaque);

/* Whether the last run ended because STOP was set (not by a failure). */
extern bool xs_seal_stopped (struct xs_seal *seal);

/* The new manifest (entries final after a successful run; the caller sets
 * metadata, seals and writes it) and statistics.
 */
extern struct xs_manifest *xs_seal_manifest (struct xs_seal *seal);
extern void xs_seal_get_stats (struct xs_seal *seal,
                               struct xs_seal_stats *stats);

/* End the snapshot and free SEAL.  With COMMITTED the snapshot is durable
 * and recorded: the dirty map moves to NEW_EPOCH and is trusted.
 * Otherwise the blocks of S go back into the dirty map, as if the snapshot
 * had never been taken.  Either way writes stop being protected.
 */
extern int xs_seal_end (struct xs_seal *seal, bool committed,
                        uint64_t new_epoch);

#endif /* XSNAP_SEAL_H */
