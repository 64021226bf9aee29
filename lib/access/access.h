/* xsnap: who may do what — the one place where permissions are decided
 * (no other code refuses an action), used by the CLI and the NBD
 * server alike.
 *
 * A request is an account (the caller) taking an action
 * ("xsnap:DeleteSnapshot") on a resource ("xsnap:REGION:OWNER:TYPE/ID").
 * The decision, in order:
 *
 *  1. an explicit deny in a policy document attached to the caller
 *     refuses, whoever the caller and the owner are (the administrator
 *     included);
 *  2. the administrator may do anything;
 *  3. an account may act on what it owns — except on administrative
 *     resources (accounts, regions, settings, the uid map), which nobody
 *     owns: an account may not delete itself nor add a region;
 *  4. an account may administer the accounts below it in its
 *     organisation (their creation, deletion and policy documents);
 *  5. a sharee may read, diff, copy and make disks from a snapshot shared
 *     with it (never change, delete or share it on);
 *  6. an allow in a document attached to the caller grants the action on
 *     another account's resource, but only if the document was attached
 *     by that owner (or by the administrator): nobody can grant reach
 *     over resources that are not theirs to give.  On an administrative
 *     resource only an allow the administrator attached counts;
 *  7. otherwise the request is refused.
 *
 * Every permission of xsnap is decided here, by xs_access_check: the
 * helpers below only describe the resource.  Refusals are reported once
 * ("permission denied: ...") and recorded in the audit log.  A resource
 * the caller may not see at all looks missing.
 */
#ifndef XSNAP_ACCESS_H
#define XSNAP_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "catalog/snapshot.h"
#include "catalog/store.h"
#include "catalog/volume.h"

/* A resource as the checks see it. */
struct xs_access_target {
  const char *owner;            /* the owning account */
  const char *region;
  const char *type;             /* snapshot, volume, chain, account, ... */
  const char *id;
  const char *label;            /* for messages: "snapshot db@s1" */
  bool shared_with_caller;      /* a snapshot the caller sees by a share */
  bool administrative;          /* nobody's to act on by ownership (rule 3) */
  bool caller_manages;          /* the caller is above OWNER in its
                                   organisation (rule 4) */
};

/* May CALLER take ACTION on TARGET?  DENIED is a decision (reported and
 * audited unless QUIET, for filtering lists: then neither); UNDECIDED
 * means the decision could not be made (a stored policy document that
 * does not parse, a catalog error: always reported), which a caller that
 * filters must treat as an error, never as a refusal.
 */
enum xs_access_verdict {
  XS_ACCESS_ALLOWED,
  XS_ACCESS_DENIED,
  XS_ACCESS_UNDECIDED,
};
extern enum xs_access_verdict xs_access_decide
  (struct xs_store *store, const char *caller, const char *action,
   const struct xs_access_target *target, bool quiet);

/* The same for callers that only go on when allowed: 0 allowed, -1
 * denied or undecided (reported).
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

/* Administrative requests.  An account (ACCOUNT, being created below
 * PARENT, "" or NULL for none): its creator or deleter must be the
 * administrator or above it in its organisation.  A store-wide resource
 * (TYPE "region" or "setting", ID its name): the administrator's.  A
 * listing of TYPE ("account", "region", ...): anyone's, unless denied.
 */
extern int xs_access_account (struct xs_store *store, const char *caller,
                              const char *action, const char *account,
                              const char *parent);
extern int xs_access_store (struct xs_store *store, const char *caller,
                            const char *action, const char *type,
                            const char *id);
extern int xs_access_describe (struct xs_store *store, const char *caller,
                               const char *action, const char *type);

/* An action in the caller's own namespace (SCOPE's account and region)
 * on what it names TYPE/ID ("*" for a listing): creating its volumes,
 * its policies, listing its shares, jobs and audit rows, gc of the
 * region.  Allowed unless a document denies it.
 */
extern int xs_access_scope (struct xs_store *store,
                            const struct xs_scope *scope, const char *action,
                            const char *type, const char *id);

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
 * names it in errors), stores it canonical under NAME; ACTOR must be
 * allowed xsnap:AttachPolicyDoc (DetachPolicyDoc) on
 * xsnap::ACCOUNT:policydoc/NAME: by default the administrator, ACCOUNT
 * itself, or an account whose organisation ACCOUNT belongs to.  Both are
 * audited in the transaction of the change.
 */
extern int xs_access_attach_policy (struct xs_store *store, const char *actor,
                                    const char *account, const char *name,
                                    const char *text, size_t len,
                                    const char *origin);
extern int xs_access_detach_policy (struct xs_store *store, const char *actor,
                                    const char *account, const char *name);

struct xs_permdoc_record {
  const char *id;
  const char *account;
  const char *name;
  const char *attached_by;
  const char *document;         /* canonical JSON */
  int64_t created_ns;
};
extern json_t *xs_permdoc_record_to_json (const struct xs_permdoc_record *doc);

/* Documents attached to ACCOUNT (NULL: all, for the administrator),
 * oldest first, if ACTOR may take xsnap:DescribePolicyDocs on them (by
 * default the administrator, ACCOUNT and its organisation).  FN runs
 * under the catalog lock (recursive: it may use the catalog).
 */
extern int xs_access_list_policies (struct xs_store *store,
                                    const char *actor, const char *account,
                                    int (*fn) (const struct xs_permdoc_record *doc,
                                               void *opaque),
                                    void *opaque);

#endif /* XSNAP_ACCESS_H */
