/* xsnap serve: run nbdkit with the xsnap plugin, the right way for who
 * will connect.
 *
 * On a Unix socket (--unix PATH, the default STORE/nbd.sock) every client
 * is the account its uid is mapped to (root: the administrator), unless
 * --account fixes one.  On TCP (--listen ADDR[:PORT]) nbdkit 1.32 cannot
 * tell the plugin who a client is, so the server serves exactly one
 * account, with TLS required and that account's pre-shared key
 * (STORE/tls/ACCOUNT.psk): completing the handshake proves the account.
 * Started by systemd with sockets passed (socket activation: LISTEN_PID
 * and LISTEN_FDS), it serves on them the same way: Unix sockets as
 * --unix, TCP ones as --listen (TLS, one account).
 * The command execs nbdkit, so its process is the server.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "base/error.h"
#include "base/fileio.h"
#include "access/psk.h"
#include "serve.h"

#define MAX_ARGS 32

char *
serve_plugin_path (void)
{
  const char *env = getenv ("XSNAP_PLUGIN");
  char self[PATH_MAX], *built = NULL;
  ssize_t n;

  if (env && *env)
    return strdup (env);
  n = readlink ("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    if (asprintf (&built, "%s/../plugin/nbdkit-xsnap-plugin.so",
                  dirname (self)) == -1)
      built = NULL;
    else if (access (built, R_OK) == 0)
      return built;
    free (built);
  }
  return strdup ("xsnap");
}

/* Socket activation: the number of sockets passed to this process (its
 * pid is the one nbdkit will see, as the command execs it), or 0.  Sets
 * *NETWORK when one of them is not a Unix socket.
 */
#define FIRST_PASSED_FD 3

static int
passed_sockets (bool *network)
{
  const char *pid = getenv ("LISTEN_PID"), *fds = getenv ("LISTEN_FDS");
  struct sockaddr_storage sa;
  socklen_t len;
  int n, fd;

  *network = false;
  if (pid == NULL || fds == NULL || atol (pid) != (long) getpid ())
    return 0;
  n = atoi (fds);
  for (fd = FIRST_PASSED_FD; fd < FIRST_PASSED_FD + n; fd++) {
    len = sizeof sa;
    if (getsockname (fd, (struct sockaddr *) &sa, &len) == -1
        || sa.ss_family != AF_UNIX)
      *network = true;
  }
  return n > 0 ? n : 0;
}

/* Split ADDR[:PORT] (an IPv6 address in brackets). */
static int
split_listen (char *text, char **addr, const char **port)
{
  char *colon;

  *port = "10809";
  if (text[0] == '[') {
    colon = strchr (text, ']');
    if (colon == NULL)
      return -1;
    *colon = '\0';
    *addr = text + 1;
    if (colon[1] == ':')
      *port = colon + 2;
    else if (colon[1] != '\0')
      return -1;
  }
  else {
    *addr = text;
    colon = strrchr (text, ':');
    if (colon) {
      *colon = '\0';
      *port = colon + 1;
    }
  }
  return **addr && **port ? 0 : -1;
}

struct serve_options {
  const char *unix_path;
  char *listen;
  const char *pidfile;
  bool foreground;
  bool rotate;
};

static int
parse_serve_options (struct cli *cli, int argc, char **argv,
                     struct serve_options *o)
{
  static const struct option options[] = {
    { "unix", required_argument, NULL, 'U' },
    { "listen", required_argument, NULL, 'l' },
    { "pidfile", required_argument, NULL, 'P' },
    { "foreground", no_argument, NULL, 'f' },
    { "rotate-key", no_argument, NULL, 'r' },
    { NULL, 0, NULL, 0 },
  };
  char *arg;
  int c;

  memset (o, 0, sizeof *o);
  while ((c = cli_next_option (cli, argc, argv, "U:l:P:f", options,
                               &arg)) != -1) {
    switch (c) {
    case 'U': o->unix_path = arg; break;
    case 'l': o->listen = arg; break;
    case 'P': o->pidfile = arg; break;
    case 'f': o->foreground = true; break;
    case 'r': o->rotate = true; break;
    default: return cli_usage ("serve", "bad option");
    }
  }
  if (optind != argc)
    return cli_usage ("serve", "takes no arguments");
  if (o->unix_path && o->listen)
    return cli_usage ("serve", "--unix and --listen exclude each other");
  if (o->rotate && !o->listen)
    return cli_usage ("serve", "--rotate-key is for --listen");
  return 0;
}

int
cmd_serve (struct cli *cli, int argc, char **argv)
{
  struct serve_options o;
  const char *args[MAX_ARGS], *port = NULL;
  char *plugin = NULL, *store_arg = NULL, *account_arg = NULL;
  char *region_arg = NULL, *psk = NULL, *psk_arg = NULL, *socket = NULL;
  char *addr = NULL, *unix_abs = NULL;
  size_t n = 0;
  bool network;
  int status, activated;

  status = parse_serve_options (cli, argc, argv, &o);
  if (status != 0)
    return status;
  activated = passed_sockets (&network);
  if (activated && (o.unix_path || o.listen))
    return cli_usage ("serve", "the sockets come from systemd (LISTEN_FDS):"
                      " --unix and --listen do not apply");
  if (o.rotate && !o.listen && !(activated && network))
    return cli_usage ("serve", "--rotate-key is for --listen");
  if (o.listen && split_listen (o.listen, &addr, &port) == -1)
    return cli_usage ("serve", "--listen takes ADDR[:PORT]");
  if (cli_open (cli) == -1)
    return 1;
  status = 1;
  /* nbdkit gets the socket's absolute path, and so does the user. */
  if (o.unix_path
      && (o.unix_path = unix_abs = xs_absolute_path (o.unix_path,
                                                     "socket")) == NULL)
    goto out;
  if (o.listen || (activated && network)) {
    psk = xs_psk_file (cli->store, cli->scope.account, o.rotate);
    if (psk == NULL || asprintf (&psk_arg, "--tls-psk=%s", psk) == -1)
      goto out;
  }
  else if (!activated && o.unix_path == NULL
           && asprintf (&socket, "%s/nbd.sock",
                        xs_store_path (cli->store)) == -1)
    goto out;
  plugin = serve_plugin_path ();
  if (plugin == NULL
      || asprintf (&store_arg, "store=%s", xs_store_path (cli->store)) == -1
      || asprintf (&region_arg, "region=%s", cli->scope.region) == -1
      || asprintf (&account_arg, "account=%s", cli->scope.account) == -1) {
    xs_error ("cannot start the server: %m");
    goto out;
  }

  args[n++] = "nbdkit";
  if (o.foreground)
    args[n++] = "-f";
  if (o.pidfile) {
    args[n++] = "-P";
    args[n++] = o.pidfile;
  }
  if (o.listen) {
    args[n++] = "-i";
    args[n++] = addr;
    args[n++] = "-p";
    args[n++] = port;
  }
  if (psk_arg) {
    args[n++] = "--tls=require";
    args[n++] = psk_arg;
  }
  if (!o.listen && !activated) {
    args[n++] = "-U";
    args[n++] = o.unix_path ? o.unix_path : socket;
  }
  args[n++] = plugin;
  args[n++] = store_arg;
  args[n++] = region_arg;
  /* One account over TCP always; on a socket only if asked. */
  if (psk_arg || cli->account)
    args[n++] = account_arg;
  args[n] = NULL;

  if (!cli->quiet) {
    if (activated && network)
      fprintf (stderr, "xsnap: serving account '%s' on the %d socket(s) "
               "passed by systemd; TLS with the pre-shared key in %s\n",
               cli->scope.account, activated, psk);
    else if (activated)
      fprintf (stderr, "xsnap: serving on the %d socket(s) passed by "
               "systemd\n", activated);
    else if (o.listen)
      fprintf (stderr, "xsnap: serving account '%s' on nbds://%s@%s:%s/"
               "EXPORT?tls-psk-file=%s\n", cli->scope.account,
               cli->scope.account, addr, port, psk);
    else
      fprintf (stderr, "xsnap: serving on nbd+unix:///EXPORT?socket=%s\n",
               o.unix_path ? o.unix_path : socket);
  }
  fflush (stderr);
  cli_close (cli);
  execvp ("nbdkit", (char **) args);
  xs_error ("cannot run nbdkit: %m");
 out:
  free (plugin);
  free (store_arg);
  free (account_arg);
  free (region_arg);
  free (psk);
  free (psk_arg);
  free (socket);
  free (unix_abs);
  return status;
}
