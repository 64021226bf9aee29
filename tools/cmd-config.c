/* xsnap config: the store's sharing and copying limits. */
#include <stdio.h>
#include <string.h>

#include "access/admin.h"
#include "cli.h"
#include "catalog/config.h"

static int
print_item (const struct xs_config_item *item, void *opaque)
{
  struct cli *cli = opaque;

  if (cli->json)
    return json_array_append_new (cli->json_list,
                                  json_pack ("{s:s, s:s, s:s, s:b, s:s}",
                                             "key", item->key,
                                             "value", item->value,
                                             "default", item->fallback,
                                             "set", item->is_set,
                                             "description",
                                             item->description));
  printf ("%-30s %-14s %s%s\n", item->key, item->value, item->description,
          item->is_set ? "" : " (default)");
  return 0;
}

int
cmd_config (struct cli *cli, int argc, char **argv)
{
  const char *action = argc >= 2 ? argv[1] : "";
  char *arg;

  optind = 0;
  argc--;
  argv++;
  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("config", "bad option");
  if (strcmp (action, "list") == 0 && optind == argc) {
    if (cli_open (cli) == -1)
      return 1;
    cli_list_begin (cli, "%-30s %-14s %s\n", "SETTING", "VALUE", "MEANING");
    return cli_list_end (cli, xs_config_list (cli->store, print_item, cli));
  }
  if (strcmp (action, "set") == 0 && optind + 2 == argc)
    return cli_open (cli) == 0
      && xs_admin_set_config (cli->store, cli->scope.account, argv[optind],
                        argv[optind + 1]) == 0 ? 0 : 1;
  if (strcmp (action, "reset") == 0 && optind + 1 == argc)
    return cli_open (cli) == 0
      && xs_admin_set_config (cli->store, cli->scope.account, argv[optind],
                        NULL) == 0 ? 0 : 1;
  return cli_usage ("config", "expected list, set KEY VALUE or reset KEY");
}
