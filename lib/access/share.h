/* xsnap: sharing snapshots and backup chains with other accounts.
 *
 * The rules are those public clouds apply to sharing snapshots and
 * backup chains:
 *
 *  - an owner shares an available snapshot (kind "snapshot") or every
 *    snapshot of a volume, present and future (kind "chain"), with other
 *    accounts of the store;
 *  - a share is an invitation ("pending") until the sharee accepts it;
 *    sharees in the owner's organisation accept automatically;
 *  - at most 64 sharees per snapshot, at most 1,024 snapshots (and chains)
 *    shared by one account, and a share lasts at most three years
 *    (settings share.max_sharees, share.max_shared, share.max_days);
 *  - what was shared with you cannot be shared on, and a pending snapshot
 *    cannot be shared;
 *  - unsharing deletes the share: the sharee loses sight at once; disks it
 *    made keep working (they read the snapshot by id), copies are its own;
 *  - a sharee may remove a shared chain from its own view ("hidden")
 *    without touching the source.
 *
 * What a sharee may do with what it sees (read, diff, copy, make disks)
 * and may not (change, delete, share) is decided in access.c; which
 * snapshots it sees is decided by the catalog query in snapshot.c.  Every
 * change is audited in the same transaction.
 */
#ifndef XSNAP_SHARE_H
#define XSNAP_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/names.h"
#include "catalog/snapshot.h"
#include "catalog/store.h"
#include "catalog/volume.h"

#define XS_SHARE_MAX_SHAREES 64
#define XS_SHARE_MAX_SHARED 1024
#define XS_SHARE_MAX_DAYS 1096          /* three years, with a leap day */

struct xs_share_limits {
  int64_t max_sharees;          /* accounts per shared snapshot or chain */
  int64_t max_shared;           /* snapshots and chains one account shares */
  int64_t max_days;             /* longest life of a share */
};

/* The limits in force: the settings, or the defaults above. */
extern int xs_share_limits (struct xs_store *store,
                            struct xs_share_limits *limits);

struct xs_share {
  char id[XS_ID_MAX];           /* "share-…" */
  char *owner;
  char *region;
  char *kind;                   /* snapshot, chain */
  char *resource_id;            /* snapshot id, or volume id for a chain */
  char *resource_name;          /* VOL@NAME, or the volume's name */
  char *sharee;
  char *status;                 /* pending, accepted, hidden */
  int64_t created_ns;
  int64_t expires_ns;
};

extern void xs_share_clear (struct xs_share *share);
extern json_t *xs_share_to_json (const struct xs_share *share);

/* Share SNAP (owned by the caller SCOPE->account) with the N accounts
 * SHAREES until EXPIRES_NS (0: as long as allowed).  Sharing again with
 * an account renews its share.  All or nothing: one refused sharee
 * refuses the lot.
 */
extern int xs_share_snapshot (struct xs_store *store,
                              const struct xs_scope *scope,
                              const struct xs_snapshot *snap,
                              const char *const *sharees, size_t n,
                              int64_t expires_ns);

/* Share every snapshot of VOL, present and future, as one chain. */
extern int xs_share_chain (struct xs_store *store,
                           const struct xs_scope *scope,
                           const struct xs_volume *vol,
                           const char *const *sharees, size_t n,
                           int64_t expires_ns);

/* Remove the shares of KIND ("snapshot" or "chain") of RESOURCE_ID with
 * the N SHAREES (N == 0: with everyone).  RESOURCE_NAME is for messages
 * and the audit log.
 */
extern int xs_unshare (struct xs_store *store, const struct xs_scope *scope,
                       const char *kind, const char *resource_id,
                       const char *resource_name,
                       const char *const *sharees, size_t n);

/* The sharee SCOPE->account accepts share SHARE_ID. */
extern int xs_share_accept (struct xs_store *store,
                            const struct xs_scope *scope,
                            const char *share_id);

/* The sharee SCOPE->account removes shared chain SHARE_ID from its view. */
extern int xs_share_hide_chain (struct xs_store *store,
                                const struct xs_scope *scope,
                                const char *share_id);

/* Call FN for each unexpired share in SCOPE->region that SCOPE->account
 * made (BY_ME) or received (!BY_ME), oldest first.  KIND may be NULL for
 * both kinds.
 */
extern int xs_share_list (struct xs_store *store,
                          const struct xs_scope *scope, bool by_me,
                          const char *kind,
                          int (*fn) (const struct xs_share *share,
                                     void *opaque),
                          void *opaque);

/* A chain as its sharee sees it. */
struct xs_chain_view {
  const struct xs_share *share;
  const char *volume_name;
  const char *status;           /* available, or that of the share */
  uint64_t points;              /* snapshots in the chain */
  uint64_t total_bytes;         /* volume size times points */
  uint64_t stored_bytes;        /* bytes its snapshots added */
};
extern json_t *xs_chain_view_to_json (const struct xs_chain_view *view);

/* Call FN for each chain shared with SCOPE->account (not hidden). */
extern int xs_share_list_chains (struct xs_store *store,
                                 const struct xs_scope *scope,
                                 int (*fn) (const struct xs_chain_view *view,
                                            void *opaque),
                                 void *opaque);

/* Parse --expires: a date (YYYY-MM-DD, end of that day UTC) or a
 * duration from now (90d, 12w, 2y).  Returns the time in ns, or -1
 * (reported) for text that is neither or a time past what int64
 * nanoseconds hold (2262-04-11).
 */
extern int64_t xs_share_parse_expiry (const char *text, int64_t now_ns);

/* Delete SNAP for ACTOR (catalog/snapshot.h: xs_snapshot_delete_locked,
 * DETAIL as there) and, in the same transaction, every share of it:
 * nobody sees a deleted snapshot.  The caller has checked the permission.
 */
extern int xs_share_delete_snapshot (struct xs_store *store,
                                     const char *actor, const char *detail,
                                     const struct xs_snapshot *snap);

/* Remove every share made to ACCOUNT, which is going: holding the
 * catalog lock, in the transaction that deletes it.  0 or -1.
 */
extern int xs_share_forget_sharee_locked (struct xs_catalog *cat,
                                          const char *account);

#endif /* XSNAP_SHARE_H */
