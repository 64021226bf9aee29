/* xsnap: sharing snapshots and chains (see share.h). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/account.h"
#include "catalog/audit.h"
#include "base/error.h"
#include "base/names.h"
#include "catalog/keys.h"
#include "catalog/snapshot.h"
#include "base/fileio.h"
#include "access/share.h"

#define NS_PER_DAY (86400 * INT64_C (1000000000))

static int
setting_or_default (struct xs_catalog *cat, const char *key,
                    int64_t fallback, int64_t *value)
{
  char *text, *end;
  long long parsed;
  int r;

  r = xs_catalog_get_setting (cat, key, &text);
  if (r == -1)
    return -1;
  *value = fallback;
  if (r == 1)
    return 0;
  errno = 0;
  parsed = strtoll (text, &end, 10);
  if (errno || *end || end == text || parsed < 0) {
    xs_error ("setting %s is '%s': expected a number", key, text);
    free (text);
    return -1;
  }
  *value = parsed;
  free (text);
  return 0;
}

static int
limits_locked (struct xs_catalog *cat, struct xs_share_limits *limits)
{
  if (setting_or_default (cat, "share.max_sharees", XS_SHARE_MAX_SHAREES,
                          &limits->max_sharees) == -1
      || setting_or_default (cat, "share.max_shared", XS_SHARE_MAX_SHARED,
                             &limits->max_shared) == -1
      || setting_or_default (cat, "share.max_days", XS_SHARE_MAX_DAYS,
                             &limits->max_days) == -1)
    return -1;
  return 0;
}

int
xs_share_limits (struct xs_store *store, struct xs_share_limits *limits)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int r;

  xs_catalog_lock (cat);
  r = limits_locked (cat, limits);
  xs_catalog_unlock (cat);
  return r;
}

void
xs_share_clear (struct xs_share *share)
{
  free (share->owner);
  free (share->region);
  free (share->kind);
  free (share->resource_id);
  free (share->resource_name);
  free (share->sharee);
  free (share->status);
  memset (share, 0, sizeof *share);
}

json_t *
xs_share_to_json (const struct xs_share *share)
{
  char created[32], expires[32];

  xs_format_utc (share->created_ns, created, sizeof created);
  xs_format_utc (share->expires_ns, expires, sizeof expires);
  return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
                    "id", share->id, "kind", share->kind,
                    "resource_id", share->resource_id,
                    "resource", share->resource_name,
                    "owner", share->owner, "region", share->region,
                    "sharee", share->sharee, "status", share->status,
                    "created", created, "expires", expires);
}

/* What is being shared, for the checks, the rows and the audit log. */
struct shared_resource {
  const char *kind;             /* snapshot, chain */
  const char *id;
  const char *name;             /* VOL@NAME, or the volume name */
  char *arn;                    /* xsnap:REGION:OWNER:TYPE/ID */
  const char *action;           /* xsnap:ShareSnapshot, xsnap:ShareChain */
};

/* The sharees must exist and not be the owner. */
static int
check_sharees_locked (struct xs_store *store, const struct xs_scope *scope,
                      const struct shared_resource *res,
                      const char *const *sharees, size_t n)
{
  struct xs_account account;
  size_t i, j;
  int r;

  if (n == 0) {
    xs_error ("cannot share %s: no account to share it with", res->name);
    return -1;
  }
  for (i = 0; i < n; i++) {
    if (strcmp (sharees[i], scope->account) == 0) {
      xs_error ("cannot share %s with account '%s': it is the owner",
                res->name, sharees[i]);
      return -1;
    }
    for (j = 0; j < i; j++)
      if (strcmp (sharees[i], sharees[j]) == 0) {
        xs_error ("cannot share %s: account '%s' is named twice",
                  res->name, sharees[i]);
        return -1;
      }
    r = xs_account_find (store, sharees[i], true, &account);
    if (r == -1)
      return -1;
    if (r == 0)
      xs_account_clear (&account);
    if (r == 1) {
      xs_error ("cannot share %s with account '%s': no such account",
                res->name, sharees[i]);
      return -1;
    }
  }
  return 0;
}

/* Is SHAREE already sharing RES (unexpired)?  1, 0 or -1. */
static int
already_shared_locked (struct xs_catalog *cat,
                       const struct shared_resource *res, const char *sharee)
{
  int64_t one;
  int r = xs_catalog_query_int (cat, "look up a share", &one,
                                "SELECT 1 FROM shares WHERE kind = ?"
                                " AND resource_id = ? AND sharee = ?", "sss",
                                res->kind, res->id, sharee);

  return r == -1 ? -1 : r == 0;
}

/* The limits on sharees per resource and resources per owner.  On a
 * refusal *DETAIL says why (for the audit log).
 */
static int
check_limits_locked (struct xs_catalog *cat, const struct xs_scope *scope,
                     const struct xs_share_limits *limits,
                     const struct shared_resource *res,
                     const char *const *sharees, size_t n,
                     char *detail, size_t detail_len)
{
  int64_t existing, shared, added = 0;
  size_t i;
  int r;

  if (xs_catalog_query_int (cat, "count sharees", &existing,
                            "SELECT count(*) FROM shares WHERE kind = ?"
                            " AND resource_id = ?", "ss",
                            res->kind, res->id) != 0)
    return -1;
  for (i = 0; i < n; i++) {
    r = already_shared_locked (cat, res, sharees[i]);
    if (r == -1)
      return -1;
    added += !r;
  }
  if (existing + added > limits->max_sharees) {
    snprintf (detail, detail_len, "it would be shared with %" PRId64
              " accounts; at most %" PRId64 " are allowed",
              existing + added, limits->max_sharees);
    xs_error ("cannot share %s: %s", res->name, detail);
    return -1;
  }
  if (existing > 0)
    return 0;                   /* already counted among the shared */
  if (xs_catalog_query_int (cat, "count shared snapshots", &shared,
                            "SELECT count(*) FROM (SELECT DISTINCT kind,"
                            " resource_id FROM shares WHERE owner = ?)", "s",
                            scope->account) != 0)
    return -1;
  if (shared + 1 > limits->max_shared) {
    snprintf (detail, detail_len, "account '%s' already shares %" PRId64
              " snapshots and chains; at most %" PRId64 " are allowed",
              scope->account, shared, limits->max_shared);
    xs_error ("cannot share %s: %s", res->name, detail);
    return -1;
  }
  return 0;
}

static int
check_expiry (const struct shared_resource *res,
              const struct xs_share_limits *limits, int64_t now,
              int64_t *expires_ns)
{
  int64_t longest = now + limits->max_days * NS_PER_DAY;
  char when[32];

  if (*expires_ns == 0) {
    *expires_ns = longest;
    return 0;
  }
  if (*expires_ns <= now) {
    xs_format_utc (*expires_ns, when, sizeof when);
    xs_error ("cannot share %s until %s: that is not in the future",
              res->name, when);
    return -1;
  }
  if (*expires_ns > longest) {
    xs_format_utc (*expires_ns, when, sizeof when);
    xs_error ("cannot share %s until %s: a share lasts at most %" PRId64
              " days", res->name, when, limits->max_days);
    return -1;
  }
  return 0;
}

/* Insert or renew the share of RES with SHAREE and audit it. */
static int
put_share_locked (struct xs_store *store, const struct xs_scope *scope,
                  const struct shared_resource *res, const char *sharee,
                  bool same_organisation, int64_t now, int64_t expires_ns)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char id[XS_ID_MAX], detail[160], when[32];
  const char *status;
  int r;

  xs_format_utc (expires_ns, when, sizeof when);
  r = already_shared_locked (cat, res, sharee);
  if (r == -1)
    return -1;
  if (r == 1) {
    if (xs_catalog_run (cat, "renew a share",
                        "UPDATE shares SET expires_ns = ? WHERE kind = ?"
                        " AND resource_id = ? AND sharee = ?", "isss",
                        expires_ns, res->kind, res->id, sharee) == -1)
      return -1;
    snprintf (detail, sizeof detail, "with %s, renewed until %s", sharee,
              when);
  }
  else {
    if (xs_new_id ("share", id, sizeof id) == -1)
      return -1;
    status = same_organisation ? "accepted" : "pending";
    if (xs_catalog_run (cat, "record a share",
                        "INSERT INTO shares (id, owner, region, kind,"
                        " resource_id, sharee, status, created_ns,"
                        " expires_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        "sssssssii", id, scope->account, scope->region,
                        res->kind, res->id, sharee, status, now,
                        expires_ns) == -1)
      return -1;
    snprintf (detail, sizeof detail, "with %s as %s, %s until %s", sharee,
              id, status, when);
  }
  return xs_audit_record_locked (store, scope->account, res->action,
                                 res->arn, scope->account, XS_AUDIT_ALLOWED,
                                 detail);
}

static int
share_resource (struct xs_store *store, const struct xs_scope *scope,
                struct shared_resource *res, const char *const *sharees,
                size_t n, int64_t expires_ns)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_share_limits limits;
  int64_t now = xs_wall_clock_ns ();
  char detail[200] = "";
  bool *same_organisation;
  size_t i;
  int r = -1, same;

  /* Sharees in the owner's organisation accept at once.  (Asked before
   * the transaction: the test takes the catalog lock itself.)
   */
  same_organisation = calloc (n ? n : 1, sizeof *same_organisation);
  if (same_organisation == NULL) {
    xs_error ("cannot share %s: %m", res->name);
    return -1;
  }
  for (i = 0; i < n; i++) {
    same = xs_account_same_organisation (store, scope->account, sharees[i]);
    if (same == -1) {
      free (same_organisation);
      return -1;
    }
    same_organisation[i] = same;
  }
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  /* Expired shares are gone: they neither count nor show. */
  if (xs_catalog_run (cat, "remove expired shares",
                      "DELETE FROM shares WHERE expires_ns <= ?", "i",
                      now) == -1
      || limits_locked (cat, &limits) == -1
      || check_sharees_locked (store, scope, res, sharees, n) == -1
      || check_expiry (res, &limits, now, &expires_ns) == -1)
    goto rollback;
  if (check_limits_locked (cat, scope, &limits, res, sharees, n, detail,
                           sizeof detail) == -1)
    goto rollback;
  for (i = 0; i < n; i++)
    if (put_share_locked (store, scope, res, sharees[i],
                          same_organisation[i], now, expires_ns) == -1)
      goto rollback;
  r = xs_catalog_commit (cat);
  if (r == 0)
    goto out;
 rollback:
  xs_catalog_rollback (cat);
 out:
  xs_catalog_unlock (cat);
  free (same_organisation);
  if (r == -1 && detail[0])
    xs_audit_record (store, scope->account, res->action, res->arn,
                     scope->account, XS_AUDIT_FAILED, detail);
  return r;
}

/* The rule: what is encrypted under an account's default key is
 * not shared; a copy under a custom key is.  The sharee also needs the
 * custom key granted (xs_key_check_use) before it can use what is shared.
 */
static int
check_shareable_key (struct xs_store *store, const struct xs_scope *scope,
                     const struct shared_resource *res, const char *owner,
                     const char *key_id)
{
  struct xs_key key;
  int r;

  if (key_id == NULL || key_id[0] == '\0')
    return 0;
  r = xs_key_lookup_id (store, key_id, &key);
  if (r == 1)
    xs_error ("cannot share %s: its key %s is not in this store", res->name,
              key_id);
  if (r != 0)
    return -1;
  r = 0;
  if (key.is_default) {
    xs_error ("cannot share %s: it is encrypted under the default key of "
              "account '%s', and what a default key protects cannot be "
              "shared (copy it under a custom key with 'xsnap copy SNAPSHOT "
              "... --key KEY' and share the copy)", res->name, key.account);
    xs_audit_record (store, scope->account, res->action, res->arn, owner,
                     XS_AUDIT_DENIED, "encrypted under the default key");
    r = -1;
  }
  xs_key_clear (&key);
  return r;
}

int
xs_share_snapshot (struct xs_store *store, const struct xs_scope *scope,
                   const struct xs_snapshot *snap,
                   const char *const *sharees, size_t n, int64_t expires_ns)
{
  struct shared_resource res = { .kind = "snapshot", .id = snap->id,
                                 .action = "xsnap:ShareSnapshot" };
  char *name = NULL;
  int r = -1;

  if (asprintf (&name, "snapshot %s@%s", snap->volume_name,
                snap->name) == -1) {
    xs_error ("cannot share snapshot %s: %m", snap->id);
    return -1;
  }
  res.name = name;
  res.arn = xs_resource_name (snap->region, snap->account, "snapshot",
                                     snap->id);
  if (res.arn == NULL)
    goto out;
  if (strcmp (snap->account, scope->account) != 0) {
    xs_error ("cannot share %s: it was shared with account '%s' by '%s',"
              " and what is shared with you cannot be shared on (copy it,"
              " or make a disk from it and snapshot that)", name,
              scope->account, snap->account);
    xs_audit_record (store, scope->account, res.action, res.arn,
                     snap->account, XS_AUDIT_DENIED,
                     "re-sharing a shared snapshot");
    goto out;
  }
  if (check_shareable_key (store, scope, &res, snap->account,
                           snap->key_id) == -1)
    goto out;
  if (strcmp (snap->status, "available") != 0) {
    xs_error ("cannot share %s: it is %s; only available snapshots can be"
              " shared", name, snap->status);
    xs_audit_record (store, scope->account, res.action, res.arn,
                     snap->account, XS_AUDIT_FAILED, "snapshot is pending");
    goto out;
  }
  r = share_resource (store, scope, &res, sharees, n, expires_ns);
 out:
  free (res.arn);
  free (name);
  return r;
}

int
xs_share_chain (struct xs_store *store, const struct xs_scope *scope,
                const struct xs_volume *vol, const char *const *sharees,
                size_t n, int64_t expires_ns)
{
  struct shared_resource res = { .kind = "chain", .id = vol->id,
                                 .action = "xsnap:ShareChain" };
  char *name = NULL;
  int r = -1;

  if (asprintf (&name, "the snapshot chain of volume '%s'", vol->name) == -1) {
    xs_error ("cannot share volume '%s': %m", vol->name);
    return -1;
  }
  res.name = name;
  res.arn = xs_resource_name (vol->region, vol->account, "chain",
                                     vol->id);
  if (res.arn
      && check_shareable_key (store, scope, &res, vol->account,
                              vol->key_id) == 0)
    r = share_resource (store, scope, &res, sharees, n, expires_ns);
  free (res.arn);
  free (name);
  return r;
}

static int
unshare_one_locked (struct xs_store *store, const struct xs_scope *scope,
                    const char *kind, const char *resource_id,
                    const char *resource_name, const char *arn,
                    const char *sharee)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  const char *action = strcmp (kind, "chain") == 0 ? "xsnap:UnshareChain"
                                                   : "xsnap:UnshareSnapshot";
  char detail[120];
  int64_t removed;

  removed = xs_catalog_run (cat, "remove a share",
                            "DELETE FROM shares WHERE owner = ?1"
                            " AND kind = ?2 AND resource_id = ?3"
                            " AND (?4 IS NULL OR sharee = ?4)", "ssss",
                            scope->account, kind, resource_id, sharee);
  if (removed == -1)
    return -1;
  if (removed == 0) {
    if (sharee)
      xs_error ("cannot unshare %s: it is not shared with account '%s'",
                resource_name, sharee);
    else
      xs_error ("cannot unshare %s: it is not shared", resource_name);
    return -1;
  }
  snprintf (detail, sizeof detail, "with %s (%" PRId64 " share(s))",
            sharee ? sharee : "everyone", removed);
  return xs_audit_record_locked (store, scope->account, action, arn,
                                 scope->account, XS_AUDIT_ALLOWED, detail);
}

int
xs_unshare (struct xs_store *store, const struct xs_scope *scope,
            const char *kind, const char *resource_id,
            const char *resource_name, const char *const *sharees, size_t n)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *arn;
  size_t i;
  int r = -1;

  arn = xs_resource_name (scope->region, scope->account,
                                 strcmp (kind, "chain") == 0 ? "chain"
                                                             : "snapshot",
                                 resource_id);
  if (arn == NULL)
    return -1;
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  if (n == 0) {
    if (unshare_one_locked (store, scope, kind, resource_id, resource_name,
                            arn, NULL) == -1)
      goto rollback;
  }
  for (i = 0; i < n; i++)
    if (unshare_one_locked (store, scope, kind, resource_id, resource_name,
                            arn, sharees[i]) == -1)
      goto rollback;
  r = xs_catalog_commit (cat);
  if (r == 0)
    goto out;
 rollback:
  xs_catalog_rollback (cat);
 out:
  xs_catalog_unlock (cat);
  free (arn);
  return r;
}

/* Change the status of the caller's share SHARE_ID from one of FROM
 * (a SQL list) to TO, and audit it.
 */
static int
sharee_update (struct xs_store *store, const struct xs_scope *scope,
               const char *share_id, const char *sql, const char *action,
               const char *refusal)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t changed;
  int r = -1;

  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  changed = xs_catalog_run (cat, "update a share", sql, "ssi", share_id,
                            scope->account, xs_wall_clock_ns ());
  if (changed == -1)
    goto rollback;
  if (changed == 0) {
    xs_error ("cannot %s share '%s': %s for account '%s'", refusal,
              share_id, "no such share", scope->account);
    goto rollback;
  }
  if (xs_audit_record_locked (store, scope->account, action, share_id, "",
                              XS_AUDIT_ALLOWED, "") == -1)
    goto rollback;
  r = xs_catalog_commit (cat);
  if (r == 0)
    goto out;
 rollback:
  xs_catalog_rollback (cat);
 out:
  xs_catalog_unlock (cat);
  if (r == -1)
    xs_audit_record (store, scope->account, action, share_id, "",
                     XS_AUDIT_FAILED, "no such share");
  return r;
}

int
xs_share_accept (struct xs_store *store, const struct xs_scope *scope,
                 const char *share_id)
{
  return sharee_update (store, scope, share_id,
                        "UPDATE shares SET status = 'accepted'"
                        " WHERE id = ?1 AND sharee = ?2"
                        " AND status = 'pending' AND expires_ns > ?3",
                        "xsnap:AcceptShare", "accept pending");
}

int
xs_share_hide_chain (struct xs_store *store, const struct xs_scope *scope,
                     const char *share_id)
{
  return sharee_update (store, scope, share_id,
                        "UPDATE shares SET status = 'hidden'"
                        " WHERE id = ?1 AND sharee = ?2 AND kind = 'chain'"
                        " AND status != 'hidden' AND expires_ns > ?3",
                        "xsnap:DeleteSharedChain", "delete shared chain");
}

static int
row_to_share (sqlite3_stmt *stmt, struct xs_share *share)
{
  bool failed = false;

  memset (share, 0, sizeof *share);
  snprintf (share->id, sizeof share->id, "%s",
            (const char *) sqlite3_column_text (stmt, 0));
  share->owner = xs_catalog_column_dup (stmt, 1, &failed);
  share->region = xs_catalog_column_dup (stmt, 2, &failed);
  share->kind = xs_catalog_column_dup (stmt, 3, &failed);
  share->resource_id = xs_catalog_column_dup (stmt, 4, &failed);
  share->resource_name = xs_catalog_column_dup (stmt, 5, &failed);
  share->sharee = xs_catalog_column_dup (stmt, 6, &failed);
  share->status = xs_catalog_column_dup (stmt, 7, &failed);
  share->created_ns = sqlite3_column_int64 (stmt, 8);
  share->expires_ns = sqlite3_column_int64 (stmt, 9);
  if (failed) {
    xs_error ("cannot read share %s: %m", share->id);
    xs_share_clear (share);
    return -1;
  }
  return 0;
}

#define SHARE_SELECT                                                    \
  "SELECT sh.id, sh.owner, sh.region, sh.kind, sh.resource_id,"         \
  " COALESCE(CASE sh.kind"                                              \
  "  WHEN 'snapshot' THEN (SELECT s.volume_name || '@' || s.name"       \
  "                        FROM snapshots AS s"                         \
  "                        WHERE s.id = sh.resource_id)"                \
  "  ELSE COALESCE((SELECT v.name FROM volumes AS v"                    \
  "                 WHERE v.id = sh.resource_id),"                      \
  "                (SELECT s.volume_name FROM snapshots AS s"           \
  "                 WHERE s.volume_id = sh.resource_id LIMIT 1)) END,"  \
  "  sh.resource_id),"                                                  \
  " sh.sharee, sh.status, sh.created_ns, sh.expires_ns FROM shares AS sh"

struct share_list {
  int (*fn) (const struct xs_share *share, void *opaque);
  void *opaque;
};

static int
each_share (sqlite3_stmt *stmt, void *opaque)
{
  struct share_list *list = opaque;
  struct xs_share share;
  int r;

  if (row_to_share (stmt, &share) == -1)
    return -1;
  r = list->fn (&share, list->opaque);
  xs_share_clear (&share);
  return r;
}

int
xs_share_list (struct xs_store *store, const struct xs_scope *scope,
               bool by_me, const char *kind,
               int (*fn) (const struct xs_share *share, void *opaque),
               void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct share_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  /* FN may use the catalog: the lock is recursive. */
  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "list shares",
                                  SHARE_SELECT
                                  " WHERE sh.region = ?2"
                                  " AND sh.expires_ns > ?3"
                                  " AND (CASE WHEN ?4 THEN sh.owner = ?1"
                                  "      ELSE sh.sharee = ?1 END)"
                                  " AND (?5 IS NULL OR sh.kind = ?5)"
                                  " ORDER BY sh.created_ns, sh.id", "ssiis",
                                  scope->account, scope->region,
                                  xs_wall_clock_ns (), (int64_t) by_me,
                                  kind);
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "list shares", each_share, &list);
  xs_catalog_unlock (cat);
  return r;
}

json_t *
xs_chain_view_to_json (const struct xs_chain_view *view)
{
  char created[32];

  xs_format_utc (view->share->created_ns, created, sizeof created);
  return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s}",
                    "id", view->share->id, "name", view->volume_name,
                    "status", view->status,
                    "source_volume", view->share->resource_id,
                    "owner", view->share->owner,
                    "shared_from", view->share->owner,
                    "points", (json_int_t) view->points,
                    "total_bytes", (json_int_t) view->total_bytes,
                    "stored_bytes", (json_int_t) view->stored_bytes,
                    "created", created);
}

struct chain_list {
  struct xs_store *store;
  int (*fn) (const struct xs_chain_view *view, void *opaque);
  void *opaque;
};

static int
describe_chain (const struct xs_share *share, void *opaque)
{
  struct chain_list *ctx = opaque;
  struct xs_chain_view view = { .share = share,
                                .volume_name = share->resource_name,
                                .status = share->status };
  int r;

  if (strcmp (share->status, "hidden") == 0)
    return 0;
  r = xs_snapshot_chain_summary (ctx->store, share->resource_id,
                                 share->region, &view.points,
                                 &view.total_bytes, &view.stored_bytes);
  if (r == 0 && strcmp (share->status, "accepted") == 0)
    view.status = "available";
  return r == 0 ? ctx->fn (&view, ctx->opaque) : -1;
}

int
xs_share_list_chains (struct xs_store *store, const struct xs_scope *scope,
                      int (*fn) (const struct xs_chain_view *view,
                                 void *opaque),
                      void *opaque)
{
  struct chain_list ctx = { store, fn, opaque };

  return xs_share_list (store, scope, false, "chain", describe_chain, &ctx);
}

/* Refuse an expiry TEXT past the last second of int64 nanoseconds
 * (2262-04-11T23:47:16Z), naming the last whole day a share can have.
 */
static int64_t
refuse_past_timestamps (const char *text)
{
  time_t last_day = (time_t) (INT64_MAX / 1000000000 - 86399);
  struct tm tm;
  char day[16] = "";

  gmtime_r (&last_day, &tm);
  strftime (day, sizeof day, "%Y-%m-%d", &tm);
  xs_error ("invalid expiry '%s': a share can last until %s at most (the"
            " end of what a timestamp holds)", text, day);
  return -1;
}

int64_t
xs_share_parse_expiry (const char *text, int64_t now_ns)
{
  struct tm tm = { 0 };
  char *end;
  long long count;
  int64_t unit, span, expiry;
  time_t seconds;

  end = strptime (text, "%Y-%m-%d", &tm);
  if (end && *end == '\0') {
    tm.tm_hour = 23;
    tm.tm_min = 59;
    tm.tm_sec = 59;
    seconds = timegm (&tm);
    if (seconds > INT64_MAX / 1000000000)
      return refuse_past_timestamps (text);
    return (int64_t) seconds * 1000000000;
  }
  errno = 0;
  count = strtoll (text, &end, 10);
  if (errno == 0 && end != text && count > 0 && count < 100000
      && end[0] && end[1] == '\0') {
    switch (tolower ((unsigned char) end[0])) {
    case 'd': unit = NS_PER_DAY; break;
    case 'w': unit = 7 * NS_PER_DAY; break;
    case 'y': unit = 365 * NS_PER_DAY; break;
    default: unit = 0;
    }
    if (unit) {
      if (__builtin_mul_overflow ((int64_t) count, unit, &span)
          || __builtin_add_overflow (now_ns, span, &expiry))
        return refuse_past_timestamps (text);
      return expiry;
    }
  }
  xs_error ("invalid expiry '%s': expected a date (YYYY-MM-DD) or a"
            " duration (90d, 12w, 2y)", text);
  return -1;
}

int
xs_share_delete_snapshot (struct xs_store *store, const char *actor,
                          const char *detail, const struct xs_snapshot *snap)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int r = -1;

  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == 0) {
    if (xs_snapshot_delete_locked (store, actor, detail, snap) == 0
        && xs_catalog_run (cat, "remove the snapshot's shares",
                           "DELETE FROM shares WHERE kind = 'snapshot'"
                           " AND resource_id = ?", "s", snap->id) != -1
        && xs_catalog_commit (cat) == 0)
      r = 0;
    else
      xs_catalog_rollback (cat);
  }
  xs_catalog_unlock (cat);
  return r;
}

int
xs_share_forget_sharee_locked (struct xs_catalog *cat, const char *account)
{
  return xs_catalog_run (cat, "delete an account",
                         "DELETE FROM shares WHERE sharee = ?", "s",
                         account) == -1 ? -1 : 0;
}
