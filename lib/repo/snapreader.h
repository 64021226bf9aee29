/* xsnap: reading one snapshot's bytes.
 *
 * A snapshot is a manifest (block index -> chunk id, or zero) plus the
 * chunks of its repository.  The NBD plugin serves snapshots read-only
 * through a reader, and clones read their not-yet-copied blocks through
 * one.  Every chunk is verified on every read that decodes it (data is
 * never returned unverified); a missing or corrupt chunk fails the read with EIO and one error
 * line naming the snapshot, the block, the chunk and the reason.
 *
 * A reader may be used by many threads at once: it keeps a pool of
 * decoders (grown on demand, one per concurrent reader) so that threads
 * decode in parallel, and holds no lock while reading or decompressing.
 */
#ifndef XSNAP_SNAPREADER_H
#define XSNAP_SNAPREADER_H

#include <stdbool.h>
#include <stdint.h>

#include "repo/chunkcache.h"
#include "base/hash.h"
#include "repo/manifest.h"
#include "repo/repo.h"

struct xs_snapreader;

/* label names the snapshot in messages ("snapshot db1@s1 (snap-...)").
 * The reader takes m over and reads its entries through its block map as
 * it goes (nothing is copied per block): m is freed with the reader, or
 * at once if the open fails.  cache may be NULL (no caching; a cache of
 * capacity 0 is treated the same); repo and cache must outlive the
 * reader.  NULL with an error if out of memory, or (EACCES) if m is
 * encrypted and its key is not open.
 */
extern struct xs_snapreader *xs_snapreader_open (struct xs_repo *repo,
                                                 struct xs_manifest *m,
                                                 struct xs_chunk_cache *cache,
                                                 const char *label);
/* No read may be in progress. */
extern void xs_snapreader_close (struct xs_snapreader *reader);

extern uint64_t xs_snapreader_size (const struct xs_snapreader *reader);
extern uint32_t xs_snapreader_block_size (const struct xs_snapreader *reader);
extern uint64_t xs_snapreader_nblocks (const struct xs_snapreader *reader);
extern const char *xs_snapreader_label (const struct xs_snapreader *reader);
/* The data key the snapshot's chunks are under, or NULL (unencrypted). */
struct xs_data_key;
extern const struct xs_data_key *
xs_snapreader_data_key (const struct xs_snapreader *reader);

/* Read count bytes at offset (offset + count <= size; otherwise EINVAL
 * with an error).  Zero blocks read as zeros without I/O.  Returns 0, or
 * -1 with errno set: EIO with one error line for a missing or bad chunk
 * ("snapshot db1@s1 (snap-...): block 17: chunk 9f...: payload checksum
 * mismatch") or a block map that cannot be read (the manifest's error);
 * for a backend failure, the backend's own error and errno.
 *
 * Reads that cover whole blocks decode straight into buf (a raw chunk is
 * read straight into it) and use the cache, but fill it only while it has
 * room: a sequential scan pays for no copy once the cache is full and
 * never flushes it.  Partial reads go through the cache.
 */
extern int xs_snapreader_pread (struct xs_snapreader *reader, void *buf,
                                uint32_t count, uint64_t offset);

/* Read block (< nblocks) whole into buf: block_size bytes, or fewer for
 * a partial last block.  The same errors as pread.
 */
extern int xs_snapreader_read_block (struct xs_snapreader *reader,
                                     uint64_t block, void *buf);

/* Start fetching and decoding blocks [block, block + count) in the
 * background, for a reader that knows what it will read next (a
 * hydration: the blocks it lacks).  Reads of them then find them
 * decoded, or wait for a decode under way.  Sequential readers need not
 * call this: reads detect them and fetch ahead of them (each keeping a
 * few MiB decoded ahead), and a read of several blocks decodes them in
 * parallel.  Never fails: what cannot be queued is read when asked for.
 */
extern void xs_snapreader_prefetch (struct xs_snapreader *reader,
                                    uint64_t block, uint64_t count);

/* How many blocks the read-ahead keeps decoded ahead of one reader: a
 * caller of xs_snapreader_prefetch gains nothing by asking for more at
 * once.
 */
extern uint64_t
xs_snapreader_readahead_window (const struct xs_snapreader *reader);

/* What the reader's read-ahead has done (readahead.h). */
struct xs_readahead_counts;
extern void
xs_snapreader_readahead_counts (struct xs_snapreader *reader,
                                struct xs_readahead_counts *counts);

/* Like nbdkit's extents: call fn (offset, length, hole, opaque) for
 * ascending, contiguous ranges starting at offset and covering [offset,
 * offset + count), the last one possibly extending to the end of its
 * block.  hole is true for runs of zero blocks.  The cost follows the
 * data blocks of the range, not its length.  A non-zero return from fn
 * stops the walk and is returned (-1 with errno from fn).  Bad ranges
 * are EINVAL with an error, a block map that cannot be read EIO.
 */
extern int xs_snapreader_extents (struct xs_snapreader *reader,
                                  uint64_t offset, uint64_t count,
                                  int (*fn) (uint64_t offset,
                                             uint64_t length, bool hole,
                                             void *opaque),
                                  void *opaque);

/* The chunk id of block into *id (all zero: zero block).  0, or -1 with
 * an error: EINVAL if block is out of range, EIO if the manifest's block
 * map cannot be read.
 */
extern int xs_snapreader_entry (struct xs_snapreader *reader, uint64_t block,
                                struct xs_hash128 *id);

#endif /* XSNAP_SNAPREADER_H */
