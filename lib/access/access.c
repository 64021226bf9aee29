/* xsnap: permission decisions and policy documents (see access.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/access.h"
#include "catalog/account.h"
#include "catalog/audit.h"
#include "base/error.h"
#include "base/fileio.h"
#include "catalog/keys.h"
#include "base/names.h"
#include "access/permdoc.h"

/* What a sharee may do with a snapshot shared with it (rule 4). */
static const char *const sharee_actions[] = {
  "xsnap:ReadSnapshot",
  "xsnap:DescribeSnapshots",
  "xsnap:CreateVolumeFromSnapshot",
  "xsnap:CopySnapshot",
  "xsnap:CopySnapshotCrossRegion",
  "xsnap:ExportSnapshot",
  "xsnap:ResetVolume",          /* a disk made from it, back to it */
  NULL,
};

static bool
sharee_may (const char *action)
{
  for (size_t i = 0; sharee_actions[i]; i++)
    if (strcmp (sharee_actions[i], action) == 0)
      return true;
  return false;
}

/* Whether ATTACHED_BY, who attached an allowing document, gives what
 * OWNER owns: OWNER itself or the administrator.  1, 0, or -1.
 */
static int
attacher_may_allow (struct xs_store *store, const char *attached_by,
                    const char *owner)
{
  struct xs_account account;
  int r;

  if (strcmp (attached_by, owner) == 0)
    return 1;
  r = xs_account_find (store, attached_by, true, &account);
  if (r == 1)
    return 0;
  if (r == -1)
    return -1;
  r = account.is_admin;
  xs_account_clear (&account);
  return r;
}

/* The verdict of the documents attached to CALLER on ACTION and ARN: DENY
 * if any denies; ALLOW if one attached by OWNER or an administrator
 * allows; else NONE.  A stored document that no longer parses (written by
 * a newer xsnap) is an error: nothing is allowed on a guess.
 */
static int
policy_verdict (struct xs_store *store, const char *caller,
                const char *action, const char *arn, const char *owner,
                enum xs_permdoc_effect *verdict)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_permdoc *policy;
  enum xs_permdoc_effect effect;
  sqlite3_stmt *stmt;
  const char *text, *attached_by;
  int step, r = -1, may;

  *verdict = XS_PERMDOC_NONE;
  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "read policy documents",
                                  "SELECT document, attached_by"
                                  " FROM policy_docs"
                                  " WHERE account = ? ORDER BY id",
                                  "s", caller);
  if (stmt == NULL)
    goto out;
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW) {
    text = (const char *) sqlite3_column_text (stmt, 0);
    attached_by = (const char *) sqlite3_column_text (stmt, 1);
    policy = xs_permdoc_parse (text, strlen (text), "stored policy document");
    if (policy == NULL)
      goto done;
    effect = xs_permdoc_evaluate (policy, action, arn);
    xs_permdoc_free (policy);
    if (effect == XS_PERMDOC_DENY) {
      *verdict = XS_PERMDOC_DENY;
      r = 0;
      goto done;
    }
    if (effect == XS_PERMDOC_ALLOW) {
      may = attacher_may_allow (store, attached_by, owner);
      if (may == -1)
        goto done;
      if (may)
        *verdict = XS_PERMDOC_ALLOW;
    }
  }
  if (step == SQLITE_DONE)
    r = 0;
  else
    xs_catalog_report (cat, "read policy documents");
 done:
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

static void
refuse (struct xs_store *store, const char *caller, const char *action,
        const struct xs_access_target *target, const char *arn,
        const char *why)
{
  xs_error ("permission denied: account '%s' may not %s %s: %s", caller,
            action, target->label, why);
  xs_audit_record (store, caller, action, arn, target->owner,
                   XS_AUDIT_DENIED, why);
}

/* Why TARGET is refused to CALLER when nothing allowed it. */
static const char *
refusal_reason (const struct xs_access_target *target)
{
  if (target->shared_with_caller)
    return "it is shared with this account, which may read it, diff it,"
      " copy it and make disks from it, but not change, delete or share it";
  if (target->administrative)
    return "only the administrator may (for an account, also the accounts"
      " above it in its organisation), or an account a policy document"
      " attached by the administrator allows";
  return "it belongs to another account and no policy document"
    " attached by its owner allows it";
}

enum xs_access_verdict
xs_access_decide (struct xs_store *store, const char *caller,
                  const char *action, const struct xs_access_target *target,
                  bool quiet)
{
  enum xs_access_verdict r = XS_ACCESS_UNDECIDED;
  enum xs_permdoc_effect verdict;
  const char *why;
  char *arn;
  bool owner = !target->administrative
    && strcmp (caller, target->owner) == 0;

  arn = xs_resource_name (target->region, target->owner, target->type,
                                 target->id);
  if (arn == NULL)
    return XS_ACCESS_UNDECIDED;
  /* On an administrative resource only the administrator's allows
   * count: no owner may give it away.
   */
  if (policy_verdict (store, caller, action, arn,
                      target->administrative ? "" : target->owner,
                      &verdict) == -1)
    goto out;
  if (verdict == XS_PERMDOC_DENY)
    why = "a policy document denies it";
  else if (owner || xs_account_is_admin (store, caller)
           || target->caller_manages
           || (target->shared_with_caller && sharee_may (action))
           || verdict == XS_PERMDOC_ALLOW) {
    r = XS_ACCESS_ALLOWED;
    goto out;
  }
  else
    why = refusal_reason (target);
  if (!quiet)
    refuse (store, caller, action, target, arn, why);
  r = XS_ACCESS_DENIED;
 out:
  free (arn);
  return r;
}

int
xs_access_check (struct xs_store *store, const char *caller,
                 const char *action, const struct xs_access_target *target,
                 bool quiet)
{
  return xs_access_decide (store, caller, action, target, quiet)
    == XS_ACCESS_ALLOWED ? 0 : -1;
}

/* Is CALLER above ACCOUNT in ACCOUNT's organisation (or ACCOUNT's
 * parent-to-be PARENT itself)?  1, 0 or -1.
 */
static int
manages (struct xs_store *store, const char *caller, const char *account)
{
  if (account == NULL || *account == '\0')
    return 0;
  return xs_account_is_collaborator (store, account, caller);
}

int
xs_access_account (struct xs_store *store, const char *caller,
                   const char *action, const char *account,
                   const char *parent)
{
  struct xs_access_target target = {
    .owner = account, .type = "account", .id = account,
    .administrative = true,
  };
  char label[128];
  int above;

  /* A new account's place is below PARENT: PARENT and those above it
   * manage it.  An existing one's, below its own chain.
   */
  if (parent && *parent)
    above = strcmp (parent, caller) == 0 ? 1 : manages (store, caller, parent);
  else
    above = parent ? 0 : manages (store, caller, account);
  if (above == -1)
    return -1;
  target.caller_manages = above == 1;
  snprintf (label, sizeof label, "account '%s'", account);
  target.label = label;
  return xs_access_check (store, caller, action, &target, false);
}

int
xs_access_store (struct xs_store *store, const char *caller,
                 const char *action, const char *type, const char *id)
{
  struct xs_access_target target = {
    .owner = "", .type = type, .id = id, .administrative = true,
  };
  char label[128];

  snprintf (label, sizeof label, "%s '%s'", type, id);
  target.label = label;
  return xs_access_check (store, caller, action, &target, false);
}


int
xs_access_snapshot (struct xs_store *store, const char *caller,
                    const char *action, const struct xs_snapshot *snap)
{
  struct xs_access_target target = {
    .owner = snap->account, .region = snap->region, .type = "snapshot",
    .id = snap->id, .shared_with_caller = snap->shared_from != NULL,
  };
  char *label = NULL;
  int r;

  if (asprintf (&label, "snapshot %s@%s (%s)", snap->volume_name,
                snap->name, snap->id) == -1) {
    xs_error ("cannot check access to snapshot %s: %m", snap->id);
    return -1;
  }
  target.label = label;
  r = xs_access_check (store, caller, action, &target, false);
  free (label);
  return r;
}

int
xs_access_volume (struct xs_store *store, const char *caller,
                  const char *action, const struct xs_volume *vol)
{
  struct xs_access_target target = {
    .owner = vol->account, .region = vol->region, .type = "volume",
    .id = vol->id,
  };
  char *label = NULL;
  int r;

  if (asprintf (&label, "volume '%s' (%s)", vol->name, vol->id) == -1) {
    xs_error ("cannot check access to volume '%s': %m", vol->name);
    return -1;
  }
  target.label = label;
  r = xs_access_check (store, caller, action, &target, false);
  free (label);
  return r;
}

/* CALLER takes ACTION on TYPE/ID (a listing: "*") of its own, in REGION
 * (NULL: outside any region).
 */
static int
check_own (struct xs_store *store, const char *caller, const char *region,
           const char *action, const char *type, const char *id)
{
  struct xs_access_target target = {
    .owner = caller, .region = region, .type = type, .id = id,
  };
  char label[160];

  if (strcmp (id, "*") == 0)
    snprintf (label, sizeof label, "the %ss of account '%s'", type, caller);
  else
    snprintf (label, sizeof label, "%s '%s'", type, id);
  target.label = label;
  return xs_access_check (store, caller, action, &target, false);
}

int
xs_access_describe (struct xs_store *store, const char *caller,
                    const char *action, const char *type)
{
  return check_own (store, caller, NULL, action, type, "*");
}

int
xs_access_scope (struct xs_store *store, const struct xs_scope *scope,
                 const char *action, const char *type, const char *id)
{
  return check_own (store, scope->account, scope->region, action, type, id);
}


/* Another account's snapshot ID, if the caller may take ACTION on it or
 * see it (quietly: one it may not see looks missing).  1 if not.
 */
static int
find_foreign_snapshot (struct xs_store *store, const struct xs_scope *scope,
                       const char *id, const char *action,
                       struct xs_snapshot *snap)
{
  struct xs_access_target target = { .type = "snapshot", .id = id,
                                     .label = id };
  enum xs_access_verdict verdict;
  int r;

  r = xs_snapshot_lookup_id (store, id, snap);
  if (r != 0)
    return r;
  if (strcmp (snap->status, "deleted") == 0
      || strcmp (snap->region, scope->region) != 0
      || strcmp (snap->account, scope->account) == 0) {
    xs_snapshot_clear (snap);
    return 1;
  }
  target.owner = snap->account;
  target.region = snap->region;
  /* Found if the caller may take ACTION, or at least see it (then the
   * caller's check refuses ACTION with the reason); else it looks
   * missing.  A check that could not decide is an error, not a miss.
   */
  verdict = xs_access_decide (store, scope->account, action, &target, true);
  if (verdict == XS_ACCESS_DENIED)
    verdict = xs_access_decide (store, scope->account,
                                "xsnap:DescribeSnapshots", &target, true);
  if (verdict == XS_ACCESS_ALLOWED)
    return 0;
  xs_snapshot_clear (snap);
  return verdict == XS_ACCESS_DENIED ? 1 : -1;
}

/* Whether ACTION reads a snapshot's data (so an encrypted snapshot's key
 * must be usable by the caller too).
 */
static bool
reads_data (const char *action)
{
  static const char *const actions[] = {
    "xsnap:ReadSnapshot", "xsnap:ExportSnapshot",
    "xsnap:CreateVolumeFromSnapshot", "xsnap:ResetVolume",
    "xsnap:CopySnapshot", "xsnap:CopySnapshotCrossAccount",
    "xsnap:CopySnapshotCrossRegion",
  };
  size_t i;

  for (i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp (action, actions[i]) == 0)
      return true;
  return false;
}

static int
check_key_use (struct xs_store *store, const char *caller,
               const struct xs_snapshot *snap)
{
  char what[256];

  if (snap->key_id == NULL || snap->key_id[0] == '\0')
    return 0;
  snprintf (what, sizeof what, "snapshot %s@%s (%s)", snap->volume_name,
            snap->name, snap->id);
  return xs_key_check_use (store, caller, snap->key_id, what, NULL);
}

int
xs_access_find_snapshot (struct xs_store *store, const struct xs_scope *scope,
                         const char *spec, const char *action, bool quiet,
                         struct xs_snapshot *snap)
{
  int r;

  r = xs_snapshot_find (store, scope, spec, true, snap);
  if (r == 1 && strchr (spec, '@') == NULL)
    r = find_foreign_snapshot (store, scope, spec, action, snap);
  if (r == 1) {
    if (!quiet)
      xs_error ("no snapshot '%s' in account '%s', region '%s'", spec,
                scope->account, scope->region);
    return 1;
  }
  if (r == -1)
    return -1;
  if (xs_access_snapshot (store, scope->account, action, snap) == -1
      || (reads_data (action)
          && check_key_use (store, scope->account, snap) == -1)) {
    xs_snapshot_clear (snap);
    return -1;
  }
  return 0;
}

/* May ACTOR take ACTION on the policy document NAME (or "*") of
 * ACCOUNT?  Its owner is ACCOUNT; the accounts above it in its
 * organisation manage it.
 */
static int
check_policy_doc (struct xs_store *store, const char *actor,
                  const char *action, const char *account, const char *name)
{
  struct xs_access_target target = {
    .owner = account, .type = "policydoc", .id = name,
  };
  char label[160];
  int above = manages (store, actor, account);

  if (above == -1)
    return -1;
  target.caller_manages = above == 1;
  snprintf (label, sizeof label, "the policy documents of account '%s'",
            account);
  target.label = label;
  return xs_access_check (store, actor, action, &target, false);
}

int
xs_access_attach_policy (struct xs_store *store, const char *actor,
                         const char *account, const char *name,
                         const char *text, size_t len, const char *origin)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_permdoc *policy;
  char *canonical = NULL, id[XS_ID_MAX], detail[128];
  int64_t one;
  int r;

  if (xs_name_check ("policy document", name) == -1
      || check_policy_doc (store, actor, "xsnap:AttachPolicyDoc", account,
                           name) == -1)
    return -1;
  policy = xs_permdoc_parse (text, len, origin);
  if (policy == NULL)
    return -1;
  canonical = xs_permdoc_canonical (policy);
  xs_permdoc_free (policy);
  if (canonical == NULL || xs_new_id ("pdoc", id, sizeof id) == -1) {
    free (canonical);
    return -1;
  }
  r = -1;
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  switch (xs_catalog_query_int (cat, "look up a policy document", &one,
                                "SELECT 1 FROM policy_docs WHERE account = ?"
                                " AND name = ?", "ss", account, name)) {
  case 0:
    xs_error ("cannot attach policy document '%s' to account '%s': one of"
              " that name is attached already", name, account);
    /* fall through */
  case -1:
    goto rollback;
  }
  snprintf (detail, sizeof detail, "document %s attached to %s", id,
            account);
  if (xs_catalog_run (cat, "attach a policy document",
                      "INSERT INTO policy_docs (id, account, name,"
                      " attached_by, document, created_ns)"
                      " VALUES (?, ?, ?, ?, ?, ?)", "sssssi", id, account,
                      name, actor, canonical, xs_wall_clock_ns ()) == -1
      || xs_audit_record_locked (store, actor, "xsnap:AttachPolicyDoc", name,
                                 account, XS_AUDIT_ALLOWED, detail) == -1)
    goto rollback;
  r = xs_catalog_commit (cat);
  if (r == 0)
    goto out;
 rollback:
  xs_catalog_rollback (cat);
 out:
  xs_catalog_unlock (cat);
  free (canonical);
  return r;
}

int
xs_access_detach_policy (struct xs_store *store, const char *actor,
                         const char *account, const char *name)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t removed;
  int r = -1;

  if (check_policy_doc (store, actor, "xsnap:DetachPolicyDoc", account,
                        name) == -1)
    return -1;
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  removed = xs_catalog_run (cat, "detach a policy document",
                            "DELETE FROM policy_docs WHERE account = ?"
                            " AND name = ?", "ss", account, name);
  if (removed == 0)
    xs_error ("cannot detach policy document '%s' from account '%s': no"
              " such document", name, account);
  if (removed <= 0
      || xs_audit_record_locked (store, actor, "xsnap:DetachPolicyDoc", name,
                                 account, XS_AUDIT_ALLOWED, "") == -1)
    goto rollback;
  r = xs_catalog_commit (cat);
  if (r == 0)
    goto out;
 rollback:
  xs_catalog_rollback (cat);
 out:
  xs_catalog_unlock (cat);
  return r;
}

json_t *
xs_permdoc_record_to_json (const struct xs_permdoc_record *doc)
{
  char created[32];
  json_t *document = json_loads (doc->document, 0, NULL);

  xs_format_utc (doc->created_ns, created, sizeof created);
  return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", doc->id,
                    "account", doc->account, "name", doc->name,
                    "attached_by", doc->attached_by, "created", created,
                    "document", document ? document : json_null ());
}

int
xs_access_list_policies (struct xs_store *store, const char *actor,
                         const char *account,
                         int (*fn) (const struct xs_permdoc_record *doc,
                                    void *opaque),
                         void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_permdoc_record doc;
  sqlite3_stmt *stmt;
  int r = -1, step;

  if (account ? check_policy_doc (store, actor, "xsnap:DescribePolicyDocs",
                                  account, "*") == -1
      : xs_access_store (store, actor, "xsnap:DescribePolicyDocs",
                         "policydoc", "*") == -1)
    return -1;
  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "list policy documents",
                                  "SELECT id, account, name, attached_by,"
                                  " document, created_ns FROM policy_docs"
                                  " WHERE ?1 IS NULL OR account = ?1"
                                  " ORDER BY created_ns, id", "s", account);
  if (stmt == NULL)
    goto out;
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW) {
    doc.id = (const char *) sqlite3_column_text (stmt, 0);
    doc.account = (const char *) sqlite3_column_text (stmt, 1);
    doc.name = (const char *) sqlite3_column_text (stmt, 2);
    doc.attached_by = (const char *) sqlite3_column_text (stmt, 3);
    doc.document = (const char *) sqlite3_column_text (stmt, 4);
    doc.created_ns = sqlite3_column_int64 (stmt, 5);
    if (fn (&doc, opaque) == -1)
      break;
  }
  if (step == SQLITE_DONE)
    r = 0;
  else if (step != SQLITE_ROW)
    xs_catalog_report (cat, "list policy documents");
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}
