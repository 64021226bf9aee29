/* xsnap volume: create, list, show, delete and resize live volumes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "catalog/audit.h"
#include "cli.h"
#include "ops/clone.h"
#include "base/error.h"
#include "head/head.h"
#include "progress.h"
#include "base/size.h"
#include "catalog/volume.h"

/* Attached: an NBD server owns it (a detached sealer only seals). */
static bool
is_attached (struct cli *cli, const struct xs_volume *vol)
{
  return xs_volume_in_use (cli->store, vol) == 1
    && !xs_volume_owned_by_sealer (cli->store, vol);
}

static json_t *
volume_to_json (struct cli *cli, const struct xs_volume *vol)
{
  char created[32];
  bool attached = is_attached (cli, vol);

  cli_format_time (vol->created_ns, created, sizeof created);
  return json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:o, s:s, s:s,"
                    " s:b, s:s}",
                    "id", vol->id, "name", vol->name,
                    "account", vol->account, "region", vol->region,
                    "size", (json_int_t) vol->size,
                    "block_size", (json_int_t) vol->block_size,
                    "created", created,
                    "attached", attached ? json_true () : json_false (),
                    "last_snapshot", vol->base_snapshot_id,
                    "source_snapshot", vol->source_snapshot_id,
                    "encrypted", xs_volume_is_encrypted (vol),
                    "key_id", vol->key_id);
}

static int
print_volume_line (const struct xs_volume *vol, void *opaque)
{
  struct cli *cli = opaque;
  char size[32], block[32], created[32];

  xs_size_format (vol->size, size, sizeof size);
  xs_size_format (vol->block_size, block, sizeof block);
  cli_format_time (vol->created_ns, created, sizeof created);
  printf ("%-24s %-21s %8s %6s %-8s %s\n", vol->name, vol->id, size, block,
          is_attached (cli, vol) ? "yes" : "no", created);
  return 0;
}

static int
append_volume_json (const struct xs_volume *vol, void *opaque)
{
  struct cli *cli = ((void **) opaque)[0];
  json_t *array = ((void **) opaque)[1];

  return json_array_append_new (array, volume_to_json (cli, vol));
}

static int
show_volume (struct cli *cli, const struct xs_volume *vol)
{
  char size[32], block[32], created[32];

  if (cli->json)
    return cli_print_json (volume_to_json (cli, vol)) == 0 ? 0 : 1;
  xs_size_format (vol->size, size, sizeof size);
  xs_size_format (vol->block_size, block, sizeof block);
  cli_format_time (vol->created_ns, created, sizeof created);
  printf ("name:        %s\n"
          "id:          %s\n"
          "account:     %s\n"
          "region:      %s\n"
          "size:        %s (%" PRIu64 " bytes)\n"
          "block size:  %s\n"
          "created:     %s\n"
          "attached:    %s\n"
          "last snapshot: %s\n"
          "reads from:  %s\n"
          "encrypted:   %s%s\n",
          vol->name, vol->id, vol->account, vol->region, size, vol->size,
          block, created,
          is_attached (cli, vol) ? "yes" : "no",
          vol->base_snapshot_id[0] ? vol->base_snapshot_id : "(none)",
          vol->source_snapshot_id[0] ? vol->source_snapshot_id
          : "(nothing: fully in its head)",
          xs_volume_is_encrypted (vol) ? "yes, key " : "no",
          vol->key_id);
  return 0;
}

static int
volume_create (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "size", required_argument, NULL, 's' },
    { "block-size", required_argument, NULL, 'b' },
    { "from-snapshot", required_argument, NULL, 'f' },
    { "encrypt", no_argument, NULL, 'e' },
    { "key", required_argument, NULL, 'k' },
    { NULL, 0, NULL, 0 },
  };
  const char *size_text = NULL, *block_text = NULL, *from = NULL;
  const char *key = NULL;
  bool encrypt = false;
  uint64_t size, block_size = XS_BLOCK_SIZE_DEFAULT;
  struct xs_volume vol;
  char *arg;
  int c, status;

  while ((c = cli_next_option (cli, argc, argv, "s:b:", options,
                               &arg)) != -1) {
    switch (c) {
    case 's': size_text = arg; break;
    case 'b': block_text = arg; break;
    case 'f': from = arg; break;
    case 'e': encrypt = true; break;
    case 'k': key = arg; break;
    default: return cli_usage ("volume create", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("volume create", "expected one volume NAME");
  if (from) {
    if (size_text || block_text)
      return cli_usage ("volume create", "--from-snapshot takes the size and "
                        "block size of the snapshot");
    if (cli_open (cli) == -1
        || xs_access_scope (cli->store, &cli->scope, "xsnap:CreateVolume",
                            "volume", argv[optind]) == -1
        || xs_clone_create (cli->store, &cli->scope, argv[optind], from,
                            encrypt, key, &vol) == -1)
      return 1;
    status = cli->json || !cli->quiet ? show_volume (cli, &vol) : 0;
    xs_volume_clear (&vol);
    return status;
  }
  if (size_text == NULL)
    return cli_usage ("volume create", "--size SIZE is required");
  if (cli_parse_size (size_text, "size", &size) == -1
      || (block_text && cli_parse_size (block_text, "block size",
                                        &block_size) == -1)
      || xs_volume_check_block_size (block_size) == -1
      || cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope, "xsnap:CreateVolume",
                          "volume", argv[optind]) == -1)
    return 1;
  if (key && !encrypt)
    return cli_usage ("volume create", "--key KEY goes with --encrypt");
  if (encrypt
      ? xs_volume_create_encrypted (cli->store, &cli->scope, argv[optind],
                                    size, (uint32_t) block_size, key,
                                    &vol) == -1
      : xs_volume_create (cli->store, &cli->scope, argv[optind], size,
                          (uint32_t) block_size, &vol) == -1)
    return 1;
  if (cli->json || !cli->quiet)
    status = show_volume (cli, &vol);
  else
    status = 0;
  xs_volume_clear (&vol);
  return status;
}

static int
volume_list (struct cli *cli, int argc, char **argv)
{
  char *arg;
  int r;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("volume list", "bad option");
  if (optind != argc)
    return cli_usage ("volume list", "unexpected argument '%s'",
                      argv[optind]);
  if (cli_open (cli) == -1)
    return 1;
  if (cli->json) {
    json_t *array = json_array ();
    void *ctx[2] = { cli, array };
    if (array == NULL
        || xs_volume_list (cli->store, &cli->scope, append_volume_json,
                           ctx) != 0) {
      json_decref (array);
      return 1;
    }
    return cli_print_json (json_pack ("{s:o}", "volumes", array)) ? 1 : 0;
  }
  if (!cli->quiet)
    printf ("%-24s %-21s %8s %6s %-8s %s\n", "NAME", "ID", "SIZE", "BLOCK",
            "ATTACHED", "CREATED");
  r = xs_volume_list (cli->store, &cli->scope, print_volume_line, cli);
  return r == 0 ? 0 : 1;
}

/* The permission each "volume ACTION" needs. */
static const char *
volume_action (const char *command)
{
  static const struct {
    const char *command, *action;
  } actions[] = {
    { "volume show", "xsnap:DescribeVolumes" },
    { "volume delete", "xsnap:DeleteVolume" },
    { "volume resize", "xsnap:ResizeVolume" },
    { "volume hydrate", "xsnap:HydrateVolume" },
    { "volume reset", "xsnap:ResetVolume" },
  };

  for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp (actions[i].command, command) == 0)
      return actions[i].action;
  abort ();
}

/* Parse "ACTION VOL" with no options, find VOL and check that the caller
 * may take ACTION on it.
 */
static int
one_volume (struct cli *cli, int argc, char **argv, const char *command,
            const struct option *options, const char *short_opts,
            int (*on_option) (int c, char *arg, void *opaque), void *opaque,
            struct xs_volume *vol)
{
  char *arg;
  int c;

  while ((c = cli_next_option (cli, argc, argv, short_opts, options,
                               &arg)) != -1) {
    if (on_option == NULL || on_option (c, arg, opaque) == -1)
      return cli_usage (command, "bad option");
  }
  if (optind + 1 != argc)
    return cli_usage (command, "expected one volume name");
  if (cli_open (cli) == -1
      || xs_volume_find (cli->store, &cli->scope, argv[optind], false,
                         vol) != 0)
    return 1;
  if (xs_access_volume (cli->store, cli->scope.account,
                        volume_action (command), vol) == -1) {
    xs_volume_clear (vol);
    return 1;
  }
  return 0;
}

static int
volume_show (struct cli *cli, int argc, char **argv)
{
  struct xs_volume vol;
  int status;

  status = one_volume (cli, argc, argv, "volume show", NULL, "", NULL, NULL,
                       &vol);
  if (status != 0)
    return status;
  status = show_volume (cli, &vol);
  xs_volume_clear (&vol);
  return status;
}

static int
volume_delete (struct cli *cli, int argc, char **argv)
{
  struct xs_volume vol;
  int status;

  status = one_volume (cli, argc, argv, "volume delete", NULL, "", NULL,
                       NULL, &vol);
  if (status != 0)
    return status;
  status = xs_volume_delete (cli->store, cli->scope.account, &vol) == 0
    ? 0 : 1;
  if (status == 0 && cli->json)
    status = cli_print_json (json_pack ("{s:s, s:s}", "deleted", vol.name,
                                        "id", vol.id)) ? 1 : 0;
  else if (status == 0 && !cli->quiet)
    printf ("deleted volume '%s' (%s)\n", vol.name, vol.id);
  xs_volume_clear (&vol);
  return status;
}

static int
take_size (int c, char *arg, void *opaque)
{
  if (c != 's')
    return -1;
  *(const char **) opaque = arg;
  return 0;
}

static int
volume_resize (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "size", required_argument, NULL, 's' },
    { NULL, 0, NULL, 0 },
  };
  const char *size_text = NULL;
  struct xs_volume vol;
  uint64_t size;
  int status;

  status = one_volume (cli, argc, argv, "volume resize", options, "s:",
                       take_size, &size_text, &vol);
  if (status != 0)
    return status;
  if (size_text == NULL)
    status = cli_usage ("volume resize", "--size SIZE is required");
  else if (cli_parse_size (size_text, "size", &size) == -1
           || xs_volume_resize (cli->store, &vol, size) == -1)
    status = 1;
  else
    status = cli->quiet && !cli->json ? 0 : show_volume (cli, &vol);
  xs_volume_clear (&vol);
  return status;
}

/* volume hydrate's options. */
struct hydrate_args {
  uint64_t rate;
  struct progress_option progress;
};

static int
take_hydrate_option (int c, char *arg, void *opaque)
{
  struct hydrate_args *a = opaque;

  if (c == 'r')
    return cli_parse_size (arg, "rate", &a->rate);
  if (c == 'p')
    return progress_parse_option (arg, &a->progress);
  return -1;
}

static int
volume_hydrate (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "rate", required_argument, NULL, 'r' },
    PROGRESS_OPTION ('p'),
    { NULL, 0, NULL, 0 },
  };
  struct hydrate_args args = { .progress = PROGRESS_OPTION_INIT };
  struct xs_hydrate_options hydrate = { .progress = progress_update };
  struct xs_volume vol;
  struct progress progress;
  uint64_t copied;
  double seconds;
  int status;

  status = one_volume (cli, argc, argv, "volume hydrate", options, "",
                       take_hydrate_option, &args, &vol);
  if (status != 0)
    return status;
  progress_init_option (&progress, "hydrating", cli->quiet || cli->json,
                        &args.progress);
  progress_set_unit (&progress, vol.block_size);
  hydrate.opaque = &progress;
  hydrate.rate = args.rate;
  status = xs_volume_hydrate (cli->store, &vol, &hydrate, &copied) == 0
    ? 0 : 1;
  seconds = progress_seconds (&progress);
  progress_end (&progress);
  if (status == 0 && cli->json)
    status = cli_print_json (json_pack ("{s:s, s:I, s:I, s:f}",
                                        "volume", vol.name,
                                        "blocks_copied", (json_int_t) copied,
                                        "bytes_copied",
                                        (json_int_t) (copied
                                                      * vol.block_size),
                                        "seconds", seconds)) ? 1 : 0;
  else if (status == 0 && !cli->quiet)
    printf ("volume '%s' is fully hydrated (%" PRIu64 " blocks copied "
            "in %.2f s)\n", vol.name, copied, seconds);
  xs_volume_clear (&vol);
  return status;
}

static int
take_to (int c, char *arg, void *opaque)
{
  if (c != 't')
    return -1;
  *(const char **) opaque = arg;
  return 0;
}

static int
volume_reset (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "to", required_argument, NULL, 't' },
    { NULL, 0, NULL, 0 },
  };
  const char *to = NULL;
  struct xs_volume vol;
  int status;

  status = one_volume (cli, argc, argv, "volume reset", options, "t:",
                       take_to, &to, &vol);
  if (status != 0)
    return status;
  if (to == NULL)
    status = cli_usage ("volume reset", "--to SNAPSHOT is required");
  else if (xs_clone_reset (cli->store, &vol, to) == -1)
    status = 1;
  else
    status = cli->quiet && !cli->json ? 0 : show_volume (cli, &vol);
  xs_volume_clear (&vol);
  return status;
}

int
cmd_volume (struct cli *cli, int argc, char **argv)
{
  static const struct {
    const char *name;
    int (*run) (struct cli *cli, int argc, char **argv);
  } actions[] = {
    { "create", volume_create },
    { "list", volume_list },
    { "show", volume_show },
    { "delete", volume_delete },
    { "resize", volume_resize },
    { "hydrate", volume_hydrate },
    { "reset", volume_reset },
  };
  size_t i;

  if (argc < 2)
    return cli_usage ("volume", "expected create, list, show, delete, "
                      "resize, hydrate or reset");
  for (i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp (argv[1], actions[i].name) == 0) {
      optind = 0;               /* restart getopt on the action's words */
      return actions[i].run (cli, argc - 1, argv + 1);
    }
  return cli_usage ("volume", "unknown action '%s'", argv[1]);
}
