/* xsnap import: copy any NBD export (qemu-nbd, another nbdkit, ...) into
 * a new volume, skipping what the server reports as zero; or, with
 * --dirty-bitmap, only what the export's dirty bitmap marks into the
 * volume that holds the last copy (an incremental backup).
 */
#include <inttypes.h>
#include <stdio.h>

#include "access/access.h"
#include "cli.h"
#include "base/error.h"
#include "ops/nbdxfer.h"
#include "ops/snaptake.h"
#include "progress.h"
#include "base/size.h"
#include "transfer.h"

struct import_args {
  const char *uri;
  const char *volume;
  const char *bitmap;           /* --dirty-bitmap, or NULL */
  const char *snapshot;         /* --snapshot, or NULL */
  uint64_t block_size;
};

static json_t *
import_json (const struct import_args *a, const struct xs_transfer_report *r,
             const struct xs_snapshot *snap)
{
  json_t *root = json_pack ("{s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:I, s:I,"
                            " s:I, s:I, s:i, s:f}",
                            "volume", r->name, "id", r->id, "uri", a->uri,
                            "size", (json_int_t) r->size,
                            "source_size", (json_int_t) r->source_size,
                            "block_size", (json_int_t) r->block_size,
                            "rounded", r->rounded,
                            "bytes_read", (json_int_t) r->bytes_read,
                            "bytes_written", (json_int_t) r->bytes_written,
                            "holes_skipped", (json_int_t) r->holes_skipped,
                            "zeros_skipped", (json_int_t) r->zeros_skipped,
                            "connections", (int) r->connections,
                            "seconds", r->seconds);

  if (root && a->bitmap
      && json_object_update_new (root,
                                 json_pack ("{s:s, s:I, s:I, s:I}",
                                            "dirty_bitmap", a->bitmap,
                                            "bytes_dirty",
                                            (json_int_t) r->bytes_dirty,
                                            "bytes_zeroed",
                                            (json_int_t) r->bytes_zeroed,
                                            "clean_skipped",
                                            (json_int_t) r->clean_skipped))
         == -1) {
    json_decref (root);
    return NULL;
  }
  if (root && json_object_set_new (root, "snapshot",
                                   snap ? xs_snapshot_to_json (snap)
                                   : json_null ()) == -1) {
    json_decref (root);
    return NULL;
  }
  return root;
}

static void
print_full (const struct import_args *a, const struct xs_transfer_report *r)
{
  char line[128], read[32], written[32], holes[32], zeros[32], block[32];

  transfer_format_rate (r, line, sizeof line);
  xs_size_format (r->bytes_read, read, sizeof read);
  xs_size_format (r->bytes_written, written, sizeof written);
  xs_size_format (r->holes_skipped, holes, sizeof holes);
  xs_size_format (r->zeros_skipped, zeros, sizeof zeros);
  printf ("imported %s into volume '%s' (%s): %s\n"
          "read %s, wrote %s; skipped %s of holes and %s of zeroes; "
          "%u connection%s\n", a->uri, r->name, r->id, line, read, written,
          holes, zeros, r->connections, r->connections == 1 ? "" : "s");
  if (r->rounded) {
    xs_size_format (r->block_size, block, sizeof block);
    printf ("the export's size, %" PRIu64 " bytes, is not a multiple of "
            "the block size (%s): the volume is %" PRIu64 " bytes, and "
            "its last %" PRIu64 " read as zeroes\n", r->source_size, block,
            r->size, r->size - r->source_size);
  }
}

static void
print_incremental (const struct import_args *a,
                   const struct xs_transfer_report *r)
{
  char line[128], dirty[32], read[32], written[32], zeroed[32], clean[32];

  transfer_format_rate (r, line, sizeof line);
  xs_size_format (r->bytes_dirty, dirty, sizeof dirty);
  xs_size_format (r->bytes_read, read, sizeof read);
  xs_size_format (r->bytes_written, written, sizeof written);
  xs_size_format (r->bytes_zeroed, zeroed, sizeof zeroed);
  xs_size_format (r->clean_skipped, clean, sizeof clean);
  printf ("imported the changes of %s (dirty bitmap '%s') into volume "
          "'%s' (%s): %s\n"
          "%s to copy: read %s, wrote %s, zeroed %s; left %s alone; "
          "%u connection%s\n", a->uri, a->bitmap, r->name, r->id, line,
          dirty, read, written, zeroed, clean, r->connections,
          r->connections == 1 ? "" : "s");
}

static int
print_import (struct cli *cli, const struct import_args *a,
              const struct xs_transfer_report *r,
              const struct xs_snapshot *snap)
{
  if (cli->json)
    return cli_print_json (import_json (a, r, snap)) ? 1 : 0;
  if (cli->quiet)
    return 0;
  if (a->bitmap)
    print_incremental (a, r);
  else
    print_full (a, r);
  if (snap)
    printf ("snapshot %s@%s (%s)\n", snap->volume_name, snap->name,
            snap->id);
  return 0;
}

/* The snapshot of a volume just imported whole (no server can have
 * attached it yet unless someone was quick: then it is taken through
 * that server).
 */
static int
snapshot_imported (struct cli *cli, const struct import_args *a,
                   const struct xs_transfer_report *r,
                   struct xs_snapshot *snap)
{
  struct xs_volume vol;
  int ret = -1;

  if (xs_volume_find (cli->store, &cli->scope, r->id, false, &vol) != 0)
    return -1;
  if (xs_access_volume (cli->store, cli->scope.account,
                        "xsnap:CreateSnapshot", &vol) == 0)
    ret = xs_snapshot_take (cli->store, &vol, a->snapshot, true, NULL, NULL,
                            NULL, snap);
  xs_volume_clear (&vol);
  return ret;
}

static int
parse_import (struct cli *cli, int argc, char **argv, struct import_args *a,
              struct progress_option *progress_opt)
{
  static const struct option options[] = {
    { "volume", required_argument, NULL, 'n' },
    { "block-size", required_argument, NULL, 'b' },
    { "dirty-bitmap", required_argument, NULL, 'd' },
    { "snapshot", required_argument, NULL, 's' },
    PROGRESS_OPTION ('p'),
    { NULL, 0, NULL, 0 },
  };
  const char *block_text = NULL;
  char *arg;
  int c;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'n': a->volume = arg; break;
    case 'b': block_text = arg; break;
    case 'd': a->bitmap = arg; break;
    case 's': a->snapshot = arg; break;
    case 'p':
      if (progress_parse_option (arg, progress_opt) == -1)
        return EXIT_USAGE;
      break;
    default: return cli_usage ("import", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("import", "expected one NBD URI");
  if (a->volume == NULL)
    return cli_usage ("import", "--volume NAME is required");
  if (a->bitmap && block_text)
    return cli_usage ("import", "--dirty-bitmap imports into an existing "
                      "volume, whose block size is its own");
  a->uri = argv[optind];
  if ((block_text && cli_parse_size (block_text, "block size",
                                     &a->block_size) == -1)
      || xs_volume_check_block_size (a->block_size) == -1)
    return 1;
  return 0;
}

int
cmd_import (struct cli *cli, int argc, char **argv)
{
  struct progress_option progress_opt = PROGRESS_OPTION_INIT;
  struct import_args a = { .block_size = XS_BLOCK_SIZE_DEFAULT };
  struct xs_transfer_report report;
  struct xs_snapshot snap;
  struct progress progress;
  const atomic_int *stop;
  int r;

  r = parse_import (cli, argc, argv, &a, &progress_opt);
  if (r != 0)
    return r;
  if (cli_open (cli) == -1
      || (a.bitmap == NULL
          && xs_access_scope (cli->store, &cli->scope, "xsnap:ImportVolume",
                              "volume", a.volume) == -1))
    return 1;
  stop = transfer_catch_interrupts ();
  progress_init_option (&progress, "importing", cli->quiet || cli->json,
                        &progress_opt);
  if (a.bitmap)
    r = xs_import_nbd_dirty (cli->store, &cli->scope, a.uri, a.volume,
                             a.bitmap, a.snapshot, stop, progress_update,
                             &progress, &report, &snap);
  else
    r = xs_import_nbd (cli->store, &cli->scope, a.uri, a.volume,
                       (uint32_t) a.block_size, stop, progress_update,
                       &progress, &report);
  progress_end (&progress);
  if (r == 0 && a.bitmap == NULL && a.snapshot
      && snapshot_imported (cli, &a, &report, &snap) == -1)
    r = -1;
  if (r == -1)
    return 1;
  r = print_import (cli, &a, &report, a.snapshot ? &snap : NULL);
  if (a.snapshot)
    xs_snapshot_clear (&snap);
  return r;
}
