/* Unit tests for lib/base/reftable.c: a bounded table of chunk ids and
 * the first block of each, which forgets the older entry of a full set
 * and never answers for an id it does not hold.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/byteorder.h"
#include "base/reftable.h"
#include "tap.h"

static struct xs_hash128
id_of (uint64_t n)
{
  struct xs_hash128 id;

  xs_hash128 (&n, sizeof n, &id);
  return id;
}

/* An id whose first 8 bytes are SET (so it falls in set SET of a small
 * table) and whose other bytes are TAG.
 */
static struct xs_hash128
id_in_set (uint64_t set, uint8_t tag)
{
  struct xs_hash128 id;

  memset (id.bytes, tag, sizeof id.bytes);
  xs_put_le64 (id.bytes, set);
  return id;
}

static void
test_sizes (void)
{
  struct xs_reftable *t;

  ok (xs_reftable_new (3) == NULL, "a table of 3 slots is refused");
  error_contains ("not a power of two", "  not a power of two");
  ok (xs_reftable_new (1) == NULL, "a table of 1 slot is refused");
  error_contains ("not a power of two", "  too small");
  t = xs_reftable_new (XS_REFTABLE_SENDER_SLOTS);
  ok (t != NULL, "a sender's table is made");
  ok (xs_reftable_bytes (t) <= 8u << 20,
      "  and takes at most 8 MiB (%zu bytes)", xs_reftable_bytes (t));
  xs_reftable_free (t);
  xs_reftable_free (NULL);
}

static void
test_first_block (void)
{
  struct xs_reftable *t = xs_reftable_new (64);
  struct xs_hash128 a = id_of (1), b = id_of (2);
  uint64_t block = 99;

  ok (!xs_reftable_find (t, &a, &block), "an empty table holds nothing");
  is_int (block, 99, "  and leaves the block alone");
  xs_reftable_add (t, &a, 7);
  ok (xs_reftable_find (t, &a, &block) && block == 7,
      "an id added is found with its block");
  xs_reftable_add (t, &a, 12);
  ok (xs_reftable_find (t, &a, &block) && block == 7,
      "  added again, its first block stays");
  ok (!xs_reftable_find (t, &b, &block), "another id is not found");
  xs_reftable_free (t);
}

static void
test_exact (void)
{
  struct xs_reftable *t = xs_reftable_new (8);
  struct xs_hash128 a = id_in_set (1, 0xaa), near = a;
  uint64_t block;

  near.bytes[15] ^= 1;
  xs_reftable_add (t, &a, 3);
  ok (!xs_reftable_find (t, &near, &block),
      "an id of the same set that differs in its last bit is not a hit");
  near = a;
  near.bytes[8] ^= 0x80;
  ok (!xs_reftable_find (t, &near, &block), "  nor in its ninth byte");
  ok (xs_reftable_find (t, &a, &block) && block == 3,
      "  the id itself is");
  xs_reftable_free (t);
}

static void
test_eviction (void)
{
  /* 8 slots: 4 sets of 2. */
  struct xs_reftable *t = xs_reftable_new (8);
  struct xs_hash128 a = id_in_set (2, 1), b = id_in_set (2, 2),
    c = id_in_set (2, 3), d = id_in_set (6, 4), other = id_in_set (3, 5);
  uint64_t block;

  xs_reftable_add (t, &other, 50);
  xs_reftable_add (t, &a, 10);
  xs_reftable_add (t, &b, 11);
  ok (xs_reftable_find (t, &a, &block) && block == 10
      && xs_reftable_find (t, &b, &block) && block == 11,
      "a set holds two ids");
  xs_reftable_add (t, &c, 12);
  ok (!xs_reftable_find (t, &a, &block),
      "a third id of the set evicts the oldest");
  ok (xs_reftable_find (t, &b, &block) && block == 11
      && xs_reftable_find (t, &c, &block) && block == 12,
      "  and keeps the other two");
  /* Set 6 of 4 sets is set 2: the index wraps. */
  xs_reftable_add (t, &d, 13);
  ok (!xs_reftable_find (t, &b, &block)
      && xs_reftable_find (t, &c, &block) && xs_reftable_find (t, &d, &block),
      "  an id whose first bytes wrap to the set evicts the next oldest");
  ok (xs_reftable_find (t, &other, &block) && block == 50,
      "another set is untouched");
  xs_reftable_add (t, &a, 20);
  ok (xs_reftable_find (t, &a, &block) && block == 20,
      "an evicted id added again has its new block");
  xs_reftable_free (t);
}

static void
test_many (void)
{
  struct xs_reftable *t = xs_reftable_new (1024);
  uint64_t n, block, found = 0, wrong = 0;

  for (n = 0; n < 100000; n++) {
    struct xs_hash128 id = id_of (n);
    xs_reftable_add (t, &id, n);
  }
  for (n = 0; n < 100000; n++) {
    struct xs_hash128 id = id_of (n);
    if (xs_reftable_find (t, &id, &block)) {
      found++;
      wrong += block != n;
    }
  }
  ok (found <= 1024 && found >= 512,
      "after 100000 ids, a table of 1024 slots holds at most 1024 "
      "(%llu)", (unsigned long long) found);
  is_int (wrong, 0, "  each with its own block");
  xs_reftable_free (t);
}

int
main (void)
{
  test_sizes ();
  test_first_block ();
  test_exact ();
  test_eviction ();
  test_many ();
  return done_testing ();
}
