/* xsnap CLI: shared option handling and output (see cli.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/account.h"
#include "cli.h"
#include "base/error.h"
#include "base/fileio.h"
#include "base/size.h"

/* Messages go to a log (a detached sealer's): each line says when and
 * which process.
 */
static bool stamp_messages;

void
cli_stamp_messages (void)
{
  stamp_messages = true;
}

static void
print_message (const char *message)
{
  char when[32];

  if (stamp_messages) {
    xs_format_utc (xs_wall_clock_ns (), when, sizeof when);
    fprintf (stderr, "%s xsnap[%ld]: %s\n", when, (long) getpid (),
             message);
  }
  else
    fprintf (stderr, "xsnap: %s\n", message);
}

void
xs_error_sink (const char *message)
{
  print_message (message);
}

void
xs_notice_sink (const char *message)
{
  print_message (message);
}

enum {
  OPT_STORE = 1000, OPT_ACCOUNT, OPT_REGION, OPT_JSON,
};

static const struct option global_options[] = {
  { "store", required_argument, NULL, OPT_STORE },
  { "account", required_argument, NULL, OPT_ACCOUNT },
  { "region", required_argument, NULL, OPT_REGION },
  { "json", no_argument, NULL, OPT_JSON },
  { "quiet", no_argument, NULL, 'q' },
  { "verbose", no_argument, NULL, 'v' },
  { NULL, 0, NULL, 0 },
};

#define MAX_OPTIONS 64

int
cli_next_option (struct cli *cli, int argc, char **argv,
                 const char *short_opts, const struct option *specific,
                 char **arg)
{
  struct option all[MAX_OPTIONS];
  char shorts[64];
  size_t n = 0, i;
  int c;

  for (i = 0; specific && specific[i].name; i++)
    all[n++] = specific[i];
  for (i = 0; global_options[i].name; i++)
    all[n++] = global_options[i];
  all[n] = (struct option) { NULL, 0, NULL, 0 };
  /* Before the command, stop at the first word (the command); inside it,
   * options may come after the operands.
   */
  snprintf (shorts, sizeof shorts, "%sqv%s", cli->in_command ? "" : "+",
            short_opts ? short_opts : "");

  for (;;) {
    c = getopt_long (argc, argv, shorts, all, NULL);
    switch (c) {
    case OPT_STORE: cli->store_path = optarg; break;
    case OPT_ACCOUNT: cli->account = optarg; break;
    case OPT_REGION: cli->region = optarg; break;
    case OPT_JSON: cli->json = true; break;
    case 'q': cli->quiet = true; break;
    case 'v': cli->verbose++; break;
    default:
      *arg = optarg;
      return c;
    }
  }
}

int
cli_resolve_store (struct cli *cli)
{
  if (cli->store_path_owned)
    return 0;
  if (cli->store_path == NULL) {
    xs_error ("no store given: use --store DIR or set XSNAP_STORE");
    return -1;
  }
  cli->store_path_owned = xs_absolute_path (cli->store_path, "store");
  if (cli->store_path_owned == NULL)
    return -1;
  cli->store_path = cli->store_path_owned;
  return 0;
}

int
cli_open (struct cli *cli)
{
  char *actor;
  int r = -1;

  if (cli_resolve_store (cli) == -1)
    return -1;
  cli->store = xs_store_open (cli->store_path);
  if (cli->store == NULL)
    return -1;
  /* Who this user is, and whether it may act as --account. */
  if (xs_account_resolve_actor (cli->store, getuid (), cli->account,
                                &actor) == 0) {
    r = xs_store_scope (cli->store, actor, cli->region, &cli->scope);
    free (actor);
  }
  if (r == -1) {
    xs_store_close (cli->store);
    cli->store = NULL;
  }
  return r;
}

void
cli_close (struct cli *cli)
{
  xs_scope_clear (&cli->scope);
  xs_store_close (cli->store);
  cli->store = NULL;
}

int
cli_usage (const char *command, const char *fmt, ...)
{
  va_list args;

  fprintf (stderr, "xsnap %s: ", command);
  va_start (args, fmt);
  vfprintf (stderr, fmt, args);
  va_end (args);
  fprintf (stderr, " (see 'xsnap help')\n");
  return EXIT_USAGE;
}

int
cli_print_json (json_t *root)
{
  int r;

  if (root == NULL) {
    xs_error ("cannot build JSON output: out of memory");
    return -1;
  }
  r = json_dumpf (root, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
  json_decref (root);
  if (r == -1 || putchar ('\n') == EOF || fflush (stdout) == EOF) {
    xs_error ("cannot write output: %m");
    return -1;
  }
  return 0;
}

void
cli_list_begin (struct cli *cli, const char *header_fmt, ...)
{
  va_list args;

  if (!cli->json && !cli->quiet) {
    va_start (args, header_fmt);
    vprintf (header_fmt, args);
    va_end (args);
  }
  cli->json_list = json_array ();
}

int
cli_list_end (struct cli *cli, int r)
{
  if (r == 0 && cli->json)
    r = cli_print_json (json_incref (cli->json_list));
  json_decref (cli->json_list);
  cli->json_list = NULL;
  return r == 0 ? 0 : 1;
}

void
cli_format_time (int64_t ns, char *buf, size_t len)
{
  xs_format_utc (ns, buf, len);
}

int
cli_parse_output_fd (const char *arg, const char *option)
{
  char *end;
  long fd;
  int flags;

  errno = 0;
  fd = strtol (arg, &end, 10);
  if (errno != 0 || end == arg || *end != '\0' || fd < 0 || fd > INT_MAX) {
    xs_error ("invalid %s '%s': a file descriptor number is needed",
              option, arg);
    return -1;
  }
  flags = fcntl ((int) fd, F_GETFL);
  if (flags == -1 || (flags & O_ACCMODE) == O_RDONLY) {
    xs_error ("invalid %s '%s': %s", option, arg,
              flags == -1 ? "the file descriptor is not open"
              : "the file descriptor is not open for writing");
    return -1;
  }
  return (int) fd;
}

int
cli_parse_size (const char *text, const char *what, uint64_t *size)
{
  int64_t value = xs_size_parse (text, what);

  if (value == -1)
    return -1;
  if (value == 0) {
    xs_error ("invalid %s '%s': it must be greater than zero", what, text);
    return -1;
  }
  *size = (uint64_t) value;
  return 0;
}

char *
cli_read_file (const char *file, size_t limit, const char *what, size_t *len)
{
  FILE *fp = strcmp (file, "-") == 0 ? stdin : fopen (file, "re");
  char *text;

  if (fp == NULL) {
    xs_error ("cannot open %s '%s': %m", what, file);
    return NULL;
  }
  text = malloc (limit + 2);
  if (text == NULL) {
    xs_error ("cannot read %s '%s': %m", what, file);
    goto out;
  }
  *len = fread (text, 1, limit + 1, fp);
  if (ferror (fp)) {
    xs_error ("cannot read %s '%s': %m", what, file);
    free (text);
    text = NULL;
    goto out;
  }
  text[*len] = '\0';
 out:
  if (fp != stdin)
    fclose (fp);
  return text;
}
