/* xsnap: adding, listing and removing regions (see region.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/audit.h"
#include "repo/backend.h"
#include "base/error.h"
#include "base/fileio.h"
#include "catalog/job.h"
#include "base/names.h"
#include "catalog/region.h"
#include "repo/repo.h"

json_t *
xs_region_to_json (const struct xs_region *region)
{
  char created[32];

  xs_format_utc (region->created_ns, created, sizeof created);
  return json_pack ("{s:s, s:s, s:s, s:s}", "name", region->name,
                    "backend", region->backend, "group", region->group,
                    "created", created);
}

/* Record that ACTOR did ACTION to region NAME, inside the caller's
 * transaction.
 */
static int
audit_region_locked (struct xs_store *store, const char *actor,
                     const char *action, const char *name,
                     const char *detail)
{
  char *arn = xs_resource_name (NULL, NULL, "region", name);
  int r;

  if (arn == NULL)
    return -1;
  r = xs_audit_record_locked (store, actor, action, arn, "",
                              XS_AUDIT_ALLOWED, detail);
  free (arn);
  return r;
}

/* Group names follow the rules of other names. */
static int
check_group (const char *group)
{
  return xs_name_check ("region group", group);
}

/* Open the backend of a region about to be added and claim it for the
 * region (store.h, xs_store_claim): a repository another store owns, or
 * one that holds data without an owner mark, is refused.  Sets *claimed
 * when the mark was written now.
 */
static struct xs_backend *
open_new_backend (struct xs_store *store, const char *name, const char *url,
                  bool *claimed)
{
  struct xs_backend *backend = xs_backend_open_new (url);
  int r;

  if (backend == NULL)
    return NULL;
  r = xs_store_claim (store, name, backend, false);
  if (r == -1) {
    xs_backend_close (backend);
    return NULL;
  }
  *claimed = r == 1;
  return backend;
}

/* Refuse to add NAME if a region has it. */
static int
check_name_free (struct xs_store *store, const char *name)
{
  int r = xs_region_exists (store, name);

  if (r == 1)
    xs_error ("cannot add region '%s': it exists already", name);
  return r == 0 ? 0 : -1;
}

int
xs_region_add (struct xs_store *store, const char *actor, const char *name,
               const char *backend_url, const char *group)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_backend *backend;
  char *url = NULL, detail[256];
  bool claimed = false;
  int64_t r;

  if (group == NULL)
    group = "default";
  if (xs_name_check ("region", name) == -1 || check_group (group) == -1
      || check_name_free (store, name) == -1)
    return -1;
  /* The default repository is inside the region's directory. */
  if (backend_url == NULL) {
    if (xs_store_make_region_dirs (xs_store_path (store), name) == -1)
      return -1;
    if (asprintf (&url, "file://%s/regions/%s/repo", xs_store_path (store),
                  name) == -1) {
      xs_error ("cannot add region '%s': %m", name);
      return -1;
    }
  }
  /* It must open (and for remote stores, answer) and be free for this
   * region before it is usable.
   */
  backend = open_new_backend (store, name, backend_url ? backend_url : url,
                              &claimed);
  if (backend == NULL) {
    free (url);
    return -1;
  }
  snprintf (detail, sizeof detail, "%s, group %s",
            backend_url ? backend_url : url, group);
  r = xs_store_make_region_dirs (xs_store_path (store), name);
  if (r == 0) {
    xs_catalog_lock (cat);
    r = xs_catalog_begin (cat) == -1 ? -1
      : xs_catalog_run (cat, "add a region",
                        "INSERT OR IGNORE INTO regions (name, backend, grp,"
                        " created_ns) VALUES (?, ?, ?, ?)", "sssi", name,
                        backend_url ? backend_url : url, group,
                        xs_wall_clock_ns ());
    if (r == 0)
      xs_error ("cannot add region '%s': it exists already", name);
    if (r != 1
        || audit_region_locked (store, actor, "xsnap:CreateRegion", name,
                                detail) == -1
        || xs_catalog_commit (cat) == -1) {
      xs_catalog_rollback (cat);
      r = -1;
    }
    xs_catalog_unlock (cat);
  }
  if (r != 1 && claimed)
    xs_repo_remove_owner (backend);     /* the region was not added */
  xs_backend_close (backend);
  free (url);
  return r == 1 ? 0 : -1;
}

int
xs_region_remove (struct xs_store *store, const char *actor, const char *name)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char refusal[128];
  int64_t r = -1;

  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  /* A copy from or to it would upload everything and then fail, or
   * record a snapshot in whatever region has its name by then.
   */
  snprintf (refusal, sizeof refusal, "cannot remove region '%s'", name);
  if (xs_job_refuse_users_locked (cat, XS_JOB_USES_REGION, name,
                                  refusal) == -1)
    goto rollback;
  if (xs_catalog_refuse_referenced_locked (cat, XS_CATALOG_REGION, name,
                                           refusal) == -1)
    goto rollback;
  r = xs_catalog_run (cat, "remove a region",
                      "DELETE FROM regions WHERE name = ?", "s", name);
  if (r == 0)
    xs_error ("cannot remove region '%s': no such region", name);
  if (r != 1
      || audit_region_locked (store, actor, "xsnap:DeleteRegion", name,
                              "") == -1
      || xs_catalog_commit (cat) == -1) {
    r = -1;
    goto rollback;
  }
  goto out;
 rollback:
  xs_catalog_rollback (cat);
 out:
  xs_catalog_unlock (cat);
  return r == 1 ? 0 : -1;
}

struct region_list {
  int (*fn) (const struct xs_region *region, void *opaque);
  void *opaque;
};

static int
each_region (sqlite3_stmt *stmt, void *opaque)
{
  struct region_list *list = opaque;
  struct xs_region region = {
    .name = (const char *) sqlite3_column_text (stmt, 0),
    .backend = (const char *) sqlite3_column_text (stmt, 1),
    .group = (const char *) sqlite3_column_text (stmt, 2),
    .created_ns = sqlite3_column_int64 (stmt, 3),
  };

  return list->fn (&region, list->opaque);
}

int
xs_region_list (struct xs_store *store,
                int (*fn) (const struct xs_region *region, void *opaque),
                void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct region_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "SELECT name, backend, grp, created_ns"
                             " FROM regions ORDER BY name", "list regions");
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "list regions", each_region, &list);
  xs_catalog_unlock (cat);
  return r;
}

/* Looking a region up for the modules that name one in their rows. */

int
xs_region_exists (struct xs_store *store, const char *name)
{
  int r = xs_region_lookup (store, name, NULL, NULL, NULL);

  return r == -1 ? -1 : r == 0;
}

/* Looking up one region. */

int
xs_region_lookup (struct xs_store *store, const char *name, char **group,
                  int64_t *created_ns, char **backend)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  char *grp = NULL, *url = NULL;
  bool failed = false;
  int r = -1;

  if (group)
    *group = NULL;
  if (backend)
    *backend = NULL;
  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "look up a region",
                                  "SELECT grp, created_ns, backend"
                                  " FROM regions WHERE name = ?", "s", name);
  if (stmt == NULL)
    goto out;
  switch (sqlite3_step (stmt)) {
  case SQLITE_ROW:
    if (group)
      grp = xs_catalog_column_dup (stmt, 0, &failed);
    if (backend)
      url = xs_catalog_column_dup (stmt, 2, &failed);
    if (failed) {
      xs_error ("cannot look up region '%s': %m", name);
      free (grp);
      free (url);
      break;
    }
    if (group)
      *group = grp;
    if (created_ns)
      *created_ns = sqlite3_column_int64 (stmt, 1);
    if (backend)
      *backend = url;
    r = 0;
    break;
  case SQLITE_DONE:
    r = 1;
    break;
  default:
    xs_catalog_report (cat, "look up a region");
  }
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}
