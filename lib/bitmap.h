/* xsnap: a flat bitmap, one bit per block.
 *
 * Used for the changed-block (dirty) map and, later, for present bits of
 * clones and for diffs.  Bits are stored LSB-first in bytes (bit i is bit
 * i % 8 of byte i / 8), which is also the on-disk and wire layout, so a
 * bitmap can be written out without conversion on any host.
 *
 * xs_bitmap_set_atomic may be called concurrently with itself and with
 * xs_bitmap_get; everything else needs the caller's exclusion.
 */
#ifndef XSNAP_BITMAP_H
#define XSNAP_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xs_bitmap {
  uint64_t nbits;
  size_t nbytes;                /* ceil (nbits / 8) */
  uint8_t *bytes;
};

/* Allocate a bitmap of NBITS clear bits.  Returns 0 or -1 (reported). */
extern int xs_bitmap_init (struct xs_bitmap *bm, uint64_t nbits);
extern void xs_bitmap_free (struct xs_bitmap *bm);

/* Grow (never shrink) to NBITS; new bits are clear. */
extern int xs_bitmap_resize (struct xs_bitmap *bm, uint64_t nbits);

static inline size_t
xs_bitmap_bytes_for (uint64_t nbits)
{
  return (size_t) ((nbits + 7) / 8);
}

static inline bool
xs_bitmap_get (const struct xs_bitmap *bm, uint64_t bit)
{
  uint8_t byte = __atomic_load_n (&bm->bytes[bit / 8], __ATOMIC_RELAXED);
  return (byte >> (bit % 8)) & 1;
}

/* Set one bit.  Safe against concurrent setters.  Returns true if the bit
 * was clear before (the caller may then have more bookkeeping to do).
 */
static inline bool
xs_bitmap_set_atomic (struct xs_bitmap *bm, uint64_t bit)
{
  uint8_t mask = (uint8_t) (1u << (bit % 8));
  uint8_t *byte = &bm->bytes[bit / 8];

  /* Most writes land in blocks already dirty: read first so that the
   * common case does not bounce the cache line between cores.
   */
  if (__atomic_load_n (byte, __ATOMIC_RELAXED) & mask)
    return false;
  return (__atomic_fetch_or (byte, mask, __ATOMIC_RELAXED) & mask) == 0;
}

extern void xs_bitmap_set (struct xs_bitmap *bm, uint64_t bit);
extern void xs_bitmap_clear (struct xs_bitmap *bm, uint64_t bit);
extern void xs_bitmap_set_range (struct xs_bitmap *bm,
                                 uint64_t first, uint64_t count);
extern void xs_bitmap_clear_all (struct xs_bitmap *bm);

/* Number of set bits. */
extern uint64_t xs_bitmap_count (const struct xs_bitmap *bm);

/* Index of the first set (or clear) bit at or after FROM, or nbits if none. */
extern uint64_t xs_bitmap_next_set (const struct xs_bitmap *bm, uint64_t from);
extern uint64_t xs_bitmap_next_clear (const struct xs_bitmap *bm,
                                      uint64_t from);

/* Call FN for every maximal run of set bits, in order.  A non-zero return
 * from FN stops the walk and is returned.
 */
extern int xs_bitmap_for_each_run (const struct xs_bitmap *bm,
                                   int (*fn) (uint64_t first, uint64_t count,
                                              void *opaque),
                                   void *opaque);

#endif /* XSNAP_BITMAP_H */
