/* xsnap: tests for lib/base/hash.c.
 *
 * Known answers were computed with the xxhsum command (xxHash 0.8.1):
 * "xxhsum -H2" for XXH3-128, "xxhsum -H3" for XXH3-64.  The AVX2 and
 * generic builds must agree everywhere, and the hex form must round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "tap.h"

#define PATTERN_LEN (1024 * 1024)

/* The 1 MiB test pattern; the same bytes as
 * python3 -c 'bytes((((i*31+7)>>3) ^ i) & 0xff for i in range(1<<20))'
 */
static uint8_t *
make_pattern (void)
{
  uint8_t *pattern = malloc (PATTERN_LEN);
  size_t i;

  if (pattern == NULL)
    abort ();
  for (i = 0; i < PATTERN_LEN; i++)
    pattern[i] = (uint8_t) ((((i * 31 + 7) >> 3) ^ i) & 0xff);
  return pattern;
}

static void
check_known (const char *what, const void *data, size_t len,
             const char *want128, uint64_t want64)
{
  struct xs_hash128 h;
  char hex[XS_HASH128_HEX_LEN + 1];

  xs_hash128 (data, len, &h);
  xs_hash128_to_hex (&h, hex);
  is_str (hex, want128, "XXH3-128 of %s", what);
  is_int (xs_hash64 (data, len) == want64, 1, "XXH3-64 of %s", what);

  xs_hash128_generic (data, len, &h);
  xs_hash128_to_hex (&h, hex);
  is_str (hex, want128, "generic XXH3-128 of %s", what);
  is_int (xs_hash64_generic (data, len) == want64, 1,
          "generic XXH3-64 of %s", what);
}

static void
test_known_answers (void)
{
  uint8_t *pattern = make_pattern ();

  check_known ("\"\"", "", 0,
               "99aa06d3014798d86001c324468d497f", 0x2d06800538d394c2ULL);
  check_known ("\"xsnap\"", "xsnap", 5,
               "76afb9257c3fe7f07f55e65fa8b5c128", 0x7227c7ad1c94523eULL);
  check_known ("1 MiB pattern", pattern, PATTERN_LEN,
               "b6f42c43b2118a198be88b45011e424b", 0x8be88b45011e424bULL);
  free (pattern);
}

/* A small deterministic generator, so failures reproduce. */
static uint64_t
next_random (uint64_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

static void
test_builds_agree (void)
{
  const size_t max_len = 70000;
  uint8_t *buf = malloc (max_len);
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  size_t len, i, mismatches = 0, tried = 0;

  if (buf == NULL)
    abort ();
  for (i = 0; i < max_len; i++)
    buf[i] = (uint8_t) next_random (&seed);

  if (!xs_hash_have_avx2 ()) {
    ok (1, "# SKIP no AVX2 on this CPU or build");
    free (buf);
    return;
  }
  /* Every length up to 1 KiB (all the short-input paths), then a spread
   * of longer ones at odd offsets (unaligned input).
   */
  for (len = 0; len < max_len - 16; len = len < 1024 ? len + 1
         : len + 1 + next_random (&seed) % 4099) {
    size_t offset = next_random (&seed) % 16;
    struct xs_hash128 a, b;

    xs_hash128_generic (buf + offset, len, &a);
    xs_hash128_avx2 (buf + offset, len, &b);
    if (!xs_hash128_equal (&a, &b)
        || xs_hash64_generic (buf + offset, len)
           != xs_hash64_avx2 (buf + offset, len))
      mismatches++;
    tried++;
  }
  is_int (mismatches, 0, "AVX2 and generic agree on %zu lengths", tried);
  free (buf);
}

static void
test_stream (void)
{
  uint8_t *pattern = make_pattern ();
  struct xs_hash_stream *s = xs_hash_stream_new ();
  struct xs_hash128 whole, streamed;
  char hex[XS_HASH128_HEX_LEN + 1];
  size_t done, step = 1;

  ok (s != NULL, "stream created");
  /* Uneven pieces, to cross the internal buffer boundaries. */
  for (done = 0; done < PATTERN_LEN; done += step, step = step * 3 + 1) {
    if (step > PATTERN_LEN - done)
      step = PATTERN_LEN - done;
    xs_hash_stream_update (s, pattern + done, step);
  }
  xs_hash_stream_digest128 (s, &streamed);
  xs_hash128_to_hex (&streamed, hex);
  is_str (hex, "b6f42c43b2118a198be88b45011e424b",
          "streamed XXH3-128 of the pattern");
  is_int (xs_hash_stream_digest64 (s) == 0x8be88b45011e424bULL, 1,
          "streamed XXH3-64 of the pattern");
  xs_hash128 (pattern, PATTERN_LEN, &whole);
  ok (xs_hash128_equal (&whole, &streamed), "stream equals one-shot");

  xs_hash_stream_reset (s);
  xs_hash_stream_update (s, "xs", 2);
  xs_hash_stream_update (s, "nap", 3);
  is_int (xs_hash_stream_digest64 (s) == 0x7227c7ad1c94523eULL, 1,
          "reset stream hashes \"xsnap\" again");
  xs_hash_stream_free (s);
  free (pattern);
}

static void
test_hex (void)
{
  struct xs_hash128 h, back;
  char hex[XS_HASH128_HEX_LEN + 1];

  xs_hash128 ("xsnap", 5, &h);
  xs_hash128_to_hex (&h, hex);
  is_int (xs_hash128_from_hex (hex, &back), 0, "parse own hex");
  ok (xs_hash128_equal (&h, &back), "hex round trip");
  is_int (xs_hash128_from_hex ("76AFB9257C3FE7F07F55E65FA8B5C128", &back), 0,
          "upper-case hex accepted");
  ok (xs_hash128_equal (&h, &back), "upper-case hex gives the same hash");

  is_int (xs_hash128_from_hex ("76afb9257c3fe7f07f55e65fa8b5c12", &back), -1,
          "31 digits refused");
  error_contains ("want 32 hex digits", "message says why");
  is_int (xs_hash128_from_hex ("76afb9257c3fe7f07f55e65fa8b5c1280", &back),
          -1, "33 digits refused");
  error_contains ("want 32 hex digits", "message says why");
  is_int (xs_hash128_from_hex ("76afb9257c3fe7f07f55e65fa8b5c1zz", &back), -1,
          "non-hex refused");
  error_contains ("not hexadecimal", "message says why");
  is_int (xs_hash128_from_hex ("", &back), -1, "empty refused");
  error_contains ("want 32 hex digits", "message says why");
}

static void
test_compare (void)
{
  struct xs_hash128 zero = { { 0 } }, a = { { 0 } }, b = { { 0 } };

  ok (xs_hash128_is_zero (&zero), "zero hash is zero");
  a.bytes[15] = 1;
  ok (!xs_hash128_is_zero (&a), "hash with the last byte set is not zero");
  b.bytes[0] = 1;
  ok (xs_hash128_compare (&a, &b) < 0, "compare orders by first byte");
  ok (xs_hash128_compare (&b, &a) > 0, "compare is antisymmetric");
  ok (xs_hash128_compare (&a, &a) == 0, "compare equal");
  ok (!xs_hash128_equal (&a, &b), "equal says different");
}

int
main (void)
{
  test_known_answers ();
  test_builds_agree ();
  test_stream ();
  test_hex ();
  test_compare ();
  return done_testing ();
}
