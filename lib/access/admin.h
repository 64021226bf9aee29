/* xsnap: administrative changes, checked.
 *
 * The catalog's modules change accounts, the uid map, regions, settings
 * and jobs without asking who wants it: they trust their caller and
 * record the actor in the audit log.  These are the doors the CLI and
 * the server use instead: each asks access.h whether ACTOR may (a refusal
 * is reported and audited as denied), then makes the change.
 *
 * What is allowed by default:
 *   create an account      the administrator, and the account it is made
 *                          a collaborator of and the accounts above it
 *   delete an account      the administrator and the accounts above it in
 *                          its organisation
 *   map or unmap a uid     the administrator only (the uid map says who a
 *                          local user is)
 *   add or remove a region, set a setting
 *                          the administrator only
 *   cancel a job           the account that started it, or the
 *                          administrator
 * Attached permission documents may allow or deny more (permdoc.h).
 */
#ifndef XSNAP_ADMIN_H
#define XSNAP_ADMIN_H

#include <sys/types.h>

#include "catalog/store.h"

extern int xs_admin_create_account (struct xs_store *store, const char *actor,
                                    const char *id, const char *name,
                                    const char *email,
                                    const char *collaborator_of);
extern int xs_admin_delete_account (struct xs_store *store, const char *actor,
                                    const char *id);

/* Map UID to ACCOUNT, or with ACCOUNT NULL remove its mapping: checked on
 * the account it will name, or for an unmap the one it names now.
 */
extern int xs_admin_map_uid (struct xs_store *store, const char *actor,
                             uid_t uid, const char *account);

extern int xs_admin_add_region (struct xs_store *store, const char *actor,
                                const char *name, const char *backend_url,
                                const char *group);
extern int xs_admin_remove_region (struct xs_store *store, const char *actor,
                                   const char *name);

/* Set KEY to VALUE, or back to its default with VALUE NULL. */
extern int xs_admin_set_config (struct xs_store *store, const char *actor,
                                const char *key, const char *value);

extern int xs_admin_cancel_job (struct xs_store *store, const char *actor,
                                const char *id);

#endif /* XSNAP_ADMIN_H */
