/* xsnap: keys — the store's master key, accounts' keys, volumes' data keys.
 *
 * Three levels (docs/ARCHITECTURE.md, "Keys and encryption"):
 *
 *   master key   32 random bytes in a file outside the catalog
 *                (STORE/master.key, made by init, mode 0600; or the file
 *                XSNAP_MASTER_KEY_FILE names).  Wraps account keys.
 *   account key  32 random bytes per key of an account (every account has
 *                a default key, made on first use, and may make its own).
 *                Kept in the catalog only wrapped by the master key, with
 *                its id and account as associated data, so a wrapped key
 *                copied into another row does not unwrap.  Wraps data keys.
 *   data key     32 random bytes per encrypted volume, kept wrapped by an
 *                account key in the volume's row and in every manifest of
 *                its snapshots.  chunkcrypt.h derives the working keys.
 *
 * Wrapping is AES-256-GCM (FORMAT.md, "Wrapped key").  Unwrapped key
 * material lives only in memory, only as long as needed, and is wiped.
 * A disabled key unwraps nothing: what it protects cannot be read or
 * copied until it is enabled again.
 */
#ifndef XSNAP_KEYS_H
#define XSNAP_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "crypto/chunkcrypt.h"
#include "catalog/store.h"
#include "catalog/volume.h"

#define XS_DEFAULT_KEY_NAME "default"

struct xs_key {
  char id[XS_ID_MAX];           /* "key-" and 16 hex digits */
  char *account;                /* the owner */
  char *name;
  bool is_default;
  bool enabled;
  int64_t created_ns;
  char *granted_to;             /* in lists of keys granted to an account:
                                   that account, else NULL */
};

extern void xs_key_clear (struct xs_key *key);
extern json_t *xs_key_to_json (const struct xs_key *key);

/* Wrapping, for keys.c and its tests.  LABEL says what is wrapped
 * ("xsnap-account-key-1", "xsnap-data-key-1"), and with ACCOUNT and
 * KEY_ID forms the associated data.  WRAP sets *WRAPPED to a malloc'd
 * hex string; UNWRAP fills KEY (XS_DATA_KEY_LEN bytes) and fails with
 * "cannot unwrap WHAT: ..." if the text is malformed or not authentic.
 */
extern int xs_key_wrap (const unsigned char *kek, const char *label,
                        const char *account, const char *key_id,
                        const unsigned char *key, char **wrapped);
extern int xs_key_unwrap (const unsigned char *kek, const char *label,
                          const char *account, const char *key_id,
                          const char *wrapped, unsigned char *key,
                          const char *what);

/* Read the master key (XS_DATA_KEY_LEN bytes) of STORE.  A missing or
 * unreadable file is an error saying which file and what to do.
 */
extern int xs_master_key_read (struct xs_store *store, unsigned char *key);

/* Account keys.  ACTOR is the account acting, named in the audit row;
 * who may create, disable or grant a key is decided above
 * (access/keyuse.h): these trust their caller.  ACCOUNT owns the key.  A
 * KEY spec is a key's name or id among the account's own keys; anything
 * else is "no key 'X' in account 'A'".
 */
extern int xs_key_create (struct xs_store *store, const char *actor,
                          const char *account, const char *name,
                          struct xs_key *out);
/* Is NAME valid for a new key (and not the default key's)?  0 or -1. */
extern int xs_key_check_name (const char *name);
/* ACCOUNT's default key, made now if it has none. */
extern int xs_key_default (struct xs_store *store, const char *account,
                           struct xs_key *out);
/* 0 found, 1 none (reported unless QUIET), -1 error. */
extern int xs_key_find (struct xs_store *store, const char *account,
                        const char *spec, bool quiet, struct xs_key *out);
extern int xs_key_lookup_id (struct xs_store *store, const char *id,
                             struct xs_key *out);
/* Disable KEY; grant it to GRANTEE, an existing account not its owner. */
extern int xs_key_disable (struct xs_store *store, const char *actor,
                           const struct xs_key *key);
extern int xs_key_grant (struct xs_store *store, const char *actor,
                         const struct xs_key *key, const char *grantee);
/* ACCOUNT's keys, then the keys granted to it (granted_to set), by
 * creation.  FN runs under the catalog lock and must not use it.
 */
extern int xs_key_list (struct xs_store *store, const char *account,
                        int (*fn) (const struct xs_key *key, void *opaque),
                        void *opaque);

/* "key 'NAME' of account 'ACCOUNT' is disabled" if KEY is, else 0. */
extern int xs_key_check_enabled (const struct xs_key *key);

/* May ACCOUNT use key KEY_ID to read WHAT ("snapshot db@s1")?  Yes if
 * the key is enabled and ACCOUNT owns it or was granted it (the
 * rule: a snapshot shared under a custom key is of use to the sharee only
 * once the key is shared too).  0, or -1 with a message saying which key
 * and what to do.  If OUT is not NULL it receives the key.
 */
extern int xs_key_check_use (struct xs_store *store, const char *account,
                             const char *key_id, const char *what,
                             struct xs_key *out);

/* A fresh data key wrapped by KEY (which must be enabled): *WRAPPED is
 * a malloc'd hex string.
 */
extern int xs_key_new_data_key (struct xs_store *store,
                                const struct xs_key *key, char **wrapped);
/* Unwrap WRAPPED, a data key wrapped by key KEY_ID of KEY_ACCOUNT (the
 * account that wrapped it, bound to it as associated data), for HOLDER,
 * and derive its working keys.  Refused if the key is not in this store,
 * is neither HOLDER's own nor granted to it (an imported key belongs to
 * the account that imported it), is disabled, or the wrapping is not
 * authentic.  NULL with an error.
 */
extern struct xs_data_key *xs_key_open_data_key (struct xs_store *store,
                                                 const char *holder,
                                                 const char *key_account,
                                                 const char *key_id,
                                                 const char *wrapped);

/* Whether ACCOUNT could open data keys under KEY_ID now (it is here,
 * enabled, ACCOUNT's or granted to it): 1 or 0, nothing reported; -1 on
 * error.
 */
extern int xs_key_usable (struct xs_store *store, const char *account,
                          const char *key_id);

/* For access/keyfile.c (export and import). */

/* KEY's material (XS_DATA_KEY_LEN bytes), unwrapped: the caller wipes it. */
extern int xs_key_material (struct xs_store *store, const struct xs_key *key,
                            unsigned char *material);
/* Record key ID of ACCOUNT named NAME with MATERIAL, wrapped under the
 * master key, audited as ACTION by ACTOR with DETAIL, in one transaction.
 * 0 (*OUT is the key), 1 if the id or the name is taken (nothing
 * reported), -1.
 */
extern int xs_key_insert (struct xs_store *store, const char *actor,
                          const char *account, const char *id,
                          const char *name, bool is_default,
                          const unsigned char *material, const char *action,
                          const char *detail, struct xs_key *out);

#endif /* XSNAP_KEYS_H */
