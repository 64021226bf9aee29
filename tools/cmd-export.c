/* xsnap export: write a snapshot to any writable NBD export (a disk
 * served by qemu-nbd or nbdkit, /dev/nbd* behind nbd-server, ...); with
 * --from, only what changed since a snapshot the target holds already
 * (a disaster-recovery copy on a plain disk, kept in step).
 */
#include <stdio.h>

#include "cli.h"
#include "base/error.h"
#include "ops/nbdxfer.h"
#include "progress.h"
#include "base/size.h"
#include "transfer.h"

static int
print_export (struct cli *cli, const char *uri, const char *base,
              const struct xs_transfer_report *r)
{
  char line[128], read[32], written[32], zeroed[32], skipped[32];
  char same[32];

  if (cli->json)
    return cli_print_json (json_pack ("{s:s, s:s, s:s, s:s?, s:I, s:I, s:I,"
                                      " s:I, s:I, s:I, s:I, s:I, s:i, s:f}",
                                      "snapshot", r->name, "id", r->id,
                                      "uri", uri, "from", base,
                                      "size", (json_int_t) r->size,
                                      "block_size",
                                      (json_int_t) r->block_size,
                                      "bytes_read",
                                      (json_int_t) r->bytes_read,
                                      "bytes_written",
                                      (json_int_t) r->bytes_written,
                                      "bytes_zeroed",
                                      (json_int_t) r->bytes_zeroed,
                                      "holes_skipped",
                                      (json_int_t) r->holes_skipped,
                                      "bytes_unchanged",
                                      (json_int_t) r->clean_skipped,
                                      "base_blocks_verified",
                                      (json_int_t) r->base_blocks_verified,
                                      "connections", (int) r->connections,
                                      "seconds", r->seconds)) ? 1 : 0;
  if (cli->quiet)
    return 0;
  transfer_format_rate (r, line, sizeof line);
  xs_size_format (r->bytes_read, read, sizeof read);
  xs_size_format (r->bytes_written, written, sizeof written);
  xs_size_format (r->bytes_zeroed, zeroed, sizeof zeroed);
  xs_size_format (r->holes_skipped, skipped, sizeof skipped);
  xs_size_format (r->clean_skipped, same, sizeof same);
  if (base)
    printf ("exported snapshot %s (%s) to %s from %s: %s\n"
            "read %s, wrote %s, zeroed %s; left %s equal to %s alone; "
            "%u connection%s\n", r->name, r->id, uri, base, line, read,
            written, zeroed, same, base, r->connections,
            r->connections == 1 ? "" : "s");
  else
    printf ("exported snapshot %s (%s) to %s: %s\n"
            "read %s, wrote %s, zeroed %s, skipped %s of zero blocks; "
            "%u connection%s\n", r->name, r->id, uri, line, read, written,
            zeroed, skipped, r->connections,
            r->connections == 1 ? "" : "s");
  if (r->base_blocks_verified)
    printf ("the target held %s at the %lu blocks compared first\n", base,
            (unsigned long) r->base_blocks_verified);
  return 0;
}

int
cmd_export (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "target-is-zero", no_argument, NULL, 'z' },
    { "destination-is-zero", no_argument, NULL, 'z' },
    { "from", required_argument, NULL, 'f' },
    { "verify-base", no_argument, NULL, 'V' },
    PROGRESS_OPTION ('p'),
    { NULL, 0, NULL, 0 },
  };
  struct progress_option progress_opt = PROGRESS_OPTION_INIT;
  struct xs_transfer_report report;
  struct progress progress;
  const char *base = NULL;
  unsigned flags = 0;
  const atomic_int *stop;
  char *arg;
  int c, r;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'z': flags |= XS_EXPORT_TARGET_IS_ZERO; break;
    case 'f': base = arg; break;
    case 'V': flags |= XS_EXPORT_VERIFY_BASE; break;
    case 'p':
      if (progress_parse_option (arg, &progress_opt) == -1)
        return EXIT_USAGE;
      break;
    default: return cli_usage ("export", "bad option");
    }
  }
  if (optind + 2 != argc)
    return cli_usage ("export", "expected a snapshot and an NBD URI");
  if ((flags & XS_EXPORT_VERIFY_BASE) && base == NULL)
    return cli_usage ("export", "--verify-base needs --from BASE");
  if ((flags & XS_EXPORT_TARGET_IS_ZERO) && base)
    return cli_usage ("export", "--from writes to a target that holds "
                      "BASE, not one that reads as zeroes");
  if (cli_open (cli) == -1)
    return 1;
  stop = transfer_catch_interrupts ();
  progress_init_option (&progress, "exporting", cli->quiet || cli->json,
                        &progress_opt);
  r = xs_export_nbd (cli->store, &cli->scope, argv[optind], base,
                     argv[optind + 1], flags, stop, progress_update,
                     &progress, &report);
  progress_end (&progress);
  if (r == -1)
    return 1;
  return print_export (cli, argv[optind + 1], base, &report);
}
