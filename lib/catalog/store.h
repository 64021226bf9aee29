/* xsnap: a store — one deployment of xsnap in one directory.
 *
 * Layout (docs/FORMAT.md, "Store layout"):
 *   STORE/xsnap.db                              the catalog (SQLite, WAL)
 *   STORE/regions/REGION/volumes/VOLUME-ID/     the head of each live volume
 *   STORE/regions/REGION/repo/                  the region's default file
 *                                               repository
 *
 * Every command and the plugin act within a scope: an account and a region
 * of a store.  Unless told otherwise they act as the store's default
 * account (the administrator made by init) in its default region.
 */
#ifndef XSNAP_STORE_H
#define XSNAP_STORE_H

#include <stdbool.h>

#include "catalog/catalog.h"

#define XS_DEFAULT_ACCOUNT "admin"
#define XS_DEFAULT_REGION "local"
#define XS_STORE_FORMAT "1"

struct xs_store;

/* Create a new store at PATH (the directory may exist but must not hold a
 * store).  REGION and BACKEND_URL may be NULL for the defaults ("local",
 * a file repository inside the store).
 */
extern int xs_store_init (const char *path, const char *region,
                          const char *backend_url);

/* Open an existing store.  A missing store is reported with a hint. */
extern struct xs_store *xs_store_open (const char *path);
extern void xs_store_close (struct xs_store *store);

extern const char *xs_store_path (const struct xs_store *store);
/* The store's id (setting store_id): 32 hex digits, made by init, or on
 * the first open of a store made before stores had ids.
 */
extern const char *xs_store_id (const struct xs_store *store);
extern struct xs_catalog *xs_store_catalog (struct xs_store *store);

/* The account and region a command acts in. */
struct xs_scope {
  char *account;
  char *region;
};

/* Resolve ACCOUNT and REGION (NULL for the store's defaults) and check
 * that both exist.
 */
extern int xs_store_scope (struct xs_store *store, const char *account,
                           const char *region, struct xs_scope *scope);
extern void xs_scope_clear (struct xs_scope *scope);

/* The repository of ACCOUNT in REGION (close it with xs_repo_close; the
 * backend behind it belongs to the store and lives as long as it).
 */
struct xs_repo;
struct xs_backend;
extern struct xs_repo *xs_store_repo (struct xs_store *store,
                                      const char *account,
                                      const char *region);

/* The backend of REGION (owned by the store). */
extern struct xs_backend *xs_store_backend (struct xs_store *store,
                                            const char *region);

/* Repositories are owned by one store and one of its regions (the owner
 * mark, repo.h; docs/ARCHITECTURE.md, "Repositories owned by one
 * store").  Check that BACKEND is REGION's of this store, claiming it if
 * it has no mark and holds nothing (or anything, with MAY_CLAIM_DATA: a
 * region of a store made before marks), or if its mark names a region of
 * this store that no longer uses it.  Returns 1 claimed (mark written), 0
 * ours already, -1 refused (saying which store or region owns it) or
 * failed.  xs_store_backend does this on opening a region's backend.
 */
extern int xs_store_claim (struct xs_store *store, const char *region,
                           struct xs_backend *backend, bool may_claim_data);
/* Check again, from the backend, that REGION's repository is this
 * store's (for gc, before it deletes anything).  0 or -1.
 */
extern int xs_store_check_owner (struct xs_store *store, const char *region);

/* Create the local directories of REGION in the store at PATH. */
extern int xs_store_make_region_dirs (const char *path, const char *region);

/* Directory of the head of volume ID in REGION (malloc'd). */
extern char *xs_store_head_dir (const struct xs_store *store,
                                const char *region, const char *volume_id);

#endif /* XSNAP_STORE_H */
