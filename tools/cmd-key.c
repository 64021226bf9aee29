/* xsnap key: an account's encryption keys — create, list, disable, grant,
 * and export and import between stores.
 *
 * Keys act in the caller's own account (--account); lib/catalog/keys.c checks the
 * permissions and audits every change.  Key material is never printed:
 * an exported key is sealed under a passphrase read from a file (or
 * $XSNAP_KEY_PASSPHRASE), never from the command line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "base/error.h"
#include "base/fileio.h"
#include "access/keyfile.h"
#include "access/keyuse.h"
#include "catalog/keys.h"

#define PASSPHRASE_ENV "XSNAP_KEY_PASSPHRASE"
#define PASSPHRASE_MAX 1024

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
  if (xs_keyuse_create (cli->store, cli->scope.account, cli->scope.account,
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
        || xs_keyuse_list (cli->store, cli->scope.account, append_key_json,
                        array) != 0) {
      json_decref (array);
      return 1;
    }
    return cli_print_json (json_pack ("{s:o}", "keys", array)) ? 1 : 0;
  }
  if (!cli->quiet)
    printf ("%-20s %-21s %-12s %-8s %-9s %s\n", "NAME", "ID", "ACCOUNT",
            "DEFAULT", "STATUS", "CREATED");
  return xs_keyuse_list (cli->store, cli->scope.account, print_key, NULL) == 0
    ? 0 : 1;
}

static int
key_disable (struct cli *cli, int argc, char **argv)
{
  int status = one_argument (cli, argc, argv, "key disable", NULL, NULL);

  if (status != -1)
    return status;
  if (xs_keyuse_disable (cli->store, cli->scope.account, cli->scope.account,
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
  if (xs_keyuse_grant (cli->store, cli->scope.account, cli->scope.account,
                    argv[optind], to) == -1)
    return 1;
  if (!cli->quiet && !cli->json)
    printf ("key '%s' of account '%s' granted to account '%s'\n",
            argv[optind], cli->scope.account, to);
  return 0;
}

/* The passphrase: the first line of FILE, else $XSNAP_KEY_PASSPHRASE.
 * Malloc'd (the caller wipes and frees it), or NULL with an error.
 */
static char *
read_passphrase (const char *file, size_t *len)
{
  const char *env = getenv (PASSPHRASE_ENV);
  char *text;

  if (file == NULL && env == NULL) {
    xs_error ("a key file is sealed under a passphrase: give "
              "--passphrase-file FILE or set " PASSPHRASE_ENV);
    return NULL;
  }
  if (file == NULL) {
    text = strdup (env);
    if (text == NULL)
      xs_error ("cannot read the passphrase: %m");
  }
  else
    text = cli_read_file (file, PASSPHRASE_MAX, "passphrase file", len);
  if (text == NULL)
    return NULL;
  text[strcspn (text, "\r\n")] = '\0';
  *len = strlen (text);
  return text;
}

static void
free_passphrase (char *passphrase, size_t len)
{
  if (passphrase)
    OPENSSL_cleanse (passphrase, len);
  free (passphrase);
}

/* TEXT and a newline to standard output, or to OUTPUT: a new file (mode
 * 0600, never one that exists) or a device or FIFO.
 */
static int
write_key_file (const char *output, const char *text)
{
  struct xs_output out = { .fd = STDOUT_FILENO };
  size_t len = strlen (text);
  int r;

  if (output && xs_output_open (&out, output, 0600, XS_OUTPUT_NEW) == -1)
    return -1;
  r = xs_full_write (out.fd, text, len) == -1
    || xs_full_write (out.fd, "\n", 1) == -1 ? -1 : 0;
  if (r == -1)
    xs_error ("cannot write the key file %s: %m",
              output ? output : "to standard output");
  if (!output)
    return r;
  if (r == 0)
    return xs_output_commit (&out);
  xs_output_abandon (&out);
  return -1;
}

/* key export KEY [-o FILE] [--passphrase-file F] */
static int
key_export (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "output", required_argument, NULL, 'o' },
    { "passphrase-file", required_argument, NULL, 'P' },
    { NULL, 0, NULL, 0 },
  };
  const char *output = NULL, *pass_file = NULL;
  char *arg, *passphrase = NULL, *text = NULL;
  size_t pass_len = 0;
  int c, status = 1;

  while ((c = cli_next_option (cli, argc, argv, "o:", options, &arg)) != -1) {
    switch (c) {
    case 'o': output = arg; break;
    case 'P': pass_file = arg; break;
    default: return cli_usage ("key export", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("key export", "expected one KEY");
  if (cli_open (cli) == -1
      || (passphrase = read_passphrase (pass_file, &pass_len)) == NULL
      || xs_keyfile_export (cli->store, cli->scope.account,
                            cli->scope.account, argv[optind], passphrase,
                            pass_len, &text) == -1)
    goto out;
  status = write_key_file (output, text) == 0 ? 0 : 1;
 out:
  free_passphrase (passphrase, pass_len);
  free (text);
  return status;
}

/* key import FILE [--name NAME] [--passphrase-file F] */
static int
key_import (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "name", required_argument, NULL, 'n' },
    { "passphrase-file", required_argument, NULL, 'P' },
    { NULL, 0, NULL, 0 },
  };
  const char *name = NULL, *pass_file = NULL;
  char *arg, *passphrase = NULL, *text = NULL;
  size_t pass_len = 0, len;
  struct xs_key key;
  int c, status = 1;

  while ((c = cli_next_option (cli, argc, argv, "n:", options, &arg)) != -1) {
    switch (c) {
    case 'n': name = arg; break;
    case 'P': pass_file = arg; break;
    default: return cli_usage ("key import", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("key import", "expected one FILE");
  if (cli_open (cli) == -1
      || (text = cli_read_file (argv[optind], XS_KEYFILE_MAX, "key file",
                                &len)) == NULL
      || (passphrase = read_passphrase (pass_file, &pass_len)) == NULL
      || xs_keyfile_import (cli->store, cli->scope.account,
                            cli->scope.account, text, len, passphrase,
                            pass_len, name, &key) == -1)
    goto out;
  status = show_key (cli, &key);
  xs_key_clear (&key);
 out:
  free_passphrase (passphrase, pass_len);
  free (text);
  return status;
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
    { "export", key_export },
    { "import", key_import },
  };
  size_t i;

  if (argc < 2)
    return cli_usage ("key", "expected create, list, disable, grant, "
                      "export or import");
  for (i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp (argv[1], actions[i].name) == 0) {
      optind = 0;
      return actions[i].run (cli, argc - 1, argv + 1);
    }
  return cli_usage ("key", "unknown action '%s'", argv[1]);
}
