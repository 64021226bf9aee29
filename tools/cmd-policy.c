/* xsnap policy and xsnap daemon: automatic snapshot policies, their copy
 * tasks, and running what is due (once, or as a daemon).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access/access.h"
#include "ops/schedule.h"
#include "cli.h"
#include "metrics-listen.h"
#include "base/error.h"
#include "base/fileio.h"

static int
policy_create (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "every", required_argument, NULL, 'e' },
    { "daily", required_argument, NULL, 'd' },
    { "retain", required_argument, NULL, 'r' },
    { NULL, 0, NULL, 0 },
  };
  int64_t every = 0, retain = 0;
  int daily = -1, c;
  char *arg, *end;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'e':
      if ((every = xs_schedule_parse_every (arg)) == -1)
        return EXIT_USAGE;
      break;
    case 'd':
      if ((daily = xs_schedule_parse_daily (arg)) == -1)
        return EXIT_USAGE;
      break;
    case 'r':
      retain = strtoll (arg, &end, 10);
      if (*end || end == arg || retain < 1)
        return cli_usage ("policy create", "--retain takes a count >= 1");
      break;
    default: return cli_usage ("policy create", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("policy create", "expected one policy NAME");
  if ((every > 0) == (daily >= 0))
    return cli_usage ("policy create", "expected --every INTERVAL or "
                      "--daily HH:MM");
  if (retain == 0)
    return cli_usage ("policy create", "--retain N is required");
  if (cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope,
                          "xsnap:CreateAutoSnapshotPolicy", "policy",
                          argv[optind]) == -1
      || xs_schedule_create (cli->store, &cli->scope, argv[optind], every,
                               daily, retain) == -1)
    return 1;
  if (!cli->quiet && !cli->json)
    printf ("created policy '%s'\n", argv[optind]);
  return 0;
}

/* policy attach NAME VOL | policy detach NAME VOL */
static int
policy_attach (struct cli *cli, int argc, char **argv)
{
  bool detach = strcmp (argv[0], "detach") == 0;
  struct xs_volume vol;
  char *arg;
  int r;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("policy", "bad option");
  if (optind + 2 != argc)
    return cli_usage (detach ? "policy detach" : "policy attach",
                      "expected NAME VOLUME");
  if (cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope,
                          detach ? "xsnap:DetachAutoSnapshotPolicy"
                                 : "xsnap:AttachAutoSnapshotPolicy",
                          "policy", argv[optind]) == -1
      || xs_volume_find (cli->store, &cli->scope, argv[optind + 1], false,
                         &vol) != 0)
    return 1;
  r = xs_schedule_attach (cli->store, &cli->scope, argv[optind], &vol,
                            detach);
  if (r == 0 && !cli->quiet)
    printf (detach ? "detached volume '%s' from policy '%s'\n"
                   : "attached volume '%s' to policy '%s'\n",
            vol.name, argv[optind]);
  xs_volume_clear (&vol);
  return r == 0 ? 0 : 1;
}

static int
add_attachment (const struct xs_schedule_attachment *attachment, void *opaque)
{
  return json_array_append_new (opaque,
                                xs_schedule_attachment_to_json (attachment));
}

/* A policy as JSON, with its volumes and how their last runs went. */
static json_t *
policy_json (struct cli *cli, const struct xs_schedule *policy)
{
  json_t *root = xs_schedule_to_json (policy);
  json_t *attachments = json_array ();

  if (root == NULL || attachments == NULL
      || json_object_set_new (root, "attachments", attachments) == -1
      || xs_schedule_attachments (cli->store, policy, add_attachment,
                                    attachments) == -1) {
    json_decref (root);
    return NULL;
  }
  return root;
}

static int
print_policy (const struct xs_schedule *policy, void *opaque)
{
  struct cli *cli = opaque;
  char schedule[32];

  if (cli->json)
    return json_array_append_new (cli->json_list,
                                  policy_json (cli, policy));
  if (policy->every_s)
    snprintf (schedule, sizeof schedule, "every %" PRId64 "m",
              policy->every_s / 60);
  else
    snprintf (schedule, sizeof schedule, "daily %02d:%02d",
              policy->daily_minute / 60, policy->daily_minute % 60);
  printf ("%-24s %-20s %-16s %6" PRId64 " %7" PRId64 " %5" PRId64 "\n",
          policy->name, policy->id, schedule, policy->retain,
          policy->volumes, policy->tasks);
  return 0;
}

static int
policy_list (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("policy list", "bad option");
  if (optind != argc)
    return cli_usage ("policy list", "takes no arguments");
  if (cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope,
                          "xsnap:DescribeAutoSnapshotPolicies", "policy",
                          "*") == -1)
    return 1;
  cli_list_begin (cli, "%-24s %-20s %-16s %6s %7s %5s\n", "POLICY", "ID",
                  "SCHEDULE",
            "RETAIN", "VOLUMES", "TASKS");
  return cli_list_end (cli, xs_schedule_list (cli->store, &cli->scope,
                                                print_policy, cli));
}

static int
print_attachment (const struct xs_schedule_attachment *a, void *opaque)
{
  char last[32] = "never", next[32];

  if (a->last_run_ns)
    cli_format_time (a->last_run_ns, last, sizeof last);
  cli_format_time (a->next_run_ns, next, sizeof next);
  printf ("%-20s %-22s %-22s %s\n",
          a->volume_name[0] ? a->volume_name : a->volume_id, last, next,
          a->last_error[0] ? a->last_error : "-");
  return 0;
}

/* policy show NAME: the policy, its volumes, their last run and error. */
static int
policy_show (struct cli *cli, int argc, char **argv)
{
  struct xs_schedule policy;
  char *arg;
  int r;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("policy show", "bad option");
  if (optind + 1 != argc)
    return cli_usage ("policy show", "expected one policy NAME");
  if (cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope,
                          "xsnap:DescribeAutoSnapshotPolicies", "policy",
                          argv[optind]) == -1
      || xs_schedule_find (cli->store, &cli->scope, argv[optind],
                             &policy) == -1)
    return 1;
  if (cli->json)
    r = cli_print_json (policy_json (cli, &policy));
  else {
    printf ("policy %s (%s): keeps %" PRId64 ", %" PRId64 " copy task(s)\n",
            policy.name, policy.id, policy.retain, policy.tasks);
    printf ("%-20s %-22s %-22s %s\n", "VOLUME", "LAST-RUN", "NEXT-RUN",
            "LAST-ERROR");
    r = xs_schedule_attachments (cli->store, &policy, print_attachment,
                                   NULL);
  }
  xs_schedule_clear (&policy);
  return r == 0 ? 0 : 1;
}

static int
policy_delete (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("policy delete", "bad option");
  if (optind + 1 != argc)
    return cli_usage ("policy delete", "expected one policy NAME");
  if (cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope,
                          "xsnap:DeleteAutoSnapshotPolicy", "policy",
                          argv[optind]) == -1
      || xs_schedule_delete (cli->store, &cli->scope, argv[optind]) == -1)
    return 1;
  if (!cli->quiet)
    printf ("deleted policy '%s' (its copy tasks stop with it)\n",
            argv[optind]);
  return 0;
}

static int
policy_copy_to (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "account", required_argument, NULL, 'a' },
    { "region", required_argument, NULL, 'r' },
    { "retain", required_argument, NULL, 'n' },
    { "quiet", no_argument, NULL, 'q' },
    { "json", no_argument, NULL, 'j' },
    { NULL, 0, NULL, 0 },
  };
  const char *account = NULL, *region = NULL;
  int64_t retain = 0;
  char *end;
  int c;

  /* --account and --region here name the destination, not the caller:
   * they are this action's own options.
   */
  while ((c = getopt_long (argc, argv, "q", options, NULL)) != -1) {
    switch (c) {
    case 'q': cli->quiet = true; break;
    case 'j': cli->json = true; break;
    case 'a': account = optarg; break;
    case 'r': region = optarg; break;
    case 'n':
      retain = strtoll (optarg, &end, 10);
      if (*end || end == optarg || retain < 1)
        return cli_usage ("policy copy-to", "--retain takes a count >= 1");
      break;
    default: return cli_usage ("policy copy-to", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("policy copy-to", "expected one policy NAME");
  if (account == NULL && region == NULL)
    return cli_usage ("policy copy-to", "expected --account ID and/or "
                      "--region R");
  if (cli_open (cli) == -1
      || xs_schedule_copy_to (cli->store, &cli->scope, argv[optind],
                                account ? account : cli->scope.account,
                                region, retain) == -1)
    return 1;
  if (!cli->quiet)
    printf ("policy '%s' now copies to account '%s'%s%s\n", argv[optind],
            account ? account : cli->scope.account,
            region ? ", region " : "", region ? region : "");
  return 0;
}

static int
print_task (const struct xs_copy_task *task, void *opaque)
{
  struct cli *cli = opaque;

  if (cli->json)
    return json_array_append_new (cli->json_list,
                                  xs_copy_task_to_json (task));
  printf ("%-22s %-20s %-12s %-10s %-12s %-10s %6" PRId64 " %s\n", task->id,
          task->policy_name, task->source_account, task->source_region,
          task->dest_account, task->dest_region, task->retain,
          task->last_error);
  return 0;
}

static int
policy_tasks (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "incoming", no_argument, NULL, 'i' },
    { "outgoing", no_argument, NULL, 'o' },
    { NULL, 0, NULL, 0 },
  };
  bool incoming = true, outgoing = true;
  json_t *in = NULL, *out = NULL;
  char *arg;
  int c, r = -1;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'i': outgoing = false; break;
    case 'o': incoming = false; break;
    default: return cli_usage ("policy tasks", "bad option");
    }
  }
  if (optind != argc || (!incoming && !outgoing))
    return cli_usage ("policy tasks", "expected --incoming or --outgoing");
  if (cli_open (cli) == -1)
    return 1;
  if (!cli->json && !cli->quiet)
    printf ("%-22s %-20s %-12s %-10s %-12s %-10s %6s %s\n", "TASK", "POLICY",
            "FROM", "REGION", "TO", "REGION", "RETAIN", "LAST-ERROR");
  out = json_array ();
  in = json_array ();
  cli->json_list = out;
  if (outgoing && xs_copy_task_list (cli->store, &cli->scope, true,
                                     print_task, cli) == -1)
    goto done;
  cli->json_list = in;
  if (incoming && xs_copy_task_list (cli->store, &cli->scope, false,
                                     print_task, cli) == -1)
    goto done;
  r = 0;
  if (cli->json)
    r = cli_print_json (json_pack ("{s:O, s:O}",
                                   "copy_to_other_accounts", out,
                                   "copy_to_my_account", in));
 done:
  cli->json_list = NULL;
  json_decref (in);
  json_decref (out);
  return r == 0 ? 0 : 1;
}

static int
policy_task_delete (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("policy task-delete", "bad option");
  if (optind + 1 != argc)
    return cli_usage ("policy task-delete", "expected one TASK id");
  if (cli_open (cli) == -1
      || xs_copy_task_delete (cli->store, &cli->scope, argv[optind]) == -1)
    return 1;
  if (!cli->quiet)
    printf ("deleted copy task %s\n", argv[optind]);
  return 0;
}

static void
print_note (const char *line, void *opaque)
{
  struct cli *cli = opaque;
  char now[32];

  if (cli->quiet)
    return;
  cli_format_time (xs_wall_clock_ns (), now, sizeof now);
  printf ("%s %s\n", now, line);
  fflush (stdout);
}

static volatile sig_atomic_t stopping;

static void
stop_pass (int sig)
{
  stopping = 1;
}

/* SIGTERM and SIGINT end a pass at its next safe point (a copy between
 * chunks, its job left to `xsnap job resume`), not in the middle.
 */
static void
catch_stop_signals (void)
{
  struct sigaction sa = { .sa_handler = stop_pass };

  sigemptyset (&sa.sa_mask);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
}

/* One pass, saying so if another one holds the store. */
static int
run_pass (struct cli *cli)
{
  char line[96];
  pid_t other;
  int failures;

  failures = xs_schedule_run_due (cli->store, xs_wall_clock_ns (),
                                    &stopping, &other, print_note, cli);
  if (other != 0) {
    if (other > 0)
      snprintf (line, sizeof line, "another policy pass is running "
                "(pid %ld): nothing done", (long) other);
    else
      snprintf (line, sizeof line, "another policy pass is running: "
                "nothing done");
    print_note (line, cli);
  }
  return failures;
}

static int
policy_run_due (struct cli *cli, int argc, char **argv)
{
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("policy run-due", "bad option");
  if (optind != argc)
    return cli_usage ("policy run-due", "takes no arguments");
  if (cli_open (cli) == -1)
    return 1;
  catch_stop_signals ();
  return run_pass (cli) == 0 && !stopping ? 0 : 1;
}

int
cmd_policy (struct cli *cli, int argc, char **argv)
{
  static const struct {
    const char *name;
    int (*run) (struct cli *cli, int argc, char **argv);
  } actions[] = {
    { "create", policy_create },
    { "attach", policy_attach },
    { "detach", policy_attach },
    { "list", policy_list },
    { "show", policy_show },
    { "delete", policy_delete },
    { "copy-to", policy_copy_to },
    { "tasks", policy_tasks },
    { "task-delete", policy_task_delete },
    { "run-due", policy_run_due },
  };
  size_t i;

  if (argc < 2)
    return cli_usage ("policy", "expected create, attach, detach, list, "
                      "show, delete, copy-to, tasks, task-delete or "
                      "run-due");
  for (i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp (argv[1], actions[i].name) == 0) {
      optind = 0;
      return actions[i].run (cli, argc - 1, argv + 1);
    }
  return cli_usage ("policy", "unknown action '%s'", argv[1]);
}

/* xsnap daemon [--interval SECONDS]: run what is due, sleep until the
 * next thing falls due (at most the interval), until SIGTERM or SIGINT.
 */
int
cmd_daemon (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "interval", required_argument, NULL, 'i' },
    { "metrics-listen", required_argument, NULL, 'm' },
    { NULL, 0, NULL, 0 },
  };
  long interval = 60;
  int64_t now, next, wait_s;
  const char *metrics_address = NULL;
  struct metrics_listener *listener = NULL;
  char *arg, *end, *bound = NULL, line[320];
  int c;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'i':
      interval = strtol (arg, &end, 10);
      if (*end || end == arg || interval < 1 || interval > 86400)
        return cli_usage ("daemon", "--interval takes 1 to 86400 seconds");
      break;
    case 'm': metrics_address = arg; break;
    default: return cli_usage ("daemon", "bad option");
    }
  }
  if (optind != argc)
    return cli_usage ("daemon", "takes no arguments");
  if (cli_open (cli) == -1)
    return 1;
  /* The listener serves what the daemon's account may see: refused at
   * start, not at each scrape.
   */
  if (metrics_address
      && (cli_check_metrics_access (cli) == -1
          || (listener = metrics_listen_start (xs_store_path (cli->store),
                                               metrics_address,
                                               &bound)) == NULL))
    return 1;
  catch_stop_signals ();
  print_note ("daemon started", cli);
  if (listener) {
    snprintf (line, sizeof line, "metrics on http://%s/metrics", bound);
    print_note (line, cli);
    free (bound);
  }
  while (!stopping) {
    if (run_pass (cli) == -1)
      print_note ("the pass failed; trying again later", cli);
    next = xs_schedule_next_due (cli->store, xs_wall_clock_ns ());
    wait_s = interval;
    if (next > 0) {
      now = xs_wall_clock_ns ();
      wait_s = next > now ? (next - now) / 1000000000 + 1 : 0;
      if (wait_s > interval)
        wait_s = interval;
    }
    for (int64_t i = 0; i < wait_s && !stopping; i++)
      sleep (1);
  }
  metrics_listen_stop (listener);
  print_note ("daemon stopped", cli);
  return 0;
}
