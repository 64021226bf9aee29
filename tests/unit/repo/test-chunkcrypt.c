/* xsnap: tests for encrypted chunks (lib/repo/chunk.c with a data key,
 * lib/crypto/chunkcrypt.c).
 *
 * Round trips; every byte of a stored chunk flipped is caught; a chunk
 * renamed to another id is caught; the same block under two keys gets
 * two ids and neither key reads the other's chunk; nothing of the
 * plaintext shows in the stored form; encrypted and unencrypted chunks
 * are never taken for each other.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/chunk.h"
#include "crypto/chunkcrypt.h"
#include "base/hash.h"
#include "repo/backend.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "repofixture.h"
#include "tap.h"

static const char marker[] = "XSNAP-SECRET-MARKER-0123456789";

/* A block of repeated marker text: very compressible. */
static void
fill_marker (uint8_t *buf, size_t len)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t) marker[i % (sizeof marker - 1)];
}

/* Random-looking bytes with the marker in the middle: stored raw. */
static void
fill_random_with_marker (uint8_t *buf, size_t len)
{
  uint64_t s = 0x9e3779b97f4a7c15u;

  for (size_t i = 0; i < len; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    buf[i] = (uint8_t) s;
  }
  memcpy (buf + len / 2, marker, sizeof marker - 1);
}

static struct xs_data_key *
make_key (uint8_t seed)
{
  unsigned char raw[XS_DATA_KEY_LEN];

  memset (raw, seed, sizeof raw);
  return xs_data_key_derive (raw);
}

static int
contains (const void *hay, size_t len, const void *needle, size_t n)
{
  return memmem (hay, len, needle, n) != NULL;
}

/* xs_chunk_unseal of STORED: an unencrypted chunk of the same plaintext,
 * with its XXH3 id, that a codec without a key decodes; a flipped bit in
 * STORED is refused.
 */
static void
unsealed (struct xs_chunk_codec *codec, const char *what,
          const uint8_t *plain, size_t len, void *stored, size_t stored_len,
          const struct xs_hash128 *id)
{
  struct xs_chunk_codec *clear = xs_chunk_codec_new (0);
  struct xs_hash128 plain_id, want;
  uint8_t *buf = malloc (len + 1), *back = malloc (len + 1);
  void *chunk = NULL;
  size_t chunk_len = 0;

  if (clear == NULL || buf == NULL || back == NULL)
    abort ();
  is_int (xs_chunk_unseal (codec, stored, stored_len, id, buf, len,
                           &plain_id, &chunk, &chunk_len), 0,
          "%s: unseal", what);
  xs_hash128 (plain, len, &want);
  ok (xs_hash128_equal (&plain_id, &want), "%s: unsealed id is the XXH3",
      what);
  is_int (xs_chunk_header_version (chunk), XS_CHUNK_VERSION,
          "%s: unsealed is version 1", what);
  is_int (xs_chunk_decode (clear, chunk, chunk_len, &plain_id, back, len),
          len, "%s: a codec without a key decodes it", what);
  ok (memcmp (back, plain, len) == 0, "%s: to the same bytes", what);
  free (chunk);
  chunk = NULL;
  ((uint8_t *) stored)[44] ^= 0x20;       /* in the GCM tag */
  is_int (xs_chunk_unseal (codec, stored, stored_len, id, buf, len,
                           &plain_id, &chunk, &chunk_len), -1,
          "%s: a flipped bit is refused", what);
  ok (strstr (tap_take_error (), "authentication failed") != NULL,
      "%s: ... as not authentic", what);
  ((uint8_t *) stored)[44] ^= 0x20;
  free (chunk);
  free (buf);
  free (back);
  xs_chunk_codec_free (clear);
}

static void
round_trip (struct xs_chunk_codec *codec, const char *what,
            const uint8_t *plain, size_t len)
{
  struct xs_hash128 id, again, peek_id;
  uint32_t peek_len = 0;
  void *stored = NULL;
  size_t stored_len = 0;
  uint8_t *back = malloc (len);

  if (back == NULL)
    abort ();
  is_int (xs_chunk_encode (codec, plain, len, &id, &stored, &stored_len), 0,
          "%s: encode", what);
  is_int (xs_chunk_header_version (stored), XS_CHUNK_VERSION_ENCRYPTED,
          "%s: version 2", what);
  is_int (xs_chunk_id (codec, plain, len, &again), 0, "%s: id", what);
  ok (xs_hash128_equal (&id, &again), "%s: id is the keyed MAC", what);
  ok (!contains (stored, stored_len, marker, sizeof marker - 1),
      "%s: no plaintext in the stored form", what);
  is_int (xs_chunk_peek (stored, stored_len, &peek_id, &peek_len), 0,
          "%s: peek", what);
  ok (xs_hash128_equal (&id, &peek_id) && peek_len == len,
      "%s: peek gives id and length", what);
  is_int (xs_chunk_decode (codec, stored, stored_len, &id, back, len), len,
          "%s: decode", what);
  ok (memcmp (back, plain, len) == 0, "%s: same bytes back", what);
  unsealed (codec, what, plain, len, stored, stored_len, &id);
  free (stored);
  free (back);
}

/* Flip one bit in every byte, one at a time: each must fail to decode. */
static void
every_flip_fails (struct xs_chunk_codec *codec, const uint8_t *plain,
                  size_t len)
{
  struct xs_hash128 id;
  void *stored;
  size_t stored_len, i, caught = 0;
  uint8_t *back = malloc (len);
  char reason[XS_CHUNK_REASON_MAX];

  if (back == NULL
      || xs_chunk_encode (codec, plain, len, &id, &stored, &stored_len) == -1)
    abort ();
  for (i = 0; i < stored_len; i++) {
    ((uint8_t *) stored)[i] ^= 0x10;
    if (xs_chunk_decode_quiet (codec, stored, stored_len, &id, back, len,
                               reason) == -1)
      caught++;
    ((uint8_t *) stored)[i] ^= 0x10;
  }
  is_int (caught, stored_len, "a flipped bit in any of the %zu stored bytes "
          "is caught", stored_len);
  is_int (xs_chunk_decode_quiet (codec, stored, stored_len - 1, &id, back,
                                 len, reason), -1, "truncation is caught");
  free (stored);
  free (back);
}

/* A chunk stored under another id's name, with its header id rewritten
 * to match, fails authentication.
 */
static void
moved_chunk_fails (struct xs_chunk_codec *codec)
{
  uint8_t a[4096], b[4096], back[4096];
  struct xs_hash128 id_a, id_b;
  void *sa, *sb;
  size_t la, lb;
  char reason[XS_CHUNK_REASON_MAX];

  fill_marker (a, sizeof a);
  fill_marker (b, sizeof b);
  b[7] ^= 1;
  if (xs_chunk_encode (codec, a, sizeof a, &id_a, &sa, &la) == -1
      || xs_chunk_encode (codec, b, sizeof b, &id_b, &sb, &lb) == -1)
    abort ();
  is_int (xs_chunk_decode_quiet (codec, sa, la, &id_b, back, sizeof back,
                                 reason), -1, "a chunk read as another id");
  ok (strstr (reason, "wrong chunk") != NULL, "... is the wrong chunk (%s)",
      reason);
  memcpy ((uint8_t *) sa + 16, id_b.bytes, 16);
  is_int (xs_chunk_decode_quiet (codec, sa, la, &id_b, back, sizeof back,
                                 reason), -1,
          "a chunk whose header names another id");
  ok (strstr (reason, "authentication failed") != NULL,
      "... fails authentication (%s)", reason);
  free (sa);
  free (sb);
}

static void
two_keys (void)
{
  struct xs_data_key *k1 = make_key (1), *k2 = make_key (2);
  struct xs_chunk_codec *c1 = xs_chunk_codec_new (0);
  struct xs_chunk_codec *c2 = xs_chunk_codec_new (0);
  struct xs_chunk_codec *plain_codec = xs_chunk_codec_new (0);
  uint8_t block[8192], back[8192];
  struct xs_hash128 id1, id2, id_plain;
  void *s1, *s2, *sp;
  size_t l1, l2, lp;
  char reason[XS_CHUNK_REASON_MAX];

  if (!k1 || !k2 || !c1 || !c2 || !plain_codec
      || xs_chunk_codec_set_key (c1, k1) == -1
      || xs_chunk_codec_set_key (c2, k2) == -1)
    abort ();
  fill_marker (block, sizeof block);
  if (xs_chunk_encode (c1, block, sizeof block, &id1, &s1, &l1) == -1
      || xs_chunk_encode (c2, block, sizeof block, &id2, &s2, &l2) == -1
      || xs_chunk_encode (plain_codec, block, sizeof block, &id_plain, &sp,
                          &lp) == -1)
    abort ();
  ok (!xs_hash128_equal (&id1, &id2),
      "the same block under two keys has two ids");
  ok (!xs_hash128_equal (&id1, &id_plain),
      "and neither is its unencrypted id");
  is_int (xs_chunk_decode_quiet (c2, s1, l1, NULL, back, sizeof back,
                                 reason), -1,
          "a chunk does not decode under another key");
  printf ("# reason: %s\n", reason);
  is_int (xs_chunk_decode_quiet (plain_codec, s1, l1, &id1, back,
                                 sizeof back, reason), -1,
          "an encrypted chunk does not decode without a key");
  ok (strstr (reason, "encrypted") != NULL, "... saying so (%s)", reason);
  is_int (xs_chunk_decode_quiet (c1, sp, lp, &id_plain, back, sizeof back,
                                 reason), -1,
          "an unencrypted chunk is refused where an encrypted one belongs");
  ok (strstr (reason, "unencrypted") != NULL, "... saying so (%s)", reason);
  free (s1);
  free (s2);
  free (sp);
  xs_chunk_codec_free (c1);
  xs_chunk_codec_free (c2);
  xs_chunk_codec_free (plain_codec);
  xs_data_key_free (k1);
  xs_data_key_free (k2);
}

static void
manifest_mac (void)
{
  struct xs_data_key *k1 = make_key (1), *k2 = make_key (2);
  unsigned char m1[XS_MANIFEST_MAC_LEN], m2[XS_MANIFEST_MAC_LEN];
  unsigned char m3[XS_MANIFEST_MAC_LEN];
  static const char data[] = "a manifest";

  if (!k1 || !k2)
    abort ();
  is_int (xs_data_key_manifest_mac (k1, data, sizeof data, m1), 0,
          "manifest MAC");
  xs_data_key_manifest_mac (k2, data, sizeof data, m2);
  xs_data_key_manifest_mac (k1, data, sizeof data - 1, m3);
  ok (memcmp (m1, m2, sizeof m1) != 0, "another key, another MAC");
  ok (memcmp (m1, m3, sizeof m1) != 0, "other bytes, another MAC");
  ok (memcmp (k1->chunk_enc, k1->chunk_id, XS_DATA_KEY_LEN) != 0
      && memcmp (k1->chunk_id, k1->manifest_mac, XS_DATA_KEY_LEN) != 0,
      "the derived keys differ from each other");
  xs_data_key_free (k1);
  xs_data_key_free (k2);
}

/* Parse and authenticate DATA: 0 if both pass. */
static int
load (const void *data, size_t len, const struct xs_data_key *dk)
{
  struct xs_manifest *m = xs_manifest_parse (data, len, "test");
  struct xs_data_key *copy = xs_data_key_dup (dk);
  int r = -1;

  if (m && copy && xs_manifest_is_encrypted (m)) {
    r = xs_manifest_authenticate (m, copy);
    copy = NULL;
  }
  xs_data_key_free (copy);
  xs_manifest_free (m);
  return r;
}

static void
encrypted_manifest (void)
{
  struct xs_data_key *k1 = make_key (1), *k2 = make_key (2);
  struct xs_manifest *m = xs_manifest_new (1 << 20, 65536), *back;
  struct xs_hash128 id = { { 7 } };
  struct xs_backend *backend;
  struct xs_repo *repo;
  char *dir;
  void *data;
  size_t len, caught = 0;

  /* Its block map's pages go to a repository of its own, which the
   * manifest takes over.
   */
  repo_fixture_open (&dir, &backend, &repo);
  if (m)
    xs_manifest_attach (m, repo);
  if (!k1 || !k2 || !m || xs_manifest_set (m, "snapshot_id", "snap-1") == -1
      || xs_manifest_set_block (m, 3, &id) == -1 || xs_manifest_seal (m) == -1)
    abort ();
  is_int (xs_manifest_set_encryption (m, "key-1", "alice", "00ff", k1), 0,
          "encrypt a manifest");
  is_int (xs_manifest_serialize (m, &data, &len), 0, "serialize it");
  is_int (((uint8_t *) data)[8], XS_MANIFEST_VERSION_ENCRYPTED, "version 4");
  back = xs_manifest_parse (data, len, "test");
  ok (back && xs_manifest_is_encrypted (back) && back->dk == NULL
      && strcmp (back->key_id, "key-1") == 0
      && strcmp (back->data_key, "00ff") == 0,
      "it parses, names its key, and is not open until authenticated");
  xs_manifest_free (back);
  is_int (load (data, len, k1), 0, "it authenticates under its key");
  is_int (load (data, len, k2), -1, "not under another");
  for (size_t i = 0; i < len; i++) {
    ((uint8_t *) data)[i] ^= 0x01;
    if (load (data, len, k1) == -1)
      caught++;
    ((uint8_t *) data)[i] ^= 0x01;
  }
  is_int (caught, len, "a flipped bit in any of its %zu bytes is caught", len);
  free (data);
  xs_manifest_free (m);
  xs_data_key_free (k1);
  xs_data_key_free (k2);
  repo_fixture_close (dir, backend, NULL);
}

/* A chunk as the first encrypted chunks were written (flags 0: the id
 * is the MAC of the plaintext itself) still decodes; claiming the newer
 * id scheme with the older id does not.  Made from a current chunk by
 * rewriting its header (bytes 0-31, the associated data) and sealing its
 * payload again.
 */
static void
first_format_chunks (struct xs_chunk_codec *codec,
                     const struct xs_data_key *key, const uint8_t *plain,
                     size_t len)
{
  struct xs_crypt *crypt = xs_crypt_new ();
  struct xs_hash128 id, old_id;
  uint8_t *stored = NULL, *payload, *back = malloc (len);
  size_t stored_len, payload_len;

  if (crypt == NULL || back == NULL
      || xs_chunk_encode (codec, plain, len, &id, (void **) &stored,
                          &stored_len) == -1)
    abort ();
  payload_len = stored_len - XS_CHUNK_HEADER_SIZE_ENCRYPTED;
  payload = stored + XS_CHUNK_HEADER_SIZE_ENCRYPTED;
  is_int (stored[6], 1, "a current chunk has the digest-id flag");
  if (xs_crypt_open (crypt, key->chunk_enc, stored + 32, stored, 32, payload,
                     payload_len, payload, stored + 44) != 0
      || xs_crypt_chunk_id (crypt, key, plain, len, &old_id) == -1)
    abort ();
  stored[6] = 0;
  memcpy (stored + 16, old_id.bytes, sizeof old_id.bytes);
  if (xs_crypt_seal (crypt, key->chunk_enc, stored + 32, stored, 32, payload,
                     payload_len, payload, stored + 44) == -1)
    abort ();
  is_int (xs_chunk_decode (codec, stored, stored_len, &old_id, back, len),
          len, "a first-format chunk (id over the plaintext) decodes");
  ok (memcmp (back, plain, len) == 0, "  to its bytes");
  if (xs_crypt_open (crypt, key->chunk_enc, stored + 32, stored, 32, payload,
                     payload_len, payload, stored + 44) != 0)
    abort ();
  stored[6] = 1;
  if (xs_crypt_seal (crypt, key->chunk_enc, stored + 32, stored, 32, payload,
                     payload_len, payload, stored + 44) == -1)
    abort ();
  is_int (xs_chunk_decode (codec, stored, stored_len, &old_id, back, len),
          -1, "the digest-id flag with a plaintext-MAC id is refused");
  ok (strstr (tap_take_error (), "does not match the id") != NULL,
      "  (the MAC does not match the id)");
  free (stored);
  free (back);
  xs_crypt_free (crypt);
}

int
main (void)
{
  struct xs_data_key *key = make_key (7);
  struct xs_chunk_codec *codec = xs_chunk_codec_new (0);
  size_t len = 64 * 1024;
  uint8_t *text = malloc (len), *noise = malloc (len), empty[1];

  if (key == NULL || codec == NULL || text == NULL || noise == NULL
      || xs_chunk_codec_set_key (codec, key) == -1)
    abort ();
  fill_marker (text, len);
  fill_random_with_marker (noise, len);
  round_trip (codec, "compressible", text, len);
  round_trip (codec, "incompressible", noise, len);
  round_trip (codec, "empty", empty, 0);
  every_flip_fails (codec, text, 4096);
  every_flip_fails (codec, noise, 4096);
  moved_chunk_fails (codec);
  first_format_chunks (codec, key, text, 4096);
  two_keys ();
  manifest_mac ();
  encrypted_manifest ();
  xs_chunk_codec_free (codec);
  xs_data_key_free (key);
  free (text);
  free (noise);
  return done_testing ();
}
