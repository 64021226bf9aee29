/* xsnap snapshot: create, list, show and delete snapshots.
 *
 * Taking one goes through lib/snaptake (the owner of an attached volume
 * takes it); either way the output is the same.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/audit.h"
#include "cli.h"
#include "access/access.h"
#include "access/share.h"
#include "base/error.h"
#include "catalog/job.h"
#include "base/size.h"
#include "catalog/snapshot.h"
#include "ops/snaptake.h"
#include "sealer.h"
#include "catalog/volume.h"

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
      else if (json_is_boolean (value))
        printf ("%-16s %s\n", key, json_is_true (value) ? "yes" : "no");
      else
        printf ("%-16s %" PRId64 "\n", key,
                (int64_t) json_integer_value (value));
    }
  }
  json_decref (snap);
  return 0;
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
  struct xs_snapshot snap;
  struct xs_sealer_starter starter = { sealer_start, cli };
  char *arg;
  int c, r, status;

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
  r = xs_snapshot_take (cli->store, &vol, name, wait, &starter, NULL, NULL,
                        &snap);
  status = 1;
  if (r == 0) {
    status = show_json_snapshot (cli, xs_snapshot_to_json (&snap));
    xs_snapshot_clear (&snap);
  }
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
append_copy (const struct xs_job *job, void *opaque)
{
  json_t *copies = opaque;

  return json_array_append_new (copies, json_pack ("{s:s, s:s, s:s, s:s,"
                                                   " s:s, s:I, s:I}",
                                                   "job", job->id,
                                                   "status", job->status,
                                                   "to_account",
                                                   job->dest_account,
                                                   "to_region",
                                                   job->dest_region,
                                                   "copy", job->dest_snapshot,
                                                   "done_bytes",
                                                   (json_int_t)
                                                   job->done_bytes,
                                                   "total_bytes",
                                                   (json_int_t)
                                                   job->total_bytes));
}

/* The copies made of SNAP (their status and progress), when the caller
 * owns it; an empty array otherwise.
 */
static json_t *
list_copies (struct cli *cli, const struct xs_snapshot *snap)
{
  json_t *copies = json_array ();

  if (copies && snap->shared_from == NULL
      && xs_job_list (cli->store, NULL, XS_JOB_ALL, snap->id, NULL,
                      append_copy,
                      copies) == -1)
    json_array_clear (copies);
  return copies;
}

static void
print_copies (json_t *copies)
{
  json_t *c;
  size_t i;
  int64_t total, done;

  json_array_foreach (copies, i, c) {
    total = json_integer_value (json_object_get (c, "total_bytes"));
    done = json_integer_value (json_object_get (c, "done_bytes"));
    printf ("%-16s %s to %s/%s: %s, %d%% %s\n", "copy",
            json_string_value (json_object_get (c, "job")),
            json_string_value (json_object_get (c, "to_account")),
            json_string_value (json_object_get (c, "to_region")),
            json_string_value (json_object_get (c, "status")),
            total ? (int) (100 * done / total) : 100,
            json_string_value (json_object_get (c, "copy")));
  }
}

static int
snapshot_show (struct cli *cli, int argc, char **argv)
{
  struct xs_snapshot snap;
  json_t *json, *copies;
  int status = one_snapshot (cli, argc, argv, "snapshot show",
                             "xsnap:DescribeSnapshots", &snap);

  if (status != 0)
    return status;
  copies = list_copies (cli, &snap);
  if (cli->json) {
    json = xs_snapshot_to_json (&snap);
    if (json && copies)
      json_object_set (json, "copies", copies);
    status = show_json_snapshot (cli, json);
  }
  else {
    status = show_json_snapshot (cli, xs_snapshot_to_json (&snap));
    if (status == 0 && copies && !cli->quiet)
      print_copies (copies);
  }
  json_decref (copies);
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
  status = xs_share_delete_snapshot (cli->store, cli->scope.account, NULL,
                                     &snap) == 0 ? 0 : 1;
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
    { "sealer", snapshot_sealer },
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
