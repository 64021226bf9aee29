/* xsnap key: an account's encryption keys — create, list, disable, grant.
 *
 * Keys act in the caller's own account (--account); lib/keys.c checks the
 * permissions and audits every change.  Key material is never printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "keys.h"

static void
print_key_line (const struct xs_key *key)
{
  char created[32];

  cli_format_time (key->created_ns, created, sizeof created);
  printf ("%-20s %-21s %-12s %-8s %-9s %s\n", key->name, key->id,
          key->account, key->is_default ? "yes" : "no",
          key->enabled ? "enabled" : "disabled",
          key->granted_to ? "granted" : created);
}

static int
show_key (struct cli *cli, const struct xs_key *key)
{
  if (cli->json)
    return cli_print_json (xs_key_to_json (key)) == 0 ? 0 : 1;
  if (!cli->quiet)
    printf ("key '%s' (%s) of account '%s': %s\n", key->name, key->id,
            key->account, key->enabled ? "enabled" : "disabled");
  return 0;
}

/* Parse "key ACTION ARG" with only the options in OPTIONS (may be NULL)
 * and open the store.  Returns -1 to go on, else an exit status.
 */
static int
one_argument (struct cli *cli, int argc, char **argv, const char *command,
              const struct option *options, const char **value)
{
  char *arg;
  int c;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    if (c == 't' && value)
      *value = arg;
    else
      return cli_usage (command, "bad option");
  }
  if (optind + 1 != argc)
    return cli_usage (command, "expected one KEY");
  return cli_open (cli) == -1 ? 1 : -1;
}

static int
key_create (struct cli *cli, int argc, char **argv)
{
  struct xs_key key;
  int status = one_argument (cli, argc, argv, "key create", NULL, NULL);

  if (status != -1)
    return status;
  if (xs_key_create (cli->store, cli->scope.account, cli->scope.account,
                     argv[optind], &key) == -1)
    return 1;
  status = show_key (cli, &key);
  xs_key_clear (&key);
  return status;
}

static int
append_key_json (const struct xs_key *key, void *opaque)
{
  return json_array_append_new (opaque, xs_key_to_json (key));
}

static int
print_key (const struct xs_key *key, void *opaque)
{
  print_key_line (key);
  return 0;
}

static int
key_list (struct cli *cli, int argc, char **argv)
{
  json_t *array;
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("key list", "bad option");
  if (optind != argc)
    return cli_usage ("key list", "unexpected argument '%s'", argv[optind]);
  if (cli_open (cli) == -1)
    return 1;
  if (cli->json) {
    array = json_array ();
    if (array == NULL
        || xs_key_list (cli->store, cli->scope.account, append_key_json,
                        array) != 0) {
      json_decref (array);
      return 1;
    }
    return cli_print_json (json_pack ("{s:o}", "keys", array)) ? 1 : 0;
  }
  if (!cli->quiet)
    printf ("%-20s %-21s %-12s %-8s %-9s %s\n", "NAME", "ID", "ACCOUNT",
            "DEFAULT", "STATUS", "CREATED");
  return xs_key_list (cli->store, cli->scope.account, print_key, NULL) == 0
    ? 0 : 1;
}

static int
key_disable (struct cli *cli, int argc, char **argv)
{
  int status = one_argument (cli, argc, argv, "key disable", NULL, NULL);

  if (status != -1)
    return status;
  if (xs_key_disable (cli->store, cli->scope.account, cli->scope.account,
                      argv[optind]) == -1)
    return 1;
  if (!cli->quiet && !cli->json)
    printf ("key '%s' of account '%s' disabled: what it protects cannot be "
            "read or copied\n", argv[optind], cli->scope.account);
  return 0;
}

static int
key_grant (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "to", required_argument, NULL, 't' },
    { NULL, 0, NULL, 0 },
  };
  const char *to = NULL;
  int status = one_argument (cli, argc, argv, "key grant", options, &to);

  if (status != -1)
    return status;
  if (to == NULL)
    return cli_usage ("key grant", "--to ACCOUNT is required");
  if (xs_key_grant (cli->store, cli->scope.account, cli->scope.account,
                    argv[optind], to) == -1)
    return 1;
  if (!cli->quiet && !cli->json)
    printf ("key '%s' of account '%s' granted to account '%s'\n",
            argv[optind], cli->scope.account, to);
  return 0;
}

int
cmd_key (struct cli *cli, int argc, char **argv)
{
  static const struct {
    const char *name;
    int (*run) (struct cli *cli, int argc, char **argv);
  } actions[] = {
    { "create", key_create },
    { "list", key_list },
    { "disable", key_disable },
    { "grant", key_grant },
  };
  size_t i;

  if (argc < 2)
    return cli_usage ("key", "expected create, list, disable or grant");
  for (i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp (argv[1], actions[i].name) == 0) {
      optind = 0;
      return actions[i].run (cli, argc - 1, argv + 1);
    }
  return cli_usage ("key", "unknown action '%s'", argv[1]);
}
