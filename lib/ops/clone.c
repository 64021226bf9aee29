/* xsnap: a volume made from a snapshot, and a volume reset to one (see
 * clone.h).
 */
#include "access/access.h"
#include "catalog/snapshot.h"
#include "ops/clone.h"

int
xs_clone_create (struct xs_store *store, const struct xs_scope *scope,
                 const char *name, const char *snapshot_spec, bool encrypt,
                 const char *key_spec, struct xs_volume *vol)
{
  struct xs_snapshot snap;
  int r;

  if (xs_access_find_snapshot (store, scope, snapshot_spec,
                               "xsnap:CreateVolumeFromSnapshot", false,
                               &snap) != 0)
    return -1;
  r = xs_volume_create_from_snapshot (store, scope, name, &snap, encrypt,
                                      key_spec, vol);
  xs_snapshot_clear (&snap);
  return r;
}

int
xs_clone_reset (struct xs_store *store, struct xs_volume *vol,
                const char *snapshot_spec)
{
  struct xs_scope scope = { .account = vol->account, .region = vol->region };
  struct xs_snapshot snap;
  int r;

  if (xs_access_find_snapshot (store, &scope, snapshot_spec,
                               "xsnap:ResetVolume", false, &snap) != 0)
    return -1;
  r = xs_volume_reset (store, vol, &snap);
  xs_snapshot_clear (&snap);
  return r;
}
