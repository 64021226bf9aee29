/* xsnap: who may do what — the one place where permissions are decided
 * (invariant 7), used by the CLI and the NBD server alike.
 *
 * A request is an account (the caller) taking an action
 * ("xsnap:DeleteSnapshot") on a resource ("xsnap:REGION:OWNER:TYPE/ID").
 * The decision, in order:
 *
 *  1. an explicit deny in a policy document attached to the caller
 *     refuses, whoever the caller and the owner are;
 *  2. the administrator may do anything;
 *  3. an account may act on what it owns;
 *  4. a sharee may read, diff, copy and make disks from a snapshot shared
 *     with it (never change, delete or share it on);
 *  5. an allow in a document attached to the caller grants the action on
 *     another account's resource, but only if the document was attached
 *     by that owner (or by the administrator): nobody can grant reach
 *     over resources that are not theirs to give;
 *  6. otherwise the request is refused.
 *
 * Refusals are reported once ("permission denied: ...") and recorded in
 * the audit log.  A resource the caller may not see at all looks missing.
 */
#ifndef XSNAP_ACCESS_H
#define XSNAP_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "snapshot.h"
#include "store.h"
#include "volume.h"

/* A resource as the checks see it. */
struct xs_access_target {
  const char *owner;            /* the owning account */
  const char *region;
  const char *type;             /* snapshot, volume, chain, account, ... */
  const char *id;
  const char *label;            /* for messages: "snapshot db@s1" */
  bool shared_with_caller;      /* a snapshot the caller sees by a share */
};

/* May CALLER take ACTION on TARGET?  0 yes; -1 no (reported, audited) or
 * error.  With QUIET a refusal is neither reported nor audited (for
 * filtering lists).
 */
extern int xs_access_check (struct xs_store *store, const char *caller,
                            const char *action,
                            const struct xs_access_target *target,
                            bool quiet);

/* The same for a snapshot or a volume record. */
extern int xs_access_snapshot (struct xs_store *store, const char *caller,
                               const char *action,
                               const struct xs_snapshot *snap);
extern int xs_access_volume (struct xs_store *store, const char *caller,
                             const char *action,
                             const struct xs_volume *vol);

/* Find snapshot SPEC as SCOPE->account may see it, for ACTION: its own
 * snapshots (VOL@NAME or id), those shared with it (id), and, by id,
 * another account's snapshot in the region that a policy lets it take
 * ACTION on.  Then check ACTION.  Returns 0 found and allowed, 1 not
 * found (reported unless QUIET: a denied snapshot looks missing), -1
 * refused or error.
 */
extern int xs_access_find_snapshot (struct xs_store *store,
                                    const struct xs_scope *scope,
                                    const char *spec, const char *action,
                                    bool quiet, struct xs_snapshot *snap);

/* Policy documents attached to accounts.  ATTACH parses TEXT (ORIGIN
 * names it in errors), stores it canonical under NAME; ACTOR must be the
 * administrator, ACCOUNT itself, or an account whose organisation
 * ACCOUNT belongs to (ACCOUNT is its collaborator).  Both are audited.
 */
extern int xs_access_attach_policy (struct xs_store *store, const char *actor,
                                    const char *account, const char *name,
                                    const char *text, size_t len,
                                    const char *origin);
extern int xs_access_detach_policy (struct xs_store *store, const char *actor,
                                    const char *account, const char *name);

struct xs_policy_doc {
  const char *id;
  const char *account;
  const char *name;
  const char *attached_by;
  const char *document;         /* canonical JSON */
  int64_t created_ns;
};
extern json_t *xs_policy_doc_to_json (const struct xs_policy_doc *doc);

/* Documents attached to ACCOUNT (NULL: all), oldest first.  FN runs
 * under the catalog lock (recursive: it may use the catalog).
 */
extern int xs_access_list_policies (struct xs_store *store,
                                    const char *account,
                                    int (*fn) (const struct xs_policy_doc *doc,
                                               void *opaque),
                                    void *opaque);

#endif /* XSNAP_ACCESS_H */
