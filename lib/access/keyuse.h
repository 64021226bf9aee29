/* xsnap: who may create, disable, grant, export and import a key.
 *
 * catalog/keys.h keeps the keys' rows and wraps their material; it trusts
 * its caller.  The decisions are here, made by access.h on the key's
 * resource name (xsnap::ACCOUNT:key/ID): by default an account manages
 * its own keys, and the accounts above it in its organisation and the
 * administrator may act for it; attached permission documents may allow
 * or deny more.  A refusal is reported and audited as denied.
 */
#ifndef XSNAP_KEYUSE_H
#define XSNAP_KEYUSE_H

#include "catalog/keys.h"
#include "catalog/store.h"

/* May ACTOR take ACTION on key ID (NAME, for messages) of ACCOUNT?  0, or
 * -1 refused (reported, audited) or error.
 */
extern int xs_keyuse_check (struct xs_store *store, const char *actor,
                            const char *action, const char *account,
                            const char *id, const char *name);

/* The checked forms of keys.h's changes, on ACCOUNT's key of SPEC (its
 * name or id) for disable and grant.
 */
extern int xs_keyuse_create (struct xs_store *store, const char *actor,
                             const char *account, const char *name,
                             struct xs_key *out);
extern int xs_keyuse_disable (struct xs_store *store, const char *actor,
                              const char *account, const char *spec);
extern int xs_keyuse_grant (struct xs_store *store, const char *actor,
                            const char *account, const char *spec,
                            const char *grantee);

/* ACCOUNT's keys and those granted to it (keys.h), if the account may
 * describe its keys (a permission document may deny it).
 */
extern int xs_keyuse_list (struct xs_store *store, const char *account,
                           int (*fn) (const struct xs_key *key,
                                      void *opaque),
                           void *opaque);

#endif /* XSNAP_KEYUSE_H */
