/* xsnap: libFuzzer target for the manifest parser.
 *
 * Manifests come from other accounts, regions and streams, so
 * xs_manifest_parse must survive any input.  Almost every mutation fails
 * the trailing XXH3-64 checksum, so each input is also parsed with its
 * checksum recomputed, which lets the fuzzer reach the metadata, geometry,
 * entries and root checks behind it.  Whatever parses as a tree manifest
 * must serialize and parse again to the same root; a flat one must walk.
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "repo/manifest.h"

void
xs_error_sink (const char *message)
{
  (void) message;
}

static int
count_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  uint64_t *count = opaque;

  (void) block;
  (void) id;
  (*count)++;
  return 0;
}

/* A tree manifest must serialize and parse again to the same root; a
 * flat one (versions 1 and 2) is held in memory, so its whole map must
 * walk without a repository.
 */
static void
check_round_trip (struct xs_manifest *m)
{
  struct xs_manifest *again;
  uint64_t count = 0;
  void *data;
  size_t len;

  if (m->flat) {
    if (xs_manifest_for_each_block (m, 0, m->nblocks, count_block, &count)
        != 0 || count > m->nblocks)
      abort ();
    return;
  }
  if (xs_manifest_serialize (m, &data, &len) == -1)
    abort ();
  again = xs_manifest_parse (data, len, "re-serialized");
  if (again == NULL || !xs_hash128_equal (&again->root, &m->root)
      || again->nblocks != m->nblocks
      || !xs_hash128_equal (&again->top, &m->top))
    abort ();
  xs_manifest_free (again);
  free (data);
}

static void
parse_one (const uint8_t *data, size_t size)
{
  struct xs_manifest *m = xs_manifest_parse (data, size, "fuzz");

  if (m) {
    check_round_trip (m);
    xs_manifest_free (m);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  uint8_t *copy;
  uint64_t check;

  parse_one (data, size);
  if (size < 8)
    return 0;
  /* A fresh allocation of exactly size bytes, so overreads are caught. */
  copy = malloc (size);
  if (copy == NULL)
    return 0;
  memcpy (copy, data, size);
  check = htole64 (xs_hash64 (copy, size - 8));
  memcpy (copy + size - 8, &check, sizeof check);
  parse_one (copy, size);
  free (copy);
  return 0;
}
