/* Unit tests for lib/base/idmap.c: a set and a map of chunk ids, growing past
 * their first table.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/idmap.h"
#include "tap.h"

static struct xs_hash128
id_of (uint64_t n)
{
  struct xs_hash128 id;

  xs_hash128 (&n, sizeof n, &id);
  return id;
}

int
main (void)
{
  struct xs_idmap set = { NULL }, map = { NULL };
  struct xs_hash128 a = id_of (1), b = id_of (2), v;
  const struct xs_hash128 *got;
  bool present = true, all = true;

  is_int (xs_idmap_reserve (&set, 100), 0, "reserve room for 100 ids");
  is_int (xs_idmap_put (&set, &a, NULL, &present), 0, "put an id in a set");
  ok (!present, "  it was not there");
  xs_idmap_put (&set, &a, NULL, &present);
  ok (present, "  put again, it was");
  ok (set.values == NULL, "a set keeps no values");
  ok (xs_idmap_get (&set, &a) == NULL, "  and gives none");
  ok (xs_idmap_has (&set, &a) && !xs_idmap_has (&set, &b),
      "  it has what was put, not what was not");
  ok (!xs_idmap_has (&map, &a), "an empty map has nothing");
  for (uint64_t n = 10; n < 5010 && all; n++) {
    struct xs_hash128 k = id_of (n);

    all = xs_idmap_put (&set, &k, NULL, &present) == 0 && !present;
  }
  ok (all && set.count == 5001, "5000 more ids: the set grows (%lu)",
      (unsigned long) set.count);
  xs_idmap_put (&set, &a, NULL, &present);
  ok (present, "  and still has the first");

  for (uint64_t n = 0; n < 3000; n++) {
    struct xs_hash128 k = id_of (100000 + n);

    v = id_of (200000 + n);
    if (xs_idmap_put (&map, &k, &v, NULL) == -1)
      all = false;
  }
  ok (all, "a map of 3000 ids");
  all = true;
  for (uint64_t n = 0; n < 3000 && all; n++) {
    struct xs_hash128 k = id_of (100000 + n), want = id_of (200000 + n);

    got = xs_idmap_get (&map, &k);
    all = got && xs_hash128_equal (got, &want);
  }
  ok (all, "  gives every value back");
  ok (xs_idmap_get (&map, &a) == NULL, "  and nothing for an id not put");
  v = id_of (7);
  b = id_of (100000);
  xs_idmap_put (&map, &b, &v, &present);
  got = xs_idmap_get (&map, &b);
  ok (present && got && xs_hash128_equal (got, &v),
      "  a put replaces the value");
  xs_idmap_clear (&set);
  xs_idmap_clear (&map);
  ok (set.keys == NULL && map.count == 0, "cleared");
  return done_testing ();
}
