/* xsnap diff: changed-block maps.
 *
 * `xsnap diff --live VOL` reports the blocks of a volume changed since its
 * last snapshot (or its creation) from the volume's dirty map.  When the
 * map cannot be trusted it says why and exits with status 3, printing no
 * extents: a consumer must never act on a map that may miss changes.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ops/changemap.h"
#include "cli.h"
#include "base/error.h"
#include "progress.h"
#include "base/size.h"
#include "catalog/volume.h"

enum format { FORMAT_TABLE, FORMAT_JSON, FORMAT_BITMAP, FORMAT_BLOCKS };

static int
parse_format (const char *text, enum format *format)
{
  static const char *const names[] = { "table", "json", "bitmap", "blocks" };

  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp (text, names[i]) == 0) {
      *format = (enum format) i;
      return 0;
    }
  return -1;
}

struct run_output {
  const struct xs_changemap *map;
  json_t *array;
};

static void
run_bytes (const struct xs_changemap *map, uint64_t first, uint64_t count,
           uint64_t *offset, uint64_t *length)
{
  *offset = first * map->block_size;
  *length = count * map->block_size;
  if (*offset + *length > map->size)
    *length = map->size - *offset;
}

static int
print_run (uint64_t first, uint64_t count, void *opaque)
{
  struct run_output *out = opaque;
  uint64_t offset, length;

  run_bytes (out->map, first, count, &offset, &length);
  printf ("%16" PRIu64 " %16" PRIu64 " %12" PRIu64 " %10" PRIu64 "\n",
          offset, length, first, count);
  return 0;
}

static int
append_run (uint64_t first, uint64_t count, void *opaque)
{
  struct run_output *out = opaque;
  uint64_t offset, length;

  run_bytes (out->map, first, count, &offset, &length);
  return json_array_append_new (out->array,
                                json_pack ("{s:I, s:I, s:I, s:I}",
                                           "offset", (json_int_t) offset,
                                           "length", (json_int_t) length,
                                           "first_block", (json_int_t) first,
                                           "blocks", (json_int_t) count));
}

static int
print_blocks (uint64_t first, uint64_t count, void *opaque)
{
  for (uint64_t b = first; b < first + count; b++)
    printf ("%" PRIu64 "\n", b);
  return 0;
}

static int
write_bitmap (const struct xs_changemap *map)
{
  void *data;
  size_t len;
  int r = 0;

  if (isatty (STDOUT_FILENO)) {
    xs_error ("refusing to write a binary bitmap to a terminal: redirect "
              "standard output");
    return -1;
  }
  if (xs_changemap_encode (map, &data, &len) == -1)
    return -1;
  if (fwrite (data, 1, len, stdout) != len || fflush (stdout) == EOF) {
    xs_error ("cannot write the bitmap: %m");
    r = -1;
  }
  free (data);
  return r;
}

/* What a map compares, for the output. */
struct subject {
  json_t *identity;             /* JSON fields naming the two sides */
  char *title;                  /* the same for the table's header line */
};

static int
print_json (const struct subject *subject, const struct xs_changemap *map)
{
  bool trusted = map->doubt == XS_DIRTYMAP_TRUSTED;
  struct run_output out = { .map = map, .array = NULL };
  json_t *root, *fields;

  if (trusted) {
    out.array = json_array ();
    if (out.array == NULL
        || xs_bitmap_for_each_run (&map->bits, append_run, &out) != 0) {
      json_decref (out.array);
      xs_error ("cannot build JSON output: out of memory");
      return -1;
    }
  }
  root = json_deep_copy (subject->identity);
  fields = json_pack ("{s:I, s:I, s:I, s:b, s:b, s:s?, s:I, s:I, s:o}",
                      "size", (json_int_t) map->size,
                      "block_size", (json_int_t) map->block_size,
                      "blocks", (json_int_t) map->bits.nbits,
                      "trusted", trusted, "live", map->live,
                      "reason", trusted ? NULL
                      : xs_dirtymap_doubt_text (map->doubt),
                      "changed_blocks",
                      (json_int_t) (trusted ? xs_changemap_blocks (map) : 0),
                      "changed_bytes",
                      (json_int_t) (trusted ? xs_changemap_bytes (map) : 0),
                      "extents", out.array ? out.array : json_null ());
  if (root == NULL || fields == NULL
      || json_object_update (root, fields) == -1) {
    json_decref (root);
    json_decref (fields);
    xs_error ("cannot build JSON output: out of memory");
    return -1;
  }
  json_decref (fields);
  return cli_print_json (root);
}

static int
print_table (struct cli *cli, const struct subject *subject,
             const struct xs_changemap *map)
{
  struct run_output out = { .map = map };
  char bytes[32], size[32], block[32];

  xs_size_format (xs_changemap_bytes (map), bytes, sizeof bytes);
  xs_size_format (map->size, size, sizeof size);
  xs_size_format (map->block_size, block, sizeof block);
  if (!cli->quiet) {
    printf ("# %s: %" PRIu64 " of %" PRIu64 " blocks of %s changed (%s of "
            "%s)%s\n", subject->title, xs_changemap_blocks (map),
            (uint64_t) map->bits.nbits, block, bytes, size,
            map->live ? "; volume is attached: as of its last flush" : "");
    printf ("%16s %16s %12s %10s\n", "OFFSET", "LENGTH", "FIRST_BLOCK",
            "BLOCKS");
  }
  return xs_bitmap_for_each_run (&map->bits, print_run, &out);
}

static int
print_totals (struct cli *cli, const struct subject *subject,
              const struct xs_changemap *map)
{
  if (cli->json)
    return cli_print_json (json_pack ("{s:I, s:I}", "changed_blocks",
                                      (json_int_t) xs_changemap_blocks (map),
                                      "changed_bytes",
                                      (json_int_t) xs_changemap_bytes (map)));
  printf ("%" PRIu64 "\n", xs_changemap_bytes (map));
  return 0;
}

/* Print MAP in FORMAT; returns the exit status. */
static int
print_map (struct cli *cli, const struct subject *subject,
           const struct xs_changemap *map, enum format format, bool totals)
{
  int r;

  if (map->doubt != XS_DIRTYMAP_TRUSTED) {
    xs_error ("the changed-block map of %s cannot be trusted: %s; the next "
              "snapshot will compare every block", subject->title,
              xs_dirtymap_doubt_text (map->doubt));
    if (format == FORMAT_JSON)
      print_json (subject, map);
    return EXIT_UNTRUSTED;
  }
  if (totals)
    r = print_totals (cli, subject, map);
  else {
    switch (format) {
    case FORMAT_JSON: r = print_json (subject, map); break;
    case FORMAT_BITMAP: r = write_bitmap (map); break;
    case FORMAT_BLOCKS:
      r = xs_bitmap_for_each_run (&map->bits, print_blocks, NULL);
      break;
    default: r = print_table (cli, subject, map); break;
    }
  }
  return r == 0 ? 0 : 1;
}

static void
subject_clear (struct subject *subject)
{
  json_decref (subject->identity);
  free (subject->title);
}

static int
diff_live (struct cli *cli, const char *name, enum format format,
           bool totals)
{
  struct subject subject = { 0 };
  struct xs_volume vol;
  struct xs_changemap map;
  int status = 1;

  if (cli_open (cli) == -1
      || xs_volume_find (cli->store, &cli->scope, name, false, &vol) != 0)
    return 1;
  if (xs_changemap_of_volume (cli->store, &vol, &map) == -1)
    goto out;
  subject.identity = json_pack ("{s:s, s:s, s:s}", "volume", vol.name,
                                "volume_id", vol.id, "since",
                                vol.base_snapshot_id[0]
                                ? vol.base_snapshot_id : "creation");
  if (subject.identity == NULL
      || asprintf (&subject.title, "volume %s (%s) since %s", vol.name,
                   vol.id, vol.base_snapshot_id[0] ? vol.base_snapshot_id
                   : "its creation") == -1)
    xs_error ("cannot describe the map: out of memory");
  else
    status = print_map (cli, &subject, &map, format, totals);
  xs_changemap_clear (&map);
 out:
  subject_clear (&subject);
  xs_volume_clear (&vol);
  return status;
}

static int
verify_map (struct cli *cli, const char *a, const char *b,
            const struct xs_changemap *map)
{
  struct progress progress;
  uint64_t missed, needless;
  int r;

  progress_init (&progress, "verifying", cli->quiet || cli->json, -1);
  r = xs_changemap_verify (cli->store, &cli->scope, a, b, map, &missed,
                           &needless, progress_update, &progress);
  progress_end (&progress);
  if (r == -1)
    return 1;
  if (needless)
    fprintf (stderr, "xsnap: %" PRIu64 " blocks are marked changed but "
             "have equal content\n", needless);
  if (missed) {
    xs_error ("the map of %s..%s misses %" PRIu64 " changed blocks", a, b,
              missed);
    return EXIT_CORRUPT;
  }
  if (!cli->quiet && !cli->json)
    fprintf (stderr, "xsnap: map verified: no changed block is missing, "
             "%" PRIu64 " marked needlessly\n", needless);
  return 0;
}

static int
diff_snapshots (struct cli *cli, const char *a, const char *b,
                enum format format, bool totals, bool verify)
{
  struct subject subject = { 0 };
  struct xs_changemap map;
  int status = 1;

  if (cli_open (cli) == -1
      || xs_changemap_of_snapshots (cli->store, &cli->scope, a, b,
                                    &map) == -1)
    return 1;
  subject.identity = json_pack ("{s:s, s:s}", "from", a, "to", b);
  if (subject.identity == NULL
      || asprintf (&subject.title, "%s..%s", a, b) == -1)
    xs_error ("cannot describe the map: out of memory");
  else if (verify && (status = verify_map (cli, a, b, &map)) != 0)
    ;                           /* reported */
  else
    status = print_map (cli, &subject, &map, format, totals);
  xs_changemap_clear (&map);
  subject_clear (&subject);
  return status;
}

int
cmd_diff (struct cli *cli, int argc, char **argv)
{
  static const struct option options[] = {
    { "live", no_argument, NULL, 'l' },
    { "format", required_argument, NULL, 'f' },
    { "totals", no_argument, NULL, 't' },
    { "verify", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  enum format format = FORMAT_TABLE;
  bool live = false, format_given = false, totals = false, verify = false;
  char *arg;
  int c;

  while ((c = cli_next_option (cli, argc, argv, "", options, &arg)) != -1) {
    switch (c) {
    case 'l':
      live = true;
      break;
    case 'f':
      if (parse_format (arg, &format) == -1)
        return cli_usage ("diff", "unknown format '%s' (table, json, bitmap "
                          "or blocks)", arg);
      format_given = true;
      break;
    case 't':
      totals = true;
      break;
    case 'V':
      verify = true;
      break;
    default:
      return cli_usage ("diff", "bad option");
    }
  }
  if (cli->json && !format_given)
    format = FORMAT_JSON;
  if (live) {
    if (optind + 1 != argc || verify)
      return cli_usage ("diff", "--live takes one volume name (and no "
                        "--verify)");
    return diff_live (cli, argv[optind], format, totals);
  }
  if (optind + 2 != argc)
    return cli_usage ("diff", "expected SNAP_A SNAP_B, or --live VOL");
  return diff_snapshots (cli, argv[optind], argv[optind + 1], format, totals,
                         verify);
}
