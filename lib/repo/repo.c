/* xsnap: the chunk and manifest repository of one account namespace (see
 * repo.h).
 *
 * This layer owns the key layout, so nothing else builds repository keys,
 * and it verifies every chunk it hands out as data.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "repo/backend.h"
#include "repo/chunk.h"
#include "base/error.h"
#include "base/hash.h"
#include "repo/repo.h"

#define CHUNKS_FOLDER "chunks"
#define MANIFESTS_FOLDER "manifests"
#define PAGES_FOLDER "pages"
#define OWNER_KEY "xsnap/owner"
#define OWNER_FORMAT "xsnap-repository-owner"
#define OWNER_VERSION 1
#define OWNER_SIZE_MAX 4096

/* <account>/chunks/xx/<32 hex> */
#define CHUNK_KEY_MAX (XS_REPO_NAME_MAX + sizeof CHUNKS_FOLDER + 4 \
                       + XS_HASH128_HEX_LEN + 1)
/* <account>/pages/xx/<32 hex> */
#define PAGE_KEY_MAX (XS_REPO_NAME_MAX + sizeof PAGES_FOLDER + 4 \
                      + XS_HASH128_HEX_LEN + 1)
/* <account>/manifests/<snapshot id> */
#define MANIFEST_KEY_MAX (2 * XS_REPO_NAME_MAX + sizeof MANIFESTS_FOLDER + 3)

struct xs_repo {
  struct xs_backend *backend;
  char *account;
};

static bool
name_char_is_valid (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
    || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool
xs_repo_name_is_valid (const char *what, const char *name)
{
  size_t len = strlen (name), i;

  if (len == 0 || len > XS_REPO_NAME_MAX) {
    xs_error ("invalid %s '%.140s': must be 1 to %d characters",
              what, name, XS_REPO_NAME_MAX);
    return false;
  }
  if (name[0] == '.') {
    xs_error ("invalid %s '%s': must not start with '.'", what, name);
    return false;
  }
  for (i = 0; i < len; i++)
    if (!name_char_is_valid (name[i])) {
      xs_error ("invalid %s '%s': only letters, digits and . _ - allowed",
                what, name);
      return false;
    }
  return true;
}

struct xs_repo *
xs_repo_open (struct xs_backend *backend, const char *account)
{
  struct xs_repo *repo;

  if (!xs_repo_name_is_valid ("account", account))
    return NULL;
  repo = malloc (sizeof *repo);
  if (repo == NULL || (repo->account = strdup (account)) == NULL) {
    xs_error ("cannot allocate repository: %m");
    free (repo);
    return NULL;
  }
  repo->backend = backend;
  return repo;
}

struct xs_repo *
xs_repo_dup (const struct xs_repo *repo)
{
  return xs_repo_open (repo->backend, repo->account);
}

void
xs_repo_close (struct xs_repo *repo)
{
  if (repo == NULL)
    return;
  free (repo->account);
  free (repo);
}

bool
xs_repo_same_namespace (const struct xs_repo *a, const struct xs_repo *b)
{
  return a->backend == b->backend && strcmp (a->account, b->account) == 0;
}

const char *
xs_repo_account (const struct xs_repo *repo)
{
  return repo->account;
}

/* <account>/<folder>/xx/<32 hex>: a content-addressed object. */
static void
object_key (const struct xs_repo *repo, const char *folder,
            const struct xs_hash128 *id, char *key, size_t key_size)
{
  char hex[XS_HASH128_HEX_LEN + 1];

  xs_hash128_to_hex (id, hex);
  snprintf (key, key_size, "%s/%s/%.2s/%s", repo->account, folder, hex, hex);
}

static void
chunk_key (const struct xs_repo *repo, const struct xs_hash128 *id,
           char key[CHUNK_KEY_MAX])
{
  object_key (repo, CHUNKS_FOLDER, id, key, CHUNK_KEY_MAX);
}

static void
page_key (const struct xs_repo *repo, const struct xs_hash128 *id,
          char key[PAGE_KEY_MAX])
{
  object_key (repo, PAGES_FOLDER, id, key, PAGE_KEY_MAX);
}

static int
manifest_key (const struct xs_repo *repo, const char *snapshot_id,
              char key[MANIFEST_KEY_MAX])
{
  if (!xs_repo_name_is_valid ("snapshot id", snapshot_id))
    return -1;
  snprintf (key, MANIFEST_KEY_MAX, "%s/" MANIFESTS_FOLDER "/%s",
            repo->account, snapshot_id);
  return 0;
}

int
xs_repo_put_chunk (struct xs_repo *repo, const struct xs_hash128 *id,
                   const void *stored, size_t len, bool durable)
{
  char key[CHUNK_KEY_MAX];

  chunk_key (repo, id, key);
  return xs_backend_put_if_absent (repo->backend, key, stored, len, durable);
}

int
xs_repo_replace_chunk (struct xs_repo *repo, const struct xs_hash128 *id,
                       const void *stored, size_t len)
{
  char key[CHUNK_KEY_MAX];

  chunk_key (repo, id, key);
  return xs_backend_put (repo->backend, key, stored, len, true);
}

bool
xs_repo_is_remote (const struct xs_repo *repo)
{
  return xs_backend_is_remote (repo->backend);
}

int
xs_repo_has_chunk (struct xs_repo *repo, const struct xs_hash128 *id)
{
  char key[CHUNK_KEY_MAX];

  chunk_key (repo, id, key);
  return xs_backend_exists (repo->backend, key);
}

int
xs_repo_get_chunk_raw (struct xs_repo *repo, const struct xs_hash128 *id,
                       void **stored, size_t *len)
{
  char key[CHUNK_KEY_MAX];

  chunk_key (repo, id, key);
  return xs_backend_get (repo->backend, key, stored, len);
}

ssize_t
xs_repo_read_chunk (struct xs_repo *repo, struct xs_chunk_codec *codec,
                    const struct xs_hash128 *id, void *plain,
                    size_t plain_cap)
{
  void *stored;
  size_t len;
  ssize_t r;

  r = xs_repo_get_chunk_raw (repo, id, &stored, &len);
  if (r == 1) {
    char hex[XS_HASH128_HEX_LEN + 1];

    xs_hash128_to_hex (id, hex);
    xs_error ("chunk %s: missing from the repository of account '%s' "
              "at %s", hex, repo->account, xs_backend_url (repo->backend));
    return -1;
  }
  if (r == -1)
    return -1;
  r = xs_chunk_decode (codec, stored, len, id, plain, plain_cap);
  free (stored);
  return r;
}

void
xs_repo_scratch_release (struct xs_repo_scratch *scratch)
{
  free (scratch->data);
  scratch->data = NULL;
  scratch->cap = 0;
}

/* Make room for len bytes in scratch.  0, or -1 with an error. */
static int
scratch_reserve (struct xs_repo_scratch *scratch, size_t len)
{
  void *grown;

  if (len <= scratch->cap)
    return 0;
  grown = realloc (scratch->data, len);
  if (grown == NULL) {
    xs_error ("cannot allocate %zu bytes for a chunk: %m", len);
    return -1;
  }
  scratch->data = grown;
  scratch->cap = len;
  return 0;
}

/* For xs_repo_get_chunk_into: the whole object into scratch. */
struct whole_placement {
  struct xs_repo_scratch *scratch;
  size_t size;
};

static int
place_whole (size_t size, struct xs_backend_place *where, void *opaque)
{
  struct whole_placement *p = opaque;

  if (scratch_reserve (p->scratch, size > 0 ? size : 1) == -1)
    return -1;
  where->iov[0].iov_base = p->scratch->data;
  where->iov[0].iov_len = size;
  where->count = 1;
  p->size = size;
  return 0;
}

int
xs_repo_get_chunk_into (struct xs_repo *repo, const struct xs_hash128 *id,
                        struct xs_repo_scratch *scratch, size_t *len)
{
  struct whole_placement p = { .scratch = scratch };
  char key[CHUNK_KEY_MAX];
  int r;

  chunk_key (repo, id, key);
  r = xs_backend_get_placed (repo->backend, key, place_whole, &p);
  if (r == 0)
    *len = p.size;
  return r;
}

/* Where a chunk read by xs_repo_fetch_chunk goes. */
struct chunk_placement {
  uint8_t header[XS_CHUNK_HEADER_SIZE];
  void *plain;
  size_t plain_len;
  struct xs_repo_scratch *scratch;
  bool in_place;                /* header in header, payload in plain */
  size_t size;                  /* of the stored chunk */
};

/* A chunk of exactly the size of a raw one goes to header and plain;
 * anything else, whole, to scratch.
 */
static int
place_chunk (size_t size, struct xs_backend_place *where, void *opaque)
{
  struct chunk_placement *p = opaque;

  p->size = size;
  p->in_place = size == XS_CHUNK_HEADER_SIZE + p->plain_len;
  if (p->in_place) {
    where->iov[0].iov_base = p->header;
    where->iov[0].iov_len = XS_CHUNK_HEADER_SIZE;
    where->iov[1].iov_base = p->plain;
    where->iov[1].iov_len = p->plain_len;
    where->count = 2;
    return 0;
  }
  if (scratch_reserve (p->scratch, size > 0 ? size : 1) == -1)
    return -1;
  where->iov[0].iov_base = p->scratch->data;
  where->iov[0].iov_len = size;
  where->count = 1;
  return 0;
}

/* Decode a chunk placed by place_chunk into *LEN bytes of plaintext:
 * 0; 1 if the chunk is bad (REASON set, errno = EIO, nothing reported);
 * -1 if there was no memory to decode it (reported).
 */
static int
decode_placed (struct xs_chunk_codec *codec, struct chunk_placement *p,
               const struct xs_hash128 *id,
               char reason[XS_CHUNK_REASON_MAX], ssize_t *len)
{
  const void *payload = p->plain;

  if (!p->in_place)
    *len = xs_chunk_decode_quiet (codec, p->scratch->data, p->size, id,
                                  p->plain, p->plain_len, reason);
  else if (xs_chunk_header_version (p->header) != XS_CHUNK_VERSION) {
    /* Not laid out as a version 1 chunk (an encrypted one, whose header
     * is longer): put it back together.
     */
    if (scratch_reserve (p->scratch, p->size) == -1)
      return -1;
    memcpy (p->scratch->data, p->header, XS_CHUNK_HEADER_SIZE);
    memcpy ((char *) p->scratch->data + XS_CHUNK_HEADER_SIZE, p->plain,
            p->plain_len);
    *len = xs_chunk_decode_quiet (codec, p->scratch->data, p->size, id,
                                  p->plain, p->plain_len, reason);
  }
  else {
    if (!xs_chunk_header_says_raw (p->header)) {
      /* A compressed payload as long as the plaintext (no encoder writes
       * one): move it out of the way of its output.
       */
      if (scratch_reserve (p->scratch, p->plain_len) == -1)
        return -1;
      memcpy (p->scratch->data, p->plain, p->plain_len);
      payload = p->scratch->data;
    }
    *len = xs_chunk_decode_parts_quiet (codec, p->header, payload,
                                        p->plain_len, id, p->plain,
                                        p->plain_len, reason);
  }
  return *len == -1 ? 1 : 0;
}

/* Record why a chunk is bad; returns 1 with errno = EIO. */
static int
chunk_is_bad (char reason[XS_CHUNK_REASON_MAX], const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static int
chunk_is_bad (char reason[XS_CHUNK_REASON_MAX], const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  vsnprintf (reason, XS_CHUNK_REASON_MAX, fmt, args);
  va_end (args);
  errno = EIO;
  return 1;
}

int
xs_repo_fetch_chunk (struct xs_repo *repo, struct xs_chunk_codec *codec,
                     const struct xs_hash128 *id, void *plain,
                     size_t plain_len, struct xs_repo_scratch *scratch,
                     char reason[XS_CHUNK_REASON_MAX])
{
  struct chunk_placement p = {
    .plain = plain, .plain_len = plain_len, .scratch = scratch,
  };
  char key[CHUNK_KEY_MAX];
  ssize_t n;
  int r;

  chunk_key (repo, id, key);
  r = xs_backend_get_placed (repo->backend, key, place_chunk, &p);
  if (r == 1)
    return chunk_is_bad (reason, "missing");
  if (r == -1)
    return -1;
  r = decode_placed (codec, &p, id, reason, &n);
  /* Do not keep a buffer grown for an oversized (so bad) object. */
  if (scratch->cap > XS_CHUNK_HEADER_MAX + XS_CHUNK_MAX_PLAIN) {
    int saved_errno = errno;

    xs_repo_scratch_release (scratch);
    errno = saved_errno;
  }
  if (r != 0)
    return r;                   /* 1: reason set, errno = EIO */
  if ((size_t) n != plain_len)
    return chunk_is_bad (reason, "plaintext of %zd bytes, the block has %zu",
                         n, plain_len);
  return 0;
}

int
xs_repo_delete_chunk (struct xs_repo *repo, const struct xs_hash128 *id)
{
  char key[CHUNK_KEY_MAX];

  chunk_key (repo, id, key);
  return xs_backend_delete (repo->backend, key);
}

static bool
is_lower_hex (const char *s, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

/* "xx/<32 hex>" where xx are the first two digits. */
static bool
parse_chunk_path (const char *path, struct xs_hash128 *id)
{
  const char *hex = path + 3;

  if (strlen (path) != 3 + XS_HASH128_HEX_LEN || path[2] != '/'
      || !is_lower_hex (hex, XS_HASH128_HEX_LEN)
      || memcmp (path, hex, 2) != 0)
    return false;
  return xs_hash128_from_hex (hex, id) == 0;
}

/* The part of key after "<account>/<folder>/", or NULL if key is not
 * under that folder.
 */
static const char *
after_folder (const char *account, const char *folder, const char *key)
{
  size_t account_len = strlen (account), folder_len = strlen (folder);

  if (strncmp (key, account, account_len) != 0 || key[account_len] != '/')
    return NULL;
  key += account_len + 1;
  if (strncmp (key, folder, folder_len) != 0 || key[folder_len] != '/')
    return NULL;
  return key + folder_len + 1;
}

/* A snapshot id: one component, as xs_repo_name_is_valid says. */
static bool
is_snapshot_id (const char *name)
{
  size_t len = strnlen (name, XS_REPO_NAME_MAX + 1), i;

  if (len == 0 || len > XS_REPO_NAME_MAX || name[0] == '.')
    return false;
  for (i = 0; i < len; i++)
    if (!name_char_is_valid (name[i]))
      return false;
  return true;
}

enum xs_repo_key_kind
xs_repo_parse_key (const char *account, const char *key,
                   struct xs_hash128 *chunk_id, const char **snapshot_id)
{
  const char *rest;

  if ((rest = after_folder (account, CHUNKS_FOLDER, key)) != NULL)
    return parse_chunk_path (rest, chunk_id) ? XS_REPO_KEY_CHUNK
      : XS_REPO_KEY_OTHER;
  if ((rest = after_folder (account, PAGES_FOLDER, key)) != NULL)
    return parse_chunk_path (rest, chunk_id) ? XS_REPO_KEY_PAGE
      : XS_REPO_KEY_OTHER;
  if ((rest = after_folder (account, MANIFESTS_FOLDER, key)) != NULL
      && is_snapshot_id (rest)) {
    *snapshot_id = rest;
    return XS_REPO_KEY_MANIFEST;
  }
  return XS_REPO_KEY_OTHER;
}

struct object_listing {
  const char *account;
  enum xs_repo_key_kind kind;
  int (*fn) (const struct xs_hash128 *id, void *opaque);
  void *opaque;
};

static int
list_one_object (const char *key, void *opaque)
{
  struct object_listing *listing = opaque;
  struct xs_hash128 id;
  const char *ignored;

  if (xs_repo_parse_key (listing->account, key, &id, &ignored)
      != listing->kind) {
    xs_debug ("ignoring %.200s: not a %s", key,
              listing->kind == XS_REPO_KEY_PAGE ? "map page" : "chunk");
    return 0;
  }
  return listing->fn (&id, listing->opaque);
}

static int
list_objects (struct xs_repo *repo, const char *folder,
              enum xs_repo_key_kind kind,
              int (*fn) (const struct xs_hash128 *id, void *opaque),
              void *opaque)
{
  char prefix[XS_REPO_NAME_MAX + sizeof CHUNKS_FOLDER + sizeof PAGES_FOLDER
              + 2];
  struct object_listing listing = {
    .account = repo->account, .kind = kind, .fn = fn, .opaque = opaque,
  };

  snprintf (prefix, sizeof prefix, "%s/%s/", repo->account, folder);
  return xs_backend_list (repo->backend, prefix, list_one_object, &listing);
}

int
xs_repo_list_chunks (struct xs_repo *repo,
                     int (*fn) (const struct xs_hash128 *id, void *opaque),
                     void *opaque)
{
  return list_objects (repo, CHUNKS_FOLDER, XS_REPO_KEY_CHUNK, fn, opaque);
}

/* Map pages (see repo.h). */

int
xs_repo_put_page (struct xs_repo *repo, const struct xs_hash128 *id,
                  const void *data, size_t len, bool durable)
{
  char key[PAGE_KEY_MAX];

  page_key (repo, id, key);
  return xs_backend_put_if_absent (repo->backend, key, data, len, durable);
}

int
xs_repo_get_page (struct xs_repo *repo, const struct xs_hash128 *id,
                  void **data, size_t *len)
{
  char key[PAGE_KEY_MAX];

  page_key (repo, id, key);
  return xs_backend_get (repo->backend, key, data, len);
}

int
xs_repo_has_page (struct xs_repo *repo, const struct xs_hash128 *id)
{
  char key[PAGE_KEY_MAX];

  page_key (repo, id, key);
  return xs_backend_exists (repo->backend, key);
}

int
xs_repo_replace_page (struct xs_repo *repo, const struct xs_hash128 *id,
                      const void *data, size_t len)
{
  char key[PAGE_KEY_MAX];

  page_key (repo, id, key);
  return xs_backend_put (repo->backend, key, data, len, true);
}

int
xs_repo_delete_page (struct xs_repo *repo, const struct xs_hash128 *id)
{
  char key[PAGE_KEY_MAX];

  page_key (repo, id, key);
  return xs_backend_delete (repo->backend, key);
}

int
xs_repo_list_pages (struct xs_repo *repo,
                    int (*fn) (const struct xs_hash128 *id, void *opaque),
                    void *opaque)
{
  return list_objects (repo, PAGES_FOLDER, XS_REPO_KEY_PAGE, fn, opaque);
}

/* A manifest with this id exists already: fine if it is the same. */
static int
compare_existing_manifest (struct xs_repo *repo, const char *snapshot_id,
                           const char *key, const void *data, size_t len)
{
  void *existing;
  size_t existing_len;
  bool same;
  int r = xs_backend_get (repo->backend, key, &existing, &existing_len);

  if (r == -1)
    return -1;
  if (r == 1) {
    xs_error ("manifest %s of account '%s' was deleted while being "
              "written", snapshot_id, repo->account);
    return -1;
  }
  same = existing_len == len && memcmp (existing, data, len) == 0;
  free (existing);
  if (!same) {
    xs_error ("manifest %s of account '%s' already exists with different "
              "content (manifests are immutable)",
              snapshot_id, repo->account);
    return -1;
  }
  return 0;
}

int
xs_repo_put_manifest (struct xs_repo *repo, const char *snapshot_id,
                      const void *data, size_t len)
{
  char key[MANIFEST_KEY_MAX];
  int r;

  if (manifest_key (repo, snapshot_id, key) == -1)
    return -1;
  r = xs_backend_put_if_absent (repo->backend, key, data, len, true);
  if (r == 0 && compare_existing_manifest (repo, snapshot_id, key,
                                           data, len) == -1)
    return -1;
  return r;
}

int
xs_repo_get_manifest (struct xs_repo *repo, const char *snapshot_id,
                      void **data, size_t *len)
{
  char key[MANIFEST_KEY_MAX];

  if (manifest_key (repo, snapshot_id, key) == -1)
    return -1;
  return xs_backend_get (repo->backend, key, data, len);
}

int
xs_repo_delete_manifest (struct xs_repo *repo, const char *snapshot_id)
{
  char key[MANIFEST_KEY_MAX];

  if (manifest_key (repo, snapshot_id, key) == -1)
    return -1;
  return xs_backend_delete (repo->backend, key);
}

struct manifest_listing {
  const char *account;
  int (*fn) (const char *snapshot_id, void *opaque);
  void *opaque;
};

static int
list_one_manifest (const char *key, void *opaque)
{
  struct manifest_listing *listing = opaque;
  struct xs_hash128 ignored;
  const char *snapshot_id;

  if (xs_repo_parse_key (listing->account, key, &ignored, &snapshot_id)
      != XS_REPO_KEY_MANIFEST) {
    xs_debug ("ignoring %.200s: not a manifest", key);
    return 0;
  }
  return listing->fn (snapshot_id, listing->opaque);
}

int
xs_repo_list_manifests (struct xs_repo *repo,
                        int (*fn) (const char *snapshot_id, void *opaque),
                        void *opaque)
{
  char prefix[XS_REPO_NAME_MAX + sizeof MANIFESTS_FOLDER + 2];
  struct manifest_listing listing = {
    .account = repo->account, .fn = fn, .opaque = opaque,
  };

  snprintf (prefix, sizeof prefix, "%s/" MANIFESTS_FOLDER "/",
            repo->account);
  return xs_backend_list (repo->backend, prefix, list_one_manifest,
                          &listing);
}

/* ----- The owner mark ----- */

/* Copy string member NAME of OBJ into out (size out_size).  0, or -1 with
 * an error.
 */
static int
owner_string (json_t *obj, const char *name, char *out, size_t out_size)
{
  json_t *value = json_object_get (obj, name);
  const char *text;
  size_t len;

  if (!json_is_string (value)) {
    xs_error ("repository owner mark: no string \"%s\"", name);
    return -1;
  }
  text = json_string_value (value);
  len = json_string_length (value);
  if (len >= out_size || strlen (text) != len) {
    xs_error ("repository owner mark: \"%s\" is too long or holds a NUL",
              name);
    return -1;
  }
  memcpy (out, text, len + 1);
  return 0;
}

static int
check_owner_fields (json_t *root, struct xs_repo_owner *owner)
{
  json_t *version = json_object_get (root, OWNER_FORMAT);

  if (!json_is_integer (version)) {
    xs_error ("repository owner mark: not an xsnap owner mark");
    return -1;
  }
  if (json_integer_value (version) != OWNER_VERSION) {
    xs_error ("repository owner mark: version %" JSON_INTEGER_FORMAT
              " (this xsnap knows version %d)",
              json_integer_value (version), OWNER_VERSION);
    return -1;
  }
  if (owner_string (root, "store", owner->store_id,
                    sizeof owner->store_id) == -1
      || owner_string (root, "region", owner->region,
                       sizeof owner->region) == -1
      || owner_string (root, "path", owner->path, sizeof owner->path) == -1)
    return -1;
  if (strlen (owner->store_id) != XS_STORE_ID_LEN
      || !is_lower_hex (owner->store_id, XS_STORE_ID_LEN)) {
    xs_error ("repository owner mark: the store id is not %d lower-case "
              "hex digits", XS_STORE_ID_LEN);
    return -1;
  }
  if (!is_snapshot_id (owner->region)) {
    xs_error ("repository owner mark: invalid region name");
    return -1;
  }
  return 0;
}

int
xs_repo_owner_parse (const void *data, size_t len,
                     struct xs_repo_owner *owner)
{
  json_error_t err;
  json_t *root;
  int r;

  memset (owner, 0, sizeof *owner);
  if (len > OWNER_SIZE_MAX) {
    xs_error ("repository owner mark: %zu bytes, more than %d", len,
              OWNER_SIZE_MAX);
    return -1;
  }
  root = json_loadb (data, len, JSON_REJECT_DUPLICATES, &err);
  if (root == NULL) {
    xs_error ("repository owner mark: not JSON: %s", err.text);
    return -1;
  }
  if (!json_is_object (root)) {
    xs_error ("repository owner mark: not a JSON object");
    json_decref (root);
    return -1;
  }
  r = check_owner_fields (root, owner);
  json_decref (root);
  return r;
}

int
xs_repo_read_owner (struct xs_backend *backend, struct xs_repo_owner *owner)
{
  void *data;
  size_t len;
  int r = xs_backend_get (backend, OWNER_KEY, &data, &len);

  if (r != 0)
    return r;
  r = xs_repo_owner_parse (data, len, owner);
  free (data);
  if (r == -1)
    xs_error ("the owner mark of %s (" OWNER_KEY ") is damaged: nothing "
              "there is written or collected until it is repaired",
              xs_backend_url (backend));
  return r;
}

int
xs_repo_write_owner (struct xs_backend *backend,
                     const struct xs_repo_owner *owner, bool replace)
{
  json_t *root;
  char *text;
  int r = -1;

  root = json_pack ("{s:i, s:s, s:s, s:s}", OWNER_FORMAT, OWNER_VERSION,
                    "store", owner->store_id, "region", owner->region,
                    "path", owner->path);
  text = root ? json_dumps (root, JSON_SORT_KEYS) : NULL;
  json_decref (root);
  if (text == NULL) {
    xs_error ("cannot write the owner mark of %s: out of memory",
              xs_backend_url (backend));
    return -1;
  }
  if (replace)
    r = xs_backend_put (backend, OWNER_KEY, text, strlen (text), true) == 0
      ? 1 : -1;
  else
    r = xs_backend_put_if_absent (backend, OWNER_KEY, text, strlen (text),
                                  true);
  free (text);
  return r;
}

int
xs_repo_remove_owner (struct xs_backend *backend)
{
  return xs_backend_delete (backend, OWNER_KEY);
}

static int
stop_at_data (const char *key, void *opaque)
{
  return strcmp (key, OWNER_KEY) != 0;
}

int
xs_repo_holds_data (struct xs_backend *backend)
{
  return xs_backend_list (backend, "", stop_at_data, NULL);
}

int
xs_repo_sync (struct xs_repo *repo)
{
  return xs_backend_sync (repo->backend);
}
