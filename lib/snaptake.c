/* xsnap: taking a snapshot through the owner or here (see snaptake.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "error.h"
#include "snaptake.h"

/* Tries at asking an owner that does not answer, 20 ms apart. */
#define OWNER_TRIES 250

static char *
control_path (struct xs_store *store, const struct xs_volume *vol)
{
  char *dir = xs_volume_dir (store, vol), *path = NULL;

  if (dir == NULL || asprintf (&path, "%s/control.sock", dir) == -1) {
    xs_error ("cannot reach the owner of volume '%s': %m", vol->name);
    path = NULL;
  }
  free (dir);
  return path;
}

/* Whether VOL has an owner to ask.  An owner closing the volume (its last
 * client just left) has stopped listening but holds the lock for a
 * moment: wait for it to finish.
 */
static bool
owner_is_reachable (struct xs_store *store, const struct xs_volume *vol,
                    const char *path)
{
  for (int tries = 0; tries < 100; tries++) {
    if (xs_volume_in_use (store, vol) != 1)
      return false;
    if (access (path, F_OK) == 0)
      return true;
    usleep (20000);
  }
  return false;
}

/* Through the owner: 0, -1, or -2 if no owner answered. */
static int
take_through_owner (struct xs_store *store, const char *path,
                    const char *name, bool wait, struct xs_snapshot *snap)
{
  json_t *request, *reply = NULL;
  const char *id;
  int r;

  request = json_pack ("{s:s, s:s?, s:b}", "op", "snapshot", "name", name,
                       "wait", wait);
  if (request == NULL) {
    xs_error ("cannot ask for a snapshot: out of memory");
    return -1;
  }
  r = xs_control_call (path, request, &reply);
  json_decref (request);
  if (r != 0)
    return r;
  id = json_string_value (json_object_get (json_object_get (reply,
                                                            "snapshot"),
                                           "id"));
  r = -1;
  if (id == NULL)
    xs_error ("the owner's reply names no snapshot");
  else if (xs_snapshot_lookup_id (store, id, snap) == 0)
    r = 0;
  else
    xs_error ("snapshot %s, taken by the owner, cannot be found", id);
  json_decref (reply);
  return r;
}

int
xs_snapshot_take (struct xs_store *store, const struct xs_volume *vol,
                  const char *name, bool wait,
                  void (*progress) (uint64_t done, uint64_t total,
                                    void *opaque),
                  void *opaque, struct xs_snapshot *snap)
{
  char *path = control_path (store, vol);
  int r = -1;

  if (path == NULL)
    return -1;
  for (int tries = 0; ; tries++) {
    r = owner_is_reachable (store, vol, path)
      ? take_through_owner (store, path, name, wait, snap)
      : xs_snapshot_create_offline (store, vol, name, progress, opaque,
                                    snap);
    if (r != -2)
      break;
    if (tries == OWNER_TRIES) {
      xs_error ("the owner of volume '%s' does not answer", vol->name);
      r = -1;
      break;
    }
    usleep (20000);
  }
  free (path);
  return r;
}
