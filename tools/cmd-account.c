/* xsnap account: create, list, show and delete accounts, and map local
 * users to them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/admin.h"
#include "access/access.h"
#include "catalog/account.h"
#include "cli.h"
#include "base/error.h"

static int
show_account (struct cli *cli, const struct xs_account *account)
{
  char created[32];

  if (cli->json)
    return cli_print_json (xs_account_to_json (account)) == 0 ? 0 : 1;
  cli_format_time (account->created_ns, created, sizeof created);
  printf ("id:              %s\n", account->id);
  printf ("name:            %s\n", account->name);
  printf ("email:           %s\n", account->email);
  printf ("collaborator of: %s\n",
          account->collaborator_of[0] ? account->collaborator_of : "-");
  printf ("administrator:   %s\n", account->is_admin ? "yes" : "no");
  printf ("created:         %s\n", created);
  return 0;
}

static int
account_create (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "name", required_argument, NULL, 'n' },
    { "email", required_argument, NULL, 'e' },
    { "collaborator-of", required_argument, NULL, 'c' },
    { NULL, 0, NULL, 0 },
  };
  const char *name = NULL, *email = NULL, *parent = NULL;
  struct xs_account account;
  char *arg;
  int c, status;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'n': name = arg; break;
    case 'e': email = arg; break;
    case 'c': parent = arg; break;
    default: return cli_usage ("account create", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("account create", "expected one account ID");
  if (cli_open (cli) == -1
      || xs_admin_create_account (cli->store, cli->scope.account, argv[optind],
                               name, email, parent) == -1
      || xs_account_find (cli->store, argv[optind], false, &account) != 0)
    return 1;
  status = cli->quiet && !cli->json ? 0 : show_account (cli, &account);
  xs_account_clear (&account);
  return status;
}

static int
print_account_line (const struct xs_account *account, void *opaque)
{
  struct cli *cli = opaque;
  char created[32];

  if (cli->json)
    return json_array_append_new (cli->json_list,
                                  xs_account_to_json (account));
  cli_format_time (account->created_ns, created, sizeof created);
  printf ("%-20s %-24s %-20s %-5s %s\n", account->id, account->name,
          account->collaborator_of[0] ? account->collaborator_of : "-",
          account->is_admin ? "yes" : "no", created);
  return 0;
}

static int
account_list (struct cli *cli, int argc, char **argv)
{
  char *arg;
  int r;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("account list", "bad option");
  if (optind != argc)
    return cli_usage ("account list", "takes no arguments");
  if (cli_open (cli) == -1
      || xs_access_describe (cli->store, cli->scope.account,
                             "xsnap:DescribeAccounts", "account") == -1)
    return 1;
  if (cli->json) {
    cli->json_list = json_array ();
    r = xs_account_list (cli->store, print_account_line, cli);
    if (r == 0)
      r = cli_print_json (cli->json_list);
    else
      json_decref (cli->json_list);
    cli->json_list = NULL;
    return r == 0 ? 0 : 1;
  }
  if (!cli->quiet)
    printf ("%-20s %-24s %-20s %-5s %s\n", "ID", "NAME", "COLLABORATOR-OF",
            "ADMIN", "CREATED");
  return xs_account_list (cli->store, print_account_line, cli) == 0 ? 0 : 1;
}

static int
account_show (struct cli *cli, int argc, char **argv)
{
  struct xs_account account;
  char *arg;
  int status;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("account show", "bad option");
  if (optind + 1 < argc)
    return cli_usage ("account show", "expected at most one account ID");
  if (cli_open (cli) == -1
      || xs_access_describe (cli->store, cli->scope.account,
                             "xsnap:DescribeAccounts", "account") == -1
      || xs_account_find (cli->store,
                          optind < argc ? argv[optind] : cli->scope.account,
                          false, &account) != 0)
    return 1;
  status = show_account (cli, &account);
  xs_account_clear (&account);
  return status;
}

static int
account_delete (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("account delete", "bad option");
  if (optind + 1 != argc)
    return cli_usage ("account delete", "expected one account ID");
  if (cli_open (cli) == -1
      || xs_admin_delete_account (cli->store, cli->scope.account,
                            argv[optind]) == -1)
    return 1;
  if (cli->json)
    return cli_print_json (json_pack ("{s:s}", "deleted",
                                      argv[optind])) == 0 ? 0 : 1;
  if (!cli->quiet)
    printf ("deleted account '%s'\n", argv[optind]);
  return 0;
}

static int
parse_uid (const char *text, uid_t *uid)
{
  char *end;
  unsigned long value;

  errno = 0;
  value = strtoul (text, &end, 10);
  if (errno || end == text || *end || value > 0xfffffffeUL
      || text[0] == '-') {
    xs_error ("invalid uid '%s': expected a number", text);
    return -1;
  }
  *uid = (uid_t) value;
  return 0;
}

/* account map-uid UID ACCOUNT | unmap-uid UID */
static int
account_map_uid (struct cli *cli, int argc, char **argv)
{
  bool unmap = strcmp (argv[0], "unmap-uid") == 0;
  char *arg;
  uid_t uid;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage (argv[0], "bad option");
  if (optind + (unmap ? 1 : 2) != argc)
    return cli_usage (unmap ? "account unmap-uid" : "account map-uid",
                      unmap ? "expected UID" : "expected UID ACCOUNT");
  if (parse_uid (argv[optind], &uid) == -1 || cli_open (cli) == -1
      || xs_admin_map_uid (cli->store, cli->scope.account, uid,
                             unmap ? NULL : argv[optind + 1]) == -1)
    return 1;
  if (!cli->quiet)
    printf (unmap ? "uid %u unmapped\n" : "uid %u maps to account '%s'\n",
            (unsigned) uid, unmap ? "" : argv[optind + 1]);
  return 0;
}

static int
print_uid (uid_t uid, const char *account, void *opaque)
{
  struct cli *cli = opaque;

  if (cli->json)
    return json_array_append_new (cli->json_list,
                                  json_pack ("{s:I, s:s}", "uid",
                                             (json_int_t) uid, "account",
                                             account));
  printf ("%-10u %s\n", (unsigned) uid, account);
  return 0;
}

static int
account_uids (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("account uids", "bad option");
  if (optind != argc)
    return cli_usage ("account uids", "takes no arguments");
  if (cli_open (cli) == -1
      || xs_access_describe (cli->store, cli->scope.account,
                             "xsnap:DescribeAccounts", "account") == -1)
    return 1;
  cli_list_begin (cli, "%-10s %s\n", "UID", "ACCOUNT");
  return cli_list_end (cli, xs_account_list_uids (cli->store, NULL,
                                                  print_uid, cli));
}

int
cmd_account (struct cli *cli, int argc, char **argv)
{
  static const struct {
    const char *name;
    int (*run) (struct cli *cli, int argc, char **argv);
  } actions[] = {
    { "create", account_create },
    { "list", account_list },
    { "show", account_show },
    { "delete", account_delete },
    { "map-uid", account_map_uid },
    { "unmap-uid", account_map_uid },
    { "uids", account_uids },
  };
  size_t i;

  if (argc < 2)
    return cli_usage ("account", "expected create, list, show, delete,"
                      " map-uid, unmap-uid or uids");
  for (i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp (argv[1], actions[i].name) == 0) {
      optind = 0;
      return actions[i].run (cli, argc - 1, argv + 1);
    }
  return cli_usage ("account", "unknown action '%s'", argv[1]);
}
