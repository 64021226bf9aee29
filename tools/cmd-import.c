/* xsnap import: copy any NBD export (qemu-nbd, another nbdkit, ...) into
 * a new volume, skipping what the server reports as zero.
 */
#include <inttypes.h>
#include <stdio.h>

#include "access/access.h"
#include "cli.h"
#include "base/error.h"
#include "ops/nbdxfer.h"
#include "progress.h"
#include "base/size.h"
#include "transfer.h"

static int
print_import (struct cli *cli, const char *uri,
              const struct xs_transfer_report *r)
{
  char line[128], read[32], written[32], holes[32], zeros[32], block[32];

  if (cli->json)
    return cli_print_json (json_pack ("{s:s, s:s, s:s, s:I, s:I, s:I, s:b,"
                                      " s:I, s:I, s:I, s:I, s:i, s:f}",
                                      "volume", r->name, "id", r->id,
                                      "uri", uri,
                                      "size", (json_int_t) r->size,
                                      "source_size",
                                      (json_int_t) r->source_size,
                                      "block_size",
                                      (json_int_t) r->block_size,
                                      "rounded", r->rounded,
                                      "bytes_read",
                                      (json_int_t) r->bytes_read,
                                      "bytes_written",
                                      (json_int_t) r->bytes_written,
                                      "holes_skipped",
                                      (json_int_t) r->holes_skipped,
                                      "zeros_skipped",
                                      (json_int_t) r->zeros_skipped,
                                      "connections", (int) r->connections,
                                      "seconds", r->seconds)) ? 1 : 0;
  if (cli->quiet)
    return 0;
  transfer_format_rate (r, line, sizeof line);
  xs_size_format (r->bytes_read, read, sizeof read);
  xs_size_format (r->bytes_written, written, sizeof written);
  xs_size_format (r->holes_skipped, holes, sizeof holes);
  xs_size_format (r->zeros_skipped, zeros, sizeof zeros);
  printf ("imported %s into volume '%s' (%s): %s\n"
          "read %s, wrote %s; skipped %s of holes and %s of zeroes; "
          "%u connection%s\n", uri, r->name, r->id, line, read, written,
          holes, zeros, r->connections, r->connections == 1 ? "" : "s");
  if (r->rounded) {
    xs_size_format (r->block_size, block, sizeof block);
    printf ("the export's size, %" PRIu64 " bytes, is not a multiple of "
            "the block size (%s): the volume is %" PRIu64 " bytes, and "
            "its last %" PRIu64 " read as zeroes\n", r->source_size, block,
            r->size, r->size - r->source_size);
  }
  return 0;
}

int
cmd_import (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "volume", required_argument, NULL, 'n' },
    { "block-size", required_argument, NULL, 'b' },
    PROGRESS_OPTION ('p'),
    { NULL, 0, NULL, 0 },
  };
  struct progress_option progress_opt = PROGRESS_OPTION_INIT;
  const char *name = NULL, *block_text = NULL, *uri;
  uint64_t block_size = XS_BLOCK_SIZE_DEFAULT;
  struct xs_transfer_report report;
  struct progress progress;
  const atomic_int *stop;
  char *arg;
  int c, r;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'n': name = arg; break;
    case 'b': block_text = arg; break;
    case 'p':
      if (progress_parse_option (arg, &progress_opt) == -1)
        return EXIT_USAGE;
      break;
    default: return cli_usage ("import", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("import", "expected one NBD URI");
  if (name == NULL)
    return cli_usage ("import", "--volume NAME is required");
  uri = argv[optind];
  if ((block_text && cli_parse_size (block_text, "block size",
                                     &block_size) == -1)
      || xs_volume_check_block_size (block_size) == -1
      || cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope, "xsnap:ImportVolume",
                          "volume", name) == -1)
    return 1;
  stop = transfer_catch_interrupts ();
  progress_init_option (&progress, "importing", cli->quiet || cli->json,
                        &progress_opt);
  r = xs_import_nbd (cli->store, &cli->scope, uri, name,
                     (uint32_t) block_size, stop, progress_update, &progress,
                     &report);
  progress_end (&progress);
  if (r == -1)
    return 1;
  return print_import (cli, uri, &report);
}
