/* xsnap: tests for lib/repo/chunk.c.
 *
 * Round trips for the kinds of blocks disks hold (zero, incompressible,
 * text), and proof that corruption is always caught: every single-bit flip
 * and every truncation of an encoded chunk fails to decode.
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repo/chunk.h"
#include "base/hash.h"
#include "tap.h"

static uint64_t
next_random (uint64_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

static void
fill_random (uint8_t *buf, size_t len, uint64_t seed)
{
  size_t i;

  for (i = 0; i < len; i++)
    buf[i] = (uint8_t) next_random (&seed);
}

static void
fill_text (uint8_t *buf, size_t len)
{
  static const char text[] =
    "The quick brown fox jumps over the lazy dog; xsnap stores blocks. ";
  size_t i;

  for (i = 0; i < len; i++)
    buf[i] = (uint8_t) text[i % (sizeof text - 1)];
}

/* Sets the header checksum after a test edits the header on purpose. */
static void
reseal_header (uint8_t *stored)
{
  uint64_t check = htole64 (xs_hash64 (stored, 40));

  memcpy (stored + 40, &check, sizeof check);
}

static void
round_trip (struct xs_chunk_codec *codec, const char *what,
            const uint8_t *plain, size_t len, int want_raw)
{
  struct xs_hash128 id, want_id, peek_id;
  uint32_t peek_len = 0;
  void *stored = NULL;
  size_t stored_len = 0;
  uint8_t *back = malloc (len + 1);
  ssize_t r;

  if (back == NULL)
    abort ();
  is_int (xs_chunk_encode (codec, plain, len, &id, &stored, &stored_len), 0,
          "%s: encode", what);
  xs_hash128 (plain, len, &want_id);
  ok (xs_hash128_equal (&id, &want_id), "%s: id is XXH3-128 of the plaintext",
      what);
  if (want_raw)
    is_int (stored_len, XS_CHUNK_HEADER_SIZE + len, "%s: stored raw", what);
  else
    ok (stored_len < len / 4 * 3, "%s: compressed (%zu -> %zu bytes)",
        what, len, stored_len);
  r = xs_chunk_decode (codec, stored, stored_len, &id, back, len + 1);
  is_int (r, len, "%s: decode returns the length", what);
  ok (r == (ssize_t) len && memcmp (back, plain, len) == 0,
      "%s: decoded bytes equal the original", what);
  is_int (xs_chunk_peek (stored, stored_len, &peek_id, &peek_len), 0,
          "%s: peek", what);
  ok (xs_hash128_equal (&peek_id, &id) && peek_len == len,
      "%s: peek gives id and length", what);
  free (stored);
  free (back);
}

static void
test_round_trips (struct xs_chunk_codec *codec)
{
  const size_t len = 512 * 1024;
  uint8_t *buf = calloc (1, XS_CHUNK_MAX_PLAIN);

  if (buf == NULL)
    abort ();
  round_trip (codec, "zero block", buf, len, 0);
  round_trip (codec, "empty chunk", buf, 0, 1);
  fill_random (buf, len, 42);
  round_trip (codec, "random block", buf, len, 1);
  fill_text (buf, len);
  round_trip (codec, "text block", buf, len, 0);
  fill_random (buf, XS_CHUNK_MAX_PLAIN, 7);
  memset (buf, 0, XS_CHUNK_MAX_PLAIN / 2);
  round_trip (codec, "4 MiB half-zero block", buf, XS_CHUNK_MAX_PLAIN, 0);
  free (buf);
}

static void
test_limits (struct xs_chunk_codec *codec)
{
  uint8_t *big = calloc (1, XS_CHUNK_MAX_PLAIN + 1);
  uint8_t small[4096], out[4096];
  struct xs_hash128 id;
  void *stored;
  size_t stored_len;

  if (big == NULL)
    abort ();
  is_int (xs_chunk_encode (codec, big, XS_CHUNK_MAX_PLAIN + 1, &id,
                           &stored, &stored_len), -1,
          "plaintext over 4 MiB refused");
  error_contains ("the maximum is", "message gives the limit");
  free (big);

  fill_text (small, sizeof small);
  if (xs_chunk_encode (codec, small, sizeof small, &id, &stored,
                       &stored_len) == -1)
    abort ();
  is_int (xs_chunk_decode (codec, stored, stored_len, NULL, out,
                           sizeof out - 1), -1,
          "decode into a buffer too small refused");
  error_contains ("do not fit", "message says the buffer is too small");
  is_int (xs_chunk_decode (codec, stored, stored_len, NULL, out, sizeof out),
          sizeof out, "decode without an expected id");
  free (stored);
}

/* Encodes a small chunk (compressed or raw) for the corruption tests. */
static void
encode_small (struct xs_chunk_codec *codec, int raw, struct xs_hash128 *id,
              uint8_t **stored, size_t *stored_len)
{
  uint8_t plain[300];
  void *out;

  if (raw)
    fill_random (plain, sizeof plain, 99);
  else
    fill_text (plain, sizeof plain);
  if (xs_chunk_encode (codec, plain, sizeof plain, id, &out,
                       stored_len) == -1)
    abort ();
  *stored = out;
}

static void
test_bit_flips (struct xs_chunk_codec *codec, int raw)
{
  const char *what = raw ? "raw" : "compressed";
  struct xs_hash128 id;
  uint8_t *stored, plain[300];
  size_t stored_len, bit, undetected = 0, undetected_no_id = 0;

  encode_small (codec, raw, &id, &stored, &stored_len);
  is_int (stored[5], raw ? 0 : 1, "small %s chunk has the expected codec",
          what);
  for (bit = 0; bit < stored_len * 8; bit++) {
    stored[bit / 8] ^= (uint8_t) (1u << (bit % 8));
    if (xs_chunk_decode (codec, stored, stored_len, &id, plain,
                         sizeof plain) != -1)
      undetected++;
    if (xs_chunk_decode (codec, stored, stored_len, NULL, plain,
                         sizeof plain) != -1)
      undetected_no_id++;
    stored[bit / 8] ^= (uint8_t) (1u << (bit % 8));
  }
  tap_take_error ();
  is_int (undetected, 0, "every one of %zu bit flips of a %s chunk detected",
          stored_len * 8, what);
  is_int (undetected_no_id, 0,
          "... also without an expected id");
  is_int (xs_chunk_decode (codec, stored, stored_len, &id, plain,
                           sizeof plain), sizeof plain,
          "the unflipped %s chunk still decodes", what);
  free (stored);
}

static void
test_truncation (struct xs_chunk_codec *codec)
{
  struct xs_hash128 id;
  uint8_t *stored, *copy, plain[300];
  size_t stored_len, len, undetected = 0, peek_undetected = 0;

  encode_small (codec, 0, &id, &stored, &stored_len);
  for (len = 0; len < stored_len; len++) {
    /* A fresh allocation of exactly len bytes, so ASan sees overreads. */
    copy = malloc (len ? len : 1);
    if (copy == NULL)
      abort ();
    memcpy (copy, stored, len);
    if (xs_chunk_decode (codec, copy, len, &id, plain, sizeof plain) != -1)
      undetected++;
    if (len < XS_CHUNK_HEADER_SIZE
        && xs_chunk_peek (copy, len, NULL, NULL) != -1)
      peek_undetected++;
    free (copy);
  }
  is_int (undetected, 0, "all %zu truncations detected by decode",
          stored_len);
  is_int (peek_undetected, 0, "all truncations of the header detected by "
          "peek");
  is_int (xs_chunk_peek (stored, XS_CHUNK_HEADER_SIZE, NULL, NULL), 0,
          "peek needs only the header");

  is_int (xs_chunk_decode (codec, stored, stored_len - 10, &id, plain,
                           sizeof plain), -1, "truncated payload refused");
  error_contains ("truncated", "message says truncated");
  is_int (xs_chunk_decode (codec, stored, 20, &id, plain, sizeof plain), -1,
          "truncated header refused");
  error_contains ("truncated", "message says truncated");
  free (stored);
}

/* xs_chunk_check_stored, what send checks: every flipped bit, every
 * cut and an extension of a stored chunk, and another chunk in its place,
 * without decoding.
 */
static void
test_check_stored (struct xs_chunk_codec *codec, int raw)
{
  const char *what = raw ? "raw" : "compressed";
  char reason[XS_CHUNK_REASON_MAX];
  struct xs_hash128 id, other_id;
  uint8_t *stored, *other, *longer;
  size_t stored_len, other_len, bit, len, undetected = 0;

  encode_small (codec, raw, &id, &stored, &stored_len);
  encode_small (codec, !raw, &other_id, &other, &other_len);
  is_int (xs_chunk_check_stored (stored, stored_len, &id, reason), 300,
          "check_stored: a sound %s chunk passes with its length", what);
  for (bit = 0; bit < stored_len * 8; bit++) {
    stored[bit / 8] ^= (uint8_t) (1u << (bit % 8));
    if (xs_chunk_check_stored (stored, stored_len, &id, reason) != -1)
      undetected++;
    stored[bit / 8] ^= (uint8_t) (1u << (bit % 8));
  }
  is_int (undetected, 0, "check_stored: all %zu bit flips of a %s chunk "
          "detected", stored_len * 8, what);
  undetected = 0;
  for (len = 0; len < stored_len; len++) {
    uint8_t *copy = malloc (len ? len : 1);
    if (copy == NULL)
      abort ();
    memcpy (copy, stored, len);
    if (xs_chunk_check_stored (copy, len, &id, reason) != -1)
      undetected++;
    free (copy);
  }
  is_int (undetected, 0, "check_stored: every cut of a %s chunk detected",
          what);
  longer = malloc (stored_len + 1);
  if (longer == NULL)
    abort ();
  memcpy (longer, stored, stored_len);
  longer[stored_len] = 0;
  is_int (xs_chunk_check_stored (longer, stored_len + 1, &id, reason), -1,
          "check_stored: an extended %s chunk is refused", what);
  ok (strstr (reason, "unexpected bytes") != NULL, "... saying so (%s)",
      reason);
  is_int (xs_chunk_check_stored (other, other_len, &id, reason), -1,
          "check_stored: another chunk in a %s chunk's place is refused",
          what);
  ok (strstr (reason, "wrong chunk") != NULL, "... saying so (%s)", reason);
  free (longer);
  free (other);
  free (stored);
}

static void
test_versions_and_ids (struct xs_chunk_codec *codec)
{
  struct xs_hash128 id, other_id;
  char hex[XS_HASH128_HEX_LEN + 1], want[200];
  uint8_t *stored, *longer, plain[300];
  size_t stored_len;

  encode_small (codec, 0, &id, &stored, &stored_len);
  xs_hash128_to_hex (&id, hex);

  stored[4] = 9;
  reseal_header (stored);
  is_int (xs_chunk_decode (codec, stored, stored_len, &id, plain,
                           sizeof plain), -1, "version 9 refused");
  error_contains ("unsupported chunk version 9", "message names the version");
  is_int (xs_chunk_peek (stored, stored_len, NULL, NULL), -1,
          "peek refuses version 9 too");
  error_contains ("upgrade xsnap", "message says what to do");
  stored[4] = 1;
  reseal_header (stored);

  xs_hash128 ("something else", 14, &other_id);
  is_int (xs_chunk_decode (codec, stored, stored_len, &other_id, plain,
                           sizeof plain), -1, "wrong expected id refused");
  error_contains ("wrong chunk", "message says wrong chunk");

  /* A header that names another id (with a valid header checksum): only
   * the rehash can catch it.
   */
  memcpy (stored + 16, other_id.bytes, 16);
  reseal_header (stored);
  is_int (xs_chunk_decode (codec, stored, stored_len, NULL, plain,
                           sizeof plain), -1, "header id not matching the "
          "content refused");
  snprintf (want, sizeof want, "checksum mismatch");
  error_contains (want, "message says checksum mismatch");
  memcpy (stored + 16, id.bytes, 16);
  reseal_header (stored);

  stored[stored_len - 1] ^= 0x40;
  is_int (xs_chunk_decode (codec, stored, stored_len, &id, plain,
                           sizeof plain), -1, "flipped payload refused");
  snprintf (want, sizeof want, "chunk %s:", hex);
  error_contains (want, "message names the chunk id");
  stored[stored_len - 1] ^= 0x40;

  longer = malloc (stored_len + 1);
  if (longer == NULL)
    abort ();
  memcpy (longer, stored, stored_len);
  longer[stored_len] = 0;
  is_int (xs_chunk_decode (codec, longer, stored_len + 1, &id, plain,
                           sizeof plain), -1, "trailing byte refused");
  error_contains ("unexpected bytes", "message says unexpected bytes");
  free (longer);
  free (stored);
}

static double
now_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Throughput on 512 KiB blocks of mixed data (a quarter zero, a quarter
 * text, half random), reported as a TAP comment.
 */
static void
test_throughput (struct xs_chunk_codec *codec)
{
  const size_t block = 512 * 1024, nblocks = 64;
  uint8_t *data = malloc (block * nblocks), *plain = malloc (block);
  void *stored[64];
  size_t stored_len[64], i, failures = 0;
  struct xs_hash128 ids[64];
  double start, encode_s, decode_s;

  if (data == NULL || plain == NULL)
    abort ();
  for (i = 0; i < nblocks; i++) {
    uint8_t *b = data + i * block;

    switch (i % 4) {
    case 0: memset (b, 0, block); break;
    case 1: fill_text (b, block); b[0] = (uint8_t) i; break;
    default: fill_random (b, block, i + 1); break;
    }
  }
  start = now_seconds ();
  for (i = 0; i < nblocks; i++)
    if (xs_chunk_encode (codec, data + i * block, block, &ids[i],
                         &stored[i], &stored_len[i]) == -1)
      abort ();
  encode_s = now_seconds () - start;
  start = now_seconds ();
  for (i = 0; i < nblocks; i++)
    if (xs_chunk_decode (codec, stored[i], stored_len[i], &ids[i], plain,
                         block) != (ssize_t) block
        || memcmp (plain, data + i * block, block) != 0)
      failures++;
  decode_s = now_seconds () - start;
  is_int (failures, 0, "%zu mixed 512 KiB blocks round trip", nblocks);
  printf ("# chunk encode %.0f MB/s, decode+verify %.0f MB/s "
          "(512 KiB blocks, mixed data)\n",
          block * nblocks / encode_s / 1e6, block * nblocks / decode_s / 1e6);
  for (i = 0; i < nblocks; i++)
    free (stored[i]);
  free (data);
  free (plain);
}

int
main (void)
{
  struct xs_chunk_codec *codec = xs_chunk_codec_new (0);

  ok (codec != NULL, "codec created");
  if (codec == NULL)
    return done_testing ();
  test_round_trips (codec);
  test_limits (codec);
  test_bit_flips (codec, 0);
  test_bit_flips (codec, 1);
  test_truncation (codec);
  test_check_stored (codec, 0);
  test_check_stored (codec, 1);
  test_versions_and_ids (codec);
  test_throughput (codec);
  xs_chunk_codec_free (codec);
  return done_testing ();
}
