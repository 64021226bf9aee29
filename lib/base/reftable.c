/* xsnap: a bounded table from chunk ids to blocks (see reftable.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/byteorder.h"
#include "base/error.h"
#include "base/reftable.h"

#define WAYS 2

struct entry {
  struct xs_hash128 id;         /* zero: a free slot */
  uint64_t block;
};

struct xs_reftable {
  uint64_t set_mask;            /* sets - 1 */
  /* Set i is entries[WAYS * i ...]: its newer entry first. */
  struct entry *entries;
};

struct xs_reftable *
xs_reftable_new (uint64_t slots)
{
  struct xs_reftable *t;

  if (slots < WAYS || (slots & (slots - 1)) != 0
      || slots > SIZE_MAX / sizeof (struct entry)) {
    xs_error ("cannot make a table of %" PRIu64 " chunk ids: not a power "
              "of two of at least %d", slots, WAYS);
    return NULL;
  }
  t = malloc (sizeof *t);
  if (t)
    t->entries = calloc (slots, sizeof *t->entries);
  if (t == NULL || t->entries == NULL) {
    xs_error ("cannot make a table of %" PRIu64 " chunk ids: %m", slots);
    free (t);
    return NULL;
  }
  t->set_mask = slots / WAYS - 1;
  return t;
}

void
xs_reftable_free (struct xs_reftable *t)
{
  if (t == NULL)
    return;
  free (t->entries);
  free (t);
}

/* The set of ID: its first entry. */
static struct entry *
set_of (const struct xs_reftable *t, const struct xs_hash128 *id)
{
  return t->entries + WAYS * (xs_get_le64 (id->bytes) & t->set_mask);
}

static struct entry *
find_entry (const struct xs_reftable *t, const struct xs_hash128 *id)
{
  struct entry *set = set_of (t, id);
  int way;

  for (way = 0; way < WAYS; way++)
    if (xs_hash128_equal (&set[way].id, id))
      return &set[way];
  return NULL;
}

bool
xs_reftable_find (const struct xs_reftable *t, const struct xs_hash128 *id,
                  uint64_t *block)
{
  const struct entry *e = find_entry (t, id);

  if (e == NULL)
    return false;
  *block = e->block;
  return true;
}

void
xs_reftable_add (struct xs_reftable *t, const struct xs_hash128 *id,
                 uint64_t block)
{
  struct entry *set = set_of (t, id);

  if (find_entry (t, id))
    return;
  /* The older entry goes; the newer one moves down. */
  memmove (set + 1, set, (WAYS - 1) * sizeof *set);
  set[0] = (struct entry) { *id, block };
}

size_t
xs_reftable_bytes (const struct xs_reftable *t)
{
  return sizeof *t + WAYS * (t->set_mask + 1) * sizeof *t->entries;
}
