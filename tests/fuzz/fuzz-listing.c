/* xsnap: libFuzzer target for what a repository's backend lists and
 * holds outside any manifest: listed keys and the owner mark.
 *
 * Keys come from the backend, and for S3 from the server, so
 * xs_repo_parse_key must survive any string (the input is copied into a
 * buffer of exactly its length plus the NUL a listing gives, so ASan sees
 * any read past it).  Beyond surviving:
 *   - a key parsed as a chunk or a map page is exactly the key that
 *     chunk or page has (folder, first two digits, 32 lower-case hex
 *     digits);
 *   - a key parsed as a manifest is exactly "ACCOUNT/manifests/" and a
 *     snapshot id that the repository accepts;
 *   - an owner mark either parses, with a 32-hex-digit store id and a
 *     valid region, and reports no error, or is refused with exactly one.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "repo/repo.h"

static int errors;

void
xs_error_sink (const char *message)
{
  (void) message;
  errors++;
}

#define ACCOUNT "alice"

static void
check_key (const char *key)
{
  struct xs_hash128 id;
  const char *snapshot_id = NULL;
  char hex[XS_HASH128_HEX_LEN + 1], want[256];
  enum xs_repo_key_kind kind = xs_repo_parse_key (ACCOUNT, key, &id,
                                                  &snapshot_id);

  switch (kind) {
  case XS_REPO_KEY_CHUNK:
  case XS_REPO_KEY_PAGE:
    xs_hash128_to_hex (&id, hex);
    snprintf (want, sizeof want, ACCOUNT "/%s/%.2s/%s",
              kind == XS_REPO_KEY_CHUNK ? "chunks" : "pages", hex, hex);
    if (strcmp (want, key) != 0)
      abort ();
    break;
  case XS_REPO_KEY_MANIFEST:
    if (snapshot_id < key || snapshot_id > key + strlen (key)
        || strncmp (key, ACCOUNT "/manifests/", 16) != 0
        || snapshot_id != key + 16)
      abort ();
    errors = 0;
    if (!xs_repo_name_is_valid ("snapshot id", snapshot_id) || errors != 0)
      abort ();
    break;
  case XS_REPO_KEY_OTHER:
    break;
  default:
    abort ();
  }
}

static void
check_owner (const uint8_t *data, size_t size)
{
  struct xs_repo_owner owner;
  int r;

  errors = 0;
  r = xs_repo_owner_parse (data, size, &owner);
  if (r == 0) {
    if (errors != 0 || strlen (owner.store_id) != XS_STORE_ID_LEN
        || !xs_repo_name_is_valid ("region", owner.region)
        || strnlen (owner.path, sizeof owner.path) == sizeof owner.path)
      abort ();
  }
  else if (r != -1 || errors != 1)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *key = malloc (size + 1);

  if (key == NULL)
    return 0;
  memcpy (key, data, size);
  key[size] = '\0';
  check_key (key);
  free (key);
  check_owner (data, size);
  return 0;
}
