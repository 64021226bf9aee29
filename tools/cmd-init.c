/* xsnap init: create a store. */
#include <stdio.h>

#include "cli.h"
#include "base/error.h"
#include "catalog/store.h"

int
cmd_init (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "backend", required_argument, NULL, 'b' },
    { NULL, 0, NULL, 0 },
  };
  const char *backend = NULL;
  char *arg;
  int c;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    if (c == 'b')
      backend = arg;
    else
      return cli_usage ("init", "bad option");
  }
  if (optind != argc)
    return cli_usage ("init", "unexpected argument '%s'", argv[optind]);
  if (cli_resolve_store (cli) == -1)
    return 1;
  if (xs_store_init (cli->store_path, cli->region, backend) == -1)
    return 1;
  if (cli->json) {
    json_t *root = json_pack ("{s:s, s:s, s:s}", "store", cli->store_path,
                              "account", XS_DEFAULT_ACCOUNT,
                              "region", cli->region ? cli->region
                              : XS_DEFAULT_REGION);
    return cli_print_json (root) == 0 ? 0 : 1;
  }
  if (!cli->quiet)
    printf ("initialised xsnap store %s (administrator account '%s', "
            "region '%s')\n", cli->store_path, XS_DEFAULT_ACCOUNT,
            cli->region ? cli->region : XS_DEFAULT_REGION);
  return 0;
}
