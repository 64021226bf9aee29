/* xsnap: the master key, account keys and data keys (see keys.h).
 *
 * Every path that holds unwrapped key material wipes it before it
 * returns (OPENSSL_cleanse), and no message ever includes key bytes,
 * wrapped or not: messages name keys by name, id and account.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "catalog/account.h"
#include "catalog/audit.h"
#include "crypto/chunkcrypt.h"
#include "crypto/masterkey.h"
#include "base/error.h"
#include "base/hash.h"
#include "base/fileio.h"
#include "catalog/keys.h"
#include "base/names.h"

#define WRAP_VERSION 1
/* version, nonce, wrapped key, tag */
#define WRAPPED_LEN (1 + XS_CRYPT_NONCE_LEN + XS_DATA_KEY_LEN \
                     + XS_CRYPT_TAG_LEN)
#define ACCOUNT_KEY_LABEL "xsnap-account-key-1"
#define DATA_KEY_LABEL "xsnap-data-key-1"

#define KEY_COLUMNS "id, account, name, is_default, status, created_ns"

void
xs_key_clear (struct xs_key *key)
{
  free (key->account);
  free (key->name);
  free (key->granted_to);
  memset (key, 0, sizeof *key);
}

json_t *
xs_key_to_json (const struct xs_key *key)
{
  char created[32];
  time_t seconds = (time_t) (key->created_ns / 1000000000);
  struct tm tm;

  gmtime_r (&seconds, &tm);
  strftime (created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return json_pack ("{s:s, s:s, s:s, s:b, s:s, s:s, s:s}",
                    "id", key->id, "name", key->name,
                    "account", key->account, "default", key->is_default,
                    "status", key->enabled ? "enabled" : "disabled",
                    "created", created,
                    "granted_to", key->granted_to ? key->granted_to : "");
}

/* Wrapping. */

/* LABEL NUL ACCOUNT NUL KEY_ID: the associated data (malloc'd). */
static char *
associated_data (const char *label, const char *account, const char *key_id,
                 size_t *len)
{
  size_t a = strlen (label) + 1, b = strlen (account) + 1;
  size_t c = strlen (key_id);
  char *aad = malloc (a + b + c);

  if (aad == NULL) {
    xs_error ("cannot wrap a key: out of memory");
    return NULL;
  }
  memcpy (aad, label, a);
  memcpy (aad + a, account, b);
  memcpy (aad + a + b, key_id, c);
  *len = a + b + c;
  return aad;
}

int
xs_key_wrap (const unsigned char *kek, const char *label,
             const char *account, const char *key_id,
             const unsigned char *key, char **wrapped)
{
  unsigned char blob[WRAPPED_LEN];
  struct xs_crypt *crypt = xs_crypt_new ();
  size_t aad_len;
  char *aad = associated_data (label, account, key_id, &aad_len);
  int r = -1;

  *wrapped = NULL;
  if (crypt == NULL || aad == NULL)
    goto out;
  blob[0] = WRAP_VERSION;
  if (xs_crypt_random (blob + 1, XS_CRYPT_NONCE_LEN) == -1
      || xs_crypt_seal (crypt, kek, blob + 1, aad, aad_len, key,
                        XS_DATA_KEY_LEN, blob + 1 + XS_CRYPT_NONCE_LEN,
                        blob + 1 + XS_CRYPT_NONCE_LEN + XS_DATA_KEY_LEN)
         == -1)
    goto out;
  *wrapped = malloc (2 * WRAPPED_LEN + 1);
  if (*wrapped == NULL) {
    xs_error ("cannot wrap a key: out of memory");
    goto out;
  }
  xs_hex_encode (blob, WRAPPED_LEN, *wrapped);
  r = 0;
 out:
  OPENSSL_cleanse (blob, sizeof blob);
  xs_crypt_free (crypt);
  free (aad);
  return r;
}

int
xs_key_unwrap (const unsigned char *kek, const char *label,
               const char *account, const char *key_id, const char *wrapped,
               unsigned char *key, const char *what)
{
  unsigned char blob[WRAPPED_LEN];
  struct xs_crypt *crypt = NULL;
  size_t aad_len;
  char *aad = NULL;
  int r = -1, opened;

  if (xs_hex_decode (wrapped, blob, sizeof blob) == -1 || blob[0] != WRAP_VERSION) {
    xs_error ("cannot unwrap %s: the wrapped key is malformed", what);
    return -1;
  }
  crypt = xs_crypt_new ();
  aad = associated_data (label, account, key_id, &aad_len);
  if (crypt == NULL || aad == NULL)
    goto out;
  opened = xs_crypt_open (crypt, kek, blob + 1, aad, aad_len,
                          blob + 1 + XS_CRYPT_NONCE_LEN, XS_DATA_KEY_LEN,
                          key, blob + 1 + XS_CRYPT_NONCE_LEN
                          + XS_DATA_KEY_LEN);
  if (opened == 1)
    xs_error ("cannot unwrap %s: it is not authentic (tampered with, moved "
              "from another key, or wrapped under another master key)",
              what);
  if (opened != 0)
    OPENSSL_cleanse (key, XS_DATA_KEY_LEN);
  else
    r = 0;
 out:
  OPENSSL_cleanse (blob, sizeof blob);
  xs_crypt_free (crypt);
  free (aad);
  return r;
}

/* The master key. */

/* Whether the catalog holds no key at all: then nothing is wrapped under
 * a master key yet, and one may be made on first use (a store made
 * before keys existed).
 */
static bool
no_keys_yet (struct xs_store *store)
{
  int64_t n = 1;

  xs_catalog_lock (xs_store_catalog (store));
  xs_catalog_query_int (xs_store_catalog (store), "count keys", &n,
                        "SELECT count(*) FROM keys", "");
  xs_catalog_unlock (xs_store_catalog (store));
  return n == 0;
}

int
xs_master_key_read (struct xs_store *store, unsigned char *key)
{
  char *path = xs_master_key_path (xs_store_path (store));
  enum xs_master_key_read_result r;

  if (path == NULL)
    return -1;
  r = xs_master_key_read_file (path, key);
  /* A store made before keys existed has none: make it on first use. */
  if (r == XS_MASTER_KEY_MISSING && getenv (XS_MASTER_KEY_ENV) == NULL
      && no_keys_yet (store)) {
    if (xs_master_key_create (path) == -1)
      r = XS_MASTER_KEY_UNUSABLE;
    else
      r = xs_master_key_read_file (path, key);
  }
  if (r == XS_MASTER_KEY_MISSING) {
    errno = ENOENT;
    xs_error ("cannot read the master key %s: %m (" XS_MASTER_KEY_HINT ")",
              path);
  }
  free (path);
  return r == XS_MASTER_KEY_READ ? 0 : -1;
}

/* Account keys in the catalog. */

static int
row_to_key (sqlite3_stmt *stmt, struct xs_key *key)
{
  const char *text;

  memset (key, 0, sizeof *key);
  snprintf (key->id, sizeof key->id, "%s",
            (const char *) sqlite3_column_text (stmt, 0));
  key->account = strdup ((const char *) sqlite3_column_text (stmt, 1));
  key->name = strdup ((const char *) sqlite3_column_text (stmt, 2));
  key->is_default = sqlite3_column_int (stmt, 3) != 0;
  key->enabled = strcmp ((const char *) sqlite3_column_text (stmt, 4),
                         "enabled") == 0;
  key->created_ns = sqlite3_column_int64 (stmt, 5);
  text = sqlite3_column_count (stmt) > 6
    ? (const char *) sqlite3_column_text (stmt, 6) : NULL;
  if (text)
    key->granted_to = strdup (text);
  if (key->account == NULL || key->name == NULL
      || (text && key->granted_to == NULL)) {
    xs_error ("cannot read key %s: %m", key->id);
    xs_key_clear (key);
    return -1;
  }
  return 0;
}

/* One key row selected by SQL with one text parameter P1 and another P2:
 * 0, 1 if none, -1.  Takes the catalog lock.
 */
static int
select_key (struct xs_store *store, const char *sql, const char *p1,
            const char *p2, struct xs_key *out)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "look up a key", sql, p2 ? "ss" : "s",
                                  p1, p2);
  if (stmt) {
    switch (sqlite3_step (stmt)) {
    case SQLITE_ROW: r = row_to_key (stmt, out); break;
    case SQLITE_DONE: r = 1; break;
    default: xs_catalog_report (cat, "look up a key");
    }
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return r;
}

int
xs_key_lookup_id (struct xs_store *store, const char *id, struct xs_key *out)
{
  return select_key (store, "SELECT " KEY_COLUMNS " FROM keys WHERE id = ?",
                     id, NULL, out);
}

int
xs_key_find (struct xs_store *store, const char *account, const char *spec,
             bool quiet, struct xs_key *out)
{
  int r = select_key (store, "SELECT " KEY_COLUMNS " FROM keys"
                      " WHERE account = ?1 AND (name = ?2 OR id = ?2)",
                      account, spec, out);

  /* The default key is there as soon as it is named. */
  if (r == 1 && strcmp (spec, XS_DEFAULT_KEY_NAME) == 0)
    r = xs_key_default (store, account, out);
  if (r == 1 && !quiet)
    xs_error ("no key '%s' in account '%s'", spec, account);
  return r;
}

int
xs_key_check_enabled (const struct xs_key *key)
{
  if (key->enabled)
    return 0;
  xs_error ("key '%s' of account '%s' is disabled", key->name, key->account);
  return -1;
}

/* 1 if ACCOUNT holds KEY (its own, or granted to it), 0 if not, -1. */
static int
holds (struct xs_store *store, const struct xs_key *key, const char *account)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t count;
  int r;

  if (strcmp (key->account, account) == 0)
    return 1;
  xs_catalog_lock (cat);
  r = xs_catalog_query_int (cat, "look up a key grant", &count,
                            "SELECT count(*) FROM key_grants"
                            " WHERE key_id = ? AND grantee = ?", "ss",
                            key->id, account);
  xs_catalog_unlock (cat);
  return r == -1 ? -1 : count > 0;
}

int
xs_key_check_use (struct xs_store *store, const char *account,
                  const char *key_id, const char *what, struct xs_key *out)
{
  struct xs_key key;
  int r;

  r = xs_key_lookup_id (store, key_id, &key);
  if (r == 1)
    xs_error ("cannot read %s: it is encrypted under key %s, which this "
              "store does not hold (import it with 'xsnap key import')",
              what, key_id);
  if (r != 0)
    return -1;
  r = holds (store, &key, account);
  if (r == 0)
    xs_error ("cannot read %s: it is encrypted under key '%s' of account "
              "'%s', which is not granted to account '%s' (the owner can "
              "run: xsnap key grant %s --to %s)", what, key.name,
              key.account, account, key.name, account);
  if (r == 1 && !key.enabled) {
    xs_error ("cannot read %s: key '%s' of account '%s' is disabled", what,
              key.name, key.account);
    r = 0;
  }
  if (r == 1 && out)
    *out = key;
  else
    xs_key_clear (&key);
  return r == 1 ? 0 : -1;
}

int
xs_key_usable (struct xs_store *store, const char *account,
               const char *key_id)
{
  struct xs_key key;
  int r;

  r = xs_key_lookup_id (store, key_id, &key);
  if (r != 0)
    return r == 1 ? 0 : -1;
  r = key.enabled ? holds (store, &key, account) : 0;
  xs_key_clear (&key);
  return r;
}

/* The wrapped material of key ID (malloc'd), or NULL with an error. */
static char *
wrapped_of (struct xs_store *store, const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  char *wrapped = NULL;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "read a key",
                                  "SELECT wrapped FROM keys WHERE id = ?",
                                  "s", id);
  if (stmt) {
    if (sqlite3_step (stmt) == SQLITE_ROW)
      wrapped = strdup ((const char *) sqlite3_column_text (stmt, 0));
    if (wrapped == NULL)
      xs_error ("cannot read key %s", id);
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return wrapped;
}

/* Unwrap KEY's material into MATERIAL (XS_DATA_KEY_LEN bytes). */
static int
unwrap_account_key (struct xs_store *store, const struct xs_key *key,
                    unsigned char *material)
{
  unsigned char master[XS_DATA_KEY_LEN];
  char *wrapped = NULL, *what = NULL;
  int r = -1;

  if (xs_master_key_read (store, master) == -1)
    return -1;
  wrapped = wrapped_of (store, key->id);
  if (wrapped == NULL)
    goto out;
  if (asprintf (&what, "key '%s' of account '%s'", key->name,
                key->account) == -1) {
    what = NULL;
    xs_error ("cannot unwrap key %s: %m", key->id);
    goto out;
  }
  r = xs_key_unwrap (master, ACCOUNT_KEY_LABEL, key->account, key->id,
                     wrapped, material, what);
 out:
  OPENSSL_cleanse (master, sizeof master);
  free (wrapped);
  free (what);
  return r;
}

int
xs_key_material (struct xs_store *store, const struct xs_key *key,
                 unsigned char *material)
{
  return unwrap_account_key (store, key, material);
}

int
xs_key_insert (struct xs_store *store, const char *actor,
               const char *account, const char *id, const char *name,
               bool is_default, const unsigned char *material,
               const char *action, const char *detail, struct xs_key *out)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  unsigned char master[XS_DATA_KEY_LEN];
  char *wrapped = NULL, *arn = NULL;
  int64_t now = xs_wall_clock_ns ();
  int r = -1, changed;

  if (xs_master_key_read (store, master) == -1)
    return -1;
  if (xs_key_wrap (master, ACCOUNT_KEY_LABEL, account, id, material,
                   &wrapped) == -1
      || (arn = xs_resource_name ("", account, "key", id)) == NULL)
    goto out;
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == 0) {
    changed = (int) xs_catalog_run (cat, "record the new key",
                                    "INSERT INTO keys (id, account, name,"
                                    " wrapped, is_default, status, created_ns)"
                                    " VALUES (?, ?, ?, ?, ?, 'enabled', ?)"
                                    " ON CONFLICT DO NOTHING", "ssssii",
                                    id, account, name, wrapped,
                                    (int64_t) is_default, now);
    if (changed == 1
        && xs_audit_record_locked (store, actor, action, arn, account,
                                   XS_AUDIT_ALLOWED, detail) == 0
        && xs_catalog_commit (cat) == 0)
      r = 0;
    else {
      xs_catalog_rollback (cat);
      if (changed == 0)
        r = 1;
    }
  }
  xs_catalog_unlock (cat);
  if (r == 0)
    r = xs_key_lookup_id (store, id, out) == 0 ? 0 : -1;
 out:
  OPENSSL_cleanse (master, sizeof master);
  free (wrapped);
  free (arn);
  return r;
}

/* Insert a new key of ACCOUNT and audit it, in one transaction.  Returns
 * 0, 1 if the name is taken (reported unless IS_DEFAULT), or -1.
 */
static int
insert_key (struct xs_store *store, const char *actor, const char *account,
            const char *name, bool is_default, struct xs_key *out)
{
  unsigned char material[XS_DATA_KEY_LEN];
  char id[XS_ID_MAX];
  int r;

  if (xs_new_id ("key", id, sizeof id) == -1
      || xs_crypt_random (material, sizeof material) == -1)
    return -1;
  r = xs_key_insert (store, actor, account, id, name, is_default, material,
                     "xsnap:CreateKey",
                     is_default ? "default key, made on first use" : name,
                     out);
  OPENSSL_cleanse (material, sizeof material);
  if (r == 1 && !is_default)
    xs_error ("cannot create key '%s': account '%s' has a key of that name",
              name, account);
  return r;
}

int
xs_key_check_name (const char *name)
{
  if (xs_name_check ("key", name) == -1)
    return -1;
  if (strcmp (name, XS_DEFAULT_KEY_NAME) == 0) {
    xs_error ("cannot create key '%s': the name is reserved for the "
              "account's default key, made on first use", name);
    return -1;
  }
  return 0;
}

int
xs_key_create (struct xs_store *store, const char *actor,
               const char *account, const char *name, struct xs_key *out)
{
  memset (out, 0, sizeof *out);
  if (xs_key_check_name (name) == -1)
    return -1;
  return insert_key (store, actor, account, name, false, out) == 0 ? 0 : -1;
}

int
xs_key_default (struct xs_store *store, const char *account,
                struct xs_key *out)
{
  static const char sql[] = "SELECT " KEY_COLUMNS " FROM keys"
    " WHERE account = ? AND is_default = 1";
  int r = select_key (store, sql, account, NULL, out);

  if (r != 1)
    return r;
  /* None yet: make it.  A concurrent first use may win the race; then
   * take its key.
   */
  r = insert_key (store, account, account, XS_DEFAULT_KEY_NAME, true, out);
  if (r == 1)
    r = select_key (store, sql, account, NULL, out);
  if (r == 1)
    xs_error ("cannot make the default key of account '%s'", account);
  return r == 0 ? 0 : -1;
}

int
xs_key_disable (struct xs_store *store, const char *actor,
                const struct xs_key *key)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *arn = xs_resource_name ("", key->account, "key", key->id);
  int r = -1;

  if (arn == NULL)
    return -1;
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == 0) {
    if (xs_catalog_run (cat, "disable the key",
                        "UPDATE keys SET status = 'disabled' WHERE id = ?",
                        "s", key->id) == 1
        && xs_audit_record_locked (store, actor, "xsnap:DisableKey", arn,
                                   key->account, XS_AUDIT_ALLOWED,
                                   key->name) == 0
        && xs_catalog_commit (cat) == 0)
      r = 0;
    else
      xs_catalog_rollback (cat);
  }
  xs_catalog_unlock (cat);
  free (arn);
  return r;
}

int
xs_key_grant (struct xs_store *store, const char *actor,
              const struct xs_key *key, const char *grantee)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_account other;
  char *arn = NULL, *detail = NULL;
  int r = -1;

  if (strcmp (grantee, key->account) == 0) {
    xs_error ("cannot grant key '%s' to account '%s': it is that account's "
              "own key", key->name, grantee);
    return -1;
  }
  if (xs_account_find (store, grantee, true, &other) != 0) {
    xs_error ("cannot grant key '%s': no account '%s'", key->name, grantee);
    return -1;
  }
  xs_account_clear (&other);
  if ((arn = xs_resource_name ("", key->account, "key", key->id)) == NULL
      || asprintf (&detail, "%s to %s", key->name, grantee) == -1) {
    detail = NULL;
    xs_error ("cannot grant key '%s': %m", key->name);
    goto out;
  }
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == 0) {
    if (xs_catalog_run (cat, "record the grant",
                        "INSERT INTO key_grants (key_id, grantee, granted_by,"
                        " created_ns) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT DO NOTHING", "sssi",
                        key->id, grantee, actor, xs_wall_clock_ns ()) >= 0
        && xs_audit_record_locked (store, actor, "xsnap:GrantKey", arn,
                                   key->account, XS_AUDIT_ALLOWED,
                                   detail) == 0
        && xs_catalog_commit (cat) == 0)
      r = 0;
    else
      xs_catalog_rollback (cat);
  }
  xs_catalog_unlock (cat);
 out:
  free (arn);
  free (detail);
  return r;
}

int
xs_key_list (struct xs_store *store, const char *account,
             int (*fn) (const struct xs_key *key, void *opaque),
             void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  struct xs_key key;
  int r = -1, step;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "list keys",
                                  "SELECT * FROM (SELECT " KEY_COLUMNS ","
                                  " NULL AS granted_to FROM keys"
                                  " WHERE account = ?1"
                                  " UNION ALL"
                                  " SELECT k.id, k.account, k.name,"
                                  " k.is_default, k.status, k.created_ns,"
                                  " g.grantee FROM keys AS k"
                                  " JOIN key_grants AS g ON g.key_id = k.id"
                                  " WHERE g.grantee = ?1)"
                                  " ORDER BY granted_to IS NOT NULL,"
                                  " created_ns, id", "s",
                                  account);
  if (stmt == NULL)
    goto out;
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW) {
    if (row_to_key (stmt, &key) == -1)
      goto done;
    r = fn (&key, opaque);
    xs_key_clear (&key);
    if (r != 0)
      goto done;
    r = -1;
  }
  if (step == SQLITE_DONE)
    r = 0;
  else
    xs_catalog_report (cat, "list keys");
 done:
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

/* Data keys. */

int
xs_key_new_data_key (struct xs_store *store, const struct xs_key *key,
                     char **wrapped)
{
  unsigned char kek[XS_DATA_KEY_LEN], material[XS_DATA_KEY_LEN];
  int r = -1;

  *wrapped = NULL;
  if (xs_key_check_enabled (key) == -1
      || unwrap_account_key (store, key, kek) == -1)
    return -1;
  if (xs_crypt_random (material, sizeof material) == 0
      && xs_key_wrap (kek, DATA_KEY_LABEL, key->account, key->id, material,
                      wrapped) == 0)
    r = 0;
  OPENSSL_cleanse (kek, sizeof kek);
  OPENSSL_cleanse (material, sizeof material);
  return r;
}

struct xs_data_key *
xs_key_open_data_key (struct xs_store *store, const char *holder,
                      const char *key_account, const char *key_id,
                      const char *wrapped)
{
  unsigned char kek[XS_DATA_KEY_LEN], material[XS_DATA_KEY_LEN];
  struct xs_data_key *dk = NULL;
  struct xs_key key;
  char *what = NULL, data[160];

  snprintf (data, sizeof data, "data under key %s of account '%s'", key_id,
            key_account);
  if (xs_key_check_use (store, holder, key_id, data, &key) == -1)
    return NULL;
  if (unwrap_account_key (store, &key, kek) == -1)
    goto out;
  if (asprintf (&what, "a data key under key '%s' of account '%s'",
                key.name, key.account) == -1) {
    what = NULL;
    xs_error ("cannot unwrap a data key: %m");
  }
  else if (xs_key_unwrap (kek, DATA_KEY_LABEL, key_account, key.id, wrapped,
                          material, what) == 0) {
    dk = xs_data_key_derive (material);
    OPENSSL_cleanse (material, sizeof material);
  }
  OPENSSL_cleanse (kek, sizeof kek);
 out:
  free (what);
  xs_key_clear (&key);
  return dk;
}
