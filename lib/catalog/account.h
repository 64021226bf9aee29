/* xsnap: accounts — the tenants of a store.
 *
 * An account owns volumes, snapshots, policies and keys.  `xsnap init`
 * makes the administrator, who may act for any account.  An account made
 * --collaborator-of another joins that account's organisation: the
 * organisation of an account is the root of its collaborator_of chain, and
 * the copy and sharing rules use it (sharees in the owner's organisation
 * accept shares automatically; copies go only to collaborators).
 *
 * Local users are mapped to accounts by uid (`xsnap account map-uid`), for
 * the CLI and for NBD clients on a Unix socket; root is the administrator.
 *
 * This module owns the accounts and uid_map tables.  Its changes trust
 * their caller: who may create or delete an account or map a uid is
 * decided above, in access/admin.h, which then calls them.  ACTOR only
 * names who acted, in the audit row written in the changing transaction.
 */
#ifndef XSNAP_ACCOUNT_H
#define XSNAP_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "catalog/store.h"

struct xs_account {
  char *id;
  char *name;
  char *email;
  char *collaborator_of;        /* "" if none */
  bool is_admin;
  int64_t created_ns;
};

extern void xs_account_clear (struct xs_account *account);
extern json_t *xs_account_to_json (const struct xs_account *account);

/* Create account ID.  NAME, EMAIL and COLLABORATOR_OF may be NULL; the
 * account COLLABORATOR_OF must exist.  With ACTOR, audited in the
 * transaction that creates it (NULL: the store's own set-up).
 */
extern int xs_account_create (struct xs_store *store, const char *actor,
                              const char *id, const char *name,
                              const char *email,
                              const char *collaborator_of);

/* 0 found, 1 none (reported unless QUIET), -1 error. */
extern int xs_account_find (struct xs_store *store, const char *id,
                            bool quiet, struct xs_account *account);

extern int xs_account_list (struct xs_store *store,
                            int (*fn) (const struct xs_account *account,
                                       void *opaque),
                            void *opaque);

/* Delete account ID, holding the catalog lock, in the caller's
 * transaction (which also removes the shares made to it:
 * access/admin.h).  Refused for the administrator and while anything in
 * the catalog names the account (volumes, snapshots, deleted snapshots
 * gc has not reclaimed, shares, automatic policies, incoming copy tasks,
 * active jobs, keys and grants, policy documents, collaborators, mapped
 * uids), with a message naming what remains.  Audited in the deleting
 * transaction.
 */
extern int xs_account_delete_locked (struct xs_store *store,
                                     const char *actor, const char *id);

/* Is ID the administrator?  false also when it does not exist. */
extern bool xs_account_is_admin (struct xs_store *store, const char *id);

/* Are A and B in one organisation (the same root of their
 * collaborator_of chains)?  Returns 1, 0, or -1.
 */
extern int xs_account_same_organisation (struct xs_store *store,
                                         const char *a, const char *b);

/* Is A a collaborator of B: does A's collaborator_of chain pass through
 * B?  Returns 1, 0, or -1.
 */
extern int xs_account_is_collaborator (struct xs_store *store,
                                       const char *a, const char *b);

/* The uid map.  MAP replaces any earlier mapping of UID by ACCOUNT;
 * UNMAP removes UID's mapping to PREVIOUS (refused if it is not mapped to
 * it: NULL, not mapped at all, is always refused); both audited in the
 * same transaction.  Root, uid 0, is always the administrator and cannot
 * be mapped.  LOOKUP: 0 and *ACCOUNT (malloc'd), 1 if UID is not mapped,
 * or -1.
 */
extern int xs_account_map_uid (struct xs_store *store, const char *actor,
                               uid_t uid, const char *account);
extern int xs_account_unmap_uid (struct xs_store *store, const char *actor,
                                 uid_t uid, const char *previous);
extern int xs_account_lookup_uid (struct xs_store *store, uid_t uid,
                                  char **account);
extern int xs_account_list_uids (struct xs_store *store, const char *account,
                                 int (*fn) (uid_t uid, const char *account,
                                            void *opaque),
                                 void *opaque);

/* Who a local user may act as.  The principal of UID is the account it is
 * mapped to (root and any uid mapped to the administrator: the
 * administrator).  REQUESTED (NULL: the principal itself; for the
 * administrator, the store's default account) must be the principal
 * unless the principal is the administrator.  On success *ACCOUNT is the
 * account to act as (malloc'd).  A refusal is reported and audited.
 */
extern int xs_account_resolve_actor (struct xs_store *store, uid_t uid,
                                     const char *requested, char **account);

#endif /* XSNAP_ACCOUNT_H */
