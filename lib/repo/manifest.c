/* xsnap: snapshot manifests (see manifest.h and docs/FORMAT.md).
 *
 * A manifest written now is its metadata and the id of its block map's
 * top page; the map itself is maptree.c's.  The flat entries of an old
 * manifest (16 bytes per block, zstd-compressed) are still parsed: the
 * parser checks the whole-file checksum first, then every length against
 * what is really there, and decompresses into a buffer that grows only as
 * real output arrives, so a small hostile input cannot make it allocate
 * much; the entries are checked against the stored root and then held as
 * a tree in memory.
 *
 * An encrypted snapshot's manifest (versions 2 and 4) carries the key
 * that wraps its data key and ends with an HMAC-SHA256 under a key
 * derived from the data key; the parser checks everything else, and the
 * MAC is checked once the data key is unwrapped (xs_manifest_authenticate).
 * The MAC covers what the snapshot is (id, root hash, key fields), not
 * its descriptive metadata (names, account, region), so a raw stream's
 * receiver, which renames what it receives and has no key, can keep the
 * sender's MAC.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zstd.h>

#include <openssl/crypto.h>

#include "base/byteorder.h"
#include "crypto/chunkcrypt.h"
#include "base/error.h"
#include "base/hash.h"
#include "repo/manifest.h"
#include "repo/maptree.h"
#include "repo/repo.h"

#define MANIFEST_MAGIC "XSNPMANI"
#define MANIFEST_MAGIC_LEN 8

/* magic, version, metadata length */
#define PREFIX_SIZE 16
/* entry encoding, entries length */
#define ENTRIES_HEADER_SIZE 12
/* root hash, checksum */
#define TRAILER_SIZE 24
#define MIN_MANIFEST_SIZE (PREFIX_SIZE + ENTRIES_HEADER_SIZE + TRAILER_SIZE)

#define MAX_METADATA_LEN (1024 * 1024)
#define ENTRIES_ZSTD_LEVEL 1
/* Decompression starts with at most this much output space, then grows. */
#define ENTRIES_INITIAL_CAP (64 * 1024 * 1024)

enum entry_encoding {
  ENTRIES_RAW = 0,              /* versions 1 and 2 */
  ENTRIES_ZSTD = 1,             /* versions 1 and 2 */
  ENTRIES_TREE = 2,             /* versions 3 and 4: the top page's id */
};

/* The string fields, by name, for set/copy/free/serialize/parse. */
static const struct {
  const char *name;
  size_t offset;
} string_fields[] = {
  { "snapshot_id", offsetof (struct xs_manifest, snapshot_id) },
  { "volume_id", offsetof (struct xs_manifest, volume_id) },
  { "volume_name", offsetof (struct xs_manifest, volume_name) },
  { "account", offsetof (struct xs_manifest, account) },
  { "region", offsetof (struct xs_manifest, region) },
  { "parent_id", offsetof (struct xs_manifest, parent_id) },
  { "name", offsetof (struct xs_manifest, name) },
  { "status", offsetof (struct xs_manifest, status) },
};
#define N_STRING_FIELDS (sizeof string_fields / sizeof string_fields[0])

static char **
string_field (struct xs_manifest *m, size_t i)
{
  return (char **) ((char *) m + string_fields[i].offset);
}

static const char *
string_field_value (const struct xs_manifest *m, size_t i)
{
  return *(char *const *) ((const char *) m + string_fields[i].offset);
}

/* The encryption fields, all set or all "". */
static const struct {
  const char *name;
  size_t offset;
} key_fields[] = {
  { "key_id", offsetof (struct xs_manifest, key_id) },
  { "key_account", offsetof (struct xs_manifest, key_account) },
  { "data_key", offsetof (struct xs_manifest, data_key) },
};
#define N_KEY_FIELDS (sizeof key_fields / sizeof key_fields[0])

static char **
key_field (struct xs_manifest *m, size_t i)
{
  return (char **) ((char *) m + key_fields[i].offset);
}

static const char *
key_field_value (const struct xs_manifest *m, size_t i)
{
  const char *v = *(char *const *) ((const char *) m + key_fields[i].offset);

  return v ? v : "";
}

static void compute_tree_root (uint64_t size, uint32_t block_size,
                               const struct xs_hash128 *top,
                               struct xs_hash128 *root);

/* ----- Building ----- */

/* Checks a geometry; errors start with context (e.g. "manifest X: "). */
static int
check_geometry (uint64_t size, uint32_t block_size, uint64_t *nblocks,
                const char *context)
{
  uint64_t n;

  if (block_size < XS_MANIFEST_MIN_BLOCK_SIZE
      || block_size > XS_MANIFEST_MAX_BLOCK_SIZE
      || (block_size & (block_size - 1)) != 0) {
    xs_error ("%sinvalid block size %" PRIu32 ": must be a power of two "
              "from %u to %u", context, block_size,
              XS_MANIFEST_MIN_BLOCK_SIZE, XS_MANIFEST_MAX_BLOCK_SIZE);
    return -1;
  }
  n = size / block_size + (size % block_size != 0);
  if (n > XS_MANIFEST_MAX_BLOCKS) {
    xs_error ("%svolume size %" PRIu64 " is too large: more than %" PRIu64
              " blocks of %" PRIu32 " bytes",
              context, size, XS_MANIFEST_MAX_BLOCKS, block_size);
    return -1;
  }
  *nblocks = n;
  return 0;
}

int
xs_manifest_geometry (uint64_t size, uint32_t block_size, uint64_t *nblocks)
{
  return check_geometry (size, block_size, nblocks, "");
}

/* A manifest with its geometry set, no entries and no strings yet. */
static struct xs_manifest *
new_shell (uint64_t size, uint32_t block_size, uint64_t nblocks)
{
  struct xs_manifest *m = calloc (1, sizeof *m);

  if (m == NULL) {
    xs_error ("cannot allocate manifest: %m");
    return NULL;
  }
  m->size = size;
  m->block_size = block_size;
  m->nblocks = nblocks;
  return m;
}

struct xs_manifest *
xs_manifest_new (uint64_t size, uint32_t block_size)
{
  struct xs_manifest *m;
  uint64_t nblocks;
  size_t i;

  if (xs_manifest_geometry (size, block_size, &nblocks) == -1)
    return NULL;
  m = new_shell (size, block_size, nblocks);
  if (m == NULL)
    return NULL;
  m->map = xs_maptree_new (nblocks, NULL);
  if (m->map == NULL) {
    xs_manifest_free (m);
    return NULL;
  }
  for (i = 0; i < N_STRING_FIELDS; i++) {
    bool is_status = strcmp (string_fields[i].name, "status") == 0;

    *string_field (m, i) = strdup (is_status ? "available" : "");
    if (*string_field (m, i) == NULL) {
      xs_error ("cannot allocate manifest: %m");
      xs_manifest_free (m);
      return NULL;
    }
  }
  compute_tree_root (m->size, m->block_size, &m->top, &m->root);
  return m;
}

static bool
is_valid_utf8 (const char *s)
{
  json_t *probe = json_string (s);

  json_decref (probe);
  return probe != NULL;
}

int
xs_manifest_set (struct xs_manifest *m, const char *field, const char *value)
{
  size_t i;
  char *copy;

  for (i = 0; i < N_STRING_FIELDS; i++)
    if (strcmp (string_fields[i].name, field) == 0)
      break;
  if (i == N_STRING_FIELDS) {
    xs_error ("manifest has no field '%s'", field);
    return -1;
  }
  if (!is_valid_utf8 (value)) {
    xs_error ("manifest field %s: value is not valid UTF-8", field);
    return -1;
  }
  copy = strdup (value);
  if (copy == NULL) {
    xs_error ("cannot set manifest field %s: %m", field);
    return -1;
  }
  free (*string_field (m, i));
  *string_field (m, i) = copy;
  return 0;
}

struct xs_manifest *
xs_manifest_copy (const struct xs_manifest *m)
{
  struct xs_manifest *copy = new_shell (m->size, m->block_size, m->nblocks);
  size_t i;

  if (copy == NULL)
    return NULL;
  copy->map = xs_maptree_copy (m->map);
  if (copy->map == NULL
      || (m->repo && (copy->repo = xs_repo_dup (m->repo)) == NULL)
      || (m->source_repo
          && (copy->source_repo = xs_repo_dup (m->source_repo)) == NULL)) {
    xs_manifest_free (copy);
    return NULL;
  }
  xs_maptree_set_repo (copy->map, copy->repo);
  xs_maptree_set_source (copy->map, copy->source_repo);
  copy->top = m->top;
  copy->flat = m->flat;
  for (i = 0; i < N_STRING_FIELDS; i++) {
    *string_field (copy, i) = strdup (string_field_value (m, i));
    if (*string_field (copy, i) == NULL) {
      xs_error ("cannot copy manifest: %m");
      xs_manifest_free (copy);
      return NULL;
    }
  }
  copy->created_ns = m->created_ns;
  copy->root = m->root;
  if (xs_manifest_is_encrypted (m)
      && xs_manifest_set_encryption (copy, m->key_id, m->key_account,
                                     m->data_key, m->dk) == -1) {
    xs_manifest_free (copy);
    return NULL;
  }
  return copy;
}

int
xs_manifest_set_encryption (struct xs_manifest *m, const char *key_id,
                            const char *key_account, const char *wrapped,
                            const struct xs_data_key *dk)
{
  const char *values[N_KEY_FIELDS] = { key_id, key_account, wrapped };
  struct xs_data_key *copy = NULL;
  size_t i;

  if (key_id[0] == '\0' || key_account[0] == '\0' || wrapped[0] == '\0') {
    xs_error ("cannot encrypt manifest %s: no key", m->snapshot_id);
    return -1;
  }
  if (dk && (copy = xs_data_key_dup (dk)) == NULL)
    return -1;
  for (i = 0; i < N_KEY_FIELDS; i++) {
    char *value = strdup (values[i]);

    if (value == NULL) {
      xs_error ("cannot encrypt manifest %s: %m", m->snapshot_id);
      xs_data_key_free (copy);
      return -1;
    }
    free (*key_field (m, i));
    *key_field (m, i) = value;
  }
  xs_data_key_free (m->dk);
  m->dk = copy;
  return 0;
}

void
xs_manifest_free (struct xs_manifest *m)
{
  size_t i;

  if (m == NULL)
    return;
  for (i = 0; i < N_STRING_FIELDS; i++)
    free (*string_field (m, i));
  for (i = 0; i < N_KEY_FIELDS; i++)
    free (*key_field (m, i));
  xs_data_key_free (m->dk);
  xs_maptree_free (m->map);
  xs_repo_close (m->repo);
  xs_repo_close (m->source_repo);
  free (m);
}

/* The root of a version 1 or 2 manifest: XXH3-128 of the geometry and
 * every entry.
 */
static void
compute_flat_root (uint64_t size, uint32_t block_size,
              const struct xs_hash128 *entries, uint64_t nblocks,
              struct xs_hash128 *root)
{
  uint8_t geometry[12];

  xs_put_le64 (geometry, size);
  xs_put_le32 (geometry + 8, block_size);
  xs_hash128_concat (geometry, sizeof geometry, entries,
                     nblocks * sizeof (struct xs_hash128), root);
}

/* The root of a tree manifest: the SHA-256 name, as a page's, of a
 * label, the geometry and the top page's id.
 */
static void
compute_tree_root (uint64_t size, uint32_t block_size,
                   const struct xs_hash128 *top, struct xs_hash128 *root)
{
  static const char label[] = "xsnap map root 1";
  uint8_t input[sizeof label + 12 + sizeof top->bytes];

  memcpy (input, label, sizeof label);
  xs_put_le64 (input + sizeof label, size);
  xs_put_le32 (input + sizeof label + 8, block_size);
  memcpy (input + sizeof label + 12, top->bytes, sizeof top->bytes);
  xs_maptree_page_id (input, sizeof input, root);
}

int
xs_manifest_seal (struct xs_manifest *m)
{
  struct xs_hash128 top;

  if (xs_maptree_commit (m->map, &top) == -1)
    return -1;
  m->top = top;
  m->flat = false;
  compute_tree_root (m->size, m->block_size, &m->top, &m->root);
  return 0;
}

/* ----- Serializing ----- */

static char *
metadata_json (const struct xs_manifest *m, size_t *len)
{
  json_t *obj = json_object ();
  char *text = NULL;
  size_t i;
  bool failed = obj == NULL;

  for (i = 0; !failed && i < N_STRING_FIELDS; i++)
    failed = json_object_set_new (obj, string_fields[i].name,
                                  json_string (string_field_value (m, i)))
      == -1;
  if (!failed)
    failed = json_object_set_new (obj, "created_ns",
                                  json_integer (m->created_ns)) == -1
      || json_object_set_new (obj, "size",
                              json_integer ((json_int_t) m->size)) == -1
      || json_object_set_new (obj, "block_size",
                              json_integer (m->block_size)) == -1
      || json_object_set_new (obj, "nblocks",
                              json_integer ((json_int_t) m->nblocks)) == -1;
  for (i = 0; !failed && xs_manifest_is_encrypted (m) && i < N_KEY_FIELDS;
       i++)
    failed = json_object_set_new (obj, key_fields[i].name,
                                  json_string (key_field_value (m, i))) == -1;
  if (!failed)
    text = json_dumps (obj, JSON_COMPACT);
  json_decref (obj);
  if (text == NULL) {
    xs_error ("cannot serialize manifest %s: metadata is not valid UTF-8 "
              "or out of memory", m->snapshot_id);
    return NULL;
  }
  *len = strlen (text);
  return text;
}

static int compute_mac (const struct xs_manifest *m, bool flat,
                        const struct xs_hash128 *root,
                        const struct xs_data_key *dk,
                        unsigned char mac[XS_MANIFEST_MAC_LEN]);

int
xs_manifest_serialize (const struct xs_manifest *m, void **data, size_t *len)
{
  size_t metadata_len, total;
  uint64_t nblocks;
  struct xs_hash128 root;
  char *metadata;
  uint8_t *out, *p, *shrunk;
  bool encrypted = xs_manifest_is_encrypted (m);

  if (xs_manifest_geometry (m->size, m->block_size, &nblocks) == -1)
    return -1;
  if (nblocks != m->nblocks) {
    xs_error ("cannot serialize manifest %s: %" PRIu64 " entries for "
              "%" PRIu64 " blocks", m->snapshot_id, m->nblocks, nblocks);
    return -1;
  }
  if (m->flat || xs_maptree_has_changes (m->map)) {
    xs_error ("cannot serialize manifest %s: its block map %s (seal it "
              "first)", m->snapshot_id, m->flat ? "is not written"
              : "changed since it was sealed");
    return -1;
  }
  if (encrypted && m->dk == NULL && !m->has_mac) {
    xs_error ("cannot serialize manifest %s: its data key is not open",
              m->snapshot_id);
    return -1;
  }
  metadata = metadata_json (m, &metadata_len);
  if (metadata == NULL)
    return -1;
  out = malloc (MIN_MANIFEST_SIZE + metadata_len + sizeof m->top.bytes
                + XS_MANIFEST_MAC_LEN);
  if (out == NULL) {
    xs_error ("cannot serialize manifest %s: %m", m->snapshot_id);
    free (metadata);
    return -1;
  }

  memcpy (out, MANIFEST_MAGIC, MANIFEST_MAGIC_LEN);
  xs_put_le32 (out + 8, encrypted ? XS_MANIFEST_VERSION_ENCRYPTED
               : XS_MANIFEST_VERSION);
  xs_put_le32 (out + 12, (uint32_t) metadata_len);
  memcpy (out + PREFIX_SIZE, metadata, metadata_len);
  free (metadata);
  p = out + PREFIX_SIZE + metadata_len;
  xs_put_le32 (p, ENTRIES_TREE);
  xs_put_le64 (p + 4, sizeof m->top.bytes);
  memcpy (p + ENTRIES_HEADER_SIZE, m->top.bytes, sizeof m->top.bytes);
  p += ENTRIES_HEADER_SIZE + sizeof m->top.bytes;
  compute_tree_root (m->size, m->block_size, &m->top, &root);
  memcpy (p, root.bytes, sizeof root.bytes);
  p += sizeof root.bytes;
  xs_put_le64 (p, xs_hash64 (out, p - out));
  total = p + 8 - out;
  if (encrypted) {
    if (m->dk == NULL)
      memcpy (out + total, m->mac, XS_MANIFEST_MAC_LEN);
    else if (compute_mac (m, false, &root, m->dk, out + total) == -1) {
      free (out);
      return -1;
    }
    total += XS_MANIFEST_MAC_LEN;
  }

  shrunk = realloc (out, total);
  *data = shrunk ? shrunk : out;
  *len = total;
  return 0;
}

/* ----- Parsing ----- */

/* Parsing state: the input and how messages name it. */
struct parser {
  const uint8_t *data;
  size_t len;
  const char *what;
  char context[160];            /* "manifest <what>: " */
  uint32_t version;
  bool encrypted;               /* versions 2, 4: the MAC is not in data..len */
};

static int
check_envelope (const struct parser *ps)
{
  uint32_t version;

  if (ps->len < MANIFEST_MAGIC_LEN + 4) {
    xs_error ("manifest %s: truncated (%zu bytes)", ps->what, ps->len);
    return -1;
  }
  if (memcmp (ps->data, MANIFEST_MAGIC, MANIFEST_MAGIC_LEN) != 0) {
    xs_error ("manifest %s: not an xsnap manifest (bad magic)", ps->what);
    return -1;
  }
  version = xs_get_le32 (ps->data + 8);
  if (version > XS_MANIFEST_VERSION_ENCRYPTED) {
    xs_error ("manifest %s: manifest version %" PRIu32 " is newer than this "
              "xsnap supports (%d)", ps->what, version,
              XS_MANIFEST_VERSION_ENCRYPTED);
    return -1;
  }
  if (version == 0) {
    xs_error ("manifest %s: invalid manifest version 0", ps->what);
    return -1;
  }
  if (ps->len < MIN_MANIFEST_SIZE) {
    xs_error ("manifest %s: truncated (%zu bytes)", ps->what, ps->len);
    return -1;
  }
  if (xs_get_le64 (ps->data + ps->len - 8)
      != xs_hash64 (ps->data, ps->len - 8)) {
    xs_error ("manifest %s: checksum mismatch (corrupt or truncated)",
              ps->what);
    return -1;
  }
  return 0;
}

static int
get_string (const struct parser *ps, json_t *obj, const char *key,
            char **out)
{
  json_t *value = json_object_get (obj, key);

  if (value == NULL) {
    xs_error ("manifest %s: metadata has no field '%s'", ps->what, key);
    return -1;
  }
  if (!json_is_string (value)) {
    xs_error ("manifest %s: metadata field '%s' is not a string",
              ps->what, key);
    return -1;
  }
  *out = strdup (json_string_value (value));
  if (*out == NULL) {
    xs_error ("manifest %s: %m", ps->what);
    return -1;
  }
  return 0;
}

/* An integer field in [min, max]. */
static int
get_integer (const struct parser *ps, json_t *obj, const char *key,
             json_int_t min, json_int_t max, json_int_t *out)
{
  json_t *value = json_object_get (obj, key);

  if (value == NULL) {
    xs_error ("manifest %s: metadata has no field '%s'", ps->what, key);
    return -1;
  }
  if (!json_is_integer (value)) {
    xs_error ("manifest %s: metadata field '%s' is not an integer",
              ps->what, key);
    return -1;
  }
  *out = json_integer_value (value);
  if (*out < min || *out > max) {
    xs_error ("manifest %s: metadata field '%s' is out of range (%lld)",
              ps->what, key, (long long) *out);
    return -1;
  }
  return 0;
}

/* The metadata's geometry fields, checked against each other. */
static int
parse_geometry (const struct parser *ps, json_t *obj, uint64_t *size,
                uint32_t *block_size, uint64_t *nblocks)
{
  json_int_t size_value, block_size_value, nblocks_value;
  uint64_t want;

  if (get_integer (ps, obj, "size", 0, INT64_MAX, &size_value) == -1
      || get_integer (ps, obj, "block_size", 0, UINT32_MAX,
                      &block_size_value) == -1
      || get_integer (ps, obj, "nblocks", 0, INT64_MAX, &nblocks_value) == -1)
    return -1;
  *size = size_value;
  *block_size = (uint32_t) block_size_value;
  *nblocks = nblocks_value;
  if (check_geometry (*size, *block_size, &want, ps->context) == -1)
    return -1;
  if (*nblocks != want) {
    xs_error ("manifest %s: nblocks %" PRIu64 " does not match size %" PRIu64
              " and block size %" PRIu32 " (%" PRIu64 " blocks)",
              ps->what, *nblocks, *size, *block_size, want);
    return -1;
  }
  return 0;
}

static json_t *
load_metadata (const struct parser *ps, size_t metadata_len)
{
  json_error_t err;
  json_t *obj = json_loadb ((const char *) ps->data + PREFIX_SIZE,
                            metadata_len, JSON_REJECT_DUPLICATES, &err);

  if (obj == NULL) {
    xs_error ("manifest %s: bad metadata JSON: %s (at byte %d)",
              ps->what, err.text, err.position);
    return NULL;
  }
  if (!json_is_object (obj)) {
    xs_error ("manifest %s: metadata is not a JSON object", ps->what);
    json_decref (obj);
    return NULL;
  }
  return obj;
}

/* The key fields: required, non-empty strings in an encrypted manifest
 * and ignored in an unencrypted one (set to "").
 */
static int
parse_key_fields (const struct parser *ps, json_t *obj, bool encrypted,
                  struct xs_manifest *m)
{
  size_t i;

  for (i = 0; i < N_KEY_FIELDS; i++) {
    if (!encrypted)
      *key_field (m, i) = strdup ("");
    else if (get_string (ps, obj, key_fields[i].name, key_field (m, i)) == -1)
      return -1;
    if (*key_field (m, i) == NULL) {
      xs_error ("manifest %s: %m", ps->what);
      return -1;
    }
    if (encrypted && (*key_field (m, i))[0] == '\0') {
      xs_error ("manifest %s: metadata field '%s' is empty", ps->what,
                key_fields[i].name);
      return -1;
    }
  }
  return 0;
}

/* Metadata into a new manifest (entries allocated, not filled). */
static struct xs_manifest *
parse_metadata (const struct parser *ps, size_t metadata_len)
{
  json_t *obj = load_metadata (ps, metadata_len);
  struct xs_manifest *m = NULL;
  json_int_t created_ns;
  uint64_t size, nblocks;
  uint32_t block_size;
  size_t i;

  if (obj == NULL)
    return NULL;
  if (parse_geometry (ps, obj, &size, &block_size, &nblocks) == -1
      || get_integer (ps, obj, "created_ns", INT64_MIN, INT64_MAX,
                      &created_ns) == -1)
    goto out;
  m = new_shell (size, block_size, nblocks);
  if (m == NULL)
    goto out;
  m->created_ns = created_ns;
  for (i = 0; i < N_STRING_FIELDS; i++)
    if (get_string (ps, obj, string_fields[i].name,
                    string_field (m, i)) == -1) {
      xs_manifest_free (m);
      m = NULL;
      goto out;
    }
  if (parse_key_fields (ps, obj, ps->encrypted, m) == -1) {
    xs_manifest_free (m);
    m = NULL;
  }
 out:
  json_decref (obj);
  return m;
}

/* Decompress a zstd stream of entries into a buffer that grows with the
 * real output, up to raw + 1 bytes (one spare byte detects excess).
 * Returns the buffer with *out_len bytes, or NULL with an error.
 */
static uint8_t *
decompress_entries (const struct parser *ps, const uint8_t *src,
                    size_t src_len, size_t raw, size_t *out_len)
{
  ZSTD_DCtx *dctx = ZSTD_createDCtx ();
  ZSTD_inBuffer in = { src, src_len, 0 };
  ZSTD_outBuffer out = { NULL, 0, 0 };
  size_t cap = raw + 1 < ENTRIES_INITIAL_CAP ? raw + 1 : ENTRIES_INITIAL_CAP;
  uint8_t *buf = malloc (cap), *grown;
  size_t r;

  if (dctx == NULL || buf == NULL) {
    xs_error ("manifest %s: cannot allocate for the entries: %m", ps->what);
    goto fail;
  }
  out.dst = buf;
  out.size = cap;
  for (;;) {
    r = ZSTD_decompressStream (dctx, &out, &in);
    if (ZSTD_isError (r)) {
      xs_error ("manifest %s: corrupt compressed entries: %s",
                ps->what, ZSTD_getErrorName (r));
      goto fail;
    }
    if (in.pos == in.size && (r == 0 || out.pos < out.size))
      break;
    if (out.pos == out.size) {
      if (cap > raw)
        break;                  /* too long; reported below */
      cap = cap > raw + 1 - cap ? raw + 1 : 2 * cap;
      grown = realloc (buf, cap);
      if (grown == NULL) {
        xs_error ("manifest %s: cannot allocate for the entries: %m",
                  ps->what);
        goto fail;
      }
      buf = grown;
      out.dst = buf;
      out.size = cap;
    }
  }
  if (out.pos <= raw && r != 0) {
    xs_error ("manifest %s: compressed entries are truncated", ps->what);
    goto fail;
  }
  ZSTD_freeDCtx (dctx);
  *out_len = out.pos;
  return buf;

 fail:
  ZSTD_freeDCtx (dctx);
  free (buf);
  return NULL;
}

/* The flat entries of a version 1 or 2 manifest at P (stored bytes):
 * checked against the stored root, then held as a tree in memory.
 */
static int
parse_flat_entries (const struct parser *ps, struct xs_manifest *m,
                    const uint8_t *p, uint32_t encoding, size_t stored,
                    const struct xs_hash128 *stored_root)
{
  size_t raw = m->nblocks * sizeof (struct xs_hash128), got;
  uint8_t *buf;

  if (encoding == ENTRIES_RAW) {
    if (stored != raw) {
      xs_error ("manifest %s: %zu bytes of raw entries for %" PRIu64
                " blocks", ps->what, stored, m->nblocks);
      return -1;
    }
    buf = malloc (raw > 0 ? raw : 1);
    if (buf == NULL) {
      xs_error ("manifest %s: cannot allocate the entries of %" PRIu64
                " blocks: %m", ps->what, m->nblocks);
      return -1;
    }
    if (raw > 0)
      memcpy (buf, p, raw);
  }
  else if (encoding != ENTRIES_ZSTD) {
    xs_error ("manifest %s: unknown entry encoding %" PRIu32,
              ps->what, encoding);
    return -1;
  }
  else {
    buf = decompress_entries (ps, p, stored, raw, &got);
    if (buf == NULL)
      return -1;
    if (got != raw) {
      xs_error ("manifest %s: entries decompress to %s%zu bytes, "
                "%" PRIu64 " blocks need %zu",
                ps->what, got > raw ? "more than " : "",
                got > raw ? raw : got, m->nblocks, raw);
      free (buf);
      return -1;
    }
  }
  compute_flat_root (m->size, m->block_size,
                     (const struct xs_hash128 *) buf, m->nblocks, &m->root);
  if (!xs_hash128_equal (stored_root, &m->root)) {
    xs_error ("manifest %s: root hash mismatch", ps->what);
    free (buf);
    return -1;
  }
  m->map = xs_maptree_from_entries (m->nblocks,
                                    (const struct xs_hash128 *) buf);
  free (buf);
  if (m->map == NULL)
    return -1;
  xs_maptree_top (m->map, &m->top);
  m->flat = true;
  return 0;
}

/* The tree section of a version 3 or 4 manifest: the top page's id. */
static int
parse_tree (const struct parser *ps, struct xs_manifest *m,
            const uint8_t *p, uint32_t encoding, size_t stored,
            const struct xs_hash128 *stored_root)
{
  if (encoding != ENTRIES_TREE || stored != sizeof m->top.bytes) {
    xs_error ("manifest %s: a version %" PRIu32 " manifest must name its "
              "top page (encoding %u, 16 bytes), not encoding %" PRIu32
              " of %zu bytes", ps->what, ps->version, ENTRIES_TREE,
              encoding, stored);
    return -1;
  }
  memcpy (m->top.bytes, p, sizeof m->top.bytes);
  compute_tree_root (m->size, m->block_size, &m->top, &m->root);
  if (!xs_hash128_equal (stored_root, &m->root)) {
    xs_error ("manifest %s: root hash mismatch", ps->what);
    return -1;
  }
  m->map = xs_maptree_new (m->nblocks, &m->top);
  return m->map ? 0 : -1;
}

struct xs_manifest *
xs_manifest_parse (const void *data, size_t len, const char *what)
{
  struct parser ps = {
    .data = data, .len = len, .what = what ? what : "(unnamed)",
  };
  struct xs_manifest *m;
  struct xs_hash128 stored_root;
  size_t metadata_len, stored, rest;
  const uint8_t *p;
  uint32_t encoding;

  snprintf (ps.context, sizeof ps.context, "manifest %s: ", ps.what);
  /* Versions 2 and 4 are the bytes of 1 and 3 followed by the MAC. */
  if (len >= MANIFEST_MAGIC_LEN + 4)
    ps.version = xs_get_le32 (ps.data + 8);
  if (ps.version == XS_MANIFEST_VERSION_FLAT_ENCRYPTED
      || ps.version == XS_MANIFEST_VERSION_ENCRYPTED) {
    if (len < MIN_MANIFEST_SIZE + XS_MANIFEST_MAC_LEN) {
      xs_error ("manifest %s: truncated (%zu bytes)", ps.what, len);
      return NULL;
    }
    ps.encrypted = true;
    len -= XS_MANIFEST_MAC_LEN;
    ps.len = len;
  }
  if (check_envelope (&ps) == -1)
    return NULL;
  metadata_len = xs_get_le32 (ps.data + 12);
  if (metadata_len > MAX_METADATA_LEN
      || metadata_len > len - MIN_MANIFEST_SIZE) {
    xs_error ("manifest %s: metadata length %zu is impossible here",
              ps.what, metadata_len);
    return NULL;
  }
  m = parse_metadata (&ps, metadata_len);
  if (m == NULL)
    return NULL;

  p = ps.data + PREFIX_SIZE + metadata_len;
  encoding = xs_get_le32 (p);
  rest = len - MIN_MANIFEST_SIZE - metadata_len;
  if (xs_get_le64 (p + 4) != rest) {
    xs_error ("manifest %s: entries length %" PRIu64 " does not match the "
              "%zu bytes present", ps.what, xs_get_le64 (p + 4), rest);
    goto fail;
  }
  stored = rest;
  p += ENTRIES_HEADER_SIZE;
  memcpy (stored_root.bytes, p + stored, sizeof stored_root.bytes);
  if (ps.version >= XS_MANIFEST_VERSION
      ? parse_tree (&ps, m, p, encoding, stored, &stored_root) == -1
      : parse_flat_entries (&ps, m, p, encoding, stored, &stored_root) == -1)
    goto fail;
  if (ps.encrypted)
    xs_manifest_set_mac (m, ps.data + len);
  return m;

 fail:
  xs_manifest_free (m);
  return NULL;
}

/* The bytes a MAC covers: a label, then the id, ROOT and key fields. */
static char *
mac_input (const struct xs_manifest *m, bool flat,
           const struct xs_hash128 *root,
           size_t *len)
{
  /* A tree manifest's root means something else than a flat one's, so
   * the label tells them apart.
   */
  const char *label = flat ? "xsnap manifest 2" : "xsnap manifest 4";
  size_t label_size = strlen (label) + 1;
  const char *fields[] = { m->snapshot_id, m->key_id, m->key_account,
                           m->data_key };
  size_t total = label_size + sizeof root->bytes, i;
  char *buf, *p;

  for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
    total += strlen (fields[i]) + 1;
  buf = malloc (total);
  if (buf == NULL) {
    xs_error ("cannot authenticate manifest %s: %m", m->snapshot_id);
    return NULL;
  }
  memcpy (buf, label, label_size);
  p = buf + label_size;
  memcpy (p, root->bytes, sizeof root->bytes);
  p += sizeof root->bytes;
  for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    size_t n = strlen (fields[i]) + 1;

    memcpy (p, fields[i], n);
    p += n;
  }
  *len = total;
  return buf;
}

static int
compute_mac (const struct xs_manifest *m, bool flat,
             const struct xs_hash128 *root,
             const struct xs_data_key *dk,
             unsigned char mac[XS_MANIFEST_MAC_LEN])
{
  size_t len;
  char *input = mac_input (m, flat, root, &len);
  int r;

  if (input == NULL)
    return -1;
  r = xs_data_key_manifest_mac (dk, input, len, mac);
  free (input);
  return r;
}

int
xs_manifest_compute_mac (const struct xs_manifest *m,
                         const struct xs_data_key *dk,
                         unsigned char mac[XS_MANIFEST_MAC_LEN])
{
  struct xs_hash128 root;

  xs_manifest_tree_root (m, &root);
  return compute_mac (m, false, &root, dk, mac);
}

void
xs_manifest_set_mac (struct xs_manifest *m,
                     const unsigned char mac[XS_MANIFEST_MAC_LEN])
{
  memcpy (m->mac, mac, XS_MANIFEST_MAC_LEN);
  m->has_mac = true;
}

int
xs_manifest_authenticate (struct xs_manifest *m, struct xs_data_key *dk)
{
  unsigned char mac[XS_MANIFEST_MAC_LEN];

  if (!xs_manifest_is_encrypted (m) || !m->has_mac) {
    xs_error ("manifest %s: not an encrypted manifest", m->snapshot_id);
    xs_data_key_free (dk);
    return -1;
  }
  if (compute_mac (m, m->flat, &m->root, dk, mac) == -1) {
    xs_data_key_free (dk);
    return -1;
  }
  if (!xs_crypt_equal (mac, m->mac, sizeof mac)) {
    xs_error ("manifest %s: authentication failed (the manifest was "
              "tampered with)", m->snapshot_id);
    OPENSSL_cleanse (mac, sizeof mac);
    xs_data_key_free (dk);
    return -1;
  }
  xs_data_key_free (m->dk);
  m->dk = dk;
  return 0;
}

/* ----- Comparing ----- */

int
xs_manifest_diff (struct xs_manifest *a, struct xs_manifest *b,
                  int (*fn) (uint64_t first, uint64_t count, void *opaque),
                  void *opaque)
{
  if (a->size != b->size || a->block_size != b->block_size
      || a->nblocks != b->nblocks) {
    xs_error ("cannot compare snapshots '%s' and '%s': different geometry "
              "(%" PRIu64 " bytes in %" PRIu32 "-byte blocks, "
              "%" PRIu64 " bytes in %" PRIu32 "-byte blocks)",
              a->snapshot_id, b->snapshot_id, a->size, a->block_size,
              b->size, b->block_size);
    return -1;
  }
  return xs_maptree_diff (a->map, b->map, fn, opaque);
}

/* ----- The block map ----- */

void
xs_manifest_tree_root (const struct xs_manifest *m, struct xs_hash128 *root)
{
  compute_tree_root (m->size, m->block_size, &m->top, root);
}

/* Hashing a map flat: runs of zero entries fed from one page of zeros. */
struct flat_hash {
  struct xs_hash_stream *stream;
  uint64_t next;                /* the next block to hash */
};

static void
hash_zero_entries (struct xs_hash_stream *stream, uint64_t count)
{
  static const struct xs_hash128 zeros[256];

  while (count > 0) {
    uint64_t n = count < 256 ? count : 256;

    xs_hash_stream_update (stream, zeros, n * sizeof zeros[0]);
    count -= n;
  }
}

static int
hash_flat_entry (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  struct flat_hash *h = opaque;

  hash_zero_entries (h->stream, block - h->next);
  xs_hash_stream_update (h->stream, id->bytes, sizeof id->bytes);
  h->next = block + 1;
  return 0;
}

int
xs_manifest_flat_root (struct xs_manifest *m, struct xs_hash128 *root)
{
  struct flat_hash h = { .stream = xs_hash_stream_new () };
  uint8_t geometry[12];
  int r;

  if (m->flat) {
    *root = m->root;
    xs_hash_stream_free (h.stream);
    return 0;
  }
  if (h.stream == NULL) {
    xs_error ("cannot hash manifest %s: %m", m->snapshot_id);
    return -1;
  }
  xs_put_le64 (geometry, m->size);
  xs_put_le32 (geometry + 8, m->block_size);
  xs_hash_stream_update (h.stream, geometry, sizeof geometry);
  r = xs_maptree_for_each (m->map, 0, m->nblocks, hash_flat_entry, &h);
  if (r == 0) {
    hash_zero_entries (h.stream, m->nblocks - h.next);
    xs_hash_stream_digest128 (h.stream, root);
  }
  xs_hash_stream_free (h.stream);
  return r == 0 ? 0 : -1;
}

void
xs_manifest_attach (struct xs_manifest *m, struct xs_repo *repo)
{
  if (m->repo && repo && !xs_repo_same_namespace (m->repo, repo)) {
    /* The first home of its pages stays their source. */
    if (m->source_repo == NULL) {
      m->source_repo = m->repo;
      xs_maptree_set_source (m->map, m->source_repo);
    }
    else
      xs_repo_close (m->repo);
  }
  else
    xs_repo_close (m->repo);
  m->repo = repo;
  xs_maptree_set_repo (m->map, repo);
}

int
xs_manifest_get_block (struct xs_manifest *m, uint64_t block,
                       struct xs_hash128 *id)
{
  return xs_maptree_get (m->map, block, id);
}

int
xs_manifest_set_block (struct xs_manifest *m, uint64_t block,
                       const struct xs_hash128 *id)
{
  return xs_maptree_set (m->map, block, id);
}

int
xs_manifest_for_each_block (struct xs_manifest *m, uint64_t first,
                            uint64_t count,
                            int (*fn) (uint64_t block,
                                       const struct xs_hash128 *id,
                                       void *opaque),
                            void *opaque)
{
  return xs_maptree_for_each (m->map, first, count, fn, opaque);
}

int
xs_manifest_walk (struct xs_manifest *m, const struct xs_manifest_visitor *v)
{
  return xs_maptree_walk (m->map, v->page, v->block, v->opaque);
}
