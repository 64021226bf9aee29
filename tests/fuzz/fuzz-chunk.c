/* xsnap: libFuzzer target for the chunk decoder.
 *
 * Chunks are read from disks and object stores we do not trust, so
 * xs_chunk_peek and xs_chunk_decode must survive any input and never
 * return unverified data.  Each input is also decoded with its header and
 * payload checksums recomputed (offsets from docs/FORMAT.md), so the
 * fuzzer reaches the zstd decoder and the content hash check, and encoded
 * as a plaintext to check the round trip.  A codec with a data key decodes
 * every input too (it must refuse anything it did not seal) and round
 * trips it as an encrypted chunk.
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/chunk.h"
#include "crypto/chunkcrypt.h"
#include "base/hash.h"

#define PAYLOAD_CHECK_OFFSET 32
#define HEADER_CHECK_OFFSET 40

/* libFuzzer runs inputs one at a time on one thread; the codec is reused
 * only to keep each run fast.
 */
static struct xs_chunk_codec *codec;
static struct xs_chunk_codec *keyed;
static struct xs_data_key *key;

void
xs_error_sink (const char *message)
{
  (void) message;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  unsigned char raw[XS_DATA_KEY_LEN] = { 1, 2, 3 };

  codec = xs_chunk_codec_new (1);
  keyed = xs_chunk_codec_new (1);
  key = xs_data_key_derive (raw);
  if (codec == NULL || keyed == NULL || key == NULL
      || xs_chunk_codec_set_key (keyed, key) == -1)
    abort ();
  return 0;
}

/* Decode must give either an error or exactly the plaintext whose hash is
 * the id in the header.
 */
static void
decode_one (const uint8_t *stored, size_t size)
{
  struct xs_hash128 id, actual;
  uint32_t plain_len;
  uint8_t *plain;
  ssize_t r;

  if (xs_chunk_peek (stored, size, &id, &plain_len) == -1) {
    uint8_t small[64];

    if (xs_chunk_decode (codec, stored, size, NULL, small, sizeof small)
        != -1)
      abort ();                 /* decode accepted what peek refused */
    return;
  }
  plain = malloc (plain_len + 1);
  if (plain == NULL)
    return;
  r = xs_chunk_decode (codec, stored, size, &id, plain, plain_len + 1);
  if (r != -1) {
    xs_hash128 (plain, r, &actual);
    if (r != plain_len || !xs_hash128_equal (&actual, &id))
      abort ();
  }
  free (plain);
}

static void
put_le64 (uint8_t *p, uint64_t v)
{
  v = htole64 (v);
  memcpy (p, &v, sizeof v);
}

static void
decode_with_fixed_checksums (const uint8_t *data, size_t size)
{
  uint8_t *copy;

  if (size < XS_CHUNK_HEADER_SIZE)
    return;
  copy = malloc (size);
  if (copy == NULL)
    return;
  memcpy (copy, data, size);
  put_le64 (copy + PAYLOAD_CHECK_OFFSET,
            xs_hash64 (copy + XS_CHUNK_HEADER_SIZE,
                       size - XS_CHUNK_HEADER_SIZE));
  put_le64 (copy + HEADER_CHECK_OFFSET,
            xs_hash64 (copy, HEADER_CHECK_OFFSET));
  decode_one (copy, size);
  free (copy);
}

static void
check_round_trip (const uint8_t *plain, size_t size)
{
  struct xs_hash128 id;
  void *stored;
  size_t stored_len;
  uint8_t *back;

  if (size > XS_CHUNK_MAX_PLAIN)
    return;
  if (xs_chunk_encode (codec, plain, size, &id, &stored, &stored_len) == -1)
    abort ();
  back = malloc (size + 1);
  if (back == NULL
      || xs_chunk_decode (codec, stored, stored_len, &id, back, size)
         != (ssize_t) size
      || memcmp (back, plain, size) != 0)
    abort ();
  free (back);
  free (stored);
}

/* Whatever the input, a keyed codec refuses it (it was not sealed under
 * the key), and sealing it as a plaintext round trips.
 */
static void
check_keyed (const uint8_t *data, size_t size)
{
  struct xs_hash128 id;
  void *stored;
  size_t stored_len;
  uint8_t small[64], *back;

  if (xs_chunk_decode (keyed, data, size, NULL, small, sizeof small) != -1)
    abort ();
  if (size > XS_CHUNK_MAX_PLAIN)
    return;
  if (xs_chunk_encode (keyed, data, size, &id, &stored, &stored_len) == -1)
    abort ();
  back = malloc (size + 1);
  if (back == NULL
      || xs_chunk_decode (keyed, stored, stored_len, &id, back, size)
         != (ssize_t) size
      || memcmp (back, data, size) != 0)
    abort ();
  free (back);
  free (stored);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  check_keyed (data, size);
  decode_one (data, size);
  decode_with_fixed_checksums (data, size);
  check_round_trip (data, size);
  return 0;
}
