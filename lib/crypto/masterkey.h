/* xsnap: the master key file.
 *
 * The master key is 32 random bytes kept outside the catalog, as 64 hex
 * digits and a newline in a file of mode 0600: STORE/master.key, made by
 * 'xsnap init', or the file XSNAP_MASTER_KEY_FILE names (stores may share
 * one).  It wraps the accounts' keys (catalog/keys.h); whoever reads the
 * catalog without it learns no key.
 *
 * This module knows only the file: where it is, how it is made without
 * ever replacing one, and how it is read and judged.  Whether a missing
 * file may be made on first use is the catalog's question (keys.c).
 */
#ifndef XSNAP_MASTERKEY_H
#define XSNAP_MASTERKEY_H

#include "crypto/chunkcrypt.h"

#define XS_MASTER_KEY_ENV "XSNAP_MASTER_KEY_FILE"

/* What to do when it cannot be read, for messages. */
#define XS_MASTER_KEY_HINT "the store's keys are wrapped under it: restore " \
  "the file made by 'xsnap init', or point " XS_MASTER_KEY_ENV " at it"

/* The master key file of the store at STORE_PATH (malloc'd):
 * $XSNAP_MASTER_KEY_FILE if set, else STORE_PATH/master.key.  NULL on
 * error (reported).
 */
extern char *xs_master_key_path (const char *store_path);

/* Make a new master key at PATH unless a file is there already: written
 * whole and synced under a temporary name, then linked into place, so the
 * file never appears half-written and an existing key is never replaced.
 * 0, or -1 (reported).
 */
extern int xs_master_key_create (const char *path);

/* What reading the file found. */
enum xs_master_key_read_result {
  XS_MASTER_KEY_READ,           /* KEY holds it */
  XS_MASTER_KEY_MISSING,        /* no such file (not reported) */
  XS_MASTER_KEY_UNUSABLE,       /* there but unreadable, open to others or
                                   malformed (reported; errno says) */
};

/* Read the XS_DATA_KEY_LEN bytes of the master key at PATH into KEY. */
extern enum xs_master_key_read_result
xs_master_key_read_file (const char *path, unsigned char *key);

#endif /* XSNAP_MASTERKEY_H */
