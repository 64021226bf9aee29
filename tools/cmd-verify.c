/* xsnap verify: read and check every chunk of a snapshot, and name the
 * blocks whose chunk is missing or corrupt.
 */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "access.h"
#include "error.h"
#include "progress.h"
#include "repo.h"
#include "snapshot.h"
#include "verify.h"

struct verify_output {
  struct cli *cli;
  struct progress progress;
  json_t *bad;                  /* with --json */
};

static void
report_bad (uint64_t block, const struct xs_hash128 *id, const char *reason,
            void *opaque)
{
  struct verify_output *out = opaque;
  char hex[XS_HASH128_HEX_LEN + 1];

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
report_progress (uint64_t done, uint64_t total, void *opaque)
{
  struct verify_output *out = opaque;

  progress_update (done, total, &out->progress);
}

int
cmd_verify (struct cli *cli, int argc, char **argv)
{
  struct verify_output out = { .cli = cli };
  struct xs_verify_report report;
  struct xs_snapshot snap;
  struct xs_manifest *m = NULL;
  struct xs_repo *repo = NULL;
  char *arg;
  int r, status = 1;

  if (cli_next_option (cli, argc, argv, "", NULL, &arg) != -1)
    return cli_usage ("verify", "bad option");
  if (optind + 1 != argc)
    return cli_usage ("verify", "expected one snapshot");
  if (cli_open (cli) == -1
      || xs_access_find_snapshot (cli->store, &cli->scope, argv[optind],
                                  "xsnap:ReadSnapshot", false, &snap) != 0)
    return 1;
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
  if (r != 0)
    xs_error ("snapshot %s@%s is damaged: %" PRIu64 " bad blocks",
              snap.volume_name, snap.name, report.bad_blocks);
 out:
  json_decref (out.bad);
  xs_manifest_free (m);
  xs_repo_close (repo);
  xs_snapshot_clear (&snap);
  return status;
}
