/* xsnap: key files (see keyfile.h and docs/FORMAT.md, "Key file"). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "catalog/audit.h"
#include "crypto/chunkcrypt.h"
#include "base/error.h"
#include "base/hash.h"
#include "access/keyfile.h"
#include "access/keyuse.h"
#include "base/names.h"

#define KEYFILE_FORMAT "xsnap-key"
#define KEYFILE_LABEL "xsnap-key-file-1"
#define MIN_PASSPHRASE 8
/* Bounds on what a file may ask of the importer: 128 * N * r * p bytes. */
#define MAX_SCRYPT_N (UINT64_C (1) << 17)
#define MAX_SCRYPT_R 8
#define MAX_SCRYPT_P 4
#define SCRYPT_MAXMEM (UINT64_C (160) << 20)

void
xs_keyfile_clear (struct xs_keyfile *kf)
{
  free (kf->name);
  free (kf->account);
  free (kf->wrapped);
  memset (kf, 0, sizeof *kf);
}

/* ----- Parsing ----- */

static int
string_field (json_t *obj, const char *key, char **out)
{
  json_t *value = json_object_get (obj, key);

  if (!json_is_string (value)
      || strlen (json_string_value (value)) != json_string_length (value)) {
    xs_error ("key file: field '%s' is %s", key,
              value ? "not a string" : "missing");
    return -1;
  }
  *out = strdup (json_string_value (value));
  if (*out == NULL) {
    xs_error ("cannot read the key file: %m");
    return -1;
  }
  return 0;
}

static int
integer_field (json_t *obj, const char *key, json_int_t min, json_int_t max,
               json_int_t *out)
{
  json_t *value = json_object_get (obj, key);

  if (!json_is_integer (value)) {
    xs_error ("key file: field '%s' is %s", key,
              value ? "not an integer" : "missing");
    return -1;
  }
  *out = json_integer_value (value);
  if (*out < min || *out > max) {
    xs_error ("key file: field '%s' is out of range (%lld)", key,
              (long long) *out);
    return -1;
  }
  return 0;
}

/* "key-" and 16 lower-case hex digits. */
static bool
is_key_id (const char *id)
{
  size_t i;

  if (strlen (id) != 20 || strncmp (id, "key-", 4) != 0)
    return false;
  for (i = 4; i < 20; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return false;
  return true;
}

static int
parse_kdf (json_t *obj, struct xs_keyfile *kf)
{
  json_t *kdf = json_object_get (obj, "kdf");
  json_int_t n, r, p;
  char *name = NULL, *salt = NULL;
  int ret = -1;

  if (!json_is_object (kdf)) {
    xs_error ("key file: field 'kdf' is %s",
              kdf ? "not an object" : "missing");
    return -1;
  }
  if (string_field (kdf, "name", &name) == -1)
    return -1;
  if (strcmp (name, "scrypt") != 0) {
    xs_error ("key file: unknown key derivation '%.40s'", name);
    goto out;
  }
  if (integer_field (kdf, "n", 2, (json_int_t) MAX_SCRYPT_N, &n) == -1
      || integer_field (kdf, "r", 1, MAX_SCRYPT_R, &r) == -1
      || integer_field (kdf, "p", 1, MAX_SCRYPT_P, &p) == -1
      || string_field (kdf, "salt", &salt) == -1)
    goto out;
  if ((n & (n - 1)) != 0) {
    xs_error ("key file: scrypt's n must be a power of two");
    goto out;
  }
  if (xs_hex_decode (salt, kf->salt, sizeof kf->salt) == -1) {
    xs_error ("key file: the salt is not %d hex bytes", XS_KEYFILE_SALT_LEN);
    goto out;
  }
  kf->scrypt_n = (uint64_t) n;
  kf->scrypt_r = (uint32_t) r;
  kf->scrypt_p = (uint32_t) p;
  ret = 0;
 out:
  free (name);
  free (salt);
  return ret;
}

static int
parse_fields (json_t *obj, struct xs_keyfile *kf)
{
  json_int_t version;
  char *format = NULL, *id = NULL;
  int r = -1;

  if (string_field (obj, "format", &format) == -1)
    return -1;
  if (strcmp (format, KEYFILE_FORMAT) != 0) {
    xs_error ("not an xsnap key file (format '%.40s')", format);
    goto out;
  }
  if (integer_field (obj, "version", 1, INT32_MAX, &version) == -1)
    goto out;
  if (version != XS_KEYFILE_VERSION) {
    xs_error ("key file version %lld is not one this xsnap reads (%d)",
              (long long) version, XS_KEYFILE_VERSION);
    goto out;
  }
  if (string_field (obj, "key_id", &id) == -1
      || string_field (obj, "name", &kf->name) == -1
      || string_field (obj, "account", &kf->account) == -1
      || string_field (obj, "wrapped", &kf->wrapped) == -1
      || parse_kdf (obj, kf) == -1)
    goto out;
  if (!is_key_id (id)) {
    xs_error ("key file: '%.40s' is not a key id", id);
    goto out;
  }
  memcpy (kf->key_id, id, strlen (id) + 1);
  if (xs_name_check ("key", kf->name) == -1
      || xs_name_check ("account", kf->account) == -1)
    goto out;
  r = 0;
 out:
  free (format);
  free (id);
  return r;
}

int
xs_keyfile_parse (const char *text, size_t len, struct xs_keyfile *out)
{
  json_error_t err;
  json_t *obj;
  int r;

  memset (out, 0, sizeof *out);
  if (len > XS_KEYFILE_MAX) {
    xs_error ("key file: %zu bytes is too large for a key file", len);
    return -1;
  }
  obj = json_loadb (text, len, JSON_REJECT_DUPLICATES, &err);
  if (obj == NULL) {
    xs_error ("key file: bad JSON: %s", err.text);
    return -1;
  }
  if (!json_is_object (obj)) {
    xs_error ("key file: not a JSON object");
    json_decref (obj);
    return -1;
  }
  r = parse_fields (obj, out);
  json_decref (obj);
  if (r == -1)
    xs_keyfile_clear (out);
  return r;
}

/* ----- Sealing ----- */

static int
derive (const struct xs_keyfile *kf, const char *passphrase, size_t pass_len,
        unsigned char key[XS_DATA_KEY_LEN])
{
  if (pass_len < MIN_PASSPHRASE) {
    xs_error ("the passphrase must be at least %d bytes", MIN_PASSPHRASE);
    return -1;
  }
  if (EVP_PBE_scrypt (passphrase, pass_len, kf->salt, sizeof kf->salt,
                      kf->scrypt_n, kf->scrypt_r, kf->scrypt_p, SCRYPT_MAXMEM,
                      key, XS_DATA_KEY_LEN) != 1) {
    xs_error ("cannot derive a key from the passphrase (scrypt failed)");
    return -1;
  }
  return 0;
}

char *
xs_keyfile_format (const struct xs_keyfile *kf)
{
  char salt[2 * XS_KEYFILE_SALT_LEN + 1];
  json_t *obj;
  char *text;

  xs_hex_encode (kf->salt, sizeof kf->salt, salt);
  obj = json_pack ("{s:s, s:i, s:s, s:s, s:s,"
                   " s:{s:s, s:I, s:i, s:i, s:s}, s:s}",
                   "format", KEYFILE_FORMAT, "version", XS_KEYFILE_VERSION,
                   "key_id", kf->key_id, "name", kf->name,
                   "account", kf->account,
                   "kdf", "name", "scrypt", "n", (json_int_t) kf->scrypt_n,
                   "r", (int) kf->scrypt_r, "p", (int) kf->scrypt_p,
                   "salt", salt,
                   "wrapped", kf->wrapped);
  text = obj ? json_dumps (obj, JSON_INDENT (2) | JSON_SORT_KEYS) : NULL;
  json_decref (obj);
  if (text == NULL)
    xs_error ("cannot write the key file: out of memory");
  return text;
}

int
xs_keyfile_export (struct xs_store *store, const char *actor,
                   const char *account, const char *spec,
                   const char *passphrase, size_t pass_len, char **text)
{
  unsigned char material[XS_DATA_KEY_LEN], seal[XS_DATA_KEY_LEN];
  struct xs_keyfile kf = { .scrypt_n = XS_KEYFILE_SCRYPT_N,
                           .scrypt_r = XS_KEYFILE_SCRYPT_R,
                           .scrypt_p = XS_KEYFILE_SCRYPT_P };
  struct xs_key key;
  char *arn = NULL;
  int r = -1;

  *text = NULL;
  if (xs_key_find (store, account, spec, false, &key) != 0)
    return -1;
  if (xs_keyuse_check (store, actor, "xsnap:ExportKey", account, key.id,
                           key.name) == -1
      || xs_key_check_enabled (&key) == -1)
    goto out;
  memcpy (kf.key_id, key.id, sizeof kf.key_id);
  kf.name = key.name;
  kf.account = key.account;
  if (xs_crypt_random (kf.salt, sizeof kf.salt) == -1
      || derive (&kf, passphrase, pass_len, seal) == -1)
    goto out;
  if (xs_key_material (store, &key, material) == 0
      && xs_key_wrap (seal, KEYFILE_LABEL, key.account, key.id, material,
                      &kf.wrapped) == 0
      && (*text = xs_keyfile_format (&kf)) != NULL
      && (arn = xs_resource_name ("", account, "key", key.id)) != NULL)
    r = xs_audit_record (store, actor, "xsnap:ExportKey", arn, account,
                         XS_AUDIT_ALLOWED, key.name) == 0 ? 0 : -1;
  free (kf.wrapped);
  free (arn);
 out:
  OPENSSL_cleanse (material, sizeof material);
  OPENSSL_cleanse (seal, sizeof seal);
  if (r == -1) {
    free (*text);
    *text = NULL;
  }
  xs_key_clear (&key);
  return r;
}

int
xs_keyfile_import (struct xs_store *store, const char *actor,
                   const char *account, const char *text, size_t len,
                   const char *passphrase, size_t pass_len, const char *name,
                   struct xs_key *out)
{
  unsigned char material[XS_DATA_KEY_LEN], seal[XS_DATA_KEY_LEN];
  struct xs_keyfile kf;
  struct xs_key existing;
  char what[160], detail[160];
  int r = -1;

  memset (out, 0, sizeof *out);
  if (xs_keyfile_parse (text, len, &kf) == -1)
    return -1;
  if (name == NULL)
    name = kf.name;
  if (xs_name_check ("key", name) == -1)
    goto out;
  if (xs_key_lookup_id (store, kf.key_id, &existing) == 0) {
    xs_error ("cannot import key %s: this store holds it already (key '%s' "
              "of account '%s')", kf.key_id, existing.name, existing.account);
    xs_key_clear (&existing);
    goto out;
  }
  if (xs_keyuse_check (store, actor, "xsnap:ImportKey", account,
                           kf.key_id, name) == -1
      || derive (&kf, passphrase, pass_len, seal) == -1)
    goto out;
  snprintf (what, sizeof what, "the key file of key '%s' (wrong passphrase, "
            "or the file was changed)", kf.name);
  if (xs_key_unwrap (seal, KEYFILE_LABEL, kf.account, kf.key_id, kf.wrapped,
                     material, what) == -1)
    goto out;
  snprintf (detail, sizeof detail, "%s, made by account '%s'", kf.key_id,
            kf.account);
  r = xs_key_insert (store, actor, account, kf.key_id, name, false, material,
                     "xsnap:ImportKey", detail, out);
  if (r == 1) {
    xs_error ("cannot import key %s as '%s': account '%s' has a key of that "
              "name (choose another with --name)", kf.key_id, name, account);
    r = -1;
  }
 out:
  OPENSSL_cleanse (material, sizeof material);
  OPENSSL_cleanse (seal, sizeof seal);
  xs_keyfile_clear (&kf);
  return r;
}
