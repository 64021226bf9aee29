/* xsnap: replication streams, written and parsed (see stream.h and
 * docs/FORMAT.md, "Replication stream").
 *
 * Streams arrive from other machines through pipes, so the parser trusts
 * nothing: every frame starts with a fixed 40-byte head that checks
 * itself before any of its lengths is used, a length is never larger than
 * one chunk of the stream's block size, and the parser holds at most one
 * frame.  The writer applies the same rules to what it is given, so a bug
 * in a sender cannot produce a stream a receiver would take.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "base/byteorder.h"
#include "repo/chunk.h"
#include "base/error.h"
#include "repo/manifest.h"
#include "base/names.h"
#include "repo/stream.h"

#define STREAM_MAGIC "XSNPSTRM"
#define STREAM_MAGIC_LEN 8

/* The header: magic, version, flags, metadata length, zero, prefix check;
 * then the metadata and its check.
 */
#define PREFIX_SIZE 32
#define PREFIX_CHECKED 24
#define CHECK_SIZE 8

/* Every record and the trailer start with a head: kind, three zero bytes,
 * stored length, block index (trailer: record count), chunk id (trailer:
 * root), head check.
 */
#define HEAD_SIZE 40
#define HEAD_CHECKED 32
#define HEAD_OFF_LEN 4
#define HEAD_OFF_BLOCK 8
#define HEAD_OFF_ID 16
#define TRAILER_KIND 'T'
/* A reference of version 5 or 6 continues with its source block. */
#define SOURCE_SIZE 8

/* Longest string in the metadata; hex digits of an id after its prefix. */
#define MAX_STRING 256
#define ID_DIGITS 16

#define TOKEN_PREFIX "xsr1-"

/* ----- The metadata ----- */

void
xs_stream_info_clear (struct xs_stream_info *info)
{
  free (info->account);
  free (info->region);
  free (info->volume_id);
  free (info->volume_name);
  free (info->snapshot_id);
  free (info->snapshot_name);
  free (info->base_snapshot_id);
  free (info->resume_token);
  free (info->encryption);
  free (info->key_id);
  free (info->key_account);
  free (info->data_key);
  free (info->receiver_key_id);
  free (info->receiver_data_key);
  memset (info, 0, sizeof *info);
}

/* Append S and its NUL at *P (bounded by END). */
static void
append_string (uint8_t **p, const uint8_t *end, const char *s)
{
  size_t len = strnlen (s, MAX_STRING);

  if ((size_t) (end - *p) < len + 1)
    return;
  memcpy (*p, s, len);
  (*p)[len] = '\0';
  *p += len + 1;
}

void
xs_stream_make_id (const char *snapshot_id, const struct xs_hash128 *root,
                   const char *base_id, const struct xs_hash128 *base_root,
                   const char *mode, char id[XS_STREAM_ID_LEN + 1])
{
  static const char domain[] = "xsnap-stream-1";
  uint8_t buf[sizeof domain + 3 * (MAX_STRING + 1 + 16)];
  const uint8_t *end = buf + sizeof buf;
  uint8_t *p = buf;
  struct xs_hash128 zero = { { 0 } }, h;

  memcpy (p, domain, sizeof domain);
  p += sizeof domain;
  append_string (&p, end, snapshot_id);
  memcpy (p, root->bytes, 16);
  p += 16;
  append_string (&p, end, base_id);
  memcpy (p, (base_root ? base_root : &zero)->bytes, 16);
  p += 16;
  /* Version 1 streams' ids stay what they were. */
  if (mode[0])
    append_string (&p, end, mode);
  xs_hash128 (buf, (size_t) (p - buf), &h);
  xs_hash128_to_hex (&h, id);
}

static int
dup_field (char **out, const char *value)
{
  *out = strdup (value ? value : "");
  return *out ? 0 : -1;
}

int
xs_stream_info_set_strings (struct xs_stream_info *info, const char *account,
                            const char *region, const char *volume_id,
                            const char *volume_name,
                            const char *snapshot_id,
                            const char *snapshot_name,
                            const char *base_snapshot_id,
                            const char *resume_token)
{
  if (dup_field (&info->account, account) == -1
      || dup_field (&info->region, region) == -1
      || dup_field (&info->volume_id, volume_id) == -1
      || dup_field (&info->volume_name, volume_name) == -1
      || dup_field (&info->snapshot_id, snapshot_id) == -1
      || dup_field (&info->snapshot_name, snapshot_name) == -1
      || dup_field (&info->base_snapshot_id, base_snapshot_id) == -1
      || dup_field (&info->resume_token, resume_token) == -1) {
    xs_error ("cannot describe the stream: %m");
    return -1;
  }
  xs_stream_make_id (info->snapshot_id, &info->root, info->base_snapshot_id,
                     info->base_snapshot_id[0] ? &info->base_root : NULL,
                     xs_stream_encryption (info), info->stream_id);
  return 0;
}

int
xs_stream_info_set_encryption (struct xs_stream_info *info, const char *mode,
                               const char *key_id, const char *key_account,
                               const char *data_key, const unsigned char *mac)
{
  bool raw = strcmp (mode, "raw") == 0;

  if (dup_field (&info->encryption, mode) == -1
      || dup_field (&info->key_id, raw ? key_id : "") == -1
      || dup_field (&info->key_account, raw ? key_account : "") == -1
      || dup_field (&info->data_key, raw ? data_key : "") == -1) {
    xs_error ("cannot describe the stream: %m");
    return -1;
  }
  if (raw)
    memcpy (info->manifest_mac, mac, XS_STREAM_MAC_LEN);
  return 0;
}

/* The "encryption" object of a version 2 stream. */
static json_t *
encryption_to_json (const struct xs_stream_info *info)
{
  char mac[2 * XS_STREAM_MAC_LEN + 1];

  if (strcmp (info->encryption, "raw") != 0)
    return json_pack ("{s:s}", "mode", info->encryption);
  xs_hex_encode (info->manifest_mac, XS_STREAM_MAC_LEN, mac);
  return json_pack ("{s:s, s:s, s:s, s:s, s:s}", "mode", "raw",
                    "key_id", info->key_id, "key_account", info->key_account,
                    "data_key", info->data_key, "manifest_mac", mac);
}

json_t *
xs_stream_info_to_json (const struct xs_stream_info *info)
{
  char root[XS_HASH128_HEX_LEN + 1], base_root[XS_HASH128_HEX_LEN + 1];
  json_t *obj;

  xs_hash128_to_hex (&info->root, root);
  if (info->base_snapshot_id[0])
    xs_hash128_to_hex (&info->base_root, base_root);
  else
    base_root[0] = '\0';
  obj = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I,"
                    " s:I, s:s, s:s, s:s, s:s, s:I, s:I}",
                    "stream_id", info->stream_id,
                    "account", info->account, "region", info->region,
                    "volume_id", info->volume_id,
                    "volume_name", info->volume_name,
                    "snapshot_id", info->snapshot_id,
                    "snapshot_name", info->snapshot_name,
                    "created_ns", (json_int_t) info->created_ns,
                    "size", (json_int_t) info->size,
                    "block_size", (json_int_t) info->block_size,
                    "nblocks", (json_int_t) info->nblocks,
                    "root_hash", root,
                    "base_snapshot_id", info->base_snapshot_id,
                    "base_root_hash", base_root,
                    "resume_token", info->resume_token,
                    "first_block", (json_int_t) info->first_block,
                    "records", (json_int_t) info->records);
  if (obj && xs_stream_encryption (info)[0]
      && json_object_set_new (obj, "encryption",
                              encryption_to_json (info)) == -1) {
    json_decref (obj);
    obj = NULL;
  }
  if (obj && info->receiver_key_id && info->receiver_key_id[0]
      && json_object_set_new (obj, "receiver",
                              json_pack ("{s:s, s:s}",
                                         "key_id", info->receiver_key_id,
                                         "data_key",
                                         info->receiver_data_key)) == -1) {
    json_decref (obj);
    obj = NULL;
  }
  return obj;
}

static int
json_string_field (json_t *obj, const char *what, const char *key,
                   char **out)
{
  json_t *value = json_object_get (obj, key);

  if (!json_is_string (value)) {
    xs_error ("%s: field '%s' is %s", what, key,
              value ? "not a string" : "missing");
    return -1;
  }
  if (json_string_length (value) > MAX_STRING
      || strlen (json_string_value (value)) != json_string_length (value)) {
    xs_error ("%s: field '%s' is too long or holds a NUL", what, key);
    return -1;
  }
  if (dup_field (out, json_string_value (value)) == -1) {
    xs_error ("cannot read the %s: %m", what);
    return -1;
  }
  return 0;
}

static int
json_integer_field (json_t *obj, const char *what, const char *key,
                    json_int_t min, json_int_t max, json_int_t *out)
{
  json_t *value = json_object_get (obj, key);

  if (!json_is_integer (value)) {
    xs_error ("%s: field '%s' is %s", what, key,
              value ? "not an integer" : "missing");
    return -1;
  }
  *out = json_integer_value (value);
  if (*out < min || *out > max) {
    xs_error ("%s: field '%s' is out of range (%lld)", what, key,
              (long long) *out);
    return -1;
  }
  return 0;
}

/* ID must be PREFIX "-" and 16 lower-case hex digits, as xs_new_id makes
 * them: a received snapshot keeps its id, which becomes a key of this
 * store's catalog and repository, so a crafted stream must not choose
 * one of another kind (a volume's id) or of another form.
 */
static int
check_id (const char *what, const char *kind, const char *prefix,
          const char *id)
{
  size_t len = strlen (prefix);

  if (strncmp (id, prefix, len) != 0 || id[len] != '-'
      || strlen (id + len + 1) != ID_DIGITS
      || strspn (id + len + 1, "0123456789abcdef") != ID_DIGITS) {
    xs_error ("%s: %s '%.64s' is not a %s id (%s- and %d hex digits)", what,
              kind, id, prefix[0] == 's' ? "snapshot" : "volume", prefix,
              ID_DIGITS);
    return -1;
  }
  return 0;
}

static int
parse_hash_field (const char *what, const char *key, const char *hex,
                  struct xs_hash128 *h)
{
  if (strlen (hex) != XS_HASH128_HEX_LEN
      || xs_hash128_from_hex (hex, h) == -1) {
    xs_error ("%s: field '%s' is not a hash", what, key);
    return -1;
  }
  return 0;
}

static int
info_strings_from_json (json_t *obj, const char *what,
                        struct xs_stream_info *info, char **stream_id,
                        char **root, char **base_root)
{
  if (json_string_field (obj, what, "stream_id", stream_id) == -1
      || json_string_field (obj, what, "account", &info->account) == -1
      || json_string_field (obj, what, "region", &info->region) == -1
      || json_string_field (obj, what, "volume_id", &info->volume_id) == -1
      || json_string_field (obj, what, "volume_name",
                            &info->volume_name) == -1
      || json_string_field (obj, what, "snapshot_id",
                            &info->snapshot_id) == -1
      || json_string_field (obj, what, "snapshot_name",
                            &info->snapshot_name) == -1
      || json_string_field (obj, what, "root_hash", root) == -1
      || json_string_field (obj, what, "base_snapshot_id",
                            &info->base_snapshot_id) == -1
      || json_string_field (obj, what, "base_root_hash", base_root) == -1
      || json_string_field (obj, what, "resume_token",
                            &info->resume_token) == -1)
    return -1;
  return 0;
}

static int
info_numbers_from_json (json_t *obj, const char *what,
                        struct xs_stream_info *info)
{
  json_int_t created_ns, size, block_size, nblocks, first_block, records;
  uint64_t want;

  /* A creation time is after 1970, as xs_now_ns gives it. */
  if (json_integer_field (obj, what, "created_ns", 1, INT64_MAX,
                          &created_ns) == -1
      || json_integer_field (obj, what, "size", 0, INT64_MAX, &size) == -1
      || json_integer_field (obj, what, "block_size", 0, UINT32_MAX,
                             &block_size) == -1
      || json_integer_field (obj, what, "nblocks", 0, INT64_MAX,
                             &nblocks) == -1
      || json_integer_field (obj, what, "first_block", 0, INT64_MAX,
                             &first_block) == -1
      || json_integer_field (obj, what, "records", 0, INT64_MAX,
                             &records) == -1)
    return -1;
  info->created_ns = created_ns;
  info->size = (uint64_t) size;
  info->block_size = (uint32_t) block_size;
  info->nblocks = (uint64_t) nblocks;
  info->first_block = (uint64_t) first_block;
  info->records = (uint64_t) records;
  if (xs_manifest_geometry (info->size, info->block_size, &want) == -1)
    return -1;
  if (want != info->nblocks) {
    xs_error ("%s: nblocks %" PRIu64 " does not match the size and block "
              "size (%" PRIu64 " blocks)", what, info->nblocks, want);
    return -1;
  }
  if (info->first_block > info->nblocks
      || info->records > info->nblocks - info->first_block) {
    xs_error ("%s: %" PRIu64 " records from block %" PRIu64 " do not fit "
              "in %" PRIu64 " blocks", what, info->records,
              info->first_block, info->nblocks);
    return -1;
  }
  return 0;
}

/* Names, the base and the resume fields, checked against each other. */
static int
check_info (const char *what, struct xs_stream_info *info,
            const char *root, const char *base_root)
{
  char stream_id[XS_STREAM_ID_LEN + 1], token_mac[33];
  uint64_t token_block;

  if (check_id (what, "snapshot id", "snap", info->snapshot_id) == -1
      || check_id (what, "volume id", "vol", info->volume_id) == -1
      || xs_name_check ("volume", info->volume_name) == -1
      || xs_name_check ("snapshot", info->snapshot_name) == -1
      || parse_hash_field (what, "root_hash", root, &info->root) == -1)
    return -1;
  if (info->base_snapshot_id[0]) {
    if (check_id (what, "base snapshot id", "snap",
                  info->base_snapshot_id) == -1
        || parse_hash_field (what, "base_root_hash", base_root,
                             &info->base_root) == -1)
      return -1;
  }
  else if (base_root[0]) {
    xs_error ("%s: a base root hash without a base snapshot", what);
    return -1;
  }
  if (info->resume_token[0] == '\0' && info->first_block != 0) {
    xs_error ("%s: a first block without a resume token", what);
    return -1;
  }
  if (info->resume_token[0]) {
    if (xs_stream_token_parse (info->resume_token, stream_id, &token_block,
                               token_mac) == -1)
      return -1;
    if (strcmp (stream_id, info->stream_id) != 0
        || token_block != info->first_block) {
      xs_error ("%s: the resume token does not match the stream", what);
      return -1;
    }
  }
  return 0;
}

/* The optional "encryption" object: a mode, and for "raw" the key
 * fields and the manifest MAC.
 */
static int
encryption_from_json (json_t *obj, const char *what,
                      struct xs_stream_info *info)
{
  json_t *enc = json_object_get (obj, "encryption");
  char *mac = NULL;
  int r = -1;

  if (enc == NULL)
    return 0;
  if (!json_is_object (enc)) {
    xs_error ("%s: field 'encryption' is not an object", what);
    return -1;
  }
  if (json_string_field (enc, what, "mode", &info->encryption) == -1)
    return -1;
  if (strcmp (info->encryption, "reencrypt") == 0)
    return 0;
  if (strcmp (info->encryption, "raw") != 0) {
    xs_error ("%s: unknown encryption mode '%s'", what, info->encryption);
    return -1;
  }
  if (json_string_field (enc, what, "key_id", &info->key_id) == -1
      || json_string_field (enc, what, "key_account",
                            &info->key_account) == -1
      || json_string_field (enc, what, "data_key", &info->data_key) == -1
      || json_string_field (enc, what, "manifest_mac", &mac) == -1)
    goto out;
  if (info->key_id[0] == '\0' || info->key_account[0] == '\0'
      || info->data_key[0] == '\0'
      || strlen (mac) != 2 * XS_STREAM_MAC_LEN
      || xs_hex_decode (mac, info->manifest_mac, XS_STREAM_MAC_LEN) == -1) {
    xs_error ("%s: the encryption fields are incomplete or malformed", what);
    goto out;
  }
  r = 0;
 out:
  free (mac);
  return r;
}

/* The optional "receiver" object of a saved receive. */
static int
receiver_from_json (json_t *obj, const char *what,
                    struct xs_stream_info *info)
{
  json_t *receiver = json_object_get (obj, "receiver");

  if (receiver == NULL)
    return 0;
  if (!json_is_object (receiver)) {
    xs_error ("%s: field 'receiver' is not an object", what);
    return -1;
  }
  return json_string_field (receiver, what, "key_id",
                            &info->receiver_key_id) == -1
    || json_string_field (receiver, what, "data_key",
                          &info->receiver_data_key) == -1 ? -1 : 0;
}

int
xs_stream_info_from_json (json_t *obj, const char *what,
                          struct xs_stream_info *info)
{
  char *stream_id = NULL, *root = NULL, *base_root = NULL;
  char want[XS_STREAM_ID_LEN + 1];
  int r = -1;

  memset (info, 0, sizeof *info);
  if (!json_is_object (obj)) {
    xs_error ("%s: the metadata is not a JSON object", what);
    return -1;
  }
  if (info_strings_from_json (obj, what, info, &stream_id, &root,
                              &base_root) == -1
      || info_numbers_from_json (obj, what, info) == -1
      || encryption_from_json (obj, what, info) == -1
      || receiver_from_json (obj, what, info) == -1)
    goto out;
  if (strlen (stream_id) != XS_STREAM_ID_LEN) {
    xs_error ("%s: field 'stream_id' is not a stream id", what);
    goto out;
  }
  memcpy (info->stream_id, stream_id, XS_STREAM_ID_LEN + 1);
  if (check_info (what, info, root, base_root) == -1)
    goto out;
  xs_stream_make_id (info->snapshot_id, &info->root, info->base_snapshot_id,
                     info->base_snapshot_id[0] ? &info->base_root : NULL,
                     xs_stream_encryption (info), want);
  if (strcmp (want, info->stream_id) != 0) {
    xs_error ("%s: the stream id does not match its snapshot and base",
              what);
    goto out;
  }
  r = 0;
 out:
  if (r == -1)
    xs_stream_info_clear (info);
  free (stream_id);
  free (root);
  free (base_root);
  return r;
}

size_t
xs_stream_max_stored (uint32_t block_size)
{
  return XS_CHUNK_HEADER_MAX + ZSTD_COMPRESSBOUND ((size_t) block_size);
}

/* ----- Frame heads, shared by the writer and the parser ----- */

struct head {
  uint8_t kind;
  uint32_t len;
  uint64_t block;               /* the trailer: record count */
  struct xs_hash128 id;         /* the trailer: root */
};

static void
encode_head (const struct head *h, uint8_t out[HEAD_SIZE])
{
  memset (out, 0, HEAD_SIZE);
  out[0] = h->kind;
  xs_put_le32 (out + HEAD_OFF_LEN, h->len);
  xs_put_le64 (out + HEAD_OFF_BLOCK, h->block);
  memcpy (out + HEAD_OFF_ID, h->id.bytes, 16);
  xs_put_le64 (out + HEAD_CHECKED, xs_hash64 (out, HEAD_CHECKED));
}

static void
decode_head (const uint8_t in[HEAD_SIZE], struct head *h)
{
  h->kind = in[0];
  h->len = xs_get_le32 (in + HEAD_OFF_LEN);
  h->block = xs_get_le64 (in + HEAD_OFF_BLOCK);
  memcpy (h->id.bytes, in + HEAD_OFF_ID, 16);
}

/* The length a record of KIND may give: a reference's source block in
 * a stream that has them, else nothing (a chunk's is checked apart).
 */
static size_t
fixed_length (const struct xs_stream_info *info, uint8_t kind)
{
  return kind == XS_STREAM_REF && info->sourced_refs ? SOURCE_SIZE : 0;
}

/* The rules every record's head obeys, whoever made it.  PREVIOUS is the
 * last record's block, if ANY.  N numbers the record (from 1) in
 * messages.  Returns 0, or -1 with an error.
 */
static int
check_record (const struct xs_stream_info *info, uint64_t n, bool any,
              uint64_t previous, uint8_t kind, uint64_t block,
              const struct xs_hash128 *id, size_t len)
{
  bool zero_id = xs_hash128_is_zero (id);

  if (kind != XS_STREAM_CHUNK && kind != XS_STREAM_REF
      && kind != XS_STREAM_ZERO) {
    xs_error ("stream record %" PRIu64 " has an unknown kind (0x%02x)", n,
              kind);
    return -1;
  }
  if (block >= info->nblocks || block < info->first_block
      || (any && block <= previous)) {
    xs_error ("stream record %" PRIu64 " (block %" PRIu64 ") is out of "
              "order: %s", n, block,
              block >= info->nblocks ? "beyond the volume's end"
              : block < info->first_block ? "before the stream's first block"
              : "it does not follow the block before it");
    return -1;
  }
  if ((kind == XS_STREAM_ZERO) != zero_id
      || (kind != XS_STREAM_CHUNK && len != fixed_length (info, kind))
      || (kind == XS_STREAM_CHUNK
          && (len < XS_CHUNK_HEADER_SIZE
              || len > xs_stream_max_stored (info->block_size)))) {
    xs_error ("stream record %" PRIu64 " (block %" PRIu64 ") is invalid: "
              "%s record with %s id and a length of %zu", n, block,
              kind == XS_STREAM_CHUNK ? "a chunk"
              : kind == XS_STREAM_REF ? "a reference" : "a zero",
              zero_id ? "a zero" : "an", len);
    return -1;
  }
  return 0;
}

/* A reference's source block (of a stream that has them) must be in
 * the volume.  Returns 0, or -1 with an error.
 */
static int
check_source (const struct xs_stream_info *info, uint64_t n, uint64_t block,
              uint64_t source)
{
  if (source < info->nblocks)
    return 0;
  xs_error ("stream record %" PRIu64 " (block %" PRIu64 ") refers to block "
            "%" PRIu64 ", beyond the volume's end", n, block, source);
  return -1;
}

/* ----- Writing ----- */

enum writer_state { W_HEADER, W_RECORDS, W_DONE, W_FAILED };

struct xs_stream_writer {
  xs_stream_write_fn write;
  void *opaque;
  enum writer_state state;
  struct xs_hash_stream *whole;   /* the whole stream */
  struct xs_hash_stream *record;  /* one chunk record */
  struct xs_stream_info info;     /* geometry and counts only */
  uint64_t bytes;
  uint64_t records;
  uint64_t last_block;
};

struct xs_stream_writer *
xs_stream_writer_new (xs_stream_write_fn write, void *opaque)
{
  struct xs_stream_writer *w = calloc (1, sizeof *w);

  if (w == NULL) {
    xs_error ("cannot allocate a stream writer: %m");
    return NULL;
  }
  w->write = write;
  w->opaque = opaque;
  w->whole = xs_hash_stream_new ();
  w->record = xs_hash_stream_new ();
  if (w->whole == NULL || w->record == NULL) {
    xs_stream_writer_free (w);
    return NULL;
  }
  return w;
}

void
xs_stream_writer_free (struct xs_stream_writer *w)
{
  if (w == NULL)
    return;
  xs_hash_stream_free (w->whole);
  xs_hash_stream_free (w->record);
  free (w);
}

uint64_t
xs_stream_writer_bytes (const struct xs_stream_writer *w)
{
  return w->bytes;
}

static int
emit (struct xs_stream_writer *w, const void *data, size_t len)
{
  xs_hash_stream_update (w->whole, data, len);
  w->bytes += len;
  if (w->write && w->write (data, len, w->opaque) == -1) {
    w->state = W_FAILED;
    return -1;
  }
  return 0;
}

static int
writer_in_state (struct xs_stream_writer *w, enum writer_state want,
                 const char *what)
{
  if (w->state != want) {
    xs_error ("cannot write the stream's %s: %s", what,
              w->state == W_FAILED ? "an earlier write failed"
              : "out of sequence");
    return -1;
  }
  return 0;
}

int
xs_stream_write_header (struct xs_stream_writer *w,
                        const struct xs_stream_info *info)
{
  json_t *obj;
  char *text;
  uint8_t prefix[PREFIX_SIZE], check[CHECK_SIZE];
  size_t len;
  uint64_t whole;
  int r = -1;

  if (writer_in_state (w, W_HEADER, "header") == -1)
    return -1;
  obj = xs_stream_info_to_json (info);
  text = obj ? json_dumps (obj, JSON_COMPACT) : NULL;
  json_decref (obj);
  if (text == NULL) {
    xs_error ("cannot write the stream header: out of memory");
    return -1;
  }
  len = strlen (text);
  if (len > XS_STREAM_MAX_METADATA) {
    xs_error ("cannot write the stream header: metadata of %zu bytes", len);
    goto out;
  }
  memset (prefix, 0, sizeof prefix);
  memcpy (prefix, STREAM_MAGIC, STREAM_MAGIC_LEN);
  xs_put_le32 (prefix + 8, xs_stream_encryption (info)[0]
               ? XS_STREAM_VERSION_ENCRYPTED : XS_STREAM_VERSION);
  xs_put_le32 (prefix + 16, (uint32_t) len);
  xs_put_le64 (prefix + PREFIX_CHECKED, xs_hash64 (prefix, PREFIX_CHECKED));
  if (emit (w, prefix, sizeof prefix) == -1 || emit (w, text, len) == -1)
    goto out;
  whole = xs_hash_stream_digest64 (w->whole);
  xs_put_le64 (check, whole);
  if (emit (w, check, sizeof check) == -1)
    goto out;
  /* Only the numbers are kept: the strings belong to the caller. */
  w->info.nblocks = info->nblocks;
  w->info.block_size = info->block_size;
  w->info.first_block = info->first_block;
  w->info.records = info->records;
  w->info.root = info->root;
  w->info.sourced_refs = true;
  w->state = W_RECORDS;
  r = 0;
 out:
  free (text);
  return r;
}

/* What follows a record's head: its LEN bytes of BODY, then a check of
 * the whole record.
 */
static int
write_body (struct xs_stream_writer *w, const uint8_t head[HEAD_SIZE],
            const void *body, size_t len)
{
  uint8_t check[CHECK_SIZE];

  xs_hash_stream_reset (w->record);
  xs_hash_stream_update (w->record, head, HEAD_SIZE);
  xs_hash_stream_update (w->record, body, len);
  xs_put_le64 (check, xs_hash_stream_digest64 (w->record));
  return emit (w, body, len) == -1 || emit (w, check, sizeof check) == -1
    ? -1 : 0;
}

int
xs_stream_write_record (struct xs_stream_writer *w,
                        const struct xs_stream_record *rec)
{
  struct head h = { .kind = (uint8_t) rec->kind, .block = rec->block,
                    .id = rec->id };
  uint8_t head[HEAD_SIZE], source[SOURCE_SIZE];
  const void *body = rec->stored;

  if (writer_in_state (w, W_RECORDS, "records") == -1)
    return -1;
  if (rec->kind == XS_STREAM_CHUNK && rec->stored_len > UINT32_MAX) {
    xs_error ("cannot write the stream: a chunk of %zu bytes",
              rec->stored_len);
    return -1;
  }
  h.len = rec->kind == XS_STREAM_CHUNK ? (uint32_t) rec->stored_len
    : (uint32_t) fixed_length (&w->info, h.kind);
  if (check_record (&w->info, w->records + 1, w->records > 0,
                    w->last_block, h.kind, h.block, &h.id, h.len) == -1
      || (rec->kind == XS_STREAM_REF
          && check_source (&w->info, w->records + 1, rec->block,
                           rec->source) == -1))
    return -1;
  if (rec->kind == XS_STREAM_REF) {
    xs_put_le64 (source, rec->source);
    body = source;
  }
  encode_head (&h, head);
  if (emit (w, head, sizeof head) == -1
      || (h.len > 0 && write_body (w, head, body, h.len) == -1))
    return -1;
  w->records++;
  w->last_block = rec->block;
  return 0;
}

int
xs_stream_write_trailer (struct xs_stream_writer *w)
{
  struct head h = { .kind = TRAILER_KIND, .block = w->records,
                    .id = w->info.root };
  uint8_t head[HEAD_SIZE], check[CHECK_SIZE];

  if (writer_in_state (w, W_RECORDS, "trailer") == -1)
    return -1;
  if (w->records != w->info.records) {
    xs_error ("cannot finish the stream: %" PRIu64 " records written, the "
              "header announced %" PRIu64, w->records, w->info.records);
    return -1;
  }
  encode_head (&h, head);
  if (emit (w, head, sizeof head) == -1)
    return -1;
  xs_put_le64 (check, xs_hash_stream_digest64 (w->whole));
  if (emit (w, check, sizeof check) == -1)
    return -1;
  w->state = W_DONE;
  return 0;
}

/* ----- Parsing ----- */

enum parser_state {
  P_PREFIX,                     /* the header's fixed prefix */
  P_METADATA,                   /* the rest of the header */
  P_HEAD,                       /* the head of a record or the trailer */
  P_BODY,                       /* a record's body (chunk, source) and check */
  P_TRAILER,                    /* the trailer's whole-stream check */
  P_DONE,
  P_FAILED,
};

struct xs_stream_parser {
  enum parser_state state;
  uint8_t *buf;                 /* the frame being read */
  size_t cap;
  size_t need;                  /* the frame's length */
  size_t have;                  /* bytes of it in buf */
  struct xs_hash_stream *whole;
  bool have_info;
  bool resumable;
  struct xs_stream_info info;
  uint32_t version;             /* of the header */
  struct xs_stream_record record;
  struct head head;             /* of the frame being read */
  uint64_t records;
  uint64_t last_block;
};

struct xs_stream_parser *
xs_stream_parser_new (void)
{
  struct xs_stream_parser *p = calloc (1, sizeof *p);

  if (p == NULL) {
    xs_error ("cannot allocate a stream parser: %m");
    return NULL;
  }
  p->cap = PREFIX_SIZE;
  p->buf = malloc (p->cap);
  p->whole = xs_hash_stream_new ();
  if (p->buf == NULL || p->whole == NULL) {
    if (p->buf == NULL)
      xs_error ("cannot allocate a stream parser: %m");
    xs_stream_parser_free (p);
    return NULL;
  }
  p->state = P_PREFIX;
  p->need = PREFIX_SIZE;
  return p;
}

void
xs_stream_parser_free (struct xs_stream_parser *p)
{
  if (p == NULL)
    return;
  free (p->buf);
  xs_hash_stream_free (p->whole);
  xs_stream_info_clear (&p->info);
  free (p);
}

const struct xs_stream_info *
xs_stream_parser_info (const struct xs_stream_parser *p)
{
  return p->have_info ? &p->info : NULL;
}

const struct xs_stream_record *
xs_stream_parser_record (const struct xs_stream_parser *p)
{
  return &p->record;
}

uint64_t
xs_stream_parser_records (const struct xs_stream_parser *p)
{
  return p->records;
}

bool
xs_stream_parser_resumable (const struct xs_stream_parser *p)
{
  return p->have_info && p->resumable;
}

/* Start reading a frame of LEN bytes (a bounded length). */
static int
expect (struct xs_stream_parser *p, enum parser_state state, size_t len)
{
  uint8_t *grown;

  if (len > p->cap) {
    grown = realloc (p->buf, len);
    if (grown == NULL) {
      xs_error ("cannot read the stream: %m");
      return -1;
    }
    p->buf = grown;
    p->cap = len;
  }
  p->state = state;
  p->need = len;
  p->have = 0;
  return 0;
}

static enum xs_stream_event
fail (struct xs_stream_parser *p, bool resumable)
{
  p->state = P_FAILED;
  p->resumable = resumable;
  return XS_STREAM_ERROR;
}

static enum xs_stream_event
parse_prefix (struct xs_stream_parser *p)
{
  uint32_t version, metadata_len;

  if (memcmp (p->buf, STREAM_MAGIC, STREAM_MAGIC_LEN) != 0) {
    xs_error ("not an xsnap stream (bad magic)");
    return fail (p, false);
  }
  version = xs_get_le32 (p->buf + 8);
  if (version > XS_STREAM_VERSION_ENCRYPTED) {
    xs_error ("stream format version %" PRIu32 " is newer than this xsnap "
              "supports (%d)", version, XS_STREAM_VERSION_ENCRYPTED);
    return fail (p, false);
  }
  if (version == 0) {
    xs_error ("invalid stream format version 0");
    return fail (p, false);
  }
  if (xs_get_le64 (p->buf + PREFIX_CHECKED)
      != xs_hash64 (p->buf, PREFIX_CHECKED)) {
    xs_error ("stream header is damaged (checksum mismatch)");
    return fail (p, false);
  }
  p->version = version;
  metadata_len = xs_get_le32 (p->buf + 16);
  if (xs_get_le32 (p->buf + 12) != 0 || xs_get_le32 (p->buf + 20) != 0
      || metadata_len < 2 || metadata_len > XS_STREAM_MAX_METADATA) {
    xs_error ("stream header is invalid (flags, reserved field or metadata "
              "length %" PRIu32 ")", metadata_len);
    return fail (p, false);
  }
  if (expect (p, P_METADATA, PREFIX_SIZE + metadata_len + CHECK_SIZE) == -1)
    return fail (p, false);
  p->have = PREFIX_SIZE;        /* the prefix stays in place */
  return XS_STREAM_MORE;
}

static bool
version_is_encrypted (uint32_t version)
{
  return version % 2 == 0;
}

static enum xs_stream_event
parse_metadata (struct xs_stream_parser *p)
{
  size_t body = p->need - CHECK_SIZE;
  json_error_t err;
  json_t *obj;
  int r;

  if (xs_get_le64 (p->buf + body) != xs_hash64 (p->buf, body)) {
    xs_error ("stream header is damaged (checksum mismatch)");
    return fail (p, false);
  }
  obj = json_loadb ((const char *) p->buf + PREFIX_SIZE, body - PREFIX_SIZE,
                    JSON_REJECT_DUPLICATES, &err);
  if (obj == NULL) {
    xs_error ("stream header: bad metadata JSON: %s", err.text);
    return fail (p, false);
  }
  r = xs_stream_info_from_json (obj, "stream header", &p->info);
  json_decref (obj);
  if (r == -1)
    return fail (p, false);
  if (version_is_encrypted (p->version)
      != (xs_stream_encryption (&p->info)[0] != '\0')) {
    xs_error ("stream header: a version %" PRIu32 " stream %s an "
              "encryption mode", p->version,
              version_is_encrypted (p->version) ? "without" : "with");
    return fail (p, false);
  }
  p->info.flat_roots = p->version < XS_STREAM_VERSION_UNSOURCED;
  p->info.sourced_refs = p->version >= XS_STREAM_VERSION;
  p->have_info = true;
  xs_hash_stream_update (p->whole, p->buf, p->need);
  if (expect (p, P_HEAD, HEAD_SIZE) == -1)
    return fail (p, false);
  return XS_STREAM_HEADER;
}

/* A complete record: publish it. */
static enum xs_stream_event
record_done (struct xs_stream_parser *p, size_t frame_len)
{
  xs_hash_stream_update (p->whole, p->buf, frame_len);
  p->record.kind = (enum xs_stream_kind) p->head.kind;
  p->record.block = p->head.block;
  p->record.id = p->head.id;
  p->record.stored = p->head.kind == XS_STREAM_CHUNK ? p->buf + HEAD_SIZE
    : NULL;
  p->record.stored_len = p->head.kind == XS_STREAM_CHUNK ? p->head.len : 0;
  p->record.source = p->head.kind == XS_STREAM_REF && p->head.len > 0
    ? xs_get_le64 (p->buf + HEAD_SIZE) : 0;
  p->records++;
  p->last_block = p->head.block;
  if (expect (p, P_HEAD, HEAD_SIZE) == -1)
    return fail (p, false);
  return XS_STREAM_RECORD;
}

static enum xs_stream_event
parse_trailer_head (struct xs_stream_parser *p)
{
  if (p->head.len != 0) {
    xs_error ("stream trailer is invalid (a length of %" PRIu32 ")",
              p->head.len);
    return fail (p, false);
  }
  if (p->head.block != p->records || p->head.block != p->info.records) {
    xs_error ("stream trailer counts %" PRIu64 " records; %" PRIu64
              " arrived and the header announced %" PRIu64, p->head.block,
              p->records, p->info.records);
    return fail (p, false);
  }
  if (!xs_hash128_equal (&p->head.id, &p->info.root)) {
    xs_error ("stream trailer's root hash differs from the header's");
    return fail (p, false);
  }
  xs_hash_stream_update (p->whole, p->buf, HEAD_SIZE);
  if (expect (p, P_TRAILER, HEAD_SIZE + CHECK_SIZE) == -1)
    return fail (p, false);
  p->have = HEAD_SIZE;          /* the head stays in place */
  return XS_STREAM_MORE;
}

static enum xs_stream_event
parse_head (struct xs_stream_parser *p)
{
  uint64_t n = p->records + 1;

  if (xs_get_le64 (p->buf + HEAD_CHECKED) != xs_hash64 (p->buf, HEAD_CHECKED)) {
    if (p->buf[0] == TRAILER_KIND)
      xs_error ("stream trailer is damaged (checksum mismatch)");
    else
      xs_error ("stream record %" PRIu64 " is damaged (checksum mismatch)",
                n);
    return fail (p, true);
  }
  decode_head (p->buf, &p->head);
  if (p->buf[1] != 0 || p->buf[2] != 0 || p->buf[3] != 0) {
    xs_error ("stream record %" PRIu64 " is invalid (reserved bytes are "
              "not zero)", n);
    return fail (p, false);
  }
  if (p->head.kind == TRAILER_KIND)
    return parse_trailer_head (p);
  if (check_record (&p->info, n, p->records > 0, p->last_block, p->head.kind,
                    p->head.block, &p->head.id, p->head.len) == -1)
    return fail (p, false);
  if (p->head.len == 0)
    return record_done (p, HEAD_SIZE);
  if (expect (p, P_BODY, HEAD_SIZE + p->head.len + CHECK_SIZE) == -1)
    return fail (p, false);
  p->have = HEAD_SIZE;        /* the head stays in place */
  return XS_STREAM_MORE;
}

static enum xs_stream_event
parse_body (struct xs_stream_parser *p)
{
  size_t body = p->need - CHECK_SIZE;

  if (xs_get_le64 (p->buf + body) != xs_hash64 (p->buf, body)) {
    xs_error ("stream record %" PRIu64 " (block %" PRIu64 ") is damaged "
              "(checksum mismatch)", p->records + 1, p->head.block);
    return fail (p, true);
  }
  if (p->head.kind == XS_STREAM_REF
      && check_source (&p->info, p->records + 1, p->head.block,
                       xs_get_le64 (p->buf + HEAD_SIZE)) == -1)
    return fail (p, false);
  return record_done (p, p->need);
}

static enum xs_stream_event
parse_trailer (struct xs_stream_parser *p)
{
  if (xs_get_le64 (p->buf + HEAD_SIZE)
      != xs_hash_stream_digest64 (p->whole)) {
    xs_error ("stream checksum mismatch: the stream is corrupt");
    return fail (p, false);
  }
  p->state = P_DONE;
  p->need = p->have = 0;
  return XS_STREAM_END;
}

void *
xs_stream_parser_space (struct xs_stream_parser *p, size_t *len)
{
  if (p->state == P_DONE || p->state == P_FAILED) {
    *len = 0;
    return NULL;
  }
  *len = p->need - p->have;
  return p->buf + p->have;
}

enum xs_stream_event
xs_stream_parser_advance (struct xs_stream_parser *p, size_t len)
{
  if (p->state == P_FAILED)
    return XS_STREAM_ERROR;
  if (p->state == P_DONE) {
    if (len == 0)
      return XS_STREAM_END;
    xs_error ("unexpected data after the end of the stream");
    return fail (p, false);
  }
  p->have += len;
  if (p->have < p->need)
    return XS_STREAM_MORE;
  switch (p->state) {
  case P_PREFIX: return parse_prefix (p);
  case P_METADATA: return parse_metadata (p);
  case P_HEAD: return parse_head (p);
  case P_BODY: return parse_body (p);
  case P_TRAILER: return parse_trailer (p);
  default: abort ();
  }
}

enum xs_stream_event
xs_stream_parser_feed (struct xs_stream_parser *p, const void *data,
                       size_t len, size_t *used)
{
  const uint8_t *in = data;
  enum xs_stream_event event = XS_STREAM_MORE;
  size_t room, take;
  void *space;

  *used = 0;
  while (*used < len) {
    space = xs_stream_parser_space (p, &room);
    if (room == 0)
      return xs_stream_parser_advance (p, len - *used);
    take = room < len - *used ? room : len - *used;
    memcpy (space, in + *used, take);
    *used += take;
    event = xs_stream_parser_advance (p, take);
    if (event != XS_STREAM_MORE)
      break;
  }
  return event;
}

int
xs_stream_parser_finish (struct xs_stream_parser *p)
{
  uint64_t n = p->records;

  switch (p->state) {
  case P_DONE:
    return 0;
  case P_FAILED:
    return -1;
  case P_PREFIX:
    if (p->have == 0) {
      xs_error ("the stream is empty");
      break;
    }
    /* fall through */
  case P_METADATA:
    xs_error ("stream truncated inside the header");
    break;
  case P_HEAD:
    if (p->have > 0 && p->buf[0] == TRAILER_KIND)
      xs_error ("stream truncated inside the trailer");
    else if (p->have > 0)
      xs_error ("stream truncated inside record %" PRIu64, n + 1);
    else if (n == 0)
      xs_error ("stream truncated after the header: no record or trailer");
    else
      xs_error ("stream truncated after record %" PRIu64 " (block %" PRIu64
                "): the trailer is missing", n, p->last_block);
    break;
  case P_BODY:
    xs_error ("stream truncated inside record %" PRIu64 " (block %" PRIu64
              ")", n + 1, p->head.block);
    break;
  case P_TRAILER:
    xs_error ("stream truncated inside the trailer");
    break;
  }
  fail (p, true);
  return -1;
}

/* ----- Resume tokens ----- */

static bool
is_lower_hex (const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

int
xs_stream_token_parse (const char *token,
                       char stream_id[XS_STREAM_ID_LEN + 1],
                       uint64_t *next_block, char mac_hex[33])
{
  const size_t prefix = strlen (TOKEN_PREFIX);
  const size_t want = prefix + XS_STREAM_ID_LEN + 1 + 16 + 1 + 32;
  const char *block_hex, *mac;

  if (strlen (token) != want || strncmp (token, TOKEN_PREFIX, prefix) != 0)
    goto bad;
  block_hex = token + prefix + XS_STREAM_ID_LEN + 1;
  mac = block_hex + 17;
  if (block_hex[-1] != '-' || block_hex[16] != '-'
      || !is_lower_hex (token + prefix, XS_STREAM_ID_LEN)
      || !is_lower_hex (block_hex, 16) || !is_lower_hex (mac, 32))
    goto bad;
  memcpy (stream_id, token + prefix, XS_STREAM_ID_LEN);
  stream_id[XS_STREAM_ID_LEN] = '\0';
  *next_block = strtoull (block_hex, NULL, 16);
  memcpy (mac_hex, mac, 32);
  mac_hex[32] = '\0';
  return 0;

 bad:
  xs_error ("'%.100s' is not a resume token", token);
  return -1;
}
