/* xsnap copy and xsnap job: copying snapshots to other accounts and
 * regions, and the jobs that show both sides how copies go.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/admin.h"
#include "access/access.h"
#include "cli.h"
#include "ops/copy.h"
#include "base/error.h"
#include "catalog/job.h"
#include "progress.h"
#include "base/size.h"

static int report_copy (struct cli *cli, struct xs_snapshot *copy,
                        const struct xs_copy_report *report);

int
cmd_copy (struct cli *cli, int argc, char **argv)
{
  enum { OPT_PROGRESS = 1 };
  static const struct option options[] = {
    { "to-account", required_argument, NULL, 'a' },
    { "to-region", required_argument, NULL, 'r' },
    { "name", required_argument, NULL, 'n' },
    { "description", required_argument, NULL, 'd' },
    { "threads", required_argument, NULL, 't' },
    { "bandwidth", required_argument, NULL, 'b' },
    { "queue", no_argument, NULL, 'Q' },
    { "key", required_argument, NULL, 'k' },
    { "encrypt", no_argument, NULL, 'E' },
    { "verify-destination", no_argument, NULL, 'V' },
    PROGRESS_OPTION (OPT_PROGRESS),
    { NULL, 0, NULL, 0 },
  };
  struct progress_option progress_opt = PROGRESS_OPTION_INIT;
  struct xs_copy_options o = { .to_account = NULL };
  struct xs_copy_report report;
  struct xs_snapshot copy;
  struct progress progress;
  char *arg, *end;
  int c, status;

  while ((c = cli_next_option (cli, argc, argv, "n:", options, &arg)) != -1) {
    switch (c) {
    case 'a': o.to_account = arg; break;
    case 'r': o.to_region = arg; break;
    case 'n': o.name = arg; break;
    case 'd': o.description = arg; break;
    case 't':
      o.threads = (unsigned) strtoul (arg, &end, 10);
      if (*end || o.threads == 0 || o.threads > 32)
        return cli_usage ("copy", "--threads takes 1 to 32");
      break;
    case 'b':
      if (cli_parse_size (arg, "bandwidth", &o.bandwidth) == -1)
        return EXIT_USAGE;
      break;
    case 'Q': o.queue = true; break;
    case 'k': o.key = arg; break;
    case 'E': o.encrypt = true; break;
    case 'V': o.verify_destination = true; break;
    case OPT_PROGRESS:
      if (progress_parse_option (arg, &progress_opt) == -1)
        return EXIT_USAGE;
      break;
    default: return cli_usage ("copy", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("copy", "expected one snapshot");
  if (o.to_account == NULL && o.to_region == NULL && o.key == NULL
      && !o.encrypt)
    return cli_usage ("copy", "expected --to-account ID, --to-region "
                      "REGION, --key KEY and/or --encrypt");
  if (o.description && strlen (o.description) > 1024)
    return cli_usage ("copy", "--description is at most 1024 bytes");
  if (cli_open (cli) == -1)
    return 1;
  progress_init_option (&progress, "copying", cli->quiet || cli->json,
                        &progress_opt);
  o.progress = progress_update;
  o.opaque = &progress;
  status = xs_copy_snapshot (cli->store, &cli->scope, argv[optind], &o,
                             &copy, &report) == 0 ? 0 : 1;
  progress_end (&progress);
  if (status != 0)
    return 1;
  return report_copy (cli, &copy, &report);
}

/* Print what a copy did (consumes COPY). */
static int
report_copy (struct cli *cli, struct xs_snapshot *copy,
             const struct xs_copy_report *report)
{
  char sent[32];
  int status = 0;

  if (report->queued) {
    if (cli->json)
      return cli_print_json (json_pack ("{s:s, s:b}", "job", report->job_id,
                                        "queued", 1)) ? 1 : 0;
    if (!cli->quiet)
      printf ("queued as job %s: it runs when a cross-region copy of this "
              "account ends (xsnap job resume, policy run-due or the "
              "daemon)\n", report->job_id);
    return 0;
  }
  if (cli->json)
    status = cli_print_json (json_pack ("{s:o, s:s, s:I, s:I, s:I, s:I}",
                                        "snapshot",
                                        xs_snapshot_to_json (copy),
                                        "job", report->job_id,
                                        "chunks",
                                        (json_int_t) report->chunks,
                                        "chunks_sent",
                                        (json_int_t) report->chunks_sent,
                                        "bytes_sent",
                                        (json_int_t) report->bytes_sent,
                                        "chunks_replaced",
                                        (json_int_t) report->chunks_replaced))
      ? 1 : 0;
  else if (!cli->quiet) {
    xs_size_format (report->bytes_sent, sent, sizeof sent);
    printf ("copied to %s/%s as %s@%s (%s): %" PRIu64 " of %" PRIu64
            " chunks sent (%s)%s (job %s)\n",
            copy->account, copy->region, copy->volume_name, copy->name,
            copy->id, report->chunks_sent, report->chunks, sent,
            report->chunks_sent < report->chunks
            ? ", the rest were there already" : "", report->job_id);
    if (report->chunks_replaced)
      printf ("%" PRIu64 " damaged chunk(s) at the destination were "
              "replaced\n", report->chunks_replaced);
  }
  xs_snapshot_clear (copy);
  return status;
}

static int
print_job (const struct xs_job *job, void *opaque)
{
  struct cli *cli = opaque;
  char created[32];

  if (cli->json)
    return json_array_append_new (cli->json_list, xs_job_to_json (job));
  cli_format_time (job->created_ns, created, sizeof created);
  printf ("%-20s %-7s %-10s %-22s %-22s %-22s %3d%% %s%s%s\n", job->id,
          job->status, job->actor, job->source_snapshot,
          job->dest_snapshot[0] ? job->dest_snapshot : "-",
          job->dest_account, job->total_bytes
          ? (int) (100 * job->done_bytes / job->total_bytes)
          : strcmp (job->status, "done") == 0 ? 100 : 0, created,
          job->error[0] ? " " : "", job->error);
  return 0;
}

static int
job_list (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "snapshot", required_argument, NULL, 's' },
    { "incoming", no_argument, NULL, 'i' },
    { "outgoing", no_argument, NULL, 'o' },
    { NULL, 0, NULL, 0 },
  };
  enum xs_job_direction direction = XS_JOB_ALL;
  const char *snapshot = NULL;
  char *arg;
  int c;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 's': snapshot = arg; break;
    case 'i': direction = XS_JOB_INCOMING; break;
    case 'o': direction = XS_JOB_OUTGOING; break;
    default: return cli_usage ("job list", "bad option");
    }
  }
  if (optind != argc)
    return cli_usage ("job list", "takes no arguments");
  if (cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope, "xsnap:DescribeJobs",
                          "job", "*") == -1)
    return 1;
  cli_list_begin (cli, "%-20s %-7s %-10s %-22s %-22s %-22s %4s %s\n", "JOB",
                  "STATUS",
            "ACTOR", "SOURCE", "COPY", "TO-ACCOUNT", "DONE", "CREATED");
  return cli_list_end (cli, xs_job_list (cli->store, cli->scope.account,
                                         direction, snapshot, NULL, print_job,
                                         cli));
}

/* job resume JOB: run a failed or queued copy again. */
static int
job_resume (struct cli *cli, int argc, char **argv)
{
  enum { OPT_PROGRESS = 1 };
  static const struct option options[] = {
    { "threads", required_argument, NULL, 't' },
    PROGRESS_OPTION (OPT_PROGRESS),
    { NULL, 0, NULL, 0 },
  };
  struct progress_option progress_opt = PROGRESS_OPTION_INIT;
  struct xs_copy_options o = { .threads = 0 };
  struct xs_copy_report report;
  struct xs_snapshot copy;
  struct progress progress;
  char *arg, *end;
  int c, r;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 't':
      o.threads = (unsigned) strtoul (arg, &end, 10);
      if (*end || o.threads == 0 || o.threads > 32)
        return cli_usage ("job resume", "--threads takes 1 to 32");
      break;
    case OPT_PROGRESS:
      if (progress_parse_option (arg, &progress_opt) == -1)
        return EXIT_USAGE;
      break;
    default: return cli_usage ("job resume", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("job resume", "expected one JOB id");
  if (cli_open (cli) == -1)
    return 1;
  progress_init_option (&progress, "copying", cli->quiet || cli->json,
                        &progress_opt);
  o.progress = progress_update;
  o.opaque = &progress;
  r = xs_copy_resume (cli->store, &cli->scope, argv[optind], &o, &copy,
                      &report);
  progress_end (&progress);
  if (r == -1)
    return 1;
  return report_copy (cli, &copy, &report);
}

/* job cancel JOB: a queued copy never runs, a running one stops. */
static int
job_cancel (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("job cancel", "bad option");
  if (optind + 1 != argc)
    return cli_usage ("job cancel", "expected one JOB id");
  if (cli_open (cli) == -1
      || xs_admin_cancel_job (cli->store, cli->scope.account, argv[optind]) == -1)
    return 1;
  if (!cli->quiet && !cli->json)
    printf ("job %s cancelled\n", argv[optind]);
  return 0;
}

int
cmd_job (struct cli *cli, int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "list") == 0) {
    optind = 0;
    return job_list (cli, argc - 1, argv + 1);
  }
  if (argc >= 2 && strcmp (argv[1], "resume") == 0) {
    optind = 0;
    return job_resume (cli, argc - 1, argv + 1);
  }
  if (argc >= 2 && strcmp (argv[1], "cancel") == 0) {
    optind = 0;
    return job_cancel (cli, argc - 1, argv + 1);
  }
  return cli_usage ("job", "expected list, resume or cancel");
}
