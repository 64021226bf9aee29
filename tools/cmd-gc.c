/* xsnap gc: reclaim what no snapshot needs any more (see lib/ops/gc.h). */
#include <inttypes.h>
#include <stdio.h>

#include "access/access.h"
#include "cli.h"
#include "ops/gc.h"

int
cmd_gc (struct cli *cli, int argc, char **argv)
{
  struct xs_gc_report report;
  char *arg;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("gc", "bad option");
  if (optind != argc)
    return cli_usage ("gc", "unexpected argument '%s'", argv[optind]);
  if (cli_open (cli) == -1
      || xs_access_scope (cli->store, &cli->scope, "xsnap:RunGc", "region",
                          cli->scope.region) == -1
      || xs_gc_region (cli->store, cli->scope.region, &report) == -1)
    return 1;
  if (cli->json)
    return cli_print_json (json_pack ("{s:s, s:I, s:I, s:I, s:I, s:I, s:I,"
                                      " s:I, s:I, s:I, s:I}",
                                      "region", cli->scope.region,
                                      "stale_pending",
                                      (json_int_t) report.stale_pending,
                                      "purged_snapshots",
                                      (json_int_t) report.purged_snapshots,
                                      "orphan_manifests",
                                      (json_int_t) report.orphan_manifests,
                                      "manifests",
                                      (json_int_t) report.manifests,
                                      "chunks_kept",
                                      (json_int_t) report.chunks_kept,
                                      "chunks_deleted",
                                      (json_int_t) report.chunks_deleted,
                                      "pages_kept",
                                      (json_int_t) report.pages_kept,
                                      "pages_deleted",
                                      (json_int_t) report.pages_deleted,
                                      "temps_removed",
                                      (json_int_t) report.temps_removed,
                                      "staged_removed",
                                      (json_int_t) report.staged_removed))
      ? 1 : 0;
  if (!cli->quiet)
    printf ("gc of region '%s': %" PRIu64 " chunks deleted, %" PRIu64
            " kept (%" PRIu64 " manifests), %" PRIu64 " map pages deleted, %"
            PRIu64 " kept; %" PRIu64 " deleted snapshots "
            "purged, %" PRIu64 " stale pending and %" PRIu64 " orphan "
            "manifests removed, %" PRIu64 " temporary files and %" PRIu64
            " unfinished imports removed\n",
            cli->scope.region, report.chunks_deleted, report.chunks_kept,
            report.manifests, report.pages_deleted, report.pages_kept,
            report.purged_snapshots, report.stale_pending,
            report.orphan_manifests, report.temps_removed,
            report.staged_removed);
  return 0;
}
