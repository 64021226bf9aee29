/* xsnap CLI: detached sealers as processes (see sealer.h).
 *
 * The report pipe carries two lines of JSON from the sealer:
 *   {"pid": N, "ok": true, "snapshot": {...}}   pending: the command may go
 *   {"pid": N, "ok": false, "error": "..."}     no snapshot was taken
 *   {"pid": N, "ok": false, "busy": true}       someone took the volume first
 * and, once the sealer has given the volume up,
 *   {"ok": true, "snapshot": {...}}             sealed: available
 *   {"ok": false, "error": "..."}               sealing failed
 *   {"ok": true, "handed_over": N}              server N attached the volume
 *                                               and seals it
 * A sealer that dies says nothing more: the command reads the catalog.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "access/access.h"
#include "base/error.h"
#include "base/fileio.h"
#include "catalog/snapshot.h"
#include "catalog/volume.h"
#include "ops/server.h"
#include "sealer.h"

#define LOG_NAME "sealer.log"
#define LOG_MAX (1024 * 1024)   /* a longer log starts afresh */
#define REPORT_FD 3             /* the report pipe, in the sealer */
#define REPORT_FD_ARG "3"       /* the same, for its command line */
#define SEALER_CACHE (64 * 1024 * 1024)  /* decoded chunks of a clone's
                                            source */
#define MAX_ARGS 16
#define MAX_LINE 65536

/* What the command hands the sealer process it starts. */
struct launch {
  const char *argv[MAX_ARGS];
  char *log;                    /* LOG_NAME in the volume's head */
  int report[2];                /* the report pipe */
};

static void
build_argv (struct launch *l, struct cli *cli, const struct xs_volume *vol,
            const char *name)
{
  size_t n = 0;

  l->argv[n++] = "xsnap";
  l->argv[n++] = "--store";
  l->argv[n++] = cli->store_path;
  if (cli->account) {
    l->argv[n++] = "--account";
    l->argv[n++] = cli->account;
  }
  if (cli->region) {
    l->argv[n++] = "--region";
    l->argv[n++] = cli->region;
  }
  l->argv[n++] = "snapshot";
  l->argv[n++] = "sealer";
  l->argv[n++] = vol->id;
  if (name) {
    l->argv[n++] = "--name";
    l->argv[n++] = name;
  }
  l->argv[n++] = "--report-fd";
  l->argv[n++] = REPORT_FD_ARG;
  l->argv[n] = NULL;
}

/* Move FD above the standard streams and the report's place. */
static int
high_fd (int fd)
{
  return fd < 0 ? -1 : fcntl (fd, F_DUPFD, REPORT_FD + 1);
}

/* In the sealer, before exec: standard streams to /dev/null and the log,
 * the report on REPORT_FD, nothing else of the command's open.  Only
 * async-signal-safe calls (the command may have threads).
 */
static void
become_sealer (const struct launch *l)
{
  int null = high_fd (open ("/dev/null", O_RDWR));
  int log = high_fd (open (l->log, O_WRONLY | O_APPEND | O_CREAT, 0600));
  int report = high_fd (l->report[1]);
  struct stat st;
  sigset_t none;

  if (null == -1 || report == -1)
    _exit (127);
  if (log >= 0 && fstat (log, &st) == 0 && st.st_size > LOG_MAX
      && ftruncate (log, 0) == -1) {
    /* The log goes on growing: there is nowhere to say so yet. */
  }
  if (dup2 (null, 0) == -1 || dup2 (null, 1) == -1
      || dup2 (log >= 0 ? log : null, 2) == -1
      || dup2 (report, REPORT_FD) == -1)
    _exit (127);
  close_range (REPORT_FD + 1, ~0U, 0);
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  execv ("/proc/self/exe", (char **) l->argv);
  _exit (127);
}

/* Start the sealer: a grandchild in a session of its own, so that it
 * outlives the command, belongs to no terminal and leaves no zombie.
 */
static int
spawn (const struct launch *l)
{
  pid_t child = fork (), r;
  int status = 0;

  if (child == -1) {
    xs_error ("cannot start a snapshot sealer: %m");
    return -1;
  }
  if (child == 0) {
    if (setsid () == -1)
      _exit (127);
    child = fork ();
    if (child == 0)
      become_sealer (l);
    _exit (child == -1 ? 127 : 0);
  }
  /* With SIGCHLD ignored (inherited) the child is reaped already
   * (ECHILD): the report says whether the sealer started.
   */
  while ((r = waitpid (child, &status, 0)) == -1 && errno == EINTR)
    ;
  if (r == child && (!WIFEXITED (status) || WEXITSTATUS (status) != 0)) {
    xs_error ("cannot start a snapshot sealer");
    return -1;
  }
  return 0;
}

/* The next line of the report, parsed; NULL at its end (or if it is not
 * JSON, which only a broken sealer writes).
 */
static json_t *
read_report (FILE *fp)
{
  char line[MAX_LINE];

  if (fgets (line, sizeof line, fp) == NULL)
    return NULL;
  return json_loads (line, 0, NULL);
}

static const char *
report_string (json_t *report, const char *key)
{
  return json_string_value (json_object_get (report, key));
}

/* *SNAP: the snapshot a report line names, as the catalog has it. */
static int
reported_snapshot (struct cli *cli, json_t *report, struct xs_snapshot *snap)
{
  const char *id = report_string (json_object_get (report, "snapshot"),
                                  "id");

  if (id == NULL) {
    xs_error ("the snapshot sealer's report names no snapshot");
    return -1;
  }
  if (xs_snapshot_lookup_id (cli->store, id, snap) != 0) {
    xs_error ("snapshot %s, taken by the snapshot sealer, cannot be found",
              id);
    return -1;
  }
  return 0;
}

/* The sealer of snapshot ID (process PID) ended without a last word:
 * what the catalog says of the snapshot.
 */
static enum xs_sealer_start
after_silence (struct cli *cli, const struct launch *l,
               const struct xs_volume *vol, const char *id, long pid,
               struct xs_snapshot *snap)
{
  pid_t sealer;
  int r = xs_snapshot_lookup_id (cli->store, id, snap);

  if (r == 0 && strcmp (snap->status, "available") == 0)
    return XS_SEALER_START_TAKEN;
  if (r == 0)
    xs_snapshot_clear (snap);
  if (r == 1)
    xs_error ("snapshot %s of volume '%s' failed (see %s)", id, vol->name,
              l->log);
  if (r != 0)
    return XS_SEALER_START_FAILED;
  sealer = xs_snapshot_sealer (cli->store, id);
  if (sealer > 0 && sealer != (pid_t) pid)
    return xs_snapshot_wait_sealed (cli->store, id, vol->name, sealer, snap)
      == 0 ? XS_SEALER_START_TAKEN : XS_SEALER_START_FAILED;
  xs_error ("snapshot %s of volume '%s' will never be available: its "
            "sealer (pid %ld) died (see %s)", id, vol->name, pid, l->log);
  return XS_SEALER_START_FAILED;
}

/* With --wait: the sealer's last word on snapshot ID. */
static enum xs_sealer_start
wait_for_sealer (struct cli *cli, const struct launch *l, FILE *fp,
                 const struct xs_volume *vol, const char *id, long pid,
                 struct xs_snapshot *snap)
{
  json_t *report = read_report (fp);
  json_int_t taker;
  enum xs_sealer_start r = XS_SEALER_START_FAILED;

  if (report == NULL)
    return after_silence (cli, l, vol, id, pid, snap);
  taker = json_integer_value (json_object_get (report, "handed_over"));
  if (!json_is_true (json_object_get (report, "ok")))
    xs_error ("%s", report_string (report, "error")
              ? report_string (report, "error")
              : "the snapshot sealer failed");
  else if (taker > 0) {
    if (xs_snapshot_wait_sealed (cli->store, id, vol->name, (pid_t) taker,
                                 snap) == 0)
      r = XS_SEALER_START_TAKEN;
  }
  else if (reported_snapshot (cli, report, snap) == 0)
    r = XS_SEALER_START_TAKEN;
  json_decref (report);
  return r;
}

/* The sealer's first word: the snapshot is pending (then, with WAIT, its
 * last word), or why not.
 */
static enum xs_sealer_start
hear_sealer (struct cli *cli, const struct launch *l, FILE *fp,
             const struct xs_volume *vol, bool wait,
             struct xs_snapshot *snap)
{
  json_t *report = read_report (fp);
  enum xs_sealer_start r = XS_SEALER_START_FAILED;
  const char *id;
  long pid;

  if (report == NULL) {
    xs_error ("the snapshot sealer of volume '%s' ended before it "
              "reported the snapshot (see %s)", vol->name, l->log);
    return r;
  }
  pid = (long) json_integer_value (json_object_get (report, "pid"));
  id = report_string (json_object_get (report, "snapshot"), "id");
  if (json_is_true (json_object_get (report, "busy")))
    r = XS_SEALER_START_BUSY;
  else if (!json_is_true (json_object_get (report, "ok")))
    xs_error ("%s", report_string (report, "error")
              ? report_string (report, "error")
              : "the snapshot sealer failed");
  else if (id == NULL)
    xs_error ("the snapshot sealer's report names no snapshot");
  else if (wait)
    r = wait_for_sealer (cli, l, fp, vol, id, pid, snap);
  else if (xs_snapshot_lookup_id (cli->store, id, snap) == 0)
    r = XS_SEALER_START_TAKEN;
  else
    xs_error ("snapshot %s of volume '%s' failed at once (see %s)", id,
              vol->name, l->log);
  json_decref (report);
  return r;
}

enum xs_sealer_start
sealer_start (const struct xs_volume *vol, const char *name, bool wait,
              struct xs_snapshot *snap, void *opaque)
{
  struct cli *cli = opaque;
  struct launch l = { .report = { -1, -1 } };
  enum xs_sealer_start r = XS_SEALER_START_FAILED;
  char *dir = xs_volume_dir (cli->store, vol);
  FILE *fp = NULL;

  build_argv (&l, cli, vol, name);
  if (dir == NULL || asprintf (&l.log, "%s/%s", dir, LOG_NAME) == -1) {
    l.log = NULL;
    xs_error ("cannot start a snapshot sealer: %m");
    goto out;
  }
  if (pipe2 (l.report, O_CLOEXEC) == -1) {
    xs_error ("cannot start a snapshot sealer: %m");
    goto out;
  }
  if (spawn (&l) == -1)
    goto out;
  close (l.report[1]);
  l.report[1] = -1;
  fp = fdopen (l.report[0], "r");
  if (fp == NULL) {
    xs_error ("cannot hear the snapshot sealer: %m");
    goto out;
  }
  l.report[0] = -1;
  r = hear_sealer (cli, &l, fp, vol, wait, snap);
 out:
  if (fp)
    fclose (fp);
  if (l.report[0] >= 0)
    close (l.report[0]);
  if (l.report[1] >= 0)
    close (l.report[1]);
  free (l.log);
  free (dir);
  return r;
}

/* The sealer's side. */

/* Write REPORT (consumed) as one line; the command may have gone. */
static void
report (int fd, json_t *value)
{
  char *text = value ? json_dumps (value, JSON_COMPACT) : NULL;

  if (text) {
    size_t len = strlen (text);
    text[len] = '\n';           /* json_dumps leaves room for the NUL */
    (void) xs_full_write (fd, text, len + 1);
  }
  free (text);
  json_decref (value);
}

static void
report_failure (int fd, const char *why)
{
  report (fd, json_pack ("{s:I, s:b, s:s}", "pid", (json_int_t) getpid (),
                         "ok", 0, "error",
                         why[0] ? why : "the snapshot sealer failed"));
}

/* Take the point in time as the owner of volume VOLUME_ID (the caller
 * may snapshot it), report it on FD.  The server, with *EXP sealing
 * snapshot ID, or NULL after reporting why.
 */
static struct xs_server *
take_point_in_time (struct cli *cli, const char *volume_id, const char *name,
                    int fd, struct xs_export **exp, char id[XS_ID_MAX])
{
  struct xs_server *srv = NULL;
  struct xs_snapshot snap;
  struct xs_volume vol;
  char why[1024] = "";
  bool busy = false;

  /* Errors before the point in time are the command's to print. */
  xs_error_hold_begin (why, sizeof why);
  *exp = NULL;
  if (cli_open (cli) == 0
      && xs_volume_find (cli->store, &cli->scope, volume_id, false,
                         &vol) == 0) {
    if (xs_access_volume (cli->store, cli->scope.account,
                          "xsnap:CreateSnapshot", &vol) == 0)
      srv = xs_server_new (cli->store_path, cli->scope.account,
                           cli->scope.region, SEALER_CACHE);
    xs_volume_clear (&vol);
  }
  if (srv)
    *exp = xs_server_seal_detached (srv, volume_id, name, &snap, &busy);
  xs_error_capture_end ();

  if (*exp) {
    snprintf (id, XS_ID_MAX, "%s", snap.id);
    report (fd, json_pack ("{s:I, s:b, s:o}", "pid", (json_int_t) getpid (),
                           "ok", 1, "snapshot", xs_snapshot_to_json (&snap)));
    xs_snapshot_clear (&snap);
    return srv;
  }
  if (busy)
    report (fd, json_pack ("{s:I, s:b, s:b}", "pid", (json_int_t) getpid (),
                           "ok", 0, "busy", 1));
  else
    report_failure (fd, why);
  xs_server_free (srv);
  return NULL;
}

int
snapshot_sealer (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "name", required_argument, NULL, 'n' },
    { "report-fd", required_argument, NULL, 'r' },
    { NULL, 0, NULL, 0 },
  };
  const char *name = NULL;
  struct xs_server *srv;
  struct xs_export *exp;
  enum xs_sealer_end end;
  char why[512], id[XS_ID_MAX], *arg;
  long handed_to;
  int c, fd = -1;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'n': name = arg; break;
    case 'r':
      fd = cli_parse_output_fd (arg, "--report-fd");
      if (fd == -1)
        return EXIT_USAGE;
      break;
    default: return cli_usage ("snapshot sealer", "bad option");
    }
  }
  if (optind + 1 != argc || fd < 0)
    return cli_usage ("snapshot sealer", "expected one volume id and "
                      "--report-fd (it is started by snapshot create)");
  signal (SIGPIPE, SIG_IGN);    /* the command need not listen to the end */
  cli_stamp_messages ();
  srv = take_point_in_time (cli, argv[optind], name, fd, &exp, id);
  if (srv == NULL)
    return 1;

  end = xs_export_wait_sealed (exp, why, sizeof why, &handed_to);
  xs_server_give_up (srv, exp);
  switch (end) {
  case XS_SEALER_AVAILABLE:
    report (fd, json_pack ("{s:b, s:{s:s}}", "ok", 1, "snapshot", "id",
                           id));
    break;
  case XS_SEALER_HANDED_OVER:
    report (fd, json_pack ("{s:b, s:I}", "ok", 1, "handed_over",
                           (json_int_t) handed_to));
    break;
  case XS_SEALER_FAILED:
    report_failure (fd, why);
    break;
  }
  xs_server_free (srv);
  return end == XS_SEALER_FAILED ? 1 : 0;
}
