/* xsnap: taking a snapshot through the owner or here (see snaptake.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "head/control.h"
#include "base/error.h"
#include "base/fileio.h"
#include "head/head.h"
#include "head/ownerlock.h"
#include "catalog/snapnew.h"
#include "ops/snaptake.h"

/* How long to wait for an owner that holds the volume without answering
 * (closing it after its last client left: the final flush of a large
 * write may take many seconds), and when to tell the user so.
 */
#define OWNER_WAIT_NS (300 * INT64_C (1000000000))
#define OWNER_NOTICE_NS INT64_C (1000000000)
#define POLL_US 20000

static char *
volume_file (struct xs_store *store, const struct xs_volume *vol,
             const char *name)
{
  char *dir = xs_volume_dir (store, vol), *path = NULL;

  if (dir == NULL || asprintf (&path, "%s/%s", dir, name) == -1) {
    xs_error ("cannot reach the owner of volume '%s': %m", vol->name);
    path = NULL;
  }
  free (dir);
  return path;
}

enum owner {
  OWNER_NONE,                   /* nobody holds the volume (or cannot tell) */
  OWNER_SERVING,                /* held, with a control socket to ask */
  OWNER_SILENT,                 /* held, nobody listening: closing */
};

static enum owner
find_owner (struct xs_store *store, const struct xs_volume *vol,
            const char *control)
{
  if (xs_volume_in_use (store, vol) != 1)
    return OWNER_NONE;
  return access (control, F_OK) == 0 ? OWNER_SERVING : OWNER_SILENT;
}

/* One more wait for an owner that does not answer: 0 to look again, -1
 * (reported) once it has taken too long.  Says once that it waits.
 */
static int
wait_for_owner (const struct xs_volume *vol, const char *lock,
                int64_t started, bool *told)
{
  int64_t waited = xs_now_ns () - started;

  if (waited > OWNER_WAIT_NS) {
    xs_error ("volume '%s' is still held by another process (pid %ld) "
              "after %d seconds", vol->name, xs_owner_lock_holder (lock),
              (int) (OWNER_WAIT_NS / 1000000000));
    return -1;
  }
  if (!*told && waited > OWNER_NOTICE_NS) {
    xs_notice ("waiting for volume '%s': its owner (pid %ld) is closing it "
               "or working on it", vol->name, xs_owner_lock_holder (lock));
    *told = true;
  }
  usleep (POLL_US);
  return 0;
}

/* What an attempt to take the snapshot did. */
enum take_result {
  TAKEN,
  FAILED,                       /* reported */
  OWNER_BUSY,                   /* an owner holds the volume and did not
                                   answer: it is closing it; look again */
};

/* Through the owner. */
static enum take_result
take_through_owner (struct xs_store *store, const char *path,
                    const char *name, bool wait, struct xs_snapshot *snap)
{
  json_t *request, *reply = NULL;
  enum xs_control_result called;
  enum take_result r = FAILED;
  const char *id;

  request = json_pack ("{s:s, s:s?, s:b}", "op", "snapshot", "name", name,
                       "wait", wait);
  if (request == NULL) {
    xs_error ("cannot ask for a snapshot: out of memory");
    return FAILED;
  }
  called = xs_control_call (path, request, &reply);
  json_decref (request);
  if (called != XS_CONTROL_ANSWERED)
    return called == XS_CONTROL_NO_OWNER ? OWNER_BUSY : FAILED;
  id = json_string_value (json_object_get (json_object_get (reply,
                                                            "snapshot"),
                                           "id"));
  if (id == NULL)
    xs_error ("the owner's reply names no snapshot");
  else if (xs_snapshot_lookup_id (store, id, snap) == 0)
    r = TAKEN;
  else
    xs_error ("snapshot %s, taken by the owner, cannot be found", id);
  json_decref (reply);
  return r;
}

/* Take the snapshot in this process, which must be able to become the
 * volume's owner (nothing holds it).
 */
static int
take_here (struct xs_store *store, const struct xs_volume *vol,
           const char *name,
           void (*progress) (uint64_t done, uint64_t total, void *opaque),
           void *opaque, struct xs_snapshot *snap)
{
  struct xs_head *h = xs_volume_open_head (store, vol);
  struct xs_snapshot_op *op;
  int r = -1;

  if (h == NULL)
    return -1;
  op = xs_snapshot_start (store, h, vol, name, snap);
  if (op) {
    r = xs_snapshot_finish (op, NULL, progress, opaque, snap)
      == XS_SNAPSHOT_AVAILABLE ? 0 : -1;
    if (r == -1)
      xs_snapshot_clear (snap);
  }
  xs_head_close (h);            /* reports its own failure */
  return r;
}

/* By a detached sealer that STARTER starts. */
static enum take_result
take_detached (const struct xs_sealer_starter *starter,
               const struct xs_volume *vol, const char *name, bool wait,
               struct xs_snapshot *snap)
{
  switch (starter->start (vol, name, wait, snap, starter->opaque)) {
  case XS_SEALER_START_TAKEN:
    return TAKEN;
  case XS_SEALER_START_BUSY:
    return OWNER_BUSY;
  case XS_SEALER_START_FAILED:
    break;
  }
  return FAILED;
}

int
xs_snapshot_take (struct xs_store *store, const struct xs_volume *vol,
                  const char *name, bool wait,
                  const struct xs_sealer_starter *starter,
                  void (*progress) (uint64_t done, uint64_t total,
                                    void *opaque),
                  void *opaque, struct xs_snapshot *snap)
{
  char *control = volume_file (store, vol, "control.sock");
  char *lock = volume_file (store, vol, "lock");
  int64_t started = xs_now_ns ();
  enum take_result r = FAILED;
  bool told = false;

  /* An owner that serves the volume takes the snapshot; one that holds
   * it without answering is waited for (it is closing the volume); with
   * no owner, it is taken here.
   */
  while (control && lock) {
    switch (find_owner (store, vol, control)) {
    case OWNER_NONE:
      if (starter)
        r = take_detached (starter, vol, name, wait, snap);
      else
        r = take_here (store, vol, name, progress, opaque, snap) == 0
          ? TAKEN : FAILED;
      break;
    case OWNER_SERVING:
      r = take_through_owner (store, control, name, wait, snap);
      break;
    case OWNER_SILENT:
      r = OWNER_BUSY;
      break;
    }
    if (r != OWNER_BUSY)
      break;
    if (wait_for_owner (vol, lock, started, &told) == -1) {
      r = FAILED;
      break;
    }
  }
  free (control);
  free (lock);
  return r == TAKEN ? 0 : -1;
}

int
xs_snapshot_wait_sealed (struct xs_store *store, const char *id,
                         const char *volume_name, pid_t taker,
                         struct xs_snapshot *snap)
{
  pid_t sealer;
  int r;

  for (;;) {
    r = xs_snapshot_lookup_id (store, id, snap);
    if (r == -1)
      return -1;
    if (r == 1) {
      xs_error ("snapshot %s of volume '%s' failed while it was sealed by "
                "the server that attached the volume (its log says why)",
                id, volume_name);
      return -1;
    }
    if (strcmp (snap->status, "pending") != 0)
      return 0;
    /* TAKER may not have recorded itself yet. */
    sealer = xs_snapshot_sealer (store, id);
    xs_snapshot_clear (snap);
    if (xs_process_gone (sealer) && xs_process_gone (taker)) {
      xs_error ("snapshot %s of volume '%s' will never be available: the "
                "process that was sealing it (pid %ld) died", id,
                volume_name, (long) sealer);
      return -1;
    }
    usleep (POLL_US);
  }
}
