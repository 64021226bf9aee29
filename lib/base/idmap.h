/* xsnap: a set of chunk ids, or a map from chunk ids to chunk ids.
 *
 * Streams remember chunk ids by the million: a sender which ids its
 * receiver has already (a set), a receive that encrypts what arrives
 * which local id each id of the stream became (a map).  Ids are hashes,
 * so their first bytes index an open-addressing table directly; the zero
 * id, which names no chunk, marks a free slot.  The table doubles when it
 * is half full.  Values take room only once one is put, so a set costs 16
 * bytes a slot.  One thread at a time.
 */
#ifndef XSNAP_IDMAP_H
#define XSNAP_IDMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/hash.h"

struct xs_idmap {
  struct xs_hash128 *keys;      /* NULL until the first put */
  struct xs_hash128 *values;    /* NULL for a set */
  uint64_t mask;                /* slots - 1 */
  uint64_t count;
};

/* Room for EXPECTED ids without growing.  0, or -1 with an error. */
extern int xs_idmap_reserve (struct xs_idmap *map, uint64_t expected);

/* Put KEY (not zero), mapped to VALUE unless that is NULL (a set).
 * *PRESENT, if not NULL, says whether KEY was there already.  0, or -1
 * with an error.
 */
extern int xs_idmap_put (struct xs_idmap *map, const struct xs_hash128 *key,
                         const struct xs_hash128 *value, bool *present);

/* What KEY maps to, or NULL if it is not there or has no value. */
extern const struct xs_hash128 *xs_idmap_get (const struct xs_idmap *map,
                                              const struct xs_hash128 *key);

/* Whether KEY is there (a set's membership). */
extern bool xs_idmap_has (const struct xs_idmap *map,
                          const struct xs_hash128 *key);

extern void xs_idmap_clear (struct xs_idmap *map);

#endif /* XSNAP_IDMAP_H */
