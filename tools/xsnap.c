/* xsnap: the command-line tool.  Dispatches git-style subcommands; each
 * family lives in its own cmd-*.c file and does no storage work itself.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* XSNAP_VERSION comes from the Makefile (VERSION), its one place. */

static const char usage_text[] =
  "usage: xsnap [--store DIR] [--account ID] [--region NAME] [--json] [-q] [-v]\n"
  "             COMMAND [ARGS]\n"
  "\n"
  "Commands:\n"
  "  init [--region NAME] [--backend URL]      create a store\n"
  "  region add NAME [--backend URL] [--group G] | region list | region remove NAME\n"
  "  volume create NAME --size SIZE [--block-size SIZE]\n"
  "  volume create NAME --size SIZE --encrypt [--key KEY]\n"
  "                                            snapshots encrypted under a key\n"
  "  volume create NAME --from-snapshot SNAP    instant disk from a snapshot\n"
  "  volume list | show VOL | delete VOL | resize VOL --size SIZE\n"
  "  volume hydrate VOL [--rate SIZE] [--progress[=FD]] | reset VOL --to SNAP\n"
  "  snapshot create VOL [--name NAME] [--wait]  point-in-time snapshot\n"
  "  snapshot list [VOL] | show SNAP | delete SNAP\n"
  "  verify SNAP                               check every chunk of a snapshot\n"
  "  verify --repair SNAP --from-region R      re-fetch its damaged chunks from R\n"
  "  import URI --volume NAME [--block-size SIZE] [--snapshot NAME] [--progress[=FD]]\n"
  "                                            copy an NBD export into a new volume\n"
  "  import URI --volume VOL --dirty-bitmap BITMAP [--snapshot NAME]\n"
  "                                            copy what a qemu dirty bitmap marks\n"
  "  export SNAP URI [--target-is-zero] [--progress[=FD]]\n"
  "                                            write a snapshot to an NBD export\n"
  "  export SNAP URI --from BASE [--verify-base]\n"
  "                                            write what changed since BASE to it\n"
  "  send SNAP [--from BASE] [-o FILE] [--resume TOKEN] [--dry-run]\n"
  "       [--raw | --reencrypt]                write a replication stream\n"
  "  receive [--name NAME] [-i FILE] [--key KEY | --encrypt] | receive --token\n"
  "                                            take a stream in; pending resumes\n"
  "  gc                                        reclaim unreferenced chunks\n"
  "  diff SNAP_A SNAP_B [--totals] [--verify]   changed blocks between snapshots\n"
  "  diff --live VOL                           changed blocks since the last snapshot\n"
  "       (diff formats: --format=table|json|bitmap|blocks)\n"
  "  account create ID [--name N] [--email E] [--collaborator-of ID]\n"
  "  account list | show [ID] | delete ID | map-uid UID ID | unmap-uid UID | uids\n"
  "  policy-doc attach ACCOUNT FILE [--name N] | detach ACCOUNT NAME | list [ACCOUNT]\n"
  "  share SNAP --with ID... [--expires DATE|90d]  share a snapshot\n"
  "  share VOL --chain --with ID...            share a volume's snapshot chain\n"
  "  share list [--by-me|--with-me] | share accept SHARE\n"
  "  unshare SNAP --with ID...|--all | unshare VOL --chain --with ID...|--all\n"
  "  chain list | chain delete CHAIN           chains shared with this account\n"
  "  audit [--limit N]                         who did what, and how it ended\n"
  "  copy SNAP [--to-account ID] [--to-region R] [--key KEY | --encrypt]\n"
  "       [--name N] [--description D] [--bandwidth RATE] [--queue]\n"
  "       [--verify-destination]\n"
  "                                            copy a snapshot to an account, region\n"
  "                                            or key\n"
  "  job list [--incoming|--outgoing] [--snapshot SNAP] | job resume JOB\n"
  "  job cancel JOB                            a queued copy never runs, a running one stops\n"
  "  policy create NAME --every 6h|--daily HH:MM --retain N\n"
  "  policy attach|detach NAME VOL | list | show NAME | delete NAME\n"
  "  policy copy-to NAME --account ID [--region R] [--retain N]\n"
  "  policy tasks [--incoming|--outgoing] | task-delete TASK\n"
  "  policy run-due                            one pass of what is due (cron)\n"
  "  daemon [--interval S] [--metrics-listen ADDR:PORT]\n"
  "                                            run policies as they fall due;\n"
  "                                            serve GET /metrics over HTTP\n"
  "  metrics [--output FILE]                   the store's metrics (Prometheus)\n"
  "  status                                    the store at a glance\n"
  "  key create NAME | list | disable KEY | grant KEY --to ACCOUNT\n"
  "                                            the account's encryption keys\n"
  "  key export KEY [-o FILE] | key import FILE [--name N]\n"
  "       [--passphrase-file F]                carry a key to another store\n"
  "  serve [--unix PATH | --listen ADDR[:PORT]] [-f] [--pidfile F] [--rotate-key]\n"
  "                                            run nbdkit with the plugin (TCP: TLS,\n"
  "                                            one account, its pre-shared key)\n"
  "  serve-changes SNAP --since SNAP_A --unix PATH [--bitmap NAME] [--export NAME]\n"
  "  serve-changes --live VOL --unix PATH [--bitmap NAME] [--export NAME]\n"
  "                                            serve SNAP (or VOL) read-only with its\n"
  "                                            changes as qemu:dirty-bitmap:NAME\n"
  "  config list | set KEY VALUE | reset KEY  the store's sharing and copy limits\n"
  "  help                                      this text\n"
  "  version                                   print the version\n"
  "\n"
  "The store is --store DIR or $XSNAP_STORE.  Sizes take K, M, G, T suffixes\n"
  "(powers of 1024).  See xsnap(1) for details.\n";

struct command {
  const char *name;
  int (*run) (struct cli *cli, int argc, char **argv);
};

static const struct command commands[] = {
  { "init", cmd_init },
  { "volume", cmd_volume },
  { "diff", cmd_diff },
  { "snapshot", cmd_snapshot },
  { "gc", cmd_gc },
  { "verify", cmd_verify },
  { "send", cmd_send },
  { "receive", cmd_receive },
  { "import", cmd_import },
  { "export", cmd_export },
  { "account", cmd_account },
  { "policy-doc", cmd_policy_doc },
  { "share", cmd_share },
  { "unshare", cmd_unshare },
  { "chain", cmd_chain },
  { "audit", cmd_audit },
  { "serve", cmd_serve },
  { "serve-changes", cmd_serve_changes },
  { "copy", cmd_copy },
  { "job", cmd_job },
  { "policy", cmd_policy },
  { "daemon", cmd_daemon },
  { "config", cmd_config },
  { "region", cmd_region },
  { "key", cmd_key },
  { "metrics", cmd_metrics },
  { "status", cmd_status },
  { NULL, NULL },
};

static void
defaults_from_environment (struct cli *cli)
{
  cli->store_path = getenv ("XSNAP_STORE");
  cli->account = getenv ("XSNAP_ACCOUNT");
  cli->region = getenv ("XSNAP_REGION");
}

int
main (int argc, char **argv)
{
  struct cli cli = { 0 };
  const struct command *cmd;
  char *arg;
  int c, status;

  defaults_from_environment (&cli);
  /* A file grown past RLIMIT_FSIZE (a volume's segment, a stream's
   * output) then fails with EFBIG, which is reported and undone, rather
   * than killing the process half-way.
   */
  signal (SIGXFSZ, SIG_IGN);
  /* Global options before the command. */
  static const struct option main_options[] = {
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  while ((c = cli_next_option (&cli, argc, argv, "hV", main_options,
                               &arg)) != -1) {
    switch (c) {
    case 'h':
      fputs (usage_text, stdout);
      return 0;
    case 'V':
      printf ("xsnap %s\n", XSNAP_VERSION);
      return 0;
    default:
      fputs (usage_text, stderr);
      return EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    fputs (usage_text, stderr);
    return EXIT_USAGE;
  }
  if (strcmp (argv[optind], "help") == 0) {
    fputs (usage_text, stdout);
    return 0;
  }
  if (strcmp (argv[optind], "version") == 0) {
    printf ("xsnap %s\n", XSNAP_VERSION);
    return 0;
  }
  for (cmd = commands; cmd->name; cmd++)
    if (strcmp (argv[optind], cmd->name) == 0)
      break;
  if (cmd->name == NULL)
    return cli_usage (argv[optind], "unknown command");

  /* The subcommand parses its own arguments from argv[optind]. */
  argc -= optind;
  argv += optind;
  optind = 0;                   /* full restart of getopt */
  cli.in_command = true;
  status = cmd->run (&cli, argc, argv);
  cli_close (&cli);
  free (cli.store_path_owned);
  return status;
}
