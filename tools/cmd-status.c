/* xsnap status: the store at a glance, for whoever runs it as a service:
 * attached volumes, snapshots still sealing, running and failed jobs,
 * copy tasks behind their schedule, volumes whose changed-block maps are
 * not trusted, and the space left on the store's file system.  A compact
 * table for people, --json for programs; it exits 0 whatever it finds
 * (what is wrong is for `xsnap metrics` and alerts to judge).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fileio.h"
#include "base/size.h"
#include "catalog/job.h"
#include "catalog/snapshot.h"
#include "cli.h"
#include "ops/metrics.h"
#include "ops/schedule.h"

#define NS_PER_S INT64_C (1000000000)
/* A failed job is shown for a day after it failed. */
#define FAILED_JOBS_SHOWN_NS (86400 * NS_PER_S)
/* A copy task is behind when its newest copy is older than this many of
 * its policy's periods.
 */
#define BEHIND_PERIODS 2

struct status {
  int64_t now_ns;
  json_t *attached, *untrusted, *pending, *running, *failed, *behind;
  uint64_t volumes;
};

/* "3d4h", "5h12m", "4m10s", "12s": an age for people. */
static void
format_age (int64_t ns, char *buf, size_t len)
{
  int64_t s = ns > 0 ? ns / NS_PER_S : 0;

  if (s >= 86400)
    snprintf (buf, len, "%" PRId64 "d%" PRId64 "h", s / 86400,
              s % 86400 / 3600);
  else if (s >= 3600)
    snprintf (buf, len, "%" PRId64 "h%" PRId64 "m", s / 3600, s % 3600 / 60);
  else if (s >= 60)
    snprintf (buf, len, "%" PRId64 "m%" PRId64 "s", s / 60, s % 60);
  else
    snprintf (buf, len, "%" PRId64 "s", s);
}

static int
append (json_t *list, json_t *item)
{
  if (item == NULL || json_array_append_new (list, item) == -1) {
    xs_error ("cannot describe the store's status: out of memory");
    return -1;
  }
  return 0;
}

static int
note_volume (const struct xs_volume_state *s, void *opaque)
{
  struct status *st = opaque;
  const struct xs_volume *v = s->vol;

  st->volumes++;
  if (s->attached
      && append (st->attached,
                 json_pack ("{s:s, s:s, s:s, s:s, s:I}", "account",
                            v->account, "region", v->region, "volume",
                            v->name, "id", v->id, "changed_bytes",
                            (json_int_t) s->changed_bytes)) == -1)
    return -1;
  if (!s->cbt_trusted
      && append (st->untrusted,
                 json_pack ("{s:s, s:s, s:s, s:s, s:s}", "account",
                            v->account, "region", v->region, "volume",
                            v->name, "id", v->id, "reason",
                            s->cbt_doubt)) == -1)
    return -1;
  return 0;
}

static int
note_pending (const struct xs_snapshot_pending *p, void *opaque)
{
  struct status *st = opaque;

  return append (st->pending,
                 json_pack ("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id",
                            p->id, "account", p->account, "region",
                            p->region, "volume", p->volume_name, "name",
                            p->name, "age_seconds",
                            (json_int_t) ((st->now_ns - p->created_ns)
                                          / NS_PER_S),
                            "sealer_pid", (json_int_t) p->owner_pid));
}

static json_t *
job_json (const struct xs_job *job, int64_t now_ns)
{
  return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}",
                    "id", job->id, "source_account", job->source_account,
                    "source_region", job->source_region,
                    "dest_account", job->dest_account,
                    "dest_region", job->dest_region,
                    "snapshot", job->source_snapshot,
                    "done_bytes", (json_int_t) job->done_bytes,
                    "age_seconds",
                    (json_int_t) ((now_ns - job->updated_ns) / NS_PER_S),
                    "error", job->error);
}

static int
note_running (const struct xs_job *job, void *opaque)
{
  struct status *st = opaque;

  return append (st->running, job_json (job, st->now_ns));
}

static int
note_failed (const struct xs_job *job, void *opaque)
{
  struct status *st = opaque;

  if (st->now_ns - job->updated_ns > FAILED_JOBS_SHOWN_NS)
    return 0;
  return append (st->failed, job_json (job, st->now_ns));
}

static int
note_task (const struct xs_copy_task_state *t, void *opaque)
{
  struct status *st = opaque;
  int64_t since = t->newest_copy_ns ? t->newest_copy_ns : t->attached_ns;
  int64_t lag = st->now_ns - since;

  if (lag <= BEHIND_PERIODS * t->period_s * NS_PER_S)
    return 0;
  return append (st->behind,
                 json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}",
                            "task", t->id, "policy", t->policy_name,
                            "volume", t->volume_name[0] ? t->volume_name
                            : t->volume_id, "source",
                            t->source_account, "dest_account",
                            t->dest_account, "dest_region", t->dest_region,
                            "lag_seconds", (json_int_t) (lag / NS_PER_S),
                            "period_seconds", (json_int_t) t->period_s,
                            "last_error", t->last_error));
}

static int
gather (struct cli *cli, struct status *st)
{
  st->attached = json_array ();
  st->untrusted = json_array ();
  st->pending = json_array ();
  st->running = json_array ();
  st->failed = json_array ();
  st->behind = json_array ();
  if (!st->attached || !st->untrusted || !st->pending || !st->running
      || !st->failed || !st->behind) {
    xs_error ("cannot describe the store's status: out of memory");
    return -1;
  }
  return xs_volume_states (cli->store, note_volume, st) == -1
    || xs_snapshot_list_pending (cli->store, note_pending, st) == -1
    || xs_job_list (cli->store, NULL, XS_JOB_ALL, NULL, "running",
                    note_running, st) == -1
    || xs_job_list (cli->store, NULL, XS_JOB_ALL, NULL, "failed",
                    note_failed, st) == -1
    || xs_copy_task_states (cli->store, note_task, st) == -1 ? -1 : 0;
}

static void
status_clear (struct status *st)
{
  json_decref (st->attached);
  json_decref (st->untrusted);
  json_decref (st->pending);
  json_decref (st->running);
  json_decref (st->failed);
  json_decref (st->behind);
}

static const char *
text (json_t *item, const char *key)
{
  const char *value = json_string_value (json_object_get (item, key));

  return value ? value : "";
}

static int64_t
number (json_t *item, const char *key)
{
  return (int64_t) json_integer_value (json_object_get (item, key));
}

/* One section: its title with a count, then one line per item. */
static void
print_section (const char *title, json_t *items,
               void (*line) (json_t *item))
{
  size_t i;
  json_t *item;

  printf ("%-22s %zu\n", title, json_array_size (items));
  json_array_foreach (items, i, item)
    line (item);
}

static void
attached_line (json_t *v)
{
  char changed[32];

  xs_size_format ((uint64_t) number (v, "changed_bytes"), changed,
                  sizeof changed);
  printf ("  %s/%s %s (%s): %s changed\n", text (v, "account"),
          text (v, "region"), text (v, "volume"), text (v, "id"), changed);
}

static void
untrusted_line (json_t *v)
{
  printf ("  %s/%s %s (%s): %s\n", text (v, "account"), text (v, "region"),
          text (v, "volume"), text (v, "id"), text (v, "reason"));
}

static void
pending_line (json_t *p)
{
  char age[32];

  format_age (number (p, "age_seconds") * NS_PER_S, age, sizeof age);
  printf ("  %s/%s %s@%s (%s): %s", text (p, "account"), text (p, "region"),
          text (p, "volume"), text (p, "name"), text (p, "id"), age);
  if (number (p, "sealer_pid") > 0)
    printf (", sealer pid %" PRId64, number (p, "sealer_pid"));
  putchar ('\n');
}

static void
job_line (json_t *j)
{
  char age[32];
  const char *error = text (j, "error");

  format_age (number (j, "age_seconds") * NS_PER_S, age, sizeof age);
  printf ("  %s %s %s/%s -> %s/%s, %s ago%s%s\n", text (j, "id"),
          text (j, "snapshot"), text (j, "source_account"),
          text (j, "source_region"), text (j, "dest_account"),
          text (j, "dest_region"), age, *error ? ": " : "", error);
}

static void
behind_line (json_t *t)
{
  char lag[32], period[32];
  const char *error = text (t, "last_error");

  format_age (number (t, "lag_seconds") * NS_PER_S, lag, sizeof lag);
  format_age (number (t, "period_seconds") * NS_PER_S, period,
              sizeof period);
  printf ("  %s (policy %s) %s -> %s/%s: newest copy %s old, every %s%s%s\n",
          text (t, "task"), text (t, "policy"), text (t, "volume"),
          text (t, "dest_account"), text (t, "dest_region"), lag, period,
          *error ? ": " : "", error);
}

static int
print_status (struct cli *cli, struct status *st, uint64_t fs_size,
              uint64_t fs_free)
{
  char size[32], used[32], avail[32];

  if (cli->json)
    return cli_print_json
      (json_pack ("{s:s, s:I, s:O, s:O, s:O, s:O, s:O, s:O,"
                  " s:{s:I, s:I, s:I}}",
                  "store", xs_store_path (cli->store),
                  "volumes", (json_int_t) st->volumes,
                  "attached", st->attached,
                  "pending_snapshots", st->pending,
                  "running_jobs", st->running,
                  "failed_jobs", st->failed,
                  "tasks_behind", st->behind,
                  "cbt_untrusted", st->untrusted,
                  "space", "size_bytes", (json_int_t) fs_size,
                  "used_bytes", (json_int_t) (fs_size - fs_free),
                  "free_bytes", (json_int_t) fs_free));
  if (cli->quiet)
    return 0;
  xs_size_format (fs_size, size, sizeof size);
  xs_size_format (fs_size - fs_free, used, sizeof used);
  xs_size_format (fs_free, avail, sizeof avail);
  printf ("%-22s %s\n", "store", xs_store_path (cli->store));
  printf ("%-22s %s used of %s, %s free (%.0f%%)\n", "space", used, size,
          avail, fs_size ? 100.0 * (double) fs_free / (double) fs_size : 0);
  printf ("%-22s %" PRIu64 "\n", "volumes", st->volumes);
  print_section ("attached", st->attached, attached_line);
  print_section ("cbt untrusted", st->untrusted, untrusted_line);
  print_section ("pending snapshots", st->pending, pending_line);
  print_section ("running jobs", st->running, job_line);
  print_section ("failed jobs (24h)", st->failed, job_line);
  print_section ("tasks behind", st->behind, behind_line);
  return fflush (stdout) == EOF ? -1 : 0;
}

int
cmd_status (struct cli *cli, int argc, char **argv)
{
  struct status st = { .now_ns = xs_wall_clock_ns () };
  uint64_t fs_size, fs_free;
  char *arg;
  int r = -1;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("status", "bad option");
  if (optind != argc)
    return cli_usage ("status", "takes no arguments");
  if (cli_open (cli) == -1 || cli_check_metrics_access (cli) == -1)
    return 1;
  if (gather (cli, &st) == 0
      && xs_metrics_store_space (cli->store, &fs_size, &fs_free) == 0)
    r = print_status (cli, &st, fs_size, fs_free);
  status_clear (&st);
  return r == 0 ? 0 : 1;
}
