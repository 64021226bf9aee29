/* xsnap: sets and maps of chunk ids (see idmap.h). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/idmap.h"

/* The slot of KEY, or the free slot where it would go. */
static uint64_t
slot_of (const struct xs_hash128 *keys, uint64_t mask,
         const struct xs_hash128 *key)
{
  uint64_t i;

  memcpy (&i, key->bytes, sizeof i);
  for (i &= mask; ; i = (i + 1) & mask)
    if (xs_hash128_is_zero (&keys[i]) || xs_hash128_equal (&keys[i], key))
      return i;
}

static struct xs_hash128 *
new_table (uint64_t cap)
{
  struct xs_hash128 *t = cap <= SIZE_MAX / sizeof *t
    ? calloc (cap, sizeof *t) : NULL;

  if (t == NULL)
    xs_error ("out of memory for %lu chunk ids", (unsigned long) cap / 2);
  return t;
}

/* Make the table CAP slots (a power of two), keeping what it holds; with
 * VALUES, with room for values.
 */
static int
resize (struct xs_idmap *map, uint64_t cap, bool values)
{
  struct xs_hash128 *keys = new_table (cap);
  struct xs_hash128 *vals = keys && values ? new_table (cap) : NULL;
  uint64_t i, j;

  if (keys == NULL || (values && vals == NULL)) {
    free (keys);
    return -1;
  }
  for (i = 0; map->keys && i <= map->mask; i++)
    if (!xs_hash128_is_zero (&map->keys[i])) {
      j = slot_of (keys, cap - 1, &map->keys[i]);
      keys[j] = map->keys[i];
      if (vals && map->values)
        vals[j] = map->values[i];
    }
  free (map->keys);
  free (map->values);
  map->keys = keys;
  map->values = vals;
  map->mask = cap - 1;
  return 0;
}

int
xs_idmap_reserve (struct xs_idmap *map, uint64_t expected)
{
  uint64_t cap = 16;

  while (cap < 2 * expected)
    cap *= 2;
  if (map->keys && cap <= map->mask + 1)
    return 0;
  return resize (map, cap, map->values != NULL);
}

int
xs_idmap_put (struct xs_idmap *map, const struct xs_hash128 *key,
              const struct xs_hash128 *value, bool *present)
{
  bool with_values = value || map->values;
  uint64_t i;

  if (map->keys == NULL || 2 * (map->count + 1) > map->mask + 1) {
    if (resize (map, map->keys ? 2 * (map->mask + 1) : 1024,
                with_values) == -1)
      return -1;
  }
  else if (with_values && map->values == NULL
           && resize (map, map->mask + 1, true) == -1)
    return -1;
  i = slot_of (map->keys, map->mask, key);
  if (present)
    *present = !xs_hash128_is_zero (&map->keys[i]);
  if (xs_hash128_is_zero (&map->keys[i]))
    map->count++;
  map->keys[i] = *key;
  if (value)
    map->values[i] = *value;
  return 0;
}

const struct xs_hash128 *
xs_idmap_get (const struct xs_idmap *map, const struct xs_hash128 *key)
{
  uint64_t i;

  if (map->keys == NULL || map->values == NULL)
    return NULL;
  i = slot_of (map->keys, map->mask, key);
  return xs_hash128_is_zero (&map->keys[i]) ? NULL : &map->values[i];
}

bool
xs_idmap_has (const struct xs_idmap *map, const struct xs_hash128 *key)
{
  return map->keys
    && !xs_hash128_is_zero (&map->keys[slot_of (map->keys, map->mask, key)]);
}

void
xs_idmap_clear (struct xs_idmap *map)
{
  free (map->keys);
  free (map->values);
  memset (map, 0, sizeof *map);
}
