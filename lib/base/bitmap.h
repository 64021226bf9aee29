/* xsnap: a flat bitmap, one bit per block.
 *
 * Used for the changed-block (dirty) map and, later, for present bits of
 * clones and for diffs.  Bits are stored LSB-first in bytes (bit i is bit
 * i % 8 of byte i / 8), which is also the on-disk and wire layout, so a
 * bitmap can be written out without conversion on any host.
 *
 * xs_bitmap_set_atomic and xs_bitmap_mark_atomic may be called
 * concurrently with themselves and with xs_bitmap_get; everything else
 * needs the caller's exclusion.
 *
 * The bytes are plain uint8_t so that a map can be written to a file and
 * copied as it is; concurrent access goes through xs_bitmap_atomic_byte,
 * a C11 atomic view of the same byte (same size and representation, and
 * lock-free: checked below).
 */
#ifndef XSNAP_BITMAP_H
#define XSNAP_BITMAP_H

#include <assert.h>
#include <stdatomic.h>
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

/* Grow or shrink to NBITS: new bits are clear, and bits past NBITS are
 * dropped.  Shrinking never fails.
 */
extern int xs_bitmap_resize (struct xs_bitmap *bm, uint64_t nbits);

static inline size_t
xs_bitmap_bytes_for (uint64_t nbits)
{
  return (size_t) ((nbits + 7) / 8);
}

_Static_assert (sizeof (_Atomic uint8_t) == sizeof (uint8_t),
                "an atomic byte is a byte");
#if ATOMIC_CHAR_LOCK_FREE != 2
#error "bitmaps need lock-free atomic bytes"
#endif

/* The byte holding BIT, for atomic access. */
static inline _Atomic uint8_t *
xs_bitmap_atomic_byte (const struct xs_bitmap *bm, uint64_t bit)
{
  assert (bit < bm->nbits);
  return (_Atomic uint8_t *) &bm->bytes[bit / 8];
}

static inline uint8_t
xs_bitmap_bit_mask (uint64_t bit)
{
  return (uint8_t) (1u << (bit % 8));
}

static inline bool
xs_bitmap_get (const struct xs_bitmap *bm, uint64_t bit)
{
  return atomic_load_explicit (xs_bitmap_atomic_byte (bm, bit),
                               memory_order_relaxed)
    & xs_bitmap_bit_mask (bit);
}

/* Set one bit.  Safe against concurrent setters.  Returns true if the bit
 * was clear before (the caller may then have more bookkeeping to do).
 * Setting is sequentially consistent, so that a caller that then marks
 * its page (xs_bitmap_mark_atomic) pairs with a persister that clears the
 * page's mark and then reads the bits: either it sees the bit or the page
 * stays marked.
 */
static inline bool
xs_bitmap_set_atomic (struct xs_bitmap *bm, uint64_t bit)
{
  uint8_t mask = xs_bitmap_bit_mask (bit);
  _Atomic uint8_t *byte = xs_bitmap_atomic_byte (bm, bit);

  /* Most writes land in blocks already dirty: read first so that the
   * common case does not bounce the cache line between cores.
   */
  if (atomic_load_explicit (byte, memory_order_relaxed) & mask)
    return false;
  return (atomic_fetch_or (byte, mask) & mask) == 0;
}

/* Set one bit, unconditionally and sequentially consistent: the marks of
 * unsaved pages, which a persister clears concurrently (a mark read as
 * set could be stale, so there is no read first).
 */
static inline void
xs_bitmap_mark_atomic (struct xs_bitmap *bm, uint64_t bit)
{
  atomic_fetch_or (xs_bitmap_atomic_byte (bm, bit), xs_bitmap_bit_mask (bit));
}

/* Clear one bit atomically, with ORDER; returns whether it was set. */
static inline bool
xs_bitmap_clear_atomic (struct xs_bitmap *bm, uint64_t bit,
                        memory_order order)
{
  uint8_t mask = xs_bitmap_bit_mask (bit);

  return atomic_fetch_and_explicit (xs_bitmap_atomic_byte (bm, bit),
                                    (uint8_t) ~mask, order) & mask;
}

extern void xs_bitmap_set (struct xs_bitmap *bm, uint64_t bit);
extern void xs_bitmap_clear (struct xs_bitmap *bm, uint64_t bit);
extern void xs_bitmap_set_range (struct xs_bitmap *bm,
                                 uint64_t first, uint64_t count);
extern void xs_bitmap_clear_all (struct xs_bitmap *bm);

/* DST |= SRC (of the same size), writing only the words of DST where SRC
 * has bits: a sparse SRC leaves most pages of a new DST untouched, never
 * faulted in (a 64 TiB volume's map is 16 MiB).
 */
extern void xs_bitmap_or (struct xs_bitmap *dst, const struct xs_bitmap *src);

/* Number of set bits. */
extern uint64_t xs_bitmap_count (const struct xs_bitmap *bm);

/* Index of the first set (or clear) bit at or after FROM, or nbits if none. */
extern uint64_t xs_bitmap_next_set (const struct xs_bitmap *bm, uint64_t from);
extern uint64_t xs_bitmap_next_clear (const struct xs_bitmap *bm,
                                      uint64_t from);

/* Index of the first set bit in [FROM, LIMIT) (LIMIT clamped to nbits),
 * or LIMIT if none: reads no byte at or past LIMIT, so a search of a
 * short range costs that range, however long the map.  Each byte is read
 * atomically (relaxed), so it may run while other threads set and clear
 * bits: a bit changed during the search may or may not be seen.
 */
extern uint64_t xs_bitmap_next_set_within (const struct xs_bitmap *bm,
                                           uint64_t from, uint64_t limit);

/* Call FN for every maximal run of set bits, in order.  A non-zero return
 * from FN stops the walk and is returned.
 */
extern int xs_bitmap_for_each_run (const struct xs_bitmap *bm,
                                   int (*fn) (uint64_t first, uint64_t count,
                                              void *opaque),
                                   void *opaque);

#endif /* XSNAP_BITMAP_H */
