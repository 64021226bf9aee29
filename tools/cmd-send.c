/* xsnap send: write a snapshot as a replication stream, to be piped to
 * `xsnap receive` (here, or on another machine through ssh).  The stream
 * goes to standard output, never to a terminal, or to -o PATH: a file
 * appears only once the stream is complete, a device or FIFO is written
 * into (lib/base/fileio.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "base/error.h"
#include "base/fileio.h"
#include "progress.h"
#include "ops/send.h"
#include "base/size.h"
#include "transfer.h"

struct send_options {
  const char *snapshot;
  const char *base;             /* --from */
  const char *output;           /* -o, NULL for stdout */
  const char *resume_token;     /* --resume */
  bool dry_run;
  const char *mode;             /* --raw, --reencrypt */
  struct progress_option progress;
};

static void
describe_stats (const struct xs_stream_info *info,
                const struct xs_send_stats *st, char *buf, size_t len)
{
  char bytes[32];

  xs_size_format (st->bytes, bytes, sizeof bytes);
  snprintf (buf, len, "%" PRIu64 " blocks (%" PRIu64 " chunks, %" PRIu64
            " references, %" PRIu64 " zero) of %" PRIu64 ", %" PRIu64
            " bytes (%s)", st->records, st->chunks, st->refs, st->zeros,
            info->nblocks, st->bytes, bytes);
}

static int
print_summary (struct cli *cli, const struct send_options *o,
               const struct xs_stream_info *info,
               const struct xs_send_stats *st)
{
  char line[256];

  if (cli->json)
    return cli_print_json (json_pack ("{s:s, s:s, s:s?, s:s, s:b, s:I, s:I,"
                                      " s:I, s:I, s:I, s:I, s:I, s:I}",
                                      "snapshot", info->snapshot_id,
                                      "name", info->snapshot_name,
                                      "base", info->base_snapshot_id[0]
                                      ? info->base_snapshot_id : NULL,
                                      "stream_id", info->stream_id,
                                      "dry_run", o->dry_run,
                                      "first_block",
                                      (json_int_t) info->first_block,
                                      "nblocks", (json_int_t) info->nblocks,
                                      "blocks", (json_int_t) st->records,
                                      "chunks", (json_int_t) st->chunks,
                                      "references", (json_int_t) st->refs,
                                      "zeros", (json_int_t) st->zeros,
                                      "chunk_bytes",
                                      (json_int_t) st->chunk_bytes,
                                      "bytes", (json_int_t) st->bytes))
      ? 1 : 0;
  if (cli->quiet)
    return 0;
  describe_stats (info, st, line, sizeof line);
  printf ("%s %s@%s (%s)%s%s: %s\n", o->dry_run ? "would send" : "sent",
          info->volume_name, info->snapshot_name, info->snapshot_id,
          info->base_snapshot_id[0] ? " from " : "", info->base_snapshot_id,
          line);
  return 0;
}

static int
send_stream (struct cli *cli, const struct send_options *o,
             struct xs_send *s, struct xs_send_stats *st)
{
  struct xs_output out = { .fd = STDOUT_FILENO };
  struct progress progress;
  int r;

  if (o->output == NULL && isatty (STDOUT_FILENO)) {
    xs_error ("refusing to write a stream to a terminal: redirect standard "
              "output or use -o FILE");
    return -1;
  }
  if (o->output
      && xs_output_open (&out, o->output, 0644, XS_OUTPUT_REPLACE) == -1)
    return -1;
  /* A reader that goes away is an error to report, not a silent death. */
  signal (SIGPIPE, SIG_IGN);
  transfer_grow_pipe (out.fd);
  progress_init_option (&progress, "sending", cli->quiet || cli->json,
                        &o->progress);
  r = xs_send_to_fd (s, out.fd, progress_update, &progress, st);
  progress_end (&progress);
  if (o->output) {
    if (r == 0)
      r = xs_output_commit (&out);
    else
      xs_output_abandon (&out);
  }
  return r;
}

static int
parse_send_options (struct cli *cli, int argc, char **argv,
                    struct send_options *o)
{
  static const struct option options[] = {
    { "from", required_argument, NULL, 'f' },
    { "output", required_argument, NULL, 'o' },
    { "resume", required_argument, NULL, 'r' },
    { "dry-run", no_argument, NULL, 'n' },
    { "raw", no_argument, NULL, 'R' },
    { "reencrypt", no_argument, NULL, 'E' },
    PROGRESS_OPTION ('p'),
    { NULL, 0, NULL, 0 },
  };
  char *arg;
  int c;

  while ((c = cli_next_option (cli, argc, argv, "f:o:n", options,
                               &arg)) != -1) {
    switch (c) {
    case 'f': o->base = arg; break;
    case 'o': o->output = strcmp (arg, "-") == 0 ? NULL : arg; break;
    case 'r': o->resume_token = arg; break;
    case 'n': o->dry_run = true; break;
    case 'R': o->mode = "raw"; break;
    case 'E': o->mode = "reencrypt"; break;
    case 'p':
      if (progress_parse_option (arg, &o->progress) == -1)
        return EXIT_USAGE;
      break;
    default: return cli_usage ("send", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("send", "expected one snapshot (VOLUME@NAME or id)");
  if (o->resume_token && o->dry_run)
    return cli_usage ("send", "--resume and --dry-run do not go together");
  o->snapshot = argv[optind];
  return 0;
}

int
cmd_send (struct cli *cli, int argc, char **argv)
{
  struct send_options o = { .progress = PROGRESS_OPTION_INIT };
  struct xs_send_stats st;
  struct xs_send *s;
  int status = parse_send_options (cli, argc, argv, &o), r;

  if (status != 0)
    return status;
  if (cli_open (cli) == -1)
    return 1;
  s = xs_send_prepare (cli->store, &cli->scope, o.snapshot, o.base,
                       o.resume_token, o.mode);
  if (s == NULL)
    return 1;
  if (o.dry_run)
    r = xs_send_run (s, NULL, NULL, NULL, NULL, &st);
  else
    r = send_stream (cli, &o, s, &st);
  /* With the stream on stdout, only -v says what was sent (on stderr). */
  if (r == 0 && (o.dry_run || o.output))
    r = print_summary (cli, &o, xs_send_info (s), &st) == 0 ? 0 : -1;
  else if (r == 0 && cli->verbose) {
    char line[256];
    describe_stats (xs_send_info (s), &st, line, sizeof line);
    fprintf (stderr, "xsnap: sent %s\n", line);
  }
  xs_send_free (s);
  return r == 0 ? 0 : 1;
}
