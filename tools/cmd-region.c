/* xsnap region: add, list and remove regions. */
#include <stdio.h>
#include <string.h>

#include "access/admin.h"
#include "access/access.h"
#include "cli.h"
#include "catalog/region.h"

static int
region_add (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "backend", required_argument, NULL, 'b' },
    { "group", required_argument, NULL, 'g' },
    { NULL, 0, NULL, 0 },
  };
  const char *backend = NULL, *group = NULL;
  char *arg;
  int c;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'b': backend = arg; break;
    case 'g': group = arg; break;
    default: return cli_usage ("region add", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("region add", "expected one region NAME");
  if (cli_open (cli) == -1
      || xs_admin_add_region (cli->store, cli->scope.account, argv[optind], backend,
                        group) == -1)
    return 1;
  if (!cli->quiet)
    printf ("added region '%s'\n", argv[optind]);
  return 0;
}

static int
region_remove (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("region remove", "bad option");
  if (optind + 1 != argc)
    return cli_usage ("region remove", "expected one region NAME");
  if (cli_open (cli) == -1
      || xs_admin_remove_region (cli->store, cli->scope.account,
                           argv[optind]) == -1)
    return 1;
  if (!cli->quiet)
    printf ("removed region '%s'\n", argv[optind]);
  return 0;
}

static int
print_region (const struct xs_region *region, void *opaque)
{
  struct cli *cli = opaque;
  char created[32];

  if (cli->json)
    return json_array_append_new (cli->json_list,
                                  xs_region_to_json (region));
  cli_format_time (region->created_ns, created, sizeof created);
  printf ("%-16s %-12s %-48s %s\n", region->name, region->group,
          region->backend, created);
  return 0;
}

static int
region_list (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("region list", "bad option");
  if (optind != argc)
    return cli_usage ("region list", "takes no arguments");
  if (cli_open (cli) == -1
      || xs_access_describe (cli->store, cli->scope.account,
                             "xsnap:DescribeRegions", "region") == -1)
    return 1;
  cli_list_begin (cli, "%-16s %-12s %-48s %s\n", "REGION", "GROUP", "BACKEND",
                  "CREATED");
  return cli_list_end (cli, xs_region_list (cli->store, print_region, cli));
}

int
cmd_region (struct cli *cli, int argc, char **argv)
{
  static const struct {
    const char *name;
    int (*run) (struct cli *cli, int argc, char **argv);
  } actions[] = {
    { "add", region_add },
    { "list", region_list },
    { "remove", region_remove },
  };

  if (argc < 2)
    return cli_usage ("region", "expected add, list or remove");
  for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp (argv[1], actions[i].name) == 0) {
      optind = 0;
      return actions[i].run (cli, argc - 1, argv + 1);
    }
  return cli_usage ("region", "unknown action '%s'", argv[1]);
}
