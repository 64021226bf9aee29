/* xsnap: the audit log (see audit.h). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "catalog/audit.h"
#include "base/error.h"
#include "base/names.h"
#include "base/fileio.h"

static const char *const outcome_names[] = {
  [XS_AUDIT_ALLOWED] = "allowed",
  [XS_AUDIT_DENIED] = "denied",
  [XS_AUDIT_FAILED] = "failed",
};

int
xs_audit_record_locked (struct xs_store *store, const char *actor,
                        const char *action, const char *resource,
                        const char *owner, enum xs_audit_outcome outcome,
                        const char *detail)
{
  struct xs_catalog *cat = xs_store_catalog (store);

  return xs_catalog_run (cat, "write the audit log",
                         "INSERT INTO audit (at_ns, actor, action, resource,"
                         " owner, outcome, detail)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", "issssss",
                         xs_wall_clock_ns (), actor ? actor : "",
                         action, resource ? resource : "",
                         owner ? owner : "", outcome_names[outcome],
                         detail ? detail : "") == -1 ? -1 : 0;
}

int
xs_audit_record (struct xs_store *store, const char *actor,
                 const char *action, const char *resource, const char *owner,
                 enum xs_audit_outcome outcome, const char *detail)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int r;

  xs_catalog_lock (cat);
  r = xs_audit_record_locked (store, actor, action, resource, owner, outcome,
                              detail);
  xs_catalog_unlock (cat);
  return r;
}

int
xs_audit_resource (struct xs_store *store, const char *actor,
                   const char *action, const char *region, const char *owner,
                   const char *type, const char *id, const char *detail)
{
  char *arn = xs_resource_name (region, owner, type, id);
  int r;

  if (arn == NULL)
    return -1;
  r = xs_audit_record (store, actor, action, arn, owner, XS_AUDIT_ALLOWED,
                       detail);
  free (arn);
  return r;
}

static const char *
column_text (sqlite3_stmt *stmt, int column)
{
  const char *text = (const char *) sqlite3_column_text (stmt, column);

  return text ? text : "";
}

int
xs_audit_list (struct xs_store *store, const char *visible_to, int64_t limit,
               int (*fn) (const struct xs_audit_entry *entry, void *opaque),
               void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_audit_entry entry;
  sqlite3_stmt *stmt;
  int r = -1, step;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "read the audit log",
                                  "SELECT * FROM ("
                                  " SELECT seq, at_ns, actor, action,"
                                  " resource, owner, outcome, detail"
                                  " FROM audit"
                                  " WHERE ?1 IS NULL OR actor = ?1"
                                  " OR owner = ?1"
                                  " ORDER BY seq DESC"
                                  " LIMIT CASE WHEN ?2 > 0 THEN ?2 ELSE -1"
                                  " END) ORDER BY seq", "si",
                                  visible_to, limit);
  if (stmt == NULL)
    goto out;
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW) {
    entry.seq = sqlite3_column_int64 (stmt, 0);
    entry.at_ns = sqlite3_column_int64 (stmt, 1);
    entry.actor = column_text (stmt, 2);
    entry.action = column_text (stmt, 3);
    entry.resource = column_text (stmt, 4);
    entry.owner = column_text (stmt, 5);
    entry.outcome = column_text (stmt, 6);
    entry.detail = column_text (stmt, 7);
    if (fn (&entry, opaque) == -1)
      goto done;
  }
  if (step == SQLITE_DONE)
    r = 0;
  else
    xs_catalog_report (cat, "read the audit log");
 done:
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

json_t *
xs_audit_entry_to_json (const struct xs_audit_entry *entry)
{
  char at[32];

  xs_format_utc (entry->at_ns, at, sizeof at);
  return json_pack ("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
                    "seq", (json_int_t) entry->seq, "time", at,
                    "actor", entry->actor, "action", entry->action,
                    "resource", entry->resource, "owner", entry->owner,
                    "outcome", entry->outcome, "detail", entry->detail);
}
