/* xsnap verify: read and check every chunk of a snapshot, and name the
 * blocks whose chunk is missing or corrupt; with --repair, put those
 * chunks back from another region.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "access/access.h"
#include "ops/copy.h"
#include "base/error.h"
#include "base/fileio.h"
#include "catalog/maintenance.h"
#include "progress.h"
#include "repo/repo.h"
#include "catalog/snapshot.h"
#include "repo/verify.h"

struct verify_output {
  struct cli *cli;
  struct progress progress;
  json_t *bad;                  /* with --json */
  uint64_t *blocks;             /* the bad blocks, for a repair */
  size_t nblocks;
  bool lost;                    /* out of memory collecting them */
};

static void
report_bad (uint64_t block, const struct xs_hash128 *id, const char *reason,
            void *opaque)
{
  struct verify_output *out = opaque;
  char hex[XS_HASH128_HEX_LEN + 1];

  uint64_t *more = realloc (out->blocks,
                            (out->nblocks + 1) * sizeof *out->blocks);

  if (more) {
    out->blocks = more;
    out->blocks[out->nblocks++] = block;
  }
  else
    out->lost = true;
  xs_hash128_to_hex (id, hex);
  if (out->bad)
    json_array_append_new (out->bad,
                           json_pack ("{s:I, s:s, s:s}", "block",
                                      (json_int_t) block, "chunk", hex,
                                      "reason", reason));
  else
    printf ("bad block %" PRIu64 ": chunk %s: %s\n", block, hex, reason);
}

static void
report_not_repaired (const struct xs_hash128 *id, const char *reason,
                     void *opaque)
{
  char hex[XS_HASH128_HEX_LEN + 1];

  (void) opaque;
  xs_hash128_to_hex (id, hex);
  xs_error ("chunk %s was not repaired: %s", hex, reason);
}

/* Put the bad chunks of SNAP back from FROM_REGION: 0 all repaired, 1
 * not, -1.
 */
static int
repair (struct cli *cli, const struct xs_snapshot *snap,
        struct xs_manifest *m, struct xs_repo *repo,
        const char *from_region, struct verify_output *out)
{
  struct xs_repair_report report;
  struct xs_repo *from;
  int r;

  if (out->lost) {
    xs_error ("cannot repair snapshot %s@%s: out of memory",
              snap->volume_name, snap->name);
    return -1;
  }
  from = xs_store_repo (cli->store, snap->account, from_region);
  if (from == NULL)
    return -1;
  r = xs_verify_repair (repo, from, m, out->blocks, out->nblocks, &report,
                        report_not_repaired, out);
  xs_repo_close (from);
  if (r == -1)
    return -1;
  if (!cli->quiet && !cli->json)
    printf ("repaired %" PRIu64 " chunk(s) of %" PRIu64 " from region "
            "'%s'\n", report.repaired, report.chunks, from_region);
  return r;
}

static void
report_progress (uint64_t done, uint64_t total, void *opaque)
{
  struct verify_output *out = opaque;

  progress_update (done, total, &out->progress);
}

/* The run, for xsnap metrics and status: how the last verify of the
 * snapshot's repository ended.
 */
static int
record_run (struct cli *cli, const struct xs_snapshot *snap,
            int64_t started, int status,
            const struct xs_verify_report *report, const char *why)
{
  char detail[700];

  if (status == 1)
    snprintf (detail, sizeof detail, "snapshot %s: %s", snap->id, why);
  else
    snprintf (detail, sizeof detail, "snapshot %s: %" PRIu64 " blocks, %"
              PRIu64 " bad", snap->id, report->blocks, report->bad_blocks);
  return xs_maintenance_record_run (cli->store, "verify", snap->account,
                                    snap->region, started,
                                    status == 0 ? XS_RUN_OK
                                    : status == EXIT_CORRUPT
                                    ? XS_RUN_DAMAGED : XS_RUN_FAILED,
                                    detail);
}

int
cmd_verify (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "repair", no_argument, NULL, 'R' },
    { "from-region", required_argument, NULL, 'f' },
    { NULL, 0, NULL, 0 },
  };
  struct verify_output out = { .cli = cli };
  struct xs_verify_report report = { 0 };
  struct xs_snapshot snap;
  struct xs_manifest *m = NULL;
  struct xs_repo *repo = NULL;
  const char *from_region = NULL;
  bool repairing = false;
  char *arg, why[512] = "";
  int64_t started;
  int c, r, status = 1;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'R': repairing = true; break;
    case 'f': from_region = arg; break;
    default: return cli_usage ("verify", "bad option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage ("verify", "expected one snapshot");
  if (repairing != (from_region != NULL))
    return cli_usage ("verify", "--repair takes --from-region REGION");
  if (cli_open (cli) == -1
      || xs_access_find_snapshot (cli->store, &cli->scope, argv[optind],
                                  "xsnap:ReadSnapshot", false, &snap) != 0)
    return 1;
  /* A repair writes into the snapshot's repository: as a copy would. */
  if (repairing
      && xs_access_snapshot (cli->store, cli->scope.account,
                             "xsnap:CopySnapshot", &snap) == -1) {
    xs_snapshot_clear (&snap);
    return 1;
  }
  started = xs_wall_clock_ns ();
  xs_error_capture_begin (why, sizeof why);
  m = xs_snapshot_load_manifest (cli->store, snap.account, snap.region,
                                 snap.id);
  repo = xs_store_repo (cli->store, snap.account, snap.region);
  if (m == NULL || repo == NULL)
    goto out;
  if (cli->json && (out.bad = json_array ()) == NULL)
    goto out;
  progress_init (&out.progress, "verifying", cli->quiet || cli->json, -1);
  r = xs_verify_snapshot (repo, m, &report, report_bad, report_progress,
                          &out);
  progress_end (&out.progress);
  if (r == -1)
    goto out;
  status = r == 0 ? 0 : EXIT_CORRUPT;
  if (cli->json) {
    json_t *root = json_pack ("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:O}",
                              "snapshot", snap.id, "name", snap.name,
                              "ok", r == 0,
                              "blocks", (json_int_t) report.blocks,
                              "zero_blocks",
                              (json_int_t) report.zero_blocks,
                              "chunks_checked",
                              (json_int_t) report.chunks_checked,
                              "bad_blocks", (json_int_t) report.bad_blocks,
                              "bad", out.bad);
    if (cli_print_json (root) == -1)
      status = 1;
  }
  else if (!cli->quiet || r != 0)
    printf ("snapshot %s@%s (%s): %" PRIu64 " blocks, %" PRIu64 " zero, %"
            PRIu64 " chunks checked, %" PRIu64 " bad\n", snap.volume_name,
            snap.name, snap.id, report.blocks, report.zero_blocks,
            report.chunks_checked, report.bad_blocks);
  if (r != 0 && repairing) {
    r = repair (cli, &snap, m, repo, from_region, &out);
    if (r == -1)
      goto out;
    status = r == 0 ? 0 : EXIT_CORRUPT;
  }
  /* Copies to this repository doubt what it holds until a repair. */
  if (r != 0
      ? xs_copy_mark_damaged (cli->store, snap.account, snap.region,
                              snap.id) == -1
      : repairing && xs_copy_mark_damaged (cli->store, snap.account,
                                           snap.region, NULL) == -1)
    status = 1;
  if (r != 0)
    xs_error ("snapshot %s@%s is damaged: %" PRIu64 " bad blocks%s",
              snap.volume_name, snap.name, report.bad_blocks,
              repairing ? ", not all repaired" : "");
 out:
  xs_error_capture_end ();
  if (record_run (cli, &snap, started, status, &report, why) == -1)
    status = 1;
  free (out.blocks);
  json_decref (out.bad);
  xs_manifest_free (m);
  xs_repo_close (repo);
  xs_snapshot_clear (&snap);
  return status;
}
