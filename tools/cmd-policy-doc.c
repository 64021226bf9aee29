/* xsnap policy-doc: attach, detach and list permission policy documents
 * (docs/FORMAT.md, "Permission policy documents").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "cli.h"
#include "base/error.h"
#include "access/permdoc.h"

/* The default name of a document: its file name without directory and
 * extension.
 */
static char *
default_name (const char *file)
{
  const char *base = strrchr (file, '/');
  char *name, *dot;

  name = strdup (base ? base + 1 : file);
  if (name && (dot = strrchr (name, '.')) != NULL && dot != name)
    *dot = '\0';
  return name;
}

static int
policy_doc_attach (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "name", required_argument, NULL, 'n' },
    { NULL, 0, NULL, 0 },
  };
  const char *name = NULL, *account, *file;
  char *text = NULL, *owned_name = NULL, *arg;
  size_t len;
  int c, status = 1;

  while ((c = cli_next_option (cli, argc, argv, "n:", options, &arg)) != -1) {
    if (c != 'n')
      return cli_usage ("policy-doc attach", "bad option");
    name = arg;
  }
  if (optind + 2 != argc)
    return cli_usage ("policy-doc attach", "expected ACCOUNT FILE");
  account = argv[optind];
  file = argv[optind + 1];
  if (name == NULL) {
    if (strcmp (file, "-") == 0)
      return cli_usage ("policy-doc attach", "--name is required with '-'");
    name = owned_name = default_name (file);
    if (name == NULL) {
      xs_error ("cannot attach policy document '%s': %m", file);
      return 1;
    }
  }
  if (cli_open (cli) == -1
      || (text = cli_read_file (file, XS_PERMDOC_MAX_SIZE, "policy document",
                                &len)) == NULL)
    goto out;
  if (xs_access_attach_policy (cli->store, cli->scope.account, account, name,
                               text, len, file) == -1)
    goto out;
  status = 0;
  if (cli->json)
    status = cli_print_json (json_pack ("{s:s, s:s}", "attached", name,
                                        "account", account)) ? 1 : 0;
  else if (!cli->quiet)
    printf ("attached policy document '%s' to account '%s'\n", name,
            account);
 out:
  free (text);
  free (owned_name);
  return status;
}

static int
policy_doc_detach (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("policy-doc detach", "bad option");
  if (optind + 2 != argc)
    return cli_usage ("policy-doc detach", "expected ACCOUNT NAME");
  if (cli_open (cli) == -1
      || xs_access_detach_policy (cli->store, cli->scope.account,
                                  argv[optind], argv[optind + 1]) == -1)
    return 1;
  if (!cli->quiet)
    printf ("detached policy document '%s' from account '%s'\n",
            argv[optind + 1], argv[optind]);
  return 0;
}

static int
print_doc (const struct xs_permdoc_record *doc, void *opaque)
{
  struct cli *cli = opaque;
  char created[32];

  if (cli->json)
    return json_array_append_new (cli->json_list,
                                  xs_permdoc_record_to_json (doc));
  cli_format_time (doc->created_ns, created, sizeof created);
  printf ("%-16s %-20s %-16s %s\n  %s\n", doc->account, doc->name,
          doc->attached_by, created, doc->document);
  return 0;
}

static int
policy_doc_list (struct cli *cli, int argc, char **argv)
{
  const char *account;
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("policy-doc list", "bad option");
  if (optind + 1 < argc)
    return cli_usage ("policy-doc list", "expected at most one ACCOUNT");
  if (cli_open (cli) == -1)
    return 1;
  account = optind < argc ? argv[optind] : cli->scope.account;
  cli_list_begin (cli, "%-16s %-20s %-16s %s\n", "ACCOUNT", "NAME",
                  "ATTACHED-BY",
            "CREATED");
  return cli_list_end (cli, xs_access_list_policies (cli->store,
                                                     cli->scope.account,
                                                     account, print_doc,
                                                     cli));
}

int
cmd_policy_doc (struct cli *cli, int argc, char **argv)
{
  static const struct {
    const char *name;
    int (*run) (struct cli *cli, int argc, char **argv);
  } actions[] = {
    { "attach", policy_doc_attach },
    { "detach", policy_doc_detach },
    { "list", policy_doc_list },
  };
  size_t i;

  if (argc < 2)
    return cli_usage ("policy-doc", "expected attach, detach or list");
  for (i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp (argv[1], actions[i].name) == 0) {
      optind = 0;
      return actions[i].run (cli, argc - 1, argv + 1);
    }
  return cli_usage ("policy-doc", "unknown action '%s'", argv[1]);
}
