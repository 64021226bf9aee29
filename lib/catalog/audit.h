/* xsnap: the audit log — who did what to whose resource, when, and how it
 * ended.
 *
 * Every share, unshare, accept, copy, delete, permission change and every
 * denied attempt is appended to the catalog's audit table, in the same
 * transaction as the change it records where there is one, so the log
 * never claims a change that did not happen nor misses one that did.
 * Entries are never updated or removed by xsnap.
 */
#ifndef XSNAP_AUDIT_H
#define XSNAP_AUDIT_H

#include <stdint.h>

#include <jansson.h>

#include "catalog/store.h"

enum xs_audit_outcome {
  XS_AUDIT_ALLOWED,             /* done */
  XS_AUDIT_DENIED,              /* refused by a permission or sharing rule */
  XS_AUDIT_FAILED,              /* allowed but refused by a limit or state */
};

struct xs_audit_entry {
  int64_t seq;
  int64_t at_ns;
  const char *actor;            /* the account acting */
  const char *action;           /* "xsnap:ShareSnapshot" */
  const char *resource;         /* "xsnap:REGION:ACCOUNT:TYPE/ID" or a name */
  const char *owner;            /* the resource's owner, "" if none */
  const char *outcome;          /* allowed, denied, failed */
  const char *detail;           /* free text: with whom, why refused */
};

/* Append an entry.  The _locked form is for callers that hold the
 * catalog lock (inside their own transaction).  Returns 0 or -1.
 */
extern int xs_audit_record (struct xs_store *store, const char *actor,
                            const char *action, const char *resource,
                            const char *owner, enum xs_audit_outcome outcome,
                            const char *detail);
extern int xs_audit_record_locked (struct xs_store *store, const char *actor,
                                   const char *action, const char *resource,
                                   const char *owner,
                                   enum xs_audit_outcome outcome,
                                   const char *detail);

/* Record that ACTOR did ACTION (allowed) to the resource of TYPE and ID
 * owned by OWNER in REGION ("" for none), DETAIL naming it for people
 * (a volume's name, a snapshot's VOLUME@NAME).  Called by the change
 * itself, inside its transaction (the catalog lock is recursive, so the
 * row joins the transaction of the caller holding it).
 */
extern int xs_audit_resource (struct xs_store *store, const char *actor,
                              const char *action, const char *region,
                              const char *owner, const char *type,
                              const char *id, const char *detail);

/* Call FN for each entry, oldest first (under the catalog lock, which is
 * recursive: FN may use the catalog).  With VISIBLE_TO, only entries where that account
 * acted or owns the resource (NULL: all, for the administrator).
 * LIMIT > 0 keeps only the newest LIMIT.
 */
extern int xs_audit_list (struct xs_store *store, const char *visible_to,
                          int64_t limit,
                          int (*fn) (const struct xs_audit_entry *entry,
                                     void *opaque),
                          void *opaque);

extern json_t *xs_audit_entry_to_json (const struct xs_audit_entry *entry);

#endif /* XSNAP_AUDIT_H */
