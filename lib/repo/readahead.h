/* xsnap: fetching and decoding the blocks a reader will ask for next.
 *
 * A restore reads a snapshot from its start to its end: a disk served by
 * nbdcopy, a hydration, an export.  Each block it reads costs a fetch (a
 * chunk file that is rarely in the page cache) and a decode (zstd and a
 * hash, CPU-bound); done one after another by the thread that needs the
 * block, the disk waits for the CPU and the CPU for the disk.  A
 * read-ahead keeps a few worker threads fetching and decoding the blocks
 * ahead of each sequential reader into a small cache of its own, so
 * that the reader finds them decoded.
 *
 * The read-ahead knows blocks only by number: its owner (the snapshot
 * reader) gives it a function that loads one block into its cache.  It
 * finds sequential readers itself (xs_readahead_observe: up to
 * XS_READAHEAD_STREAMS at once, such as nbdcopy's connections, each
 * reading its own part of a disk) and takes explicit requests from
 * readers that know what they will read (xs_readahead_queue: a hydration
 * knows which blocks are missing).  Work that is not started by the time
 * the reader gets there is done by the reader itself (the cache makes the
 * two never decode one block twice), so a read-ahead that falls behind
 * costs nothing but its queue.
 *
 * Memory is bounded: a queue of block numbers and the workers' threads;
 * the decoded blocks live in the owner's cache, whose capacity bounds
 * them.  A failed load is not reported by the worker (the reader that
 * needs the block loads it again and reports why).
 */
#ifndef XSNAP_READAHEAD_H
#define XSNAP_READAHEAD_H

#include <stdbool.h>
#include <stdint.h>

/* How many sequential readers are followed at once. */
#define XS_READAHEAD_STREAMS 8

struct xs_readahead;

/* Load block into the owner's cache: claim it there (a load under way,
 * which readers wait for), then xs_readahead_claim it, and load it only
 * if that says it is still wanted.  Called on a worker thread, with no
 * lock held; its errors are held back (see above).  Returns 0 (loaded),
 * 1 (nothing to do: a zero block, cached already, or not wanted any
 * more) or -1 (failed).
 */
typedef int (*xs_readahead_load_fn) (void *opaque, uint64_t block);

/* A read-ahead over blocks [0, nblocks) with up to threads workers
 * (started when there is first work) that keeps window blocks decoded
 * ahead of each sequential reader.  NULL with an error if out of memory.
 */
extern struct xs_readahead *xs_readahead_new (uint64_t nblocks,
                                              unsigned threads,
                                              unsigned window,
                                              xs_readahead_load_fn load,
                                              void *opaque);

/* Stop the workers (each finishes the block it is loading) and free. */
extern void xs_readahead_free (struct xs_readahead *ra);

/* A read of blocks [first, first + count) is about to happen.  If it
 * continues a sequential reader, the blocks ahead of it are queued; a
 * read of several blocks has its later blocks queued too, so that they
 * decode in parallel with its first.
 */
extern void xs_readahead_observe (struct xs_readahead *ra, uint64_t first,
                                  uint64_t count);

/* A reader is about to read block (before it looks in the owner's
 * cache): a worker that has not started it will not.
 */
extern void xs_readahead_consume (struct xs_readahead *ra, uint64_t block);

/* A worker's load function, having claimed block in the owner's cache:
 * true if the block is still wanted (no reader has come for it), and
 * then it is the worker's to load.
 */
extern bool xs_readahead_claim (struct xs_readahead *ra, uint64_t block);

/* Queue blocks [first, first + count) for loading, in order.  What the
 * queue has no room for is dropped (it is only ahead of the reader).
 */
extern void xs_readahead_queue (struct xs_readahead *ra, uint64_t first,
                                uint64_t count);

/* What the workers have done, for tests and statistics. */
struct xs_readahead_counts {
  uint64_t loaded;              /* blocks loaded */
  uint64_t skipped;             /* zero, cached, or read before their turn */
  uint64_t failed;              /* loads that failed */
  uint64_t dropped;             /* blocks not queued: the queue was full */
  uint64_t queued;              /* blocks waiting in the queue now */
};
extern void xs_readahead_counts (struct xs_readahead *ra,
                                 struct xs_readahead_counts *counts);

#endif /* XSNAP_READAHEAD_H */
