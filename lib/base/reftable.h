/* xsnap: a bounded table from chunk ids to the first block that used them.
 *
 * A sender dedups within a stream: a block whose chunk an earlier block
 * of the stream already carries is sent as a reference to that block.
 * Remembering every chunk would grow with the volume (16 bytes a block:
 * 2 GiB for 64 TiB in 512 KiB blocks), so the table has a fixed number
 * of slots, chosen when it is made, in sets of two: an id's first bytes
 * (ids are hashes) pick its set, and a set that is full forgets its older
 * entry.  A forgotten chunk is only sent again; a hit is always exact
 * (the whole id compared).  One thread at a time.
 */
#ifndef XSNAP_REFTABLE_H
#define XSNAP_REFTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

/* The slots a sender's table has: 2^17 of 24 bytes, 3 MiB. */
#define XS_REFTABLE_SENDER_SLOTS (UINT64_C (1) << 17)

struct xs_reftable;

/* A table of SLOTS entries (a power of two, at least 2).  NULL with an
 * error.
 */
extern struct xs_reftable *xs_reftable_new (uint64_t slots);
extern void xs_reftable_free (struct xs_reftable *t);

/* The first block remembered for ID (not zero): true and *BLOCK, or
 * false if the table does not hold ID (never held it, or forgot it).
 */
extern bool xs_reftable_find (const struct xs_reftable *t,
                              const struct xs_hash128 *id, uint64_t *block);

/* Remember that BLOCK uses ID (not zero), unless ID is held already (its
 * first block stays).  May forget another id of the same set.
 */
extern void xs_reftable_add (struct xs_reftable *t,
                             const struct xs_hash128 *id, uint64_t block);

/* The bytes the table takes. */
extern size_t xs_reftable_bytes (const struct xs_reftable *t);

#endif /* XSNAP_REFTABLE_H */
