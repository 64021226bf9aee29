/* xsnap CLI: what every subcommand shares — global options, opening the
 * store, and printing (text for people, --json for programs).
 *
 * Exit statuses (docs/xsnap.pod): 0 success, 1 failure, 2 usage error,
 * 3 the changed-block map cannot be trusted, 4 verify found damage.
 */
#ifndef XSNAP_CLI_H
#define XSNAP_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "catalog/store.h"

#define EXIT_USAGE 2
#define EXIT_UNTRUSTED 3
#define EXIT_CORRUPT 4

struct cli {
  const char *store_path;       /* --store, XSNAP_STORE; absolute once
                                   cli_resolve_store has run */
  char *store_path_owned;       /* what cli_resolve_store made */
  const char *account;          /* --account, XSNAP_ACCOUNT */
  const char *region;           /* --region, XSNAP_REGION */
  bool json;                    /* --json */
  bool quiet;                   /* -q */
  int verbose;                  /* -v */
  bool in_command;              /* parsing a subcommand's arguments */
  struct xs_store *store;       /* opened by cli_open */
  struct xs_scope scope;
  json_t *json_list;            /* --json output being collected */
};

/* Parse the next option of a subcommand.  SPECIFIC lists the subcommand's
 * own long options (their val is returned, with the argument in
 * *ARG); the global options are handled here wherever they appear.
 * Returns -1 at the end of options and '?' after printing a usage error.
 */
extern int cli_next_option (struct cli *cli, int argc, char **argv,
                            const char *short_opts,
                            const struct option *specific, char **arg);

/* From now on, messages are written as log lines: with the time and the
 * process id.
 */
extern void cli_stamp_messages (void);

/* Make --store (XSNAP_STORE) absolute, once, before anything uses it:
 * every path a command stores or prints is absolute.  0 or -1 (reported:
 * no store given, or its parent folder is not there).
 */
extern int cli_resolve_store (struct cli *cli);

/* Open the store and resolve the scope.  Returns 0 or -1 (reported). */
extern int cli_open (struct cli *cli);
extern void cli_close (struct cli *cli);

/* Report a usage error for COMMAND and return EXIT_USAGE. */
extern int cli_usage (const char *command, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Print JSON to stdout, indented, with a newline; consumes ROOT. */
extern int cli_print_json (json_t *root);

/* Read FILE ("-" for standard input), at most one byte past LIMIT so that
 * a parser can say it is too large; NUL-terminated, *LEN bytes.  WHAT
 * names it in messages.  NULL with an error.
 */
extern char *cli_read_file (const char *file, size_t limit, const char *what,
                            size_t *len);

/* Listing: LIST_BEGIN prints the header line (a printf format) unless
 * --json or -q, and starts cli->json_list for the items' JSON;
 * LIST_END prints the collected JSON array (with --json) and turns R
 * (0 or -1, the listing's result) into an exit status.
 */
extern void cli_list_begin (struct cli *cli, const char *header_fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
extern int cli_list_end (struct cli *cli, int r);

/* "2026-11-22T05:31:12Z" */
extern void cli_format_time (int64_t ns, char *buf, size_t len);

/* The file descriptor number ARG, open for writing, given with OPTION
 * ("--progress=FD"); -1 (reported) if it is not one.
 */
extern int cli_parse_output_fd (const char *arg, const char *option);

/* Parse a size argument, requiring it positive; reports. */
extern int cli_parse_size (const char *text, const char *what,
                           uint64_t *size);

/* The subcommands: each returns the exit status. */
extern int cmd_init (struct cli *cli, int argc, char **argv);
extern int cmd_volume (struct cli *cli, int argc, char **argv);
extern int cmd_diff (struct cli *cli, int argc, char **argv);
extern int cmd_snapshot (struct cli *cli, int argc, char **argv);
extern int cmd_gc (struct cli *cli, int argc, char **argv);
extern int cmd_verify (struct cli *cli, int argc, char **argv);
extern int cmd_send (struct cli *cli, int argc, char **argv);
extern int cmd_receive (struct cli *cli, int argc, char **argv);
extern int cmd_import (struct cli *cli, int argc, char **argv);
extern int cmd_export (struct cli *cli, int argc, char **argv);
extern int cmd_account (struct cli *cli, int argc, char **argv);
extern int cmd_policy_doc (struct cli *cli, int argc, char **argv);
extern int cmd_share (struct cli *cli, int argc, char **argv);
extern int cmd_unshare (struct cli *cli, int argc, char **argv);
extern int cmd_chain (struct cli *cli, int argc, char **argv);
extern int cmd_audit (struct cli *cli, int argc, char **argv);
extern int cmd_serve (struct cli *cli, int argc, char **argv);
extern int cmd_serve_changes (struct cli *cli, int argc, char **argv);
extern int cmd_copy (struct cli *cli, int argc, char **argv);
extern int cmd_job (struct cli *cli, int argc, char **argv);
extern int cmd_policy (struct cli *cli, int argc, char **argv);
extern int cmd_daemon (struct cli *cli, int argc, char **argv);
extern int cmd_config (struct cli *cli, int argc, char **argv);
extern int cmd_region (struct cli *cli, int argc, char **argv);
extern int cmd_key (struct cli *cli, int argc, char **argv);
extern int cmd_metrics (struct cli *cli, int argc, char **argv);
extern int cmd_status (struct cli *cli, int argc, char **argv);

/* May the caller read the whole store's metrics and status
 * (xsnap:DescribeMetrics)?  0, or -1 reported.
 */
extern int cli_check_metrics_access (struct cli *cli);

#endif /* XSNAP_CLI_H */
