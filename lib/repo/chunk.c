/* xsnap: chunks, one block's content as stored in a repository (see
 * chunk.h and docs/FORMAT.md).
 *
 * Stored chunks come from disks and networks we do not trust, so the
 * decoder checks every header field before using it, decompresses into a
 * buffer of exactly the announced size, and rehashes the result.
 *
 * Encrypted chunks (version 2) compress first and then seal the payload
 * with AES-256-GCM under the data key, with the header's fields and the
 * id as associated data: a flipped bit anywhere, a header edited, or a
 * chunk renamed to another id fails authentication before anything is
 * decompressed.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include <openssl/crypto.h>

#include "repo/chunk.h"
#include "crypto/chunkcrypt.h"
#include "base/byteorder.h"
#include "base/error.h"
#include "base/hash.h"

#define CHUNK_MAGIC "XSCK"
#define CHUNK_MAGIC_LEN 4

enum chunk_codec_id {
  CHUNK_CODEC_RAW = 0,
  CHUNK_CODEC_ZSTD = 1,
};

/* Byte offsets in the header. */
enum {
  OFF_MAGIC = 0,
  OFF_VERSION = 4,
  OFF_CODEC = 5,
  OFF_FLAGS = 6,
  OFF_PLAIN_LEN = 8,
  OFF_PAYLOAD_LEN = 12,
  OFF_ID = 16,
  OFF_PAYLOAD_CHECK = 32,
  OFF_HEADER_CHECK = 40,
};

/* The decoded header fields. */
struct chunk_header {
  uint8_t version;
  uint8_t codec;
  uint16_t flags;
  uint32_t plain_len;
  uint32_t payload_len;
  struct xs_hash128 id;
  uint64_t payload_check;
};

/* Byte offsets in an encrypted (version 2) header; 0-31 as above except
 * that there are no checksums: bytes 0-31 are the associated data.
 */
/* Flags of an encrypted header: the id is the MAC of the plaintext's
 * XXH3-128 (xs_crypt_chunk_id_of_digest), not of the plaintext.
 */
#define FLAG2_DIGEST_ID 1u
enum {
  OFF2_NONCE = 32,
  OFF2_TAG = OFF2_NONCE + XS_CRYPT_NONCE_LEN,
  OFF2_RESERVED = OFF2_TAG + XS_CRYPT_TAG_LEN,
  AAD2_LEN = 32,
};

struct xs_chunk_codec {
  ZSTD_CCtx *cctx;
  ZSTD_DCtx *dctx;
  const struct xs_data_key *key; /* NULL: unencrypted chunks */
  struct xs_crypt *crypt;       /* made with the first key */
  uint8_t *tmp;                 /* compressed plaintext of an encrypted
                                   chunk, tmp_cap bytes */
  size_t tmp_cap;
};

struct xs_chunk_codec *
xs_chunk_codec_new (int zstd_level)
{
  struct xs_chunk_codec *codec = calloc (1, sizeof *codec);

  if (codec == NULL) {
    xs_error ("cannot allocate chunk codec: %m");
    return NULL;
  }
  if (zstd_level == 0)
    zstd_level = 1;
  codec->cctx = ZSTD_createCCtx ();
  codec->dctx = ZSTD_createDCtx ();
  if (codec->cctx == NULL || codec->dctx == NULL) {
    xs_error ("cannot allocate zstd contexts for the chunk codec");
    xs_chunk_codec_free (codec);
    return NULL;
  }
  if (ZSTD_isError (ZSTD_CCtx_setParameter (codec->cctx,
                                            ZSTD_c_compressionLevel,
                                            zstd_level))) {
    xs_error ("invalid zstd compression level %d", zstd_level);
    xs_chunk_codec_free (codec);
    return NULL;
  }
  /* The chunk id already checks the content; no zstd checksum needed. */
  ZSTD_CCtx_setParameter (codec->cctx, ZSTD_c_checksumFlag, 0);
  ZSTD_CCtx_setParameter (codec->cctx, ZSTD_c_dictIDFlag, 0);
  return codec;
}

void
xs_chunk_codec_free (struct xs_chunk_codec *codec)
{
  if (codec == NULL)
    return;
  ZSTD_freeCCtx (codec->cctx);
  ZSTD_freeDCtx (codec->dctx);
  xs_crypt_free (codec->crypt);
  if (codec->tmp)
    OPENSSL_cleanse (codec->tmp, codec->tmp_cap);
  free (codec->tmp);
  free (codec);
}

int
xs_chunk_codec_set_key (struct xs_chunk_codec *codec,
                        const struct xs_data_key *key)
{
  if (key && codec->crypt == NULL
      && (codec->crypt = xs_crypt_new ()) == NULL)
    return -1;
  codec->key = key;
  return 0;
}

int
xs_chunk_id (struct xs_chunk_codec *codec, const void *plain,
             size_t plain_len, struct xs_hash128 *id)
{
  struct xs_hash128 digest;

  xs_hash128 (plain, plain_len, &digest);
  return xs_chunk_id_of_plain_id (codec, &digest, id);
}

int
xs_chunk_id_of_plain_id (struct xs_chunk_codec *codec,
                         const struct xs_hash128 *plain_id,
                         struct xs_hash128 *id)
{
  if (codec->key == NULL) {
    *id = *plain_id;
    return 0;
  }
  return xs_crypt_chunk_id_of_digest (codec->crypt, codec->key, plain_id,
                                      id);
}

/* Make room for LEN bytes in the codec's buffer. */
static int
reserve_tmp (struct xs_chunk_codec *codec, size_t len)
{
  uint8_t *grown;

  if (len <= codec->tmp_cap)
    return 0;
  grown = malloc (len);
  if (grown == NULL) {
    xs_error ("cannot allocate a chunk buffer: %m");
    return -1;
  }
  if (codec->tmp)
    OPENSSL_cleanse (codec->tmp, codec->tmp_cap);
  free (codec->tmp);
  codec->tmp = grown;
  codec->tmp_cap = len;
  return 0;
}

/* The one 16-bit field; byteorder.h has the 32- and 64-bit ones. */
static void
put_le16 (uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t) v;
  p[1] = (uint8_t) (v >> 8);
}

static uint16_t
get_le16 (const uint8_t *p)
{
  return (uint16_t) (p[0] | p[1] << 8);
}

static void
write_header (uint8_t *out, const struct chunk_header *h)
{
  memcpy (out + OFF_MAGIC, CHUNK_MAGIC, CHUNK_MAGIC_LEN);
  out[OFF_VERSION] = h->version;
  out[OFF_CODEC] = h->codec;
  put_le16 (out + OFF_FLAGS, h->flags);
  xs_put_le32 (out + OFF_PLAIN_LEN, h->plain_len);
  xs_put_le32 (out + OFF_PAYLOAD_LEN, h->payload_len);
  memcpy (out + OFF_ID, h->id.bytes, sizeof h->id.bytes);
  xs_put_le64 (out + OFF_PAYLOAD_CHECK, h->payload_check);
  xs_put_le64 (out + OFF_HEADER_CHECK, xs_hash64 (out, OFF_HEADER_CHECK));
}

/* Compress into payload (capacity payload_cap); returns the compressed
 * size, or 0 if compression does not save at least 1/32 of the size (or
 * zstd failed, which only means "store raw").
 */
static size_t
compress_payload (struct xs_chunk_codec *codec, const void *plain,
                  size_t plain_len, uint8_t *payload, size_t payload_cap)
{
  size_t r;

  if (plain_len == 0)
    return 0;
  r = ZSTD_compress2 (codec->cctx, payload, payload_cap, plain, plain_len);
  if (ZSTD_isError (r)) {
    xs_debug ("zstd compression failed (%s), storing the chunk raw",
              ZSTD_getErrorName (r));
    return 0;
  }
  if (r >= plain_len - plain_len / 32)
    return 0;
  return r;
}

static int encode_encrypted (struct xs_chunk_codec *codec, const void *plain,
                             size_t plain_len, const struct xs_hash128 *id,
                             void **stored, size_t *stored_len);
static int encode_plain (struct xs_chunk_codec *codec, const void *plain,
                         size_t plain_len, struct xs_hash128 *id,
                         void **stored, size_t *stored_len);

static int
check_plain_len (size_t plain_len)
{
  if (plain_len > XS_CHUNK_MAX_PLAIN) {
    xs_error ("cannot encode a chunk of %zu bytes: the maximum is %u",
              plain_len, XS_CHUNK_MAX_PLAIN);
    return -1;
  }
  return 0;
}

int
xs_chunk_encode (struct xs_chunk_codec *codec,
                 const void *plain, size_t plain_len,
                 struct xs_hash128 *id, void **stored, size_t *stored_len)
{
  if (check_plain_len (plain_len) == -1)
    return -1;
  if (codec->key == NULL)
    return encode_plain (codec, plain, plain_len, id, stored, stored_len);
  if (xs_chunk_id (codec, plain, plain_len, id) == -1)
    return -1;
  return encode_encrypted (codec, plain, plain_len, id, stored, stored_len);
}

int
xs_chunk_encode_as (struct xs_chunk_codec *codec,
                    const void *plain, size_t plain_len,
                    const struct xs_hash128 *id,
                    void **stored, size_t *stored_len)
{
  struct xs_hash128 again;

  if (check_plain_len (plain_len) == -1)
    return -1;
  if (codec->key)
    return encode_encrypted (codec, plain, plain_len, id, stored,
                             stored_len);
  /* XXH3 is cheap next to compression: no shortcut needed. */
  return encode_plain (codec, plain, plain_len, &again, stored, stored_len);
}

static int
encode_plain (struct xs_chunk_codec *codec, const void *plain,
              size_t plain_len, struct xs_hash128 *id, void **stored,
              size_t *stored_len)
{
  struct chunk_header header = { .version = XS_CHUNK_VERSION };
  size_t payload_cap, compressed;
  uint8_t *out, *shrunk;

  payload_cap = ZSTD_compressBound (plain_len);
  if (payload_cap < plain_len)
    payload_cap = plain_len;
  out = malloc (XS_CHUNK_HEADER_SIZE + payload_cap);
  if (out == NULL) {
    xs_error ("cannot allocate chunk buffer: %m");
    return -1;
  }

  xs_hash128 (plain, plain_len, &header.id);
  header.plain_len = (uint32_t) plain_len;
  compressed = compress_payload (codec, plain, plain_len,
                                 out + XS_CHUNK_HEADER_SIZE, payload_cap);
  if (compressed > 0) {
    header.codec = CHUNK_CODEC_ZSTD;
    header.payload_len = (uint32_t) compressed;
  }
  else {
    header.codec = CHUNK_CODEC_RAW;
    header.payload_len = (uint32_t) plain_len;
    if (plain_len > 0)
      memcpy (out + XS_CHUNK_HEADER_SIZE, plain, plain_len);
  }
  header.payload_check = xs_hash64 (out + XS_CHUNK_HEADER_SIZE,
                                    header.payload_len);
  write_header (out, &header);

  *stored_len = XS_CHUNK_HEADER_SIZE + header.payload_len;
  /* Give back the unused compression bound (zero blocks shrink a lot). */
  shrunk = realloc (out, *stored_len);
  *stored = shrunk ? shrunk : out;
  *id = header.id;
  return 0;
}

/* Bytes 0-31 of an encrypted header: the associated data. */
static void
write_header2_fields (uint8_t *out, uint8_t codec_id, uint32_t plain_len,
                      uint32_t payload_len, const struct xs_hash128 *id)
{
  memcpy (out + OFF_MAGIC, CHUNK_MAGIC, CHUNK_MAGIC_LEN);
  out[OFF_VERSION] = XS_CHUNK_VERSION_ENCRYPTED;
  out[OFF_CODEC] = codec_id;
  put_le16 (out + OFF_FLAGS, FLAG2_DIGEST_ID);
  xs_put_le32 (out + OFF_PLAIN_LEN, plain_len);
  xs_put_le32 (out + OFF_PAYLOAD_LEN, payload_len);
  memcpy (out + OFF_ID, id->bytes, sizeof id->bytes);
}

/* Compress (when it helps) into the codec's buffer, then seal the payload
 * into the stored chunk right after a version 2 header.
 */
static int
encode_encrypted (struct xs_chunk_codec *codec, const void *plain,
                  size_t plain_len, const struct xs_hash128 *id,
                  void **stored, size_t *stored_len)
{
  size_t cap = ZSTD_compressBound (plain_len), compressed;
  const void *payload = plain;
  size_t payload_len = plain_len;
  uint8_t codec_id = CHUNK_CODEC_RAW, *out, *shrunk;

  if (cap < plain_len)
    cap = plain_len;
  if (reserve_tmp (codec, cap > 0 ? cap : 1) == -1)
    return -1;
  compressed = compress_payload (codec, plain, plain_len, codec->tmp, cap);
  if (compressed > 0) {
    codec_id = CHUNK_CODEC_ZSTD;
    payload = codec->tmp;
    payload_len = compressed;
  }
  out = malloc (XS_CHUNK_HEADER_SIZE_ENCRYPTED + payload_len);
  if (out == NULL) {
    xs_error ("cannot allocate chunk buffer: %m");
    return -1;
  }
  memset (out, 0, XS_CHUNK_HEADER_SIZE_ENCRYPTED);
  write_header2_fields (out, codec_id, (uint32_t) plain_len,
                        (uint32_t) payload_len, id);
  if (xs_crypt_random (out + OFF2_NONCE, XS_CRYPT_NONCE_LEN) == -1
      || xs_crypt_seal (codec->crypt, codec->key->chunk_enc,
                        out + OFF2_NONCE, out, AAD2_LEN, payload,
                        payload_len, out + XS_CHUNK_HEADER_SIZE_ENCRYPTED,
                        out + OFF2_TAG) == -1) {
    free (out);
    return -1;
  }
  *stored_len = XS_CHUNK_HEADER_SIZE_ENCRYPTED + payload_len;
  shrunk = realloc (out, *stored_len);
  *stored = shrunk ? shrunk : out;
  return 0;
}

/* How messages name a chunk: the id the caller expects if any, else the id
 * in the header (when there is one), else nothing useful.
 */
static void
chunk_name (const uint8_t *stored, size_t stored_len,
            const struct xs_hash128 *expected_id,
            char name[XS_HASH128_HEX_LEN + 1])
{
  struct xs_hash128 header_id;

  if (expected_id) {
    xs_hash128_to_hex (expected_id, name);
    return;
  }
  if (stored_len >= OFF_ID + sizeof header_id.bytes) {
    memcpy (header_id.bytes, stored + OFF_ID, sizeof header_id.bytes);
    xs_hash128_to_hex (&header_id, name);
    return;
  }
  snprintf (name, XS_HASH128_HEX_LEN + 1, "(unknown id)");
}

/* Record why a chunk is bad in REASON; returns -1. */
static int
bad (char *reason, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static int
bad (char *reason, const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  vsnprintf (reason, XS_CHUNK_REASON_MAX, fmt, args);
  va_end (args);
  errno = EIO;
  return -1;
}

/* Check the header at the start of stored and decode it into *h.  Checks
 * everything that can be checked without the payload: magic, version,
 * header checksum, codec, flags and lengths.
 */
static int
parse_header (const uint8_t *stored, size_t stored_len,
              struct chunk_header *h, char *reason)
{
  if (stored_len < OFF_VERSION + 1)
    return bad (reason, "truncated (%zu bytes)", stored_len);
  if (memcmp (stored + OFF_MAGIC, CHUNK_MAGIC, CHUNK_MAGIC_LEN) != 0)
    return bad (reason, "not an xsnap chunk (bad magic)");
  h->version = stored[OFF_VERSION];
  if (h->version == XS_CHUNK_VERSION_ENCRYPTED)
    return bad (reason, "the chunk is encrypted and no key was given to "
                "read it");
  if (h->version != XS_CHUNK_VERSION)
    return bad (reason, "unsupported chunk version %u (this xsnap reads "
                "versions %d and %d%s)", h->version, XS_CHUNK_VERSION,
                XS_CHUNK_VERSION_ENCRYPTED,
                h->version > XS_CHUNK_VERSION_ENCRYPTED
                ? "; upgrade xsnap" : "");
  if (stored_len < XS_CHUNK_HEADER_SIZE)
    return bad (reason, "truncated (%zu bytes, the header alone is %d)",
                stored_len, XS_CHUNK_HEADER_SIZE);
  if (xs_get_le64 (stored + OFF_HEADER_CHECK)
      != xs_hash64 (stored, OFF_HEADER_CHECK))
    return bad (reason, "header checksum mismatch");

  h->codec = stored[OFF_CODEC];
  h->flags = get_le16 (stored + OFF_FLAGS);
  h->plain_len = xs_get_le32 (stored + OFF_PLAIN_LEN);
  h->payload_len = xs_get_le32 (stored + OFF_PAYLOAD_LEN);
  memcpy (h->id.bytes, stored + OFF_ID, sizeof h->id.bytes);
  h->payload_check = xs_get_le64 (stored + OFF_PAYLOAD_CHECK);

  if (h->codec != CHUNK_CODEC_RAW && h->codec != CHUNK_CODEC_ZSTD)
    return bad (reason, "unknown codec %u", h->codec);
  if (h->flags != 0)
    return bad (reason, "unknown flags 0x%x", h->flags);
  if (h->plain_len > XS_CHUNK_MAX_PLAIN)
    return bad (reason, "plaintext length %" PRIu32 " exceeds the "
                "maximum %u", h->plain_len, XS_CHUNK_MAX_PLAIN);
  if (h->codec == CHUNK_CODEC_RAW && h->payload_len != h->plain_len)
    return bad (reason, "raw payload of %" PRIu32 " bytes, plaintext "
                "length %" PRIu32, h->payload_len, h->plain_len);
  return 0;
}

/* Check that the payload is all there, and nothing more. */
static int
check_payload_length (size_t have, const struct chunk_header *h,
                      char *reason)
{
  if (h->payload_len > have)
    return bad (reason, "truncated (%zu of %" PRIu32 " payload bytes)",
                have, h->payload_len);
  if (h->payload_len < have)
    return bad (reason, "%zu unexpected bytes after the payload",
                have - h->payload_len);
  return 0;
}

static int
check_payload_sum (const uint8_t *payload, const struct chunk_header *h,
                   char *reason)
{
  if (xs_hash64 (payload, h->payload_len) != h->payload_check)
    return bad (reason, "payload checksum mismatch");
  return 0;
}

ssize_t
xs_chunk_check_stored (const void *stored, size_t stored_len,
                       const struct xs_hash128 *expected_id,
                       char reason[XS_CHUNK_REASON_MAX])
{
  const uint8_t *in = stored;
  char other[XS_HASH128_HEX_LEN + 1];
  struct chunk_header h;

  if (parse_header (in, stored_len, &h, reason) == -1
      || check_payload_length (stored_len - XS_CHUNK_HEADER_SIZE, &h,
                               reason) == -1
      || check_payload_sum (in + XS_CHUNK_HEADER_SIZE, &h, reason) == -1)
    return -1;
  if (!xs_hash128_equal (expected_id, &h.id)) {
    xs_hash128_to_hex (&h.id, other);
    return bad (reason, "the stored chunk is %s (wrong chunk)", other);
  }
  return h.plain_len;
}

bool
xs_chunk_header_says_raw (const void *header)
{
  return ((const uint8_t *) header)[OFF_VERSION] == XS_CHUNK_VERSION
    && ((const uint8_t *) header)[OFF_CODEC] == CHUNK_CODEC_RAW;
}

unsigned
xs_chunk_header_version (const void *header)
{
  return ((const uint8_t *) header)[OFF_VERSION];
}

/* Check an encrypted header (bytes 0-63): everything but the tag, which
 * only decryption checks.
 */
static int
parse_header2 (const uint8_t *stored, size_t stored_len,
               struct chunk_header *h, char *reason)
{
  if (stored_len < XS_CHUNK_HEADER_SIZE_ENCRYPTED)
    return bad (reason, "truncated (%zu bytes, the header alone is %d)",
                stored_len, XS_CHUNK_HEADER_SIZE_ENCRYPTED);
  if (memcmp (stored + OFF_MAGIC, CHUNK_MAGIC, CHUNK_MAGIC_LEN) != 0)
    return bad (reason, "not an xsnap chunk (bad magic)");
  h->version = stored[OFF_VERSION];
  h->codec = stored[OFF_CODEC];
  h->flags = get_le16 (stored + OFF_FLAGS);
  h->plain_len = xs_get_le32 (stored + OFF_PLAIN_LEN);
  h->payload_len = xs_get_le32 (stored + OFF_PAYLOAD_LEN);
  memcpy (h->id.bytes, stored + OFF_ID, sizeof h->id.bytes);
  h->payload_check = 0;
  if (h->version != XS_CHUNK_VERSION_ENCRYPTED)
    return bad (reason, "an unencrypted chunk where an encrypted one "
                "belongs");
  if (h->codec != CHUNK_CODEC_RAW && h->codec != CHUNK_CODEC_ZSTD)
    return bad (reason, "unknown codec %u", h->codec);
  if ((h->flags & ~FLAG2_DIGEST_ID) != 0
      || xs_get_le32 (stored + OFF2_RESERVED) != 0)
    return bad (reason, "unknown flags or reserved bytes set");
  if (h->plain_len > XS_CHUNK_MAX_PLAIN)
    return bad (reason, "plaintext length %" PRIu32 " exceeds the "
                "maximum %u", h->plain_len, XS_CHUNK_MAX_PLAIN);
  if (h->codec == CHUNK_CODEC_RAW && h->payload_len != h->plain_len)
    return bad (reason, "raw payload of %" PRIu32 " bytes, plaintext "
                "length %" PRIu32, h->payload_len, h->plain_len);
  return 0;
}

int
xs_chunk_peek (const void *stored, size_t stored_len,
               struct xs_hash128 *id, uint32_t *plain_len)
{
  char name[XS_HASH128_HEX_LEN + 1], reason[XS_CHUNK_REASON_MAX];
  struct chunk_header h;

  bool encrypted = stored_len > OFF_VERSION
    && ((const uint8_t *) stored)[OFF_VERSION] == XS_CHUNK_VERSION_ENCRYPTED;

  if ((encrypted ? parse_header2 (stored, stored_len, &h, reason)
       : parse_header (stored, stored_len, &h, reason)) == -1) {
    chunk_name (stored, stored_len, NULL, name);
    xs_error ("chunk %s: %s", name, reason);
    return -1;
  }
  if (id)
    *id = h.id;
  if (plain_len)
    *plain_len = h.plain_len;
  return 0;
}

static int
decompress_payload (struct xs_chunk_codec *codec, const uint8_t *payload,
                    const struct chunk_header *h, void *plain,
                    char *reason)
{
  size_t r;

  if (h->codec == CHUNK_CODEC_RAW) {
    /* The payload may have been read straight into place. */
    if (h->plain_len > 0 && plain != payload)
      memcpy (plain, payload, h->plain_len);
    return 0;
  }
  r = ZSTD_decompressDCtx (codec->dctx, plain, h->plain_len,
                           payload, h->payload_len);
  if (ZSTD_isError (r))
    return bad (reason, "corrupt compressed payload: %s",
                ZSTD_getErrorName (r));
  if (r != h->plain_len)
    return bad (reason, "payload decompresses to %zu bytes, the header "
                "says %" PRIu32, r, h->plain_len);
  return 0;
}

/* The payload of a raw chunk is its plaintext, so the plaintext's hash
 * (the id) covers it: its payload checksum is computed only to name what
 * is wrong when that hash does not match.  A compressed payload is
 * checked before zstd sees it.
 */
ssize_t
xs_chunk_decode_parts_quiet (struct xs_chunk_codec *codec,
                             const void *header, const void *payload,
                             size_t payload_len,
                             const struct xs_hash128 *expected_id,
                             void *plain, size_t plain_cap,
                             char reason[XS_CHUNK_REASON_MAX])
{
  char other[XS_HASH128_HEX_LEN + 1];
  struct chunk_header h;
  struct xs_hash128 actual;
  bool raw;

  /* Only unencrypted chunks come in parts (xs_repo_fetch_chunk). */
  if (codec->key)
    return bad (reason, "an unencrypted chunk where an encrypted one "
                "belongs");
  if (parse_header (header, XS_CHUNK_HEADER_SIZE, &h, reason) == -1
      || check_payload_length (payload_len, &h, reason) == -1)
    return -1;
  raw = h.codec == CHUNK_CODEC_RAW;
  if (!raw && check_payload_sum (payload, &h, reason) == -1)
    return -1;
  if (expected_id && !xs_hash128_equal (expected_id, &h.id)) {
    xs_hash128_to_hex (&h.id, other);
    return bad (reason, "the stored chunk is %s (wrong chunk)", other);
  }
  if (h.plain_len > plain_cap)
    return bad (reason, "%" PRIu32 " bytes do not fit in a buffer of %zu",
                h.plain_len, plain_cap);
  if (decompress_payload (codec, payload, &h, plain, reason) == -1)
    return -1;
  xs_hash128 (plain, h.plain_len, &actual);
  if (!xs_hash128_equal (&actual, &h.id)) {
    if (raw && check_payload_sum (payload, &h, reason) == -1)
      return -1;
    return bad (reason, "checksum mismatch");
  }
  return h.plain_len;
}

/* Authenticate and decrypt an encrypted chunk, then decompress and check
 * the plaintext's MAC against the id.  DIGEST, if not NULL, receives the
 * plaintext's XXH3-128.
 */
static ssize_t
decode_encrypted (struct xs_chunk_codec *codec, const void *stored,
                  size_t stored_len, const struct xs_hash128 *expected_id,
                  void *plain, size_t plain_cap,
                  char reason[XS_CHUNK_REASON_MAX],
                  struct xs_hash128 *digest)
{
  const uint8_t *in = stored;
  const uint8_t *payload = in + XS_CHUNK_HEADER_SIZE_ENCRYPTED;
  char other[XS_HASH128_HEX_LEN + 1];
  struct chunk_header h;
  struct xs_hash128 actual, plain_digest;
  uint8_t *clear;
  int r;

  if (stored_len > OFF_VERSION && in[OFF_VERSION] == XS_CHUNK_VERSION)
    return bad (reason, "an unencrypted chunk where an encrypted one "
                "belongs");
  if (parse_header2 (in, stored_len, &h, reason) == -1
      || check_payload_length (stored_len - XS_CHUNK_HEADER_SIZE_ENCRYPTED,
                               &h, reason) == -1)
    return -1;
  if (expected_id && !xs_hash128_equal (expected_id, &h.id)) {
    xs_hash128_to_hex (&h.id, other);
    return bad (reason, "the stored chunk is %s (wrong chunk)", other);
  }
  if (h.plain_len > plain_cap)
    return bad (reason, "%" PRIu32 " bytes do not fit in a buffer of %zu",
                h.plain_len, plain_cap);
  /* A raw payload decrypts straight into place. */
  if (h.codec == CHUNK_CODEC_RAW)
    clear = plain;
  else if (reserve_tmp (codec, h.payload_len > 0 ? h.payload_len : 1) == -1)
    return bad (reason, "out of memory");
  else
    clear = codec->tmp;
  r = xs_crypt_open (codec->crypt, codec->key->chunk_enc, in + OFF2_NONCE,
                     in, AAD2_LEN, payload, h.payload_len, clear,
                     in + OFF2_TAG);
  if (r == -1)
    return bad (reason, "cannot decrypt");
  if (r == 1)
    return bad (reason, "authentication failed (tampered with, or not "
                "sealed under this key)");
  if (decompress_payload (codec, clear, &h, plain, reason) == -1)
    return -1;
  if (digest || (h.flags & FLAG2_DIGEST_ID))
    xs_hash128 (plain, h.plain_len, digest ? digest : &plain_digest);
  if (h.flags & FLAG2_DIGEST_ID)
    r = xs_crypt_chunk_id_of_digest (codec->crypt, codec->key,
                                     digest ? digest : &plain_digest,
                                     &actual);
  else
    r = xs_crypt_chunk_id (codec->crypt, codec->key, plain, h.plain_len,
                           &actual);
  if (r == -1)
    return bad (reason, "cannot compute the chunk's MAC");
  if (!xs_crypt_equal (actual.bytes, h.id.bytes, sizeof h.id.bytes))
    return bad (reason, "MAC of the plaintext does not match the id");
  return h.plain_len;
}

/* Report a bad chunk once ("chunk ID: REASON"); returns -1. */
static int
report_bad (const void *stored, size_t stored_len,
            const struct xs_hash128 *expected_id, const char *reason)
{
  char name[XS_HASH128_HEX_LEN + 1];

  chunk_name (stored, stored_len, expected_id, name);
  xs_error ("chunk %s: %s", name, reason);
  return -1;
}

int
xs_chunk_unseal (struct xs_chunk_codec *codec, const void *stored,
                 size_t stored_len, const struct xs_hash128 *expected_id,
                 void *plain, size_t plain_cap, struct xs_hash128 *id,
                 void **out, size_t *out_len)
{
  char reason[XS_CHUNK_REASON_MAX];
  struct chunk_header h = { .version = XS_CHUNK_VERSION };
  const uint8_t *in = stored, *payload;
  ssize_t len;
  uint8_t *chunk;

  if (codec->key == NULL) {
    xs_error ("cannot unseal a chunk: the codec has no key");
    return -1;
  }
  len = decode_encrypted (codec, stored, stored_len, expected_id, plain,
                          plain_cap, reason, &h.id);
  if (len < 0)
    return report_bad (stored, stored_len, expected_id, reason);
  /* The compressed plaintext is in the codec's buffer (or, stored raw,
   * the plaintext itself): it becomes the payload as it is.
   */
  h.codec = in[OFF_CODEC];
  h.plain_len = (uint32_t) len;
  h.payload_len = xs_get_le32 (in + OFF_PAYLOAD_LEN);
  payload = h.codec == CHUNK_CODEC_ZSTD ? codec->tmp : plain;
  chunk = malloc (XS_CHUNK_HEADER_SIZE + h.payload_len);
  if (chunk == NULL) {
    xs_error ("cannot allocate chunk buffer: %m");
    return -1;
  }
  memcpy (chunk + XS_CHUNK_HEADER_SIZE, payload, h.payload_len);
  h.payload_check = xs_hash64 (chunk + XS_CHUNK_HEADER_SIZE, h.payload_len);
  write_header (chunk, &h);
  *id = h.id;
  *out = chunk;
  *out_len = XS_CHUNK_HEADER_SIZE + h.payload_len;
  return 0;
}

ssize_t
xs_chunk_decode_quiet (struct xs_chunk_codec *codec,
                       const void *stored, size_t stored_len,
                       const struct xs_hash128 *expected_id,
                       void *plain, size_t plain_cap,
                       char reason[XS_CHUNK_REASON_MAX])
{
  struct chunk_header h;

  if (codec->key)
    return decode_encrypted (codec, stored, stored_len, expected_id, plain,
                             plain_cap, reason, NULL);
  /* parse_header gives the precise reason for a short header. */
  if (stored_len < XS_CHUNK_HEADER_SIZE
      && parse_header (stored, stored_len, &h, reason) == -1)
    return -1;
  return xs_chunk_decode_parts_quiet (codec, stored,
                                      (const uint8_t *) stored
                                      + XS_CHUNK_HEADER_SIZE,
                                      stored_len - XS_CHUNK_HEADER_SIZE,
                                      expected_id, plain, plain_cap, reason);
}

ssize_t
xs_chunk_decode (struct xs_chunk_codec *codec,
                 const void *stored, size_t stored_len,
                 const struct xs_hash128 *expected_id,
                 void *plain, size_t plain_cap)
{
  char reason[XS_CHUNK_REASON_MAX];
  ssize_t r;

  r = xs_chunk_decode_quiet (codec, stored, stored_len, expected_id, plain,
                             plain_cap, reason);
  return r == -1 ? report_bad (stored, stored_len, expected_id, reason) : r;
}
