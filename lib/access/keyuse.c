/* xsnap: who may create, disable, grant, export and import a key (see
 * keyuse.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "access/keyuse.h"
#include "base/error.h"

int
xs_keyuse_check (struct xs_store *store, const char *actor,
                 const char *action, const char *account, const char *id,
                 const char *name)
{
  struct xs_access_target target = {
    .owner = account, .region = "", .type = "key", .id = id,
  };
  char *label;
  int r;

  if (asprintf (&label, "key '%s' of account '%s'", name, account) == -1) {
    xs_error ("cannot check access to key '%s': %m", name);
    return -1;
  }
  target.label = label;
  r = xs_access_check (store, actor, action, &target, false);
  free (label);
  return r;
}

int
xs_keyuse_create (struct xs_store *store, const char *actor,
                  const char *account, const char *name, struct xs_key *out)
{
  memset (out, 0, sizeof *out);
  if (xs_key_check_name (name) == -1
      || xs_keyuse_check (store, actor, "xsnap:CreateKey", account, name,
                          name) == -1)
    return -1;
  return xs_key_create (store, actor, account, name, out);
}

/* ACCOUNT's key of SPEC, if ACTOR may take ACTION on it. */
static int
find_checked (struct xs_store *store, const char *actor, const char *action,
              const char *account, const char *spec, struct xs_key *key)
{
  if (xs_key_find (store, account, spec, false, key) != 0)
    return -1;
  if (xs_keyuse_check (store, actor, action, account, key->id,
                       key->name) == -1) {
    xs_key_clear (key);
    return -1;
  }
  return 0;
}

int
xs_keyuse_disable (struct xs_store *store, const char *actor,
                   const char *account, const char *spec)
{
  struct xs_key key;
  int r;

  if (find_checked (store, actor, "xsnap:DisableKey", account, spec,
                    &key) == -1)
    return -1;
  r = xs_key_disable (store, actor, &key);
  xs_key_clear (&key);
  return r;
}

int
xs_keyuse_grant (struct xs_store *store, const char *actor,
                 const char *account, const char *spec, const char *grantee)
{
  struct xs_key key;
  int r;

  if (find_checked (store, actor, "xsnap:GrantKey", account, spec,
                    &key) == -1)
    return -1;
  r = xs_key_grant (store, actor, &key, grantee);
  xs_key_clear (&key);
  return r;
}

int
xs_keyuse_list (struct xs_store *store, const char *account,
                int (*fn) (const struct xs_key *key, void *opaque),
                void *opaque)
{
  if (xs_keyuse_check (store, account, "xsnap:DescribeKeys", account, "*",
                       "(all)") == -1)
    return -1;
  return xs_key_list (store, account, fn, opaque);
}
