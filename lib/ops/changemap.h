/* xsnap: changed-block maps as reported to users and tools.
 *
 * A changed-block map says which blocks of a volume differ from a base:
 * for `xsnap diff --live` the base is the volume's last snapshot (or its
 * creation), and the map comes from the volume's dirty map.  This module
 * gets that map whether or not the volume is being served, and writes and
 * reads the compact binary form (docs/FORMAT.md, "Changed-block bitmap").
 */
#ifndef XSNAP_CHANGEMAP_H
#define XSNAP_CHANGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bitmap.h"
#include "head/dirtymap.h"
#include "catalog/store.h"
#include "catalog/volume.h"

struct xs_changemap {
  uint64_t size;                /* volume size in bytes */
  uint32_t block_size;
  enum xs_dirtymap_doubt doubt; /* TRUSTED, or why the map is not */
  bool live;                    /* the volume is served: as of its last flush */
  struct xs_bitmap bits;        /* one bit per block, set = changed */
};

extern void xs_changemap_clear (struct xs_changemap *map);

/* The changed blocks of VOL since its last snapshot (or creation).  When
 * no process owns VOL this opens it as owner for a moment, which is how an
 * unclean stop is detected; when one does, it reads the map as of the
 * owner's last flush.
 */
extern int xs_changemap_of_volume (struct xs_store *store,
                                   const struct xs_volume *vol,
                                   struct xs_changemap *map);

/* The blocks whose content differs between snapshots A and B (given as
 * VOL@NAME or id in SCOPE), from their manifests alone: no data is read.
 * Both must have the same size and block size.
 */
extern int xs_changemap_of_snapshots (struct xs_store *store,
                                      const struct xs_scope *scope,
                                      const char *spec_a, const char *spec_b,
                                      struct xs_changemap *map);

/* Prove MAP (from xs_changemap_of_snapshots) by reading both snapshots
 * whole: *MISSED counts blocks whose content differs but are not marked
 * (must be 0), *NEEDLESS blocks marked whose content is equal.  Calls
 * PROGRESS (may be NULL) with blocks done and total.
 */
extern int xs_changemap_verify (struct xs_store *store,
                                const struct xs_scope *scope,
                                const char *spec_a, const char *spec_b,
                                const struct xs_changemap *map,
                                uint64_t *missed, uint64_t *needless,
                                void (*progress) (uint64_t done,
                                                  uint64_t total,
                                                  void *opaque),
                                void *opaque);

/* Number of changed blocks, and of changed bytes (the last block may be
 * short of a whole block).
 */
extern uint64_t xs_changemap_blocks (const struct xs_changemap *map);
extern uint64_t xs_changemap_bytes (const struct xs_changemap *map);

/* Encode MAP in the binary bitmap format (malloc'd). */
extern int xs_changemap_encode (const struct xs_changemap *map,
                                void **data, size_t *len);

/* Decode the binary form (untrusted input). */
extern int xs_changemap_decode (const void *data, size_t len,
                                struct xs_changemap *map);

#endif /* XSNAP_CHANGEMAP_H */
