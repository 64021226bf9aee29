/* xsnap: which blocks of a clone are present in its head.
 *
 * A disk made from a snapshot starts with no block of its own: reads of a
 * block that is not present go to the snapshot, and a write copies the
 * block up first.  This map records which blocks are present.  It must
 * never claim a block whose data is not durable, or a crash would expose
 * a block of zeroes instead of the snapshot's content; so a persist takes
 * a copy of the bits, then the caller makes the data durable, then the
 * copy is written.  Bits only ever go from clear to set.
 *
 * Format: docs/FORMAT.md, "Present map".
 */
#ifndef XSNAP_PRESENTMAP_H
#define XSNAP_PRESENTMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/bitmap.h"

struct xs_presentmap;

/* Create a map of NBLOCKS clear bits for a clone of SOURCE_ID. */
extern int xs_presentmap_create (const char *path, uint32_t block_size,
                                 uint64_t nblocks, const char *source_id);

/* Open it; the geometry and the source must match. */
extern struct xs_presentmap *xs_presentmap_open (const char *path,
                                                 uint32_t block_size,
                                                 uint64_t nblocks,
                                                 const char *source_id);
extern void xs_presentmap_close (struct xs_presentmap *pm);

/* Thread-safe. */
extern bool xs_presentmap_has (const struct xs_presentmap *pm,
                               uint64_t block);
extern void xs_presentmap_set (struct xs_presentmap *pm, uint64_t block);
extern uint64_t xs_presentmap_count (const struct xs_presentmap *pm);
extern const struct xs_bitmap *xs_presentmap_bits (const struct xs_presentmap *pm);

/* Persisting: BEGIN copies the bits; the caller then makes the head's
 * data durable; END writes the copy and syncs it.  Serialized inside.
 */
extern int xs_presentmap_persist_begin (struct xs_presentmap *pm);
extern int xs_presentmap_persist_end (struct xs_presentmap *pm);

#endif /* XSNAP_PRESENTMAP_H */
