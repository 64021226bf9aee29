/* xsnap serve-changes: one read-only NBD export of a snapshot (or of a
 * detached volume) that also answers which blocks changed, the way QEMU's
 * incremental backup asks: block status on qemu:dirty-bitmap:NAME.
 *
 * nbdkit 1.32 serves only base:allocation, so the export is qemu-nbd's:
 * it serves a qcow2 overlay (lib/ops/qcow2.h) whose backing is the
 * snapshot, served by nbdkit with the plugin on a private socket as the
 * CLI's account sees it, and whose persistent bitmap, written directly at
 * a cost that follows what changed, marks the blocks `xsnap diff` lists.
 * Reads of the overlay all go to the snapshot.  The command stays in the
 * foreground with both servers as its children; SIGINT, SIGTERM or SIGHUP
 * (or either child ending) stops both and removes what it made.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "access/access.h"
#include "base/error.h"
#include "base/fileio.h"
#include "base/size.h"
#include "catalog/snapshot.h"
#include "catalog/volume.h"
#include "cli.h"
#include "ops/changemap.h"
#include "ops/qcow2.h"
#include "serve.h"

#define READY_NS (30 * INT64_C (1000000000))   /* a server's start */
#define STOP_NS (5 * INT64_C (1000000000))     /* its stop, then SIGKILL */
#define POLL_US 10000

struct child {
  const char *what;             /* "nbdkit", "qemu-nbd" */
  pid_t pid;                    /* 0: not running */
};

struct serve_changes {
  /* What was asked. */
  const char *subject;          /* SNAP_B, or the volume with --live */
  const char *since;            /* SNAP_A; NULL with --live */
  bool live;
  char *socket;                 /* absolute: qemu-nbd wants it so */
  const char *bitmap;
  const char *export_name;
  /* What is served. */
  char *backing_export;         /* the snapshot's id, or the volume's */
  char *since_text;             /* for messages and the JSON */
  struct xs_changemap map;
  /* What runs, and where. */
  sigset_t saved_mask;
  char *dir;                    /* private: the overlay, nbdkit's socket */
  char *backend_socket;
  char *overlay;
  char *nbdkit_pidfile, *qemu_pidfile;
  struct child nbdkit, qemu;
  bool socket_ours;             /* qemu-nbd made SOCKET */
};

/* Children. */

/* Start ARGS[0] as a child: it dies with this process (even a SIGKILL of
 * it), has this process's signal mask of before the command, and makes
 * its files (sockets included) for its owner alone.
 */
static int
child_start (struct serve_changes *s, struct child *c, const char **args)
{
  pid_t parent = getpid ();

  c->what = args[0];
  c->pid = fork ();
  if (c->pid == -1) {
    xs_error ("cannot start %s: %m", c->what);
    c->pid = 0;
    return -1;
  }
  if (c->pid > 0)
    return 0;
  if (prctl (PR_SET_PDEATHSIG, SIGTERM) == -1 || getppid () != parent)
    _exit (127);
  sigprocmask (SIG_SETMASK, &s->saved_mask, NULL);
  umask (077);
  execvp (args[0], (char **) args);
  fprintf (stderr, "xsnap: cannot run %s: %s\n", args[0], strerror (errno));
  _exit (127);
}

static void
describe_status (int status, char *buf, size_t len)
{
  if (WIFEXITED (status))
    snprintf (buf, len, "exited with status %d", WEXITSTATUS (status));
  else if (WIFSIGNALED (status))
    snprintf (buf, len, "was killed by signal %d", WTERMSIG (status));
  else
    snprintf (buf, len, "stopped");
}

/* Whether C has ended (it is then reaped, and reported unless QUIET). */
static bool
child_ended (struct child *c, bool quiet)
{
  char how[64];
  int status;

  if (c->pid == 0)
    return true;
  if (waitpid (c->pid, &status, WNOHANG) != c->pid)
    return false;
  if (!quiet) {
    describe_status (status, how, sizeof how);
    xs_error ("%s (pid %ld) %s", c->what, (long) c->pid, how);
  }
  c->pid = 0;
  return true;
}

/* Stop C: SIGTERM, and SIGKILL if it is still there after STOP_NS. */
static void
child_stop (struct child *c)
{
  int64_t start = xs_now_ns ();

  if (c->pid == 0)
    return;
  kill (c->pid, SIGTERM);
  while (!child_ended (c, true)) {
    if (xs_now_ns () - start > STOP_NS) {
      kill (c->pid, SIGKILL);
      waitpid (c->pid, NULL, 0);
      c->pid = 0;
      return;
    }
    usleep (POLL_US);
  }
}

/* Whether SIGINT, SIGTERM or SIGHUP is waiting (they are blocked). */
static bool
interrupted (void)
{
  sigset_t pending;

  sigpending (&pending);
  return sigismember (&pending, SIGINT) || sigismember (&pending, SIGTERM)
    || sigismember (&pending, SIGHUP);
}

/* Wait until C has written PIDFILE, which both servers do once they
 * accept connections (connecting to find out would leave a failed
 * handshake in their logs).
 */
static int
child_wait_ready (struct child *c, const char *pidfile)
{
  int64_t start = xs_now_ns ();
  struct stat st;

  while (stat (pidfile, &st) == -1 || st.st_size == 0) {
    if (child_ended (c, false))
      return -1;
    if (interrupted ()) {
      xs_error ("interrupted while %s was starting", c->what);
      return -1;
    }
    if (xs_now_ns () - start > READY_NS) {
      xs_error ("%s (pid %ld) did not start serving within %d seconds",
                c->what, (long) c->pid, (int) (READY_NS / 1000000000));
      return -1;
    }
    usleep (POLL_US);
  }
  return 0;
}

/* The two servers. */

static int
start_nbdkit (struct cli *cli, struct serve_changes *s)
{
  char *plugin = serve_plugin_path (), *store = NULL, *region = NULL;
  char *account = NULL;
  int r = -1;

  if (plugin == NULL
      || asprintf (&store, "store=%s", xs_store_path (cli->store)) == -1
      || asprintf (&region, "region=%s", cli->scope.region) == -1
      || asprintf (&account, "account=%s", cli->scope.account) == -1)
    xs_error ("cannot start nbdkit: %m");
  else {
    /* Read-only, as the CLI's account: the plugin decides what it may
     * open, as for any client.
     */
    const char *args[] = { "nbdkit", "-f", "-r", "--exit-with-parent",
                           "-U", s->backend_socket, "-P", s->nbdkit_pidfile,
                           plugin, store, region, account, NULL };

    if (child_start (s, &s->nbdkit, args) == 0)
      r = child_wait_ready (&s->nbdkit, s->nbdkit_pidfile);
  }
  free (plugin);
  free (store);
  free (region);
  free (account);
  return r;
}

/* The overlay's backing: the export of the private nbdkit. */
static char *
backing_json (const struct serve_changes *s)
{
  json_t *j = json_pack ("{s:{s:s, s:{s:s, s:s}, s:s}}", "file",
                         "driver", "nbd", "server", "type", "unix", "path",
                         s->backend_socket, "export", s->backing_export);
  char *text = j ? json_dumps (j, JSON_COMPACT) : NULL, *name = NULL;

  if (text == NULL || asprintf (&name, "json:%s", text) == -1) {
    xs_error ("cannot describe the overlay's backing: out of memory");
    name = NULL;
  }
  free (text);
  json_decref (j);
  return name;
}

static int
write_overlay (struct serve_changes *s)
{
  char *backing = backing_json (s);
  int r = -1;

  if (backing) {
    struct xs_qcow2_overlay o = {
      .size = s->map.size, .backing = backing, .backing_format = "raw",
      .bitmap_name = s->bitmap, .granularity = s->map.block_size,
      .bits = &s->map.bits,
    };

    r = xs_qcow2_write_overlay (s->overlay, &o);
  }
  free (backing);
  return r;
}

static int
start_qemu (struct serve_changes *s)
{
  char *bitmap = NULL, *pidfile = NULL;
  const char *args[16];
  size_t n = 0;
  int r = -1;

  if (asprintf (&bitmap, "--bitmap=%s", s->bitmap) == -1)
    bitmap = NULL;
  if (bitmap == NULL
      || asprintf (&pidfile, "--pid-file=%s", s->qemu_pidfile) == -1) {
    xs_error ("cannot start qemu-nbd: %m");
    free (bitmap);
    return -1;
  }
  args[n++] = "qemu-nbd";
  args[n++] = "--persistent";
  args[n++] = "--read-only";
  args[n++] = "--shared=0";             /* any number of clients */
  args[n++] = "--format=qcow2";
  args[n++] = bitmap;
  args[n++] = pidfile;
  if (s->export_name[0]) {
    args[n++] = "--export-name";
    args[n++] = s->export_name;
  }
  args[n++] = "--socket";
  args[n++] = s->socket;
  args[n++] = s->overlay;
  args[n] = NULL;
  if (child_start (s, &s->qemu, args) == 0) {
    s->socket_ours = true;
    r = child_wait_ready (&s->qemu, s->qemu_pidfile);
  }
  free (bitmap);
  free (pidfile);
  return r;
}

/* What is served. */

/* SNAP_B with its changes since SNAP_A, from their manifests. */
static int
plan_snapshots (struct cli *cli, struct serve_changes *s)
{
  struct xs_snapshot snap;

  if (xs_changemap_of_snapshots (cli->store, &cli->scope, s->since,
                                 s->subject, &s->map) == -1
      || xs_access_find_snapshot (cli->store, &cli->scope, s->subject,
                                  "xsnap:ReadSnapshot", false, &snap) != 0)
    return -1;
  s->backing_export = strdup (snap.id);
  s->since_text = strdup (s->since);
  xs_snapshot_clear (&snap);
  if (s->backing_export == NULL || s->since_text == NULL) {
    xs_error ("cannot serve changes: out of memory");
    return -1;
  }
  return 0;
}

/* --live: the volume, detached, with its changes since its last
 * snapshot.  EXIT_UNTRUSTED if its map cannot be trusted.
 */
static int
plan_volume (struct cli *cli, struct serve_changes *s)
{
  struct xs_volume vol;
  int r = -1;

  if (xs_volume_find (cli->store, &cli->scope, s->subject, false, &vol) != 0)
    return -1;
  if (xs_access_volume (cli->store, cli->scope.account, "xsnap:ReadVolume",
                        &vol) == -1)
    goto out;
  if (xs_volume_in_use (cli->store, &vol) == 1) {
    xs_error ("cannot serve the changes of volume '%s': another process "
              "holds it (it is attached, or a snapshot of it is being "
              "sealed); snapshot it and serve the snapshot's changes",
              vol.name);
    goto out;
  }
  if (xs_changemap_of_volume (cli->store, &vol, &s->map) == -1)
    goto out;
  if (s->map.doubt != XS_DIRTYMAP_TRUSTED) {
    xs_error ("the changed-block map of volume '%s' cannot be trusted: %s; "
              "the next snapshot will compare every block", vol.name,
              xs_dirtymap_doubt_text (s->map.doubt));
    r = EXIT_UNTRUSTED;
    goto out;
  }
  s->backing_export = strdup (vol.id);
  s->since_text = strdup (vol.base_snapshot_id[0] ? vol.base_snapshot_id
                          : "creation");
  r = s->backing_export && s->since_text ? 0 : -1;
  if (r == -1)
    xs_error ("cannot serve changes: out of memory");
 out:
  xs_volume_clear (&vol);
  return r;
}

/* --live: the map must not have moved between reading it and the
 * server's taking the volume (which now owns it, read-only, so its map
 * file is final).
 */
static int
recheck_volume (struct cli *cli, struct serve_changes *s)
{
  struct xs_volume vol;
  struct xs_changemap now;
  int r = -1;

  if (xs_volume_find (cli->store, &cli->scope, s->backing_export, false,
                      &vol) != 0)
    return -1;
  if (xs_changemap_of_volume (cli->store, &vol, &now) == 0) {
    if (now.doubt == XS_DIRTYMAP_TRUSTED
        && now.bits.nbytes == s->map.bits.nbytes
        && memcmp (now.bits.bytes, s->map.bits.bytes, now.bits.nbytes) == 0)
      r = 0;
    else
      xs_error ("volume '%s' changed while its server was starting: try "
                "again", vol.name);
    xs_changemap_clear (&now);
  }
  xs_volume_clear (&vol);
  return r;
}

/* Output. */

/* NBD URI query and path text: unreserved characters as they are, the
 * rest as %XX.
 */
static char *
uri_escape (const char *text, const char *keep)
{
  static const char hex[] = "0123456789ABCDEF";
  char *out = malloc (3 * strlen (text) + 1), *p = out;
  const unsigned char *c;

  if (out == NULL)
    return NULL;
  for (c = (const unsigned char *) text; *c; c++) {
    if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
        || (*c >= '0' && *c <= '9') || strchr ("-._~", *c)
        || (*c && strchr (keep, *c)))
      *p++ = (char) *c;
    else {
      *p++ = '%';
      *p++ = hex[*c >> 4];
      *p++ = hex[*c & 15];
    }
  }
  *p = '\0';
  return out;
}

static char *
served_uri (const struct serve_changes *s)
{
  char *name = uri_escape (s->export_name, "@");
  char *sock = uri_escape (s->socket, "/"), *uri = NULL;

  if (name == NULL || sock == NULL
      || asprintf (&uri, "nbd+unix:///%s?socket=%s", name, sock) == -1)
    uri = NULL;
  free (name);
  free (sock);
  return uri;
}

static int
print_serving (struct cli *cli, const struct serve_changes *s)
{
  char *uri = served_uri (s), *context = NULL, size[32], bytes[32];
  int r = 0;

  if (uri == NULL
      || asprintf (&context, "qemu:dirty-bitmap:%s", s->bitmap) == -1) {
    xs_error ("cannot describe the export: out of memory");
    free (uri);
    return -1;
  }
  if (cli->json)
    r = cli_print_json (json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:b,"
                                   " s:I, s:I, s:I, s:I, s:i}",
                                   "uri", uri, "socket", s->socket,
                                   "export", s->export_name,
                                   "context", context,
                                   "snapshot", s->subject,
                                   "since", s->since_text, "live", s->live,
                                   "size", (json_int_t) s->map.size,
                                   "block_size",
                                   (json_int_t) s->map.block_size,
                                   "changed_blocks",
                                   (json_int_t) xs_changemap_blocks (&s->map),
                                   "changed_bytes",
                                   (json_int_t) xs_changemap_bytes (&s->map),
                                   "pid", (int) getpid ()));
  else if (!cli->quiet) {
    xs_size_format (xs_changemap_bytes (&s->map), bytes, sizeof bytes);
    xs_size_format (s->map.size, size, sizeof size);
    printf ("serving %s%s (%s) with its %" PRIu64 " blocks (%s) changed "
            "since %s as %s on\n%s\n", s->live ? "volume " : "", s->subject,
            size, xs_changemap_blocks (&s->map), bytes, s->since_text,
            context, uri);
  }
  fflush (stdout);
  free (uri);
  free (context);
  return r;
}

/* Setting up and tearing down. */

static int
make_workspace (struct serve_changes *s)
{
  const char *tmp = getenv ("TMPDIR");
  struct stat st;

  if (lstat (s->socket, &st) == 0) {
    xs_error ("cannot serve on %s: it exists (remove it if no server uses "
              "it)", s->socket);
    return -1;
  }
  if (asprintf (&s->dir, "%s/xsnap-changes.XXXXXX",
                tmp && *tmp ? tmp : "/tmp") == -1) {
    s->dir = NULL;
    xs_error ("cannot make a work directory: %m");
    return -1;
  }
  if (mkdtemp (s->dir) == NULL) {
    xs_error ("cannot make a work directory %s: %m", s->dir);
    free (s->dir);
    s->dir = NULL;
    return -1;
  }
  if (asprintf (&s->backend_socket, "%s/xsnap.sock", s->dir) == -1
      || asprintf (&s->overlay, "%s/changes.qcow2", s->dir) == -1
      || asprintf (&s->nbdkit_pidfile, "%s/nbdkit.pid", s->dir) == -1
      || asprintf (&s->qemu_pidfile, "%s/qemu-nbd.pid", s->dir) == -1) {
    xs_error ("cannot make a work directory: %m");
    return -1;
  }
  return 0;
}

static void
tear_down (struct serve_changes *s)
{
  struct stat st;

  child_stop (&s->qemu);
  child_stop (&s->nbdkit);
  if (s->socket_ours && lstat (s->socket, &st) == 0 && S_ISSOCK (st.st_mode))
    unlink (s->socket);
  if (s->dir)
    xs_remove_tree (s->dir);
  free (s->dir);
  free (s->socket);
  free (s->backend_socket);
  free (s->overlay);
  free (s->nbdkit_pidfile);
  free (s->qemu_pidfile);
  free (s->backing_export);
  free (s->since_text);
  xs_changemap_clear (&s->map);
}

/* Serve until a signal, or until a server ends: 0 or 1. */
static int
serve_until_stopped (struct serve_changes *s)
{
  sigset_t set;
  int sig;

  sigemptyset (&set);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGHUP);
  sigaddset (&set, SIGCHLD);
  for (;;) {
    if (child_ended (&s->qemu, false) || child_ended (&s->nbdkit, false))
      return 1;
    if (sigwait (&set, &sig) != 0)
      return 1;
    if (sig != SIGCHLD)
      return 0;
  }
}

static int
parse_serve_changes (struct cli *cli, int argc, char **argv,
                     struct serve_changes *s)
{
  static const struct option options[] = {
    { "since", required_argument, NULL, 's' },
    { "live", no_argument, NULL, 'l' },
    { "unix", required_argument, NULL, 'U' },
    { "bitmap", required_argument, NULL, 'b' },
    { "export", required_argument, NULL, 'x' },
    { NULL, 0, NULL, 0 },
  };
  const char *socket = NULL;
  char *arg, cwd[4096];
  int c;

  s->bitmap = "xsnap";
  s->export_name = "";
  while ((c = cli_next_option (cli, argc, argv, "U:", options,
                               &arg)) != -1) {
    switch (c) {
    case 's': s->since = arg; break;
    case 'l': s->live = true; break;
    case 'U': socket = arg; break;
    case 'b': s->bitmap = arg; break;
    case 'x': s->export_name = arg; break;
    default: return cli_usage ("serve-changes", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("serve-changes", "expected one snapshot (or, with "
                      "--live, one volume)");
  s->subject = argv[optind];
  if (s->live == (s->since != NULL))
    return cli_usage ("serve-changes", "give SNAP --since SNAP_A, or "
                      "--live VOL");
  if (socket == NULL)
    return cli_usage ("serve-changes", "--unix SOCKET is required");
  if (socket[0] == '/')
    s->socket = strdup (socket);
  else if (getcwd (cwd, sizeof cwd) == NULL
           || asprintf (&s->socket, "%s/%s", cwd, socket) == -1)
    s->socket = NULL;
  if (s->socket == NULL) {
    xs_error ("cannot serve on %s: %m", socket);
    return 1;
  }
  if (s->bitmap[0] == '\0' || strlen (s->bitmap) > 1023)
    return cli_usage ("serve-changes", "--bitmap takes a name of 1 to 1023 "
                      "bytes");
  return 0;
}

/* Plan, start both servers and say where they serve. */
static int
set_up (struct cli *cli, struct serve_changes *s)
{
  int r = s->live ? plan_volume (cli, s) : plan_snapshots (cli, s);

  if (r != 0)
    return r;
  if (make_workspace (s) == -1 || start_nbdkit (cli, s) == -1
      || write_overlay (s) == -1 || start_qemu (s) == -1
      || (s->live && recheck_volume (cli, s) == -1))
    return -1;
  return print_serving (cli, s);
}

int
cmd_serve_changes (struct cli *cli, int argc, char **argv)
{
  struct serve_changes s = { 0 };
  sigset_t block;
  int status;

  status = parse_serve_changes (cli, argc, argv, &s);
  if (status != 0)
    return status;
  if (cli_open (cli) == -1) {
    free (s.socket);
    return 1;
  }
  /* Signals wait for the servers to be stopped and the files removed. */
  sigemptyset (&block);
  sigaddset (&block, SIGINT);
  sigaddset (&block, SIGTERM);
  sigaddset (&block, SIGHUP);
  sigaddset (&block, SIGCHLD);
  sigprocmask (SIG_BLOCK, &block, &s.saved_mask);
  status = set_up (cli, &s);
  if (status == 0)
    status = serve_until_stopped (&s);
  else if (status == -1)
    status = 1;
  tear_down (&s);
  sigprocmask (SIG_SETMASK, &s.saved_mask, NULL);
  return status;
}
