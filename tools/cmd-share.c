/* xsnap share, unshare, chain and audit: sharing snapshots and backup
 * chains with other accounts, and the record of who did what.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "catalog/account.h"
#include "catalog/audit.h"
#include "cli.h"
#include "base/error.h"
#include "base/fileio.h"
#include "access/share.h"
#include "base/size.h"

#define MAX_SHAREES 1024

/* The accounts named by --with (repeated or comma-separated) and by the
 * words after the resource.
 */
struct sharees {
  const char *names[MAX_SHAREES];
  size_t n;
  char *buffers[MAX_SHAREES];
  size_t nbuffers;
};

static int
add_sharees (struct sharees *s, const char *text)
{
  char *copy, *token, *save;

  if (s->nbuffers == MAX_SHAREES || (copy = strdup (text)) == NULL) {
    xs_error ("too many accounts named");
    return -1;
  }
  s->buffers[s->nbuffers++] = copy;
  for (token = strtok_r (copy, ",", &save); token;
       token = strtok_r (NULL, ",", &save)) {
    if (s->n == MAX_SHAREES) {
      xs_error ("too many accounts named (at most %d)", MAX_SHAREES);
      return -1;
    }
    s->names[s->n++] = token;
  }
  return 0;
}

static void
free_sharees (struct sharees *s)
{
  for (size_t i = 0; i < s->nbuffers; i++)
    free (s->buffers[i]);
}

struct share_args {
  const char *resource;
  bool chain;
  bool all;
  const char *expires;
  struct sharees sharees;
};

static int
parse_share_args (struct cli *cli, int argc, char **argv,
                  const char *command, bool unshare, struct share_args *a)
{
  static const struct option options[] = {
    { "with", required_argument, NULL, 'w' },
    { "chain", no_argument, NULL, 'c' },
    { "expires", required_argument, NULL, 'e' },
    { "all", no_argument, NULL, 'a' },
    { NULL, 0, NULL, 0 },
  };
  char *arg;
  int c;

  memset (a, 0, sizeof *a);
  while ((c = cli_next_option (cli, argc, argv, "w:", options, &arg)) != -1) {
    switch (c) {
    case 'w':
      if (add_sharees (&a->sharees, arg) == -1)
        return 1;
      break;
    case 'c': a->chain = true; break;
    case 'e':
      if (unshare)
        return cli_usage (command, "--expires is for sharing");
      a->expires = arg;
      break;
    case 'a':
      if (!unshare)
        return cli_usage (command, "--all is for unsharing");
      a->all = true;
      break;
    default: return cli_usage (command, "bad option");
    }
  }
  if (optind >= argc)
    return cli_usage (command, "expected a snapshot (or a volume with"
                      " --chain)");
  a->resource = argv[optind];
  for (int i = optind + 1; i < argc; i++)
    if (add_sharees (&a->sharees, argv[i]) == -1)
      return 1;
  if (a->sharees.n == 0 && !a->all)
    return cli_usage (command, "expected --with ACCOUNT...%s",
                      unshare ? " (or --all)" : "");
  if (a->sharees.n && a->all)
    return cli_usage (command, "--all and --with exclude each other");
  return 0;
}

static int
report_shared (struct cli *cli, const struct share_args *a, bool unshare)
{
  json_t *with;

  if (cli->json) {
    with = json_array ();
    for (size_t i = 0; i < a->sharees.n; i++)
      json_array_append_new (with, json_string (a->sharees.names[i]));
    return cli_print_json (json_pack ("{s:s, s:s, s:o, s:b}",
                                      unshare ? "unshared" : "shared",
                                      a->resource, "kind",
                                      a->chain ? "chain" : "snapshot",
                                      "with", with, "all", a->all)) ? 1 : 0;
  }
  if (!cli->quiet) {
    printf ("%s %s%s %s", unshare ? "unshared" : "shared",
            a->chain ? "the chain of volume " : "", a->resource,
            unshare ? "from" : "with");
    for (size_t i = 0; i < a->sharees.n; i++)
      printf ("%s %s", i ? "," : "", a->sharees.names[i]);
    printf ("%s\n", a->all ? " everyone" : "");
  }
  return 0;
}

/* share VOL --chain / unshare VOL --chain */
static int
share_chain (struct cli *cli, struct share_args *a, bool unshare,
             int64_t expires)
{
  struct xs_volume vol;
  int r;

  if (xs_volume_find (cli->store, &cli->scope, a->resource, false,
                      &vol) != 0)
    return 1;
  r = xs_access_volume (cli->store, cli->scope.account,
                        unshare ? "xsnap:UnshareChain" : "xsnap:ShareChain",
                        &vol);
  if (r == 0)
    r = unshare ? xs_unshare (cli->store, &cli->scope, "chain", vol.id,
                              vol.name, a->sharees.names, a->sharees.n)
                : xs_share_chain (cli->store, &cli->scope, &vol,
                                  a->sharees.names, a->sharees.n, expires);
  xs_volume_clear (&vol);
  return r == 0 ? report_shared (cli, a, unshare) : 1;
}

static int
share_or_unshare (struct cli *cli, int argc, char **argv, bool unshare)
{
  const char *command = unshare ? "unshare" : "share";
  struct share_args a;
  struct xs_snapshot snap;
  int64_t expires = 0;
  char *label = NULL;
  int status;

  status = parse_share_args (cli, argc, argv, command, unshare, &a);
  if (status != 0)
    goto out;
  status = 1;
  if (cli_open (cli) == -1)
    goto out;
  if (a.expires
      && (expires = xs_share_parse_expiry (a.expires,
                                           xs_wall_clock_ns ())) == -1)
    goto out;
  if (a.chain) {
    status = share_chain (cli, &a, unshare, expires);
    goto out;
  }
  if (xs_access_find_snapshot (cli->store, &cli->scope, a.resource,
                               unshare ? "xsnap:UnshareSnapshot"
                                       : "xsnap:ShareSnapshot",
                               false, &snap) != 0)
    goto out;
  if (unshare) {
    if (asprintf (&label, "snapshot %s@%s", snap.volume_name,
                  snap.name) == -1)
      label = NULL;
    else if (xs_unshare (cli->store, &cli->scope, "snapshot", snap.id, label,
                         a.sharees.names, a.sharees.n) == 0)
      status = report_shared (cli, &a, true);
  }
  else if (xs_share_snapshot (cli->store, &cli->scope, &snap,
                              a.sharees.names, a.sharees.n, expires) == 0)
    status = report_shared (cli, &a, false);
  xs_snapshot_clear (&snap);
 out:
  free (label);
  free_sharees (&a.sharees);
  return status;
}

static int
print_share (const struct xs_share *share, void *opaque)
{
  struct cli *cli = opaque;
  char expires[32];

  if (cli->json)
    return json_array_append_new (cli->json_list, xs_share_to_json (share));
  cli_format_time (share->expires_ns, expires, sizeof expires);
  printf ("%-22s %-8s %-28s %-12s %-12s %-9s %s\n", share->id, share->kind,
          share->resource_name, share->owner, share->sharee, share->status,
          expires);
  return 0;
}

static int
share_list (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "by-me", no_argument, NULL, 'b' },
    { "with-me", no_argument, NULL, 'w' },
    { NULL, 0, NULL, 0 },
  };
  bool by_me = true, with_me = true;
  json_t *by = NULL, *to = NULL;
  char *arg;
  int c, r = -1;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'b': with_me = false; break;
    case 'w': by_me = false; break;
    default: return cli_usage ("share list", "bad option");
    }
  }
  if (optind != argc)
    return cli_usage ("share list", "takes no arguments");
  if (!by_me && !with_me)
    return cli_usage ("share list", "--by-me and --with-me exclude each"
                      " other");
  if (cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope, "xsnap:DescribeShares",
                          "share", "*") == -1)
    return 1;
  if (!cli->json && !cli->quiet)
    printf ("%-22s %-8s %-28s %-12s %-12s %-9s %s\n", "SHARE", "KIND",
            "RESOURCE", "OWNER", "SHAREE", "STATUS", "EXPIRES");
  by = json_array ();
  to = json_array ();
  cli->json_list = by;
  if (by_me && xs_share_list (cli->store, &cli->scope, true, NULL,
                              print_share, cli) == -1)
    goto out;
  cli->json_list = to;
  if (with_me && xs_share_list (cli->store, &cli->scope, false, NULL,
                                print_share, cli) == -1)
    goto out;
  r = 0;
  if (cli->json)
    r = cli_print_json (json_pack ("{s:O, s:O}", "shared_by_me", by,
                                   "shared_with_me", to));
 out:
  cli->json_list = NULL;
  json_decref (by);
  json_decref (to);
  return r == 0 ? 0 : 1;
}

static int
share_accept (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("share accept", "bad option");
  if (optind + 1 != argc)
    return cli_usage ("share accept", "expected one SHARE id");
  if (cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope, "xsnap:AcceptShare",
                          "share", argv[optind]) == -1
      || xs_share_accept (cli->store, &cli->scope, argv[optind]) == -1)
    return 1;
  if (cli->json)
    return cli_print_json (json_pack ("{s:s}", "accepted",
                                      argv[optind])) ? 1 : 0;
  if (!cli->quiet)
    printf ("accepted share %s\n", argv[optind]);
  return 0;
}

int
cmd_share (struct cli *cli, int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "list") == 0) {
    optind = 0;
    return share_list (cli, argc - 1, argv + 1);
  }
  if (argc >= 2 && strcmp (argv[1], "accept") == 0) {
    optind = 0;
    return share_accept (cli, argc - 1, argv + 1);
  }
  return share_or_unshare (cli, argc, argv, false);
}

int
cmd_unshare (struct cli *cli, int argc, char **argv)
{
  return share_or_unshare (cli, argc, argv, true);
}

static int
print_chain (const struct xs_chain_view *view, void *opaque)
{
  struct cli *cli = opaque;
  char created[32], total[32];

  if (cli->json)
    return json_array_append_new (cli->json_list,
                                  xs_chain_view_to_json (view));
  cli_format_time (view->share->created_ns, created, sizeof created);
  xs_size_format (view->total_bytes, total, sizeof total);
  printf ("%-22s %-16s %-9s %-22s %-12s %8s %6" PRIu64 " %s\n",
          view->share->id, view->volume_name, view->status,
          view->share->resource_id, view->share->owner, total, view->points,
          created);
  return 0;
}

static int
chain_list (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("chain list", "bad option");
  if (optind != argc)
    return cli_usage ("chain list", "takes no arguments");
  if (cli_open (cli) == -1)
    return 1;
  cli_list_begin (cli, "%-22s %-16s %-9s %-22s %-12s %8s %6s %s\n", "CHAIN",
                  "NAME", "STATUS", "SOURCE-VOLUME", "OWNER", "SIZE",
                  "POINTS", "CREATED");
  return cli_list_end (cli, xs_share_list_chains (cli->store, &cli->scope,
                                                  print_chain, cli));
}

static int
chain_delete (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("chain delete", "bad option");
  if (optind + 1 != argc)
    return cli_usage ("chain delete", "expected one CHAIN (share id)");
  if (cli_open (cli) == -1
      || xs_share_hide_chain (cli->store, &cli->scope, argv[optind]) == -1)
    return 1;
  if (!cli->quiet)
    printf ("removed shared chain %s from account '%s'\n", argv[optind],
            cli->scope.account);
  return 0;
}

int
cmd_chain (struct cli *cli, int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "list") == 0) {
    optind = 0;
    return chain_list (cli, argc - 1, argv + 1);
  }
  if (argc >= 2 && strcmp (argv[1], "delete") == 0) {
    optind = 0;
    return chain_delete (cli, argc - 1, argv + 1);
  }
  return cli_usage ("chain", "expected list or delete");
}

static int
print_audit (const struct xs_audit_entry *entry, void *opaque)
{
  struct cli *cli = opaque;
  char at[32];

  if (cli->json)
    return json_array_append_new (cli->json_list,
                                  xs_audit_entry_to_json (entry));
  cli_format_time (entry->at_ns, at, sizeof at);
  printf ("%-20s %-12s %-8s %-28s %s%s%s\n", at, entry->actor,
          entry->outcome, entry->action, entry->resource,
          entry->detail[0] ? ": " : "", entry->detail);
  return 0;
}

int
cmd_audit (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "limit", required_argument, NULL, 'n' },
    { NULL, 0, NULL, 0 },
  };
  const char *visible_to;
  int64_t limit = 0;
  char *arg, *end;
  int c;

  while ((c = cli_next_option (cli, argc, argv, "n:", options, &arg)) != -1) {
    if (c != 'n')
      return cli_usage ("audit", "bad option");
    limit = strtoll (arg, &end, 10);
    if (*end || end == arg || limit <= 0)
      return cli_usage ("audit", "--limit takes a positive number");
  }
  if (optind != argc)
    return cli_usage ("audit", "takes no arguments");
  if (cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope, "xsnap:DescribeAudit",
                          "audit", "*") == -1)
    return 1;
  cli_list_begin (cli, "%-20s %-12s %-8s %-28s %s\n", "TIME", "ACTOR",
                  "OUTCOME", "ACTION", "RESOURCE");
  /* The administrator sees everything; an account, what concerns it. */
  visible_to = xs_account_is_admin (cli->store, cli->scope.account)
    ? NULL : cli->scope.account;
  return cli_list_end (cli, xs_audit_list (cli->store, visible_to, limit,
                                           print_audit, cli));
}
