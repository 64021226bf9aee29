/* xsnap: administrative changes, checked (see admin.h).
 *
 * Each door validates what it can first, so a malformed name is refused
 * as such rather than as a permission, then asks access.c, then calls
 * the catalog module that owns the rows.
 */
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "access/admin.h"
#include "access/share.h"
#include "base/error.h"
#include "base/names.h"
#include "catalog/account.h"
#include "catalog/catalog.h"
#include "catalog/config.h"
#include "catalog/job.h"
#include "catalog/region.h"

int
xs_admin_create_account (struct xs_store *store, const char *actor,
                         const char *id, const char *name, const char *email,
                         const char *collaborator_of)
{
  if (xs_name_check ("account", id) == -1
      || xs_access_account (store, actor, "xsnap:CreateAccount", id,
                            collaborator_of ? collaborator_of : "") == -1)
    return -1;
  return xs_account_create (store, actor, id, name, email, collaborator_of);
}

int
xs_admin_delete_account (struct xs_store *store, const char *actor,
                         const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int r = -1;

  if (xs_access_account (store, actor, "xsnap:DeleteAccount", id,
                         NULL) == -1)
    return -1;
  /* Shares made to it go with it: there is no one left to see them. */
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == 0) {
    if (xs_share_forget_sharee_locked (cat, id) == 0
        && xs_account_delete_locked (store, actor, id) == 0
        && xs_catalog_commit (cat) == 0)
      r = 0;
    else
      xs_catalog_rollback (cat);
  }
  xs_catalog_unlock (cat);
  return r;
}

int
xs_admin_map_uid (struct xs_store *store, const char *actor, uid_t uid,
                  const char *account)
{
  char *previous = NULL;
  const char *target;
  int r;

  if (uid == 0) {
    xs_error ("cannot map uid 0: root is always the administrator");
    return -1;
  }
  /* The uid map says who a local user is: only the administrator's
   * (PARENT "": nobody below it manages it).  An unmap is checked on the
   * account the uid names now, and removes only that mapping.
   */
  if (account == NULL && xs_account_lookup_uid (store, uid, &previous) == -1)
    return -1;
  target = account ? account : previous ? previous : "*";
  r = xs_access_account (store, actor, "xsnap:MapUid", target, "");
  if (r == 0)
    r = account ? xs_account_map_uid (store, actor, uid, account)
      : xs_account_unmap_uid (store, actor, uid, previous);
  free (previous);
  return r;
}

int
xs_admin_add_region (struct xs_store *store, const char *actor,
                     const char *name, const char *backend_url,
                     const char *group)
{
  if (xs_name_check ("region", name) == -1
      || xs_access_store (store, actor, "xsnap:CreateRegion", "region",
                          name) == -1)
    return -1;
  return xs_region_add (store, actor, name, backend_url, group);
}

int
xs_admin_remove_region (struct xs_store *store, const char *actor,
                        const char *name)
{
  if (xs_access_store (store, actor, "xsnap:DeleteRegion", "region",
                       name) == -1)
    return -1;
  return xs_region_remove (store, actor, name);
}

int
xs_admin_set_config (struct xs_store *store, const char *actor,
                     const char *key, const char *value)
{
  if (xs_config_check (key, value) == -1
      || xs_access_store (store, actor, "xsnap:SetConfig", "setting",
                          key) == -1)
    return -1;
  return xs_config_set (store, actor, key, value);
}

int
xs_admin_cancel_job (struct xs_store *store, const char *actor,
                     const char *id)
{
  struct xs_job job;
  bool allowed;

  if (xs_job_find (store, id, &job) == -1)
    return -1;
  allowed = strcmp (job.actor, actor) == 0
    || xs_account_is_admin (store, actor);
  if (!allowed)
    xs_error ("cannot cancel job %s: it belongs to account '%s'", id,
              job.actor);
  xs_job_clear (&job);
  return allowed ? xs_job_cancel (store, actor, id) : -1;
}
