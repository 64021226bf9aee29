/* xsnap receive: take a replication stream (from `xsnap send`) into the
 * current account and region, or list the interrupted receives that can
 * be resumed (--token).  Ctrl-C or SIGTERM stops a receive the way a cut
 * stream does: what arrived is kept and the resume command is printed.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "access/access.h"
#include "cli.h"
#include "base/error.h"
#include "progress.h"
#include "ops/receive.h"
#include "transfer.h"

struct receive_options {
  const char *name;
  const char *input;            /* -i, NULL for stdin */
  bool list_tokens;             /* --token */
  const char *key;              /* --key */
  bool encrypt;                 /* --encrypt */
  struct progress_option progress;
};

static json_t *
pending_to_json (const struct xs_receive_pending *p)
{
  const struct xs_stream_info *info = p->info;

  return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s?, s:I, s:I, s:I, s:I,"
                    " s:b, s:s}",
                    "token", p->token, "stream_id", info->stream_id,
                    "snapshot_id", info->snapshot_id,
                    "volume_name", info->volume_name,
                    "snapshot_name", info->snapshot_name,
                    "base_snapshot_id", info->base_snapshot_id[0]
                    ? info->base_snapshot_id : NULL,
                    "next_block", (json_int_t) p->next_block,
                    "nblocks", (json_int_t) info->nblocks,
                    "blocks_received", (json_int_t) p->blocks_received,
                    "stored_bytes", (json_int_t) p->stored_bytes,
                    "active", p->active, "command", p->command);
}

static int
print_pending (const struct xs_receive_pending *p, void *opaque)
{
  struct cli *cli = opaque;
  const struct xs_stream_info *info = p->info;

  if (cli->quiet) {
    printf ("%s\n", p->token);
    return 0;
  }
  printf ("token:     %s\n"
          "snapshot:  %s@%s (%s)%s%s\n"
          "progress:  next block %" PRIu64 " of %" PRIu64 ", %" PRIu64
          " blocks received%s\n"
          "resume:    %s\n\n",
          p->token, info->volume_name, info->snapshot_name,
          info->snapshot_id, info->base_snapshot_id[0] ? " from " : "",
          info->base_snapshot_id, p->next_block, info->nblocks,
          p->blocks_received, p->active ? " (receiving now)" : "",
          p->command);
  return 0;
}

static int
append_pending (const struct xs_receive_pending *p, void *opaque)
{
  return json_array_append_new (opaque, pending_to_json (p));
}

static int
list_tokens (struct cli *cli)
{
  json_t *array;

  if (!cli->json)
    return xs_receive_list_pending (cli->store, &cli->scope, print_pending,
                                    cli) == 0 ? 0 : 1;
  array = json_array ();
  if (array == NULL
      || xs_receive_list_pending (cli->store, &cli->scope, append_pending,
                                  array) != 0) {
    json_decref (array);
    return 1;
  }
  return cli_print_json (json_pack ("{s:o}", "pending", array)) ? 1 : 0;
}

static int
print_received (struct cli *cli, const struct xs_snapshot *snap)
{
  if (cli->json)
    return cli_print_json (xs_snapshot_to_json (snap)) ? 1 : 0;
  if (!cli->quiet)
    printf ("received snapshot %s@%s (%s)%s%s: %" PRIu64 " blocks changed, "
            "%" PRIu64 " bytes stored\n", snap->volume_name, snap->name,
            snap->id, snap->parent_id[0] ? " from " : "", snap->parent_id,
            snap->changed_blocks, snap->stored_bytes);
  return 0;
}

static int
open_input (const char *path)
{
  int fd;

  if (path == NULL) {
    if (isatty (STDIN_FILENO)) {
      xs_error ("refusing to read a stream from a terminal: redirect "
                "standard input or use -i FILE");
      return -1;
    }
    return STDIN_FILENO;
  }
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    xs_error ("cannot open %s: %m", path);
  return fd;
}

static int
receive_stream (struct cli *cli, const struct receive_options *o)
{
  struct xs_snapshot snap;
  struct progress progress;
  const atomic_int *stop;
  int fd = open_input (o->input), r;

  if (fd == -1)
    return 1;
  transfer_grow_pipe (fd);
  stop = transfer_catch_interrupts ();
  progress_init_option (&progress, "receiving", cli->quiet || cli->json,
                        &o->progress);
  r = xs_receive (cli->store, &cli->scope, fd, o->name, o->key, o->encrypt,
                  stop,
                  progress_update, &progress, &snap);
  progress_end (&progress);
  if (o->input)
    close (fd);
  if (r == -1)
    return 1;
  r = print_received (cli, &snap);
  xs_snapshot_clear (&snap);
  return r;
}

static int
parse_receive_options (struct cli *cli, int argc, char **argv,
                       struct receive_options *o)
{
  static const struct option options[] = {
    { "name", required_argument, NULL, 'n' },
    { "input", required_argument, NULL, 'i' },
    { "token", no_argument, NULL, 't' },
    { "key", required_argument, NULL, 'k' },
    { "encrypt", no_argument, NULL, 'E' },
    PROGRESS_OPTION ('p'),
    { NULL, 0, NULL, 0 },
  };
  char *arg;
  int c;

  while ((c = cli_next_option (cli, argc, argv, "n:i:", options,
                               &arg)) != -1) {
    switch (c) {
    case 'n': o->name = arg; break;
    case 'i': o->input = strcmp (arg, "-") == 0 ? NULL : arg; break;
    case 'k': o->key = arg; break;
    case 'E': o->encrypt = true; break;
    case 't': o->list_tokens = true; break;
    case 'p':
      if (progress_parse_option (arg, &o->progress) == -1)
        return EXIT_USAGE;
      break;
    default: return cli_usage ("receive", "bad option");
    }
  }
  if (optind != argc)
    return cli_usage ("receive", "unexpected argument '%s'", argv[optind]);
  if (o->list_tokens && (o->name || o->input))
    return cli_usage ("receive", "--token lists pending receives; it takes "
                      "no --name or -i");
  return 0;
}

int
cmd_receive (struct cli *cli, int argc, char **argv)
{
  struct receive_options o = { .progress = PROGRESS_OPTION_INIT };
  int status = parse_receive_options (cli, argc, argv, &o);

  if (status != 0)
    return status;
  if (cli_open (cli) == -1
      || (!o.list_tokens
          && xs_access_scope (cli->store, &cli->scope,
                              "xsnap:ReceiveSnapshot", "snapshot",
                              o.name ? o.name : "*") == -1))
    return 1;
  return o.list_tokens ? list_tokens (cli) : receive_stream (cli, &o);
}
