/* xsnap: regions — named places where data lives.
 *
 * A region is a repository on a backend (a local directory, file://, by
 * default inside the store) plus the live volumes hosted in it on this
 * machine, and a group (mainland, intl, ...) that the copy rules use.
 * `xsnap init` makes the first region; the administrator adds and removes
 * others.  A region that still holds volumes, snapshots, policies or copy
 * tasks cannot be removed.
 */
#ifndef XSNAP_REGION_H
#define XSNAP_REGION_H

#include <stdint.h>

#include <jansson.h>

#include "catalog/store.h"

struct xs_region {
  const char *name;
  const char *backend;          /* URL */
  const char *group;
  int64_t created_ns;
};

extern json_t *xs_region_to_json (const struct xs_region *region);

/* Add region NAME on BACKEND_URL (NULL: a file repository inside the
 * store) in GROUP (NULL: "default").  The backend must open.  Audited as
 * done by ACTOR; who may is decided above (access/admin.h).
 */
extern int xs_region_add (struct xs_store *store, const char *actor,
                          const char *name, const char *backend_url,
                          const char *group);
extern int xs_region_remove (struct xs_store *store, const char *actor,
                             const char *name);
extern int xs_region_list (struct xs_store *store,
                           int (*fn) (const struct xs_region *region,
                                      void *opaque),
                           void *opaque);

/* Looking a region up, for the modules that name one in their rows. */

/* Is there a region NAME?  1, 0, or -1. */
extern int xs_region_exists (struct xs_store *store, const char *name);

/* What the catalog says of region NAME: 0 with its *GROUP, *CREATED_NS
 * and backend URL *BACKEND (the strings malloc'd; pass NULL for any not
 * wanted), 1 if there is no such region (not reported), or -1.
 */
extern int xs_region_lookup (struct xs_store *store, const char *name,
                             char **group, int64_t *created_ns,
                             char **backend);

#endif /* XSNAP_REGION_H */
