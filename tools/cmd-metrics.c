/* xsnap metrics: the store's metrics in the Prometheus text exposition
 * format (lib/ops/metrics.h), on standard output or, with --output FILE,
 * into FILE replaced atomically (a temporary file in the same folder,
 * synced, then renamed), as node_exporter's textfile collector wants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "access/access.h"
#include "base/error.h"
#include "base/fileio.h"
#include "cli.h"
#include "ops/metrics.h"

/* The caller may read the whole store's metrics (the administrator's, or
 * allowed by a document the administrator attached).
 */
int
cli_check_metrics_access (struct cli *cli)
{
  return xs_access_store (cli->store, cli->scope.account,
                          "xsnap:DescribeMetrics", "store", "metrics");
}

static int
write_file (const char *path, const char *text, size_t len)
{
  struct xs_output out;

  if (xs_output_open (&out, path, 0644, XS_OUTPUT_REPLACE) == -1)
    return -1;
  if (xs_full_write (out.fd, text, len) == -1) {
    xs_error ("cannot write %s: %m", path);
    xs_output_abandon (&out);
    return -1;
  }
  return xs_output_commit (&out);
}

int
cmd_metrics (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "output", required_argument, NULL, 'o' },
    { NULL, 0, NULL, 0 },
  };
  const char *output = NULL;
  char *arg, *text;
  size_t len;
  int c, r;

  while ((c = cli_next_option (cli, argc, argv, "o:", options, &arg)) != -1) {
    if (c != 'o')
      return cli_usage ("metrics", "bad option");
    output = arg;
  }
  if (optind != argc)
    return cli_usage ("metrics", "takes no arguments");
  if (cli_open (cli) == -1 || cli_check_metrics_access (cli) == -1)
    return 1;
  text = xs_metrics_text (cli->store, xs_wall_clock_ns (), &len);
  if (text == NULL)
    return 1;
  if (output)
    r = write_file (output, text, len);
  else if ((r = xs_full_write (STDOUT_FILENO, text, len)) == -1)
    xs_error ("cannot write the metrics: %m");
  free (text);
  return r == 0 ? 0 : 1;
}
