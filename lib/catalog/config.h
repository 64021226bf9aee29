/* xsnap: the store's tunable rules — the limits of sharing and copying
 * that the clouds xsnap is modelled on fix, which an administrator may
 * change.  They live in the catalog's settings table; this module knows
 * which keys exist, their defaults and their valid ranges, so a typo or a
 * nonsense value is refused instead of silently ignored.
 */
#ifndef XSNAP_CONFIG_H
#define XSNAP_CONFIG_H

#include <stdint.h>

#include "catalog/store.h"

struct xs_config_item {
  const char *key;
  const char *value;            /* as set, or the default */
  const char *fallback;         /* the default */
  const char *description;
  int is_set;
};

/* Set KEY to VALUE (checked), or back to its default with VALUE NULL.
 * Audited as done by ACTOR; who may is decided above (access/admin.h).
 */
extern int xs_config_set (struct xs_store *store, const char *actor,
                          const char *key, const char *value);

/* Is KEY a known setting and VALUE (NULL: the default) valid for it?
 * 0, or -1 with the reason reported.
 */
extern int xs_config_check (const char *key, const char *value);

/* Call FN for each known key (a NULL-terminated table in key order). */
extern int xs_config_list (struct xs_store *store,
                           int (*fn) (const struct xs_config_item *item,
                                      void *opaque),
                           void *opaque);

#endif /* XSNAP_CONFIG_H */
