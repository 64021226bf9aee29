/* xsnap snapshot: create, list, show and delete snapshots.
 *
 * A volume that is attached is snapshotted by its owner (the nbdkit
 * plugin) over the owner's control socket; one that is not is snapshotted
 * here, in-process.  Either way the output is the same.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "control.h"
#include "access.h"
#include "error.h"
#include "progress.h"
#include "size.h"
#include "snapshot.h"
#include "volume.h"

static void
print_snapshot_line (json_t *snap)
{
  char size[32], stored[32];

  xs_size_format ((uint64_t) json_integer_value (json_object_get (snap, "size")),
                  size, sizeof size);
  xs_size_format ((uint64_t) json_integer_value (json_object_get (snap,
                                                                  "stored_bytes")),
                  stored, sizeof stored);
  const char *shared = json_string_value (json_object_get (snap,
                                                          "shared_from"));

  printf ("%-32s %-21s %-9s %8s %8" PRId64 " %8s %s%s%s\n",
          json_string_value (json_object_get (snap, "volume")),
          json_string_value (json_object_get (snap, "id")),
          json_string_value (json_object_get (snap, "status")), size,
          (int64_t) json_integer_value (json_object_get (snap,
                                                         "changed_blocks")),
          stored, json_string_value (json_object_get (snap, "created")),
          shared && *shared ? " " : "", shared ? shared : "");
}

static void
print_list_header (void)
{
  printf ("%-32s %-21s %-9s %8s %8s %8s %s\n", "SNAPSHOT", "ID", "STATUS",
          "SIZE", "CHANGED", "STORED", "CREATED");
}

/* Print one snapshot (consumes SNAP). */
static int
show_json_snapshot (struct cli *cli, json_t *snap)
{
  const char *key;
  json_t *value;

  if (snap == NULL) {
    xs_error ("cannot describe the snapshot: out of memory");
    return 1;
  }
  if (cli->json)
    return cli_print_json (snap) == 0 ? 0 : 1;
  if (!cli->quiet) {
    printf ("snapshot:        %s@%s\n",
            json_string_value (json_object_get (snap, "volume")),
            json_string_value (json_object_get (snap, "name")));
    json_object_foreach (snap, key, value) {
      if (json_is_string (value))
        printf ("%-16s %s\n", key, json_string_value (value));
      else
        printf ("%-16s %" PRId64 "\n", key,
                (int64_t) json_integer_value (value));
    }
  }
  json_decref (snap);
  return 0;
}

/* Through the owner of an attached volume.  Returns -2 if no owner
 * answered (it was closing the volume).
 */
static int
create_through_owner (struct cli *cli, const struct xs_volume *vol,
                      const char *name, bool wait)
{
  char *dir = xs_volume_dir (cli->store, vol), *path = NULL;
  json_t *request, *reply = NULL;
  int r = -1;

  if (dir == NULL || asprintf (&path, "%s/control.sock", dir) == -1) {
    xs_error ("cannot reach the owner of volume '%s': %m", vol->name);
    goto out;
  }
  request = json_pack ("{s:s, s:s?, s:b}", "op", "snapshot", "name", name,
                       "wait", wait);
  if (request)
    r = xs_control_call (path, request, &reply);
  json_decref (request);
  if (r == 0) {
    r = show_json_snapshot (cli, json_incref (json_object_get (reply,
                                                               "snapshot")));
    json_decref (reply);
  }
 out:
  free (dir);
  free (path);
  return r;
}

static int
create_here (struct cli *cli, const struct xs_volume *vol, const char *name)
{
  struct xs_snapshot snap;
  struct progress progress;
  int r;

  progress_init (&progress, "sealing", cli->quiet || cli->json, -1);
  r = xs_snapshot_create_offline (cli->store, vol, name, progress_update,
                                  &progress, &snap);
  progress_end (&progress);
  if (r == -1)
    return 1;
  r = show_json_snapshot (cli, xs_snapshot_to_json (&snap));
  xs_snapshot_clear (&snap);
  return r;
}

/* Whether VOL has an owner we can ask.  An owner that is closing the
 * volume (its last client just left) has already stopped listening but
 * still holds the lock for a moment: wait for it to finish.
 */
static bool
owner_is_reachable (struct cli *cli, const struct xs_volume *vol)
{
  char *dir = xs_volume_dir (cli->store, vol), *path = NULL;
  bool reachable = false;
  int tries;

  if (dir == NULL || asprintf (&path, "%s/control.sock", dir) == -1)
    goto out;
  for (tries = 0; tries < 100; tries++) {
    if (xs_volume_in_use (cli->store, vol) != 1)
      break;
    if (access (path, F_OK) == 0) {
      reachable = true;
      break;
    }
    usleep (20000);
  }
 out:
  free (dir);
  free (path);
  return reachable;
}

static int
snapshot_create (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "name", required_argument, NULL, 'n' },
    { "wait", no_argument, NULL, 'w' },
    { NULL, 0, NULL, 0 },
  };
  const char *name = NULL;
  bool wait = false;
  struct xs_volume vol;
  char *arg;
  int c, status;

  while ((c = cli_next_option (cli, argc, argv, "n:w", options,
                               &arg)) != -1) {
    switch (c) {
    case 'n': name = arg; break;
    case 'w': wait = true; break;
    default: return cli_usage ("snapshot create", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("snapshot create", "expected one volume");
  if (cli_open (cli) == -1
      || xs_volume_find (cli->store, &cli->scope, argv[optind], false,
                         &vol) != 0)
    return 1;
  if (xs_access_volume (cli->store, cli->scope.account,
                        "xsnap:CreateSnapshot", &vol) == -1) {
    xs_volume_clear (&vol);
    return 1;
  }
  /* An owner closing the volume may not answer: look again, and do it
   * here once nobody owns the volume.
   */
  for (int tries = 0; ; tries++) {
    status = owner_is_reachable (cli, &vol)
      ? create_through_owner (cli, &vol, name, wait)
      : create_here (cli, &vol, name);
    if (status != -2)
      break;
    if (tries == 250) {
      xs_error ("the owner of volume '%s' does not answer", vol.name);
      break;
    }
    usleep (20000);
  }
  if (status < 0)
    status = 1;
  xs_volume_clear (&vol);
  return status;
}

static int
append_snapshot (const struct xs_snapshot *snap, void *opaque)
{
  return json_array_append_new (opaque, xs_snapshot_to_json (snap));
}

static int
snapshot_list (struct cli *cli, int argc, char **argv)
{
  json_t *array, *snap;
  char *arg;
  size_t i;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("snapshot list", "bad option");
  if (optind + 1 < argc)
    return cli_usage ("snapshot list", "expected at most one volume");
  if (cli_open (cli) == -1)
    return 1;
  array = json_array ();
  if (array == NULL
      || xs_snapshot_list (cli->store, &cli->scope,
                           optind < argc ? argv[optind] : NULL,
                           append_snapshot, array) != 0) {
    json_decref (array);
    return 1;
  }
  if (cli->json)
    return cli_print_json (json_pack ("{s:o}", "snapshots", array)) ? 1 : 0;
  if (!cli->quiet)
    print_list_header ();
  json_array_foreach (array, i, snap) {
    json_t *line = json_deep_copy (snap);
    char label[128];
    snprintf (label, sizeof label, "%s@%s",
              json_string_value (json_object_get (snap, "volume")),
              json_string_value (json_object_get (snap, "name")));
    json_object_set_new (line, "volume", json_string (label));
    print_snapshot_line (line);
    json_decref (line);
  }
  json_decref (array);
  return 0;
}

/* "ACTION SNAP": parse and find SNAP. */
static int
one_snapshot (struct cli *cli, int argc, char **argv, const char *command,
              const char *action, struct xs_snapshot *snap)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage (command, "bad option");
  if (optind + 1 != argc)
    return cli_usage (command, "expected one snapshot (VOLUME@NAME or id)");
  if (cli_open (cli) == -1)
    return 1;
  return xs_access_find_snapshot (cli->store, &cli->scope, argv[optind],
                                  action, false, snap) == 0 ? 0 : 1;
}

static int
snapshot_show (struct cli *cli, int argc, char **argv)
{
  struct xs_snapshot snap;
  int status = one_snapshot (cli, argc, argv, "snapshot show",
                             "xsnap:DescribeSnapshots", &snap);

  if (status != 0)
    return status;
  status = show_json_snapshot (cli, xs_snapshot_to_json (&snap));
  xs_snapshot_clear (&snap);
  return status;
}

static int
snapshot_delete (struct cli *cli, int argc, char **argv)
{
  struct xs_snapshot snap;
  int status = one_snapshot (cli, argc, argv, "snapshot delete",
                             "xsnap:DeleteSnapshot", &snap);

  if (status != 0)
    return status;
  status = xs_snapshot_delete (cli->store, &snap) == 0
    && xs_audit_snapshot (cli->store, cli->scope.account,
                          "xsnap:DeleteSnapshot", &snap) == 0 ? 0 : 1;
  if (status == 0 && cli->json)
    status = cli_print_json (json_pack ("{s:s, s:s}", "deleted", snap.id,
                                        "name", snap.name)) ? 1 : 0;
  else if (status == 0 && !cli->quiet)
    printf ("deleted snapshot %s@%s (%s)\n", snap.volume_name, snap.name,
            snap.id);
  xs_snapshot_clear (&snap);
  return status;
}

int
cmd_snapshot (struct cli *cli, int argc, char **argv)
{
  static const struct {
    const char *name;
    int (*run) (struct cli *cli, int argc, char **argv);
  } actions[] = {
    { "create", snapshot_create },
    { "list", snapshot_list },
    { "show", snapshot_show },
    { "delete", snapshot_delete },
  };
  size_t i;

  if (argc < 2)
    return cli_usage ("snapshot", "expected create, list, show or delete");
  for (i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp (argv[1], actions[i].name) == 0) {
      optind = 0;
      return actions[i].run (cli, argc - 1, argv + 1);
    }
  return cli_usage ("snapshot", "unknown action '%s'", argv[1]);
}
