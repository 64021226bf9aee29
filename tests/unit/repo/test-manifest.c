/* xsnap: tests for lib/repo/manifest.c.
 *
 * Round trips with all metadata, the block map's calls, the root hash's
 * meaning, refusal of every truncation, bit flip, newer version and
 * inconsistent field, the speed of a 1 TiB volume's manifest, and
 * changed-block runs.
 */
#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/hash.h"
#include "repo/backend.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "repofixture.h"
#include "tap.h"

/* The repository every manifest of these tests keeps its map in. */
static struct xs_repo *test_repo;

static struct xs_manifest *
attached (struct xs_manifest *m)
{
  struct xs_repo *repo;

  if (m == NULL)
    return NULL;
  repo = xs_repo_dup (test_repo);
  if (repo == NULL)
    abort ();
  xs_manifest_attach (m, repo);
  return m;
}

static struct xs_manifest *
new_manifest (uint64_t size, uint32_t block_size)
{
  return attached (xs_manifest_new (size, block_size));
}

static struct xs_manifest *
parse_manifest (const void *data, size_t len, const char *what)
{
  return attached (xs_manifest_parse (data, len, what));
}

static uint64_t
next_random (uint64_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

static void
random_id (uint64_t *seed, struct xs_hash128 *id)
{
  uint64_t a = next_random (seed), b = next_random (seed);

  memcpy (id->bytes, &a, 8);
  memcpy (id->bytes + 8, &b, 8);
}

/* Block BLOCK's entry of M.  Aborts on failure. */
static struct xs_hash128
get_id (struct xs_manifest *m, uint64_t block)
{
  struct xs_hash128 id;

  if (xs_manifest_get_block (m, block, &id) == -1)
    abort ();
  return id;
}

static void
set_id (struct xs_manifest *m, uint64_t block, struct xs_hash128 id)
{
  if (xs_manifest_set_block (m, block, &id) == -1)
    abort ();
}

static void
set_random (struct xs_manifest *m, uint64_t block, uint64_t *seed)
{
  struct xs_hash128 id;

  random_id (seed, &id);
  set_id (m, block, id);
}

static void
seal_or_die (struct xs_manifest *m)
{
  if (xs_manifest_seal (m) == -1)
    abort ();
}

/* Whether A and B map every block alike. */
static bool
same_entries (struct xs_manifest *a, struct xs_manifest *b)
{
  struct xs_hash128 x, y;
  uint64_t i;

  if (a->nblocks != b->nblocks)
    return false;
  for (i = 0; i < a->nblocks; i++)
    if (xs_manifest_get_block (a, i, &x) == -1
        || xs_manifest_get_block (b, i, &y) == -1
        || !xs_hash128_equal (&x, &y))
      return false;
  return true;
}

static struct xs_manifest *
make_small (void)
{
  struct xs_manifest *m = new_manifest (10 * 4096 + 100, 4096);
  uint64_t seed = 12345;

  if (m == NULL)
    abort ();
  xs_manifest_set (m, "snapshot_id", "snap-0123456789abcdef");
  xs_manifest_set (m, "volume_id", "vol-42");
  xs_manifest_set (m, "volume_name", "data disk \xc3\xa9t\xc3\xa9");
  xs_manifest_set (m, "account", "alice");
  xs_manifest_set (m, "region", "mainland-1");
  xs_manifest_set (m, "parent_id", "snap-parent");
  xs_manifest_set (m, "name", "nightly \"backup\"");
  xs_manifest_set (m, "status", "available");
  m->created_ns = 1700000000123456789LL;
  set_random (m, 0, &seed);
  set_random (m, 3, &seed);
  set_id (m, 4, get_id (m, 3));
  set_random (m, 10, &seed);
  seal_or_die (m);
  return m;
}

static void
serialize_or_die (const struct xs_manifest *m, void **data, size_t *len)
{
  if (xs_manifest_serialize (m, data, len) == -1)
    abort ();
}

static void
test_round_trip (void)
{
  struct xs_manifest *m = make_small (), *back;
  struct xs_hash128 id;
  void *data;
  size_t len;

  is_int (m->nblocks, 11, "nblocks = ceil (size / block_size)");
  is_int (xs_manifest_serialize (m, &data, &len), 0, "serialize");
  back = parse_manifest (data, len, "test");
  ok (back != NULL, "parse");
  if (back == NULL)
    return;
  is_str (back->snapshot_id, "snap-0123456789abcdef", "snapshot_id");
  is_str (back->volume_id, "vol-42", "volume_id");
  is_str (back->volume_name, "data disk \xc3\xa9t\xc3\xa9", "volume_name");
  is_str (back->account, "alice", "account");
  is_str (back->region, "mainland-1", "region");
  is_str (back->parent_id, "snap-parent", "parent_id");
  is_str (back->name, "nightly \"backup\"", "name");
  is_str (back->status, "available", "status");
  ok (back->created_ns == 1700000000123456789LL, "created_ns");
  is_int (back->size, 10 * 4096 + 100, "size");
  is_int (back->block_size, 4096, "block_size");
  is_int (back->nblocks, 11, "nblocks");
  ok (same_entries (back, m), "entries");
  ok (xs_hash128_equal (&back->root, &m->root), "root");
  id = get_id (back, 1);
  ok (xs_hash128_is_zero (&id), "a zero entry stays zero");
  xs_manifest_free (back);
  free (data);
  xs_manifest_free (m);
}

static void
test_new_and_set (void)
{
  struct xs_manifest *m = new_manifest (1 << 20, 65536), *copy;
  struct xs_hash128 id;
  uint64_t seed = 99;

  ok (m != NULL, "new manifest");
  is_str (m->parent_id, "", "strings start empty");
  is_str (m->status, "available", "status starts 'available'");
  id = get_id (m, 15);
  ok (xs_hash128_is_zero (&id), "entries start zero");
  is_int (xs_manifest_set (m, "colour", "red"), -1, "unknown field refused");
  error_contains ("no field 'colour'", "message names the field");
  is_int (xs_manifest_set (m, "name", "bad \xff utf-8"), -1,
          "invalid UTF-8 refused");
  error_contains ("UTF-8", "message says UTF-8");

  xs_manifest_set (m, "name", "parent");
  copy = xs_manifest_copy (m);
  ok (copy != NULL, "copy");
  if (copy == NULL)
    abort ();
  set_random (copy, 15, &seed);
  id = get_id (m, 15);
  ok (xs_hash128_is_zero (&id), "copy is deep: its entries are its own");
  xs_manifest_set (copy, "name", "child");
  is_str (m->name, "parent", "changing the copy leaves the original");
  is_str (copy->name, "child", "the copy changed");
  xs_manifest_free (copy);
  xs_manifest_free (m);

  ok (new_manifest (1 << 20, 3000) == NULL, "block size 3000 refused");
  error_contains ("power of two", "message says power of two");
  ok (new_manifest (1 << 20, 2048) == NULL, "block size 2048 refused");
  tap_take_error ();
  ok (new_manifest (1 << 20, 8 << 20) == NULL, "block size 8 MiB refused");
  tap_take_error ();
  ok (new_manifest ((UINT64_C (1) << 44) + 1, 4096) == NULL,
      "more than 2^32 blocks refused");
  error_contains ("too large", "message says too large");
}

/* Blocks visited by for_each_block, as "block," text. */
static int
record_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  char *text = opaque;
  size_t used = strlen (text);

  if (xs_hash128_is_zero (id))
    return -2;
  snprintf (text + used, 512 - used, "%llu,", (unsigned long long) block);
  return 0;
}

static int
stop_at_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  (*(int *) opaque)++;
  return 7;
}

static void
test_block_map (void)
{
  struct xs_manifest *m = new_manifest (10 * 4096 + 100, 4096);
  struct xs_hash128 id, got, zero = { { 0 } };
  uint64_t seed = 8;
  char blocks[512] = "";
  int calls = 0;

  if (m == NULL)
    abort ();
  random_id (&seed, &id);
  is_int (xs_manifest_set_block (m, 4, &id), 1, "set_block: 1 if changed");
  is_int (xs_manifest_set_block (m, 4, &id), 0, "... 0 if it was the same");
  got = get_id (m, 4);
  ok (xs_hash128_equal (&got, &id), "get_block reads it back");
  is_int (xs_manifest_set_block (m, 11, &id), -1, "... -1 past the end");
  error_contains ("past the end", "... with a message");
  is_int (xs_manifest_get_block (m, 11, &id), -1, "get_block past the end");
  error_contains ("past the end", "... with a message");
  set_random (m, 0, &seed);
  set_random (m, 10, &seed);
  set_random (m, 7, &seed);
  set_id (m, 7, zero);
  is_int (xs_manifest_for_each_block (m, 0, m->nblocks, record_block,
                                      blocks), 0, "for_each_block");
  is_str (blocks, "0,4,10,", "... visits the non-zero blocks in order");
  blocks[0] = '\0';
  xs_manifest_for_each_block (m, 1, 9, record_block, blocks);
  is_str (blocks, "4,", "... within the range asked");
  blocks[0] = '\0';
  xs_manifest_for_each_block (m, 4, UINT64_MAX, record_block, blocks);
  is_str (blocks, "4,10,", "... to the end, however long the range");
  is_int (xs_manifest_for_each_block (m, 0, m->nblocks, stop_at_block,
                                      &calls), 7,
          "a non-zero return stops it and is returned");
  is_int (calls, 1, "... after one call");
  xs_manifest_free (m);
}

/* Set BLOCK of the manifest OPAQUE to ID. */
static int
copy_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  return xs_manifest_set_block (opaque, block, id) == -1 ? -1 : 0;
}

static void
test_root (void)
{
  struct xs_manifest *m = make_small (), *copy = xs_manifest_copy (m);
  struct xs_hash128 before = m->root, id;

  xs_manifest_set (copy, "name", "other name");
  xs_manifest_set (copy, "snapshot_id", "snap-other");
  copy->created_ns++;
  seal_or_die (copy);
  ok (xs_hash128_equal (&copy->root, &before),
      "the root does not change with metadata");
  id = get_id (copy, 7);
  id.bytes[15] ^= 1;
  set_id (copy, 7, id);
  seal_or_die (copy);
  ok (!xs_hash128_equal (&copy->root, &before),
      "the root changes when one entry changes");
  id.bytes[15] ^= 1;
  set_id (copy, 7, id);
  seal_or_die (copy);
  ok (xs_hash128_equal (&copy->root, &before), "... and changes back");
  xs_manifest_free (copy);

  copy = new_manifest (m->size - 50, m->block_size);
  if (copy == NULL
      || xs_manifest_for_each_block (m, 0, m->nblocks, copy_block, copy) != 0)
    abort ();
  seal_or_die (copy);
  ok (!xs_hash128_equal (&copy->root, &before),
      "the root covers the size, not only the entries");
  xs_manifest_free (copy);
  xs_manifest_free (m);
}

/* Recompute the trailing checksum, so a test reaches the checks behind
 * it.
 */
static void
reseal_checksum (uint8_t *data, size_t len)
{
  uint64_t check = htole64 (xs_hash64 (data, len - 8));

  memcpy (data + len - 8, &check, 8);
}

static void
test_truncation_and_flips (void)
{
  struct xs_manifest *m = make_small (), *back;
  void *data;
  uint8_t *bytes, *copy;
  size_t len, i, undetected = 0;

  serialize_or_die (m, &data, &len);
  bytes = data;
  for (i = 0; i < len; i++) {
    copy = malloc (i ? i : 1);
    memcpy (copy, bytes, i);
    back = parse_manifest (copy, i, "truncated");
    if (back) {
      undetected++;
      xs_manifest_free (back);
    }
    free (copy);
  }
  tap_take_error ();
  is_int (undetected, 0, "all %zu truncations refused", len);

  undetected = 0;
  for (i = 0; i < len * 8; i++) {
    bytes[i / 8] ^= (uint8_t) (1u << (i % 8));
    back = parse_manifest (bytes, len, "flipped");
    if (back) {
      undetected++;
      xs_manifest_free (back);
    }
    bytes[i / 8] ^= (uint8_t) (1u << (i % 8));
  }
  tap_take_error ();
  is_int (undetected, 0, "all %zu single-bit flips refused", len * 8);

  bytes[len - 20] ^= 1;                 /* in the root hash */
  ok (parse_manifest (bytes, len, "key/x") == NULL, "a flipped root");
  error_contains ("manifest key/x: checksum mismatch",
                  "is a checksum mismatch naming the manifest");
  reseal_checksum (bytes, len);
  ok (parse_manifest (bytes, len, "key/x") == NULL,
      "a flipped root with a good checksum");
  error_contains ("root hash mismatch", "is a root hash mismatch");
  free (data);
  xs_manifest_free (m);
}

static void
test_versions (void)
{
  struct xs_manifest *m = make_small ();
  void *data;
  uint8_t *bytes;
  size_t len;

  serialize_or_die (m, &data, &len);
  bytes = data;
  bytes[8] = 5;
  reseal_checksum (bytes, len);
  ok (parse_manifest (bytes, len, "v5") == NULL, "version 5 refused");
  error_contains ("manifest version 5 is newer than this xsnap supports (4)",
                  "message says newer version");
  bytes[8] = 1;
  reseal_checksum (bytes, len);
  ok (parse_manifest (bytes, len, "v1") == NULL,
      "a tree manifest claiming version 1 refused");
  error_contains ("unknown entry encoding 2", "... its entries are not flat");
  bytes[8] = 0;
  reseal_checksum (bytes, len);
  ok (parse_manifest (bytes, len, "v0") == NULL, "version 0 refused");
  error_contains ("version 0", "message names version 0");
  bytes[8] = 1;
  bytes[0] = 'Y';
  ok (parse_manifest (bytes, len, "magic") == NULL, "bad magic refused");
  error_contains ("bad magic", "message says bad magic");
  free (data);
  xs_manifest_free (m);
}

/* Build a manifest by hand: given metadata JSON and raw entries. */
static void *
craft (const char *json, const void *entries, size_t entries_len,
       const struct xs_hash128 *root, size_t *len)
{
  size_t json_len = strlen (json);
  uint8_t *out = malloc (52 + json_len + entries_len), *p = out;
  uint32_t v32;
  uint64_t v64;

  memcpy (p, "XSNPMANI", 8);
  v32 = htole32 (1);
  memcpy (p + 8, &v32, 4);
  v32 = htole32 ((uint32_t) json_len);
  memcpy (p + 12, &v32, 4);
  memcpy (p + 16, json, json_len);
  p += 16 + json_len;
  v32 = 0;
  memcpy (p, &v32, 4);
  v64 = htole64 (entries_len);
  memcpy (p + 4, &v64, 8);
  memcpy (p + 12, entries, entries_len);
  p += 12 + entries_len;
  memcpy (p, root->bytes, 16);
  *len = p + 24 - out;
  reseal_checksum (out, *len);
  return out;
}

static const char *
metadata_with (const char *geometry, const char *extra)
{
  static char buf[1024];

  snprintf (buf, sizeof buf,
            "{\"snapshot_id\":\"s\",\"volume_id\":\"v\",\"volume_name\":\"n\","
            "\"account\":\"a\",\"region\":\"r\",\"parent_id\":\"\","
            "\"name\":\"x\",\"status\":\"available\",\"created_ns\":1%s%s}",
            geometry, extra);
  return buf;
}

static void
expect_refused (const char *json, size_t nentries, const char *needle,
                const char *what)
{
  struct xs_hash128 entries[4] = { { { 0 } } }, root;
  uint8_t geometry[12];
  uint64_t size = htole64 (16384);
  uint32_t bs = htole32 (4096);
  size_t len;
  void *data;

  memcpy (geometry, &size, 8);
  memcpy (geometry + 8, &bs, 4);
  xs_hash128_concat (geometry, 12, entries, nentries * 16, &root);
  data = craft (json, entries, nentries * 16, &root, &len);
  ok (parse_manifest (data, len, "crafted") == NULL, "%s refused", what);
  error_contains (needle, "... saying '%s'", needle);
  free (data);
}

static void
test_crafted (void)
{
  const char *good = ",\"size\":16384,\"block_size\":4096,\"nblocks\":4";
  struct xs_hash128 entries[4] = { { { 0 } } }, root;
  uint8_t geometry[12];
  uint64_t size = htole64 (16384);
  uint32_t bs = htole32 (4096);
  struct xs_manifest *m;
  size_t len;
  void *data;

  memcpy (geometry, &size, 8);
  memcpy (geometry + 8, &bs, 4);
  xs_hash128_concat (geometry, 12, entries, sizeof entries, &root);
  data = craft (metadata_with (good, ""), entries, sizeof entries, &root,
                &len);
  m = parse_manifest (data, len, "crafted");
  ok (m != NULL, "a hand-made manifest with raw entries parses");
  xs_manifest_free (m);
  free (data);
  data = craft (metadata_with (good, ",\"future\":[1,2]"), entries,
                sizeof entries, &root, &len);
  m = parse_manifest (data, len, "crafted");
  ok (m != NULL, "unknown metadata fields are ignored");
  xs_manifest_free (m);
  free (data);

  expect_refused (metadata_with (good, ""), 3, "raw entries",
                  "too few entries");
  expect_refused (metadata_with (",\"size\":16384,\"block_size\":4096,"
                                 "\"nblocks\":5", ""), 4,
                  "does not match size", "nblocks not matching size");
  expect_refused (metadata_with (",\"size\":16384,\"block_size\":3000,"
                                 "\"nblocks\":6", ""), 4,
                  "power of two", "block size 3000");
  expect_refused (metadata_with (",\"size\":16384,\"block_size\":8388608,"
                                 "\"nblocks\":1", ""), 4,
                  "power of two", "block size 8 MiB");
  expect_refused (metadata_with (",\"size\":17592186044417,"
                                 "\"block_size\":4096,"
                                 "\"nblocks\":4294967297", ""), 4,
                  "too large", "2^32 + 1 blocks");
  expect_refused (metadata_with (",\"size\":\"16384\",\"block_size\":4096,"
                                 "\"nblocks\":4", ""), 4,
                  "'size' is not an integer", "size as a string");
  expect_refused (metadata_with (",\"size\":-1,\"block_size\":4096,"
                                 "\"nblocks\":4", ""), 4,
                  "out of range", "negative size");
  expect_refused (metadata_with (",\"block_size\":4096,\"nblocks\":4", ""), 4,
                  "no field 'size'", "missing size");
  expect_refused ("{\"size\":16384,\"block_size\":4096,\"nblocks\":4,"
                  "\"created_ns\":1}", 4, "no field 'snapshot_id'",
                  "missing strings");
  expect_refused (metadata_with (good, ",\"name\":\"dup\""), 4,
                  "bad metadata JSON", "a duplicate key");
  expect_refused (metadata_with (good, ",\"name\":5"), 4,
                  "bad metadata JSON", "a duplicate of another type");
  expect_refused ("[1,2,3]", 4, "not a JSON object", "a JSON array");
  expect_refused ("{\"snapshot_id\":", 4, "bad metadata JSON",
                  "broken JSON");
  expect_refused ("", 4, "bad metadata JSON", "empty metadata");

  /* A wrong root, correctly checksummed. */
  root.bytes[0] ^= 1;
  data = craft (metadata_with (good, ""), entries, sizeof entries, &root,
                &len);
  ok (parse_manifest (data, len, "crafted") == NULL, "a wrong root");
  error_contains ("root hash mismatch", "is a root hash mismatch");
  free (data);
}

static double
now_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 1 TiB at 512 KiB blocks: 2 Mi entries, mostly zero, some random and
 * some runs of one repeated id.
 */
static void
test_large (void)
{
  const uint64_t size = UINT64_C (1) << 40;
  struct xs_manifest *m = new_manifest (size, 512 * 1024), *back;
  struct xs_hash128 id;
  uint64_t seed = 777, i;
  double start, serialize_s, parse_s;
  void *data;
  size_t len;

  ok (m != NULL && m->nblocks == 2 * 1024 * 1024, "2 Mi-entry manifest");
  for (i = 0; i < m->nblocks; i += 1 + next_random (&seed) % 64)
    set_random (m, i, &seed);
  for (i = 1000; i < 50000; i++)
    set_id (m, i, get_id (m, 999));
  xs_manifest_set (m, "snapshot_id", "snap-large");
  seal_or_die (m);

  start = now_seconds ();
  is_int (xs_manifest_serialize (m, &data, &len), 0, "serialize");
  serialize_s = now_seconds () - start;
  start = now_seconds ();
  back = parse_manifest (data, len, "large");
  parse_s = now_seconds () - start;
  ok (back != NULL && back->nblocks == m->nblocks && same_entries (back, m),
      "2 Mi entries round trip");
  printf ("# 2 Mi entries (32 MiB raw, %.1f MiB stored): serialize %.3f s, "
          "parse %.3f s\n", len / 1048576.0, serialize_s, parse_s);
  ok (serialize_s + parse_s < 1.0, "serialize + parse well under a second");
  xs_manifest_free (back);
  free (data);

  /* A fully written volume: every entry random. */
  for (i = 0; i < m->nblocks; i++)
    set_random (m, i, &seed);
  ok (xs_manifest_serialize (m, &data, &len) == -1,
      "a manifest changed since its seal is not serialized");
  error_contains ("changed since", "... saying so");
  start = now_seconds ();
  seal_or_die (m);
  serialize_or_die (m, &data, &len);
  back = parse_manifest (data, len, "full");
  parse_s = now_seconds () - start;
  ok (back != NULL && same_entries (back, m),
      "2 Mi random entries round trip");
  printf ("# 2 Mi random entries (%zu bytes stored): seal + serialize + "
          "parse %.3f s\n", len, parse_s);
  ok (parse_s < 5.0, "... in a few seconds");
  xs_manifest_free (back);
  free (data);

  /* A sparse one (all zero) is tiny. */
  xs_manifest_free (m);
  m = new_manifest (size, 512 * 1024);
  if (m == NULL)
    abort ();
  serialize_or_die (m, &data, &len);
  ok (len < 64 * 1024, "an all-zero 1 TiB manifest is small (%zu bytes)",
      len);
  back = parse_manifest (data, len, "sparse");
  ok (back != NULL && (id = get_id (back, m->nblocks - 1),
                       xs_hash128_is_zero (&id)),
      "and parses");
  xs_manifest_free (back);
  free (data);
  xs_manifest_free (m);
}

/* Runs reported by diff, as "first+count," text. */
static int
record_run (uint64_t first, uint64_t count, void *opaque)
{
  char *text = opaque;
  size_t used = strlen (text);

  snprintf (text + used, 512 - used, "%llu+%llu,",
            (unsigned long long) first, (unsigned long long) count);
  return 0;
}

static int
stop_at_first (uint64_t first, uint64_t count, void *opaque)
{
  (*(int *) opaque)++;
  return 5;
}

static void
test_diff (void)
{
  struct xs_manifest *a = new_manifest (16 * 4096, 4096), *b, *other;
  char runs[512] = "";
  uint64_t seed = 3, block;
  int calls = 0;

  b = xs_manifest_copy (a);
  is_int (xs_manifest_diff (a, b, record_run, runs), 0, "diff equal");
  is_str (runs, "", "no runs for equal manifests");

  set_random (b, 0, &seed);
  set_random (b, 3, &seed);
  set_random (b, 4, &seed);
  set_random (b, 5, &seed);
  set_random (b, 9, &seed);
  set_random (b, 15, &seed);
  set_random (a, 12, &seed);
  set_id (b, 13, get_id (a, 13));       /* both zero: not a change */
  runs[0] = '\0';
  xs_manifest_diff (a, b, record_run, runs);
  is_str (runs, "0+1,3+3,9+1,12+1,15+1,", "maximal runs, first and last");

  runs[0] = '\0';
  for (block = 0; block < 16; block++)
    set_id (b, block, get_id (a, block));
  set_random (b, 2, &seed);
  set_id (b, 3, get_id (b, 2));
  set_id (a, 3, get_id (b, 2));
  set_id (b, 5, get_id (b, 2));
  xs_manifest_diff (a, b, record_run, runs);
  is_str (runs, "2+1,5+1,", "the same id in both at a block is no change");

  runs[0] = '\0';
  for (block = 0; block < 16; block++) {
    struct xs_hash128 id = get_id (b, block);

    id.bytes[0] ^= 0x80;
    set_id (b, block, id);
  }
  xs_manifest_diff (a, b, record_run, runs);
  is_str (runs, "0+16,", "everything changed is one run");

  is_int (xs_manifest_diff (a, b, stop_at_first, &calls), 5,
          "a non-zero return stops the diff");
  is_int (calls, 1, "... after one call");

  other = new_manifest (16 * 4096, 8192);
  is_int (xs_manifest_diff (a, other, record_run, runs), -1,
          "different geometry refused");
  error_contains ("different geometry", "message says different geometry");
  xs_manifest_free (other);
  xs_manifest_free (a);
  xs_manifest_free (b);
}

int
main (void)
{
  struct xs_backend *backend;
  char *dir;

  repo_fixture_open (&dir, &backend, &test_repo);
  test_round_trip ();
  test_new_and_set ();
  test_block_map ();
  test_root ();
  test_truncation_and_flips ();
  test_versions ();
  test_crafted ();
  test_large ();
  test_diff ();
  repo_fixture_close (dir, backend, test_repo);
  return done_testing ();
}
