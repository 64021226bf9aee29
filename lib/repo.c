/* xsnap: the chunk and manifest repository of one account namespace (see
 * repo.h).
 *
 * This layer owns the key layout, so nothing else builds repository keys,
 * and it verifies every chunk it hands out as data.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "chunk.h"
#include "error.h"
#include "hash.h"
#include "repo.h"

#define CHUNKS_FOLDER "chunks"
#define MANIFESTS_FOLDER "manifests"

/* <account>/chunks/xx/<32 hex> */
#define CHUNK_KEY_MAX (XS_REPO_NAME_MAX + sizeof CHUNKS_FOLDER + 4 \
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

void
xs_repo_close (struct xs_repo *repo)
{
  if (repo == NULL)
    return;
  free (repo->account);
  free (repo);
}

const char *
xs_repo_account (const struct xs_repo *repo)
{
  return repo->account;
}

static void
chunk_key (const struct xs_repo *repo, const struct xs_hash128 *id,
           char key[CHUNK_KEY_MAX])
{
  char hex[XS_HASH128_HEX_LEN + 1];

  xs_hash128_to_hex (id, hex);
  snprintf (key, CHUNK_KEY_MAX, "%s/" CHUNKS_FOLDER "/%.2s/%s",
            repo->account, hex, hex);
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

int
xs_repo_delete_chunk (struct xs_repo *repo, const struct xs_hash128 *id)
{
  char key[CHUNK_KEY_MAX];

  chunk_key (repo, id, key);
  return xs_backend_delete (repo->backend, key);
}

struct chunk_listing {
  size_t prefix_len;            /* of "<account>/chunks/" */
  int (*fn) (const struct xs_hash128 *id, void *opaque);
  void *opaque;
};

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

static int
list_one_chunk (const char *key, void *opaque)
{
  struct chunk_listing *listing = opaque;
  struct xs_hash128 id;

  if (!parse_chunk_path (key + listing->prefix_len, &id)) {
    xs_debug ("ignoring %s: not a chunk", key);
    return 0;
  }
  return listing->fn (&id, listing->opaque);
}

int
xs_repo_list_chunks (struct xs_repo *repo,
                     int (*fn) (const struct xs_hash128 *id, void *opaque),
                     void *opaque)
{
  char prefix[XS_REPO_NAME_MAX + sizeof CHUNKS_FOLDER + 2];
  struct chunk_listing listing = { .fn = fn, .opaque = opaque };

  snprintf (prefix, sizeof prefix, "%s/" CHUNKS_FOLDER "/", repo->account);
  listing.prefix_len = strlen (prefix);
  return xs_backend_list (repo->backend, prefix, list_one_chunk, &listing);
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
  size_t prefix_len;            /* of "<account>/manifests/" */
  int (*fn) (const char *snapshot_id, void *opaque);
  void *opaque;
};

static int
list_one_manifest (const char *key, void *opaque)
{
  struct manifest_listing *listing = opaque;
  const char *snapshot_id = key + listing->prefix_len;

  if (strchr (snapshot_id, '/') != NULL
      || strlen (snapshot_id) > XS_REPO_NAME_MAX) {
    xs_debug ("ignoring %s: not a manifest", key);
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
  struct manifest_listing listing = { .fn = fn, .opaque = opaque };

  snprintf (prefix, sizeof prefix, "%s/" MANIFESTS_FOLDER "/",
            repo->account);
  listing.prefix_len = strlen (prefix);
  return xs_backend_list (repo->backend, prefix, list_one_manifest,
                          &listing);
}

int
xs_repo_sync (struct xs_repo *repo)
{
  return xs_backend_sync (repo->backend);
}
