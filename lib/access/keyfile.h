/* xsnap: key files — an account key carried from one store to another.
 *
 * A raw replication stream keeps a snapshot encrypted under its sender's
 * key (stream.h); the receiving store reads it only once it holds that
 * key.  Stores share nothing, not even a master key, so the key travels
 * as a file of its own, sealed under a passphrase the two sides agree on:
 * `xsnap key export KEY` writes it, `xsnap key import FILE` makes the key
 * an account key of the importing account (same id, so the snapshots it
 * protects find it; the importer may then grant it like any of its own).
 *
 * The material is wrapped with AES-256-GCM (FORMAT.md, "Wrapped key")
 * under a key derived from the passphrase with scrypt and a random salt,
 * the key's id and original account as associated data.  The file is
 * JSON (FORMAT.md, "Key file (version 1)") and arrives from outside, so
 * its parser is strict, bounded and fuzzed (tests/fuzz/fuzz-keyfile.c).
 */
#ifndef XSNAP_KEYFILE_H
#define XSNAP_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "catalog/keys.h"
#include "catalog/store.h"

#define XS_KEYFILE_VERSION 1
#define XS_KEYFILE_MAX (16 * 1024)      /* bytes */
#define XS_KEYFILE_SALT_LEN 16
/* scrypt's cost: N, r, p.  32 MiB and ~0.1 s to derive. */
#define XS_KEYFILE_SCRYPT_N 32768
#define XS_KEYFILE_SCRYPT_R 8
#define XS_KEYFILE_SCRYPT_P 1

/* A parsed key file. */
struct xs_keyfile {
  char key_id[XS_ID_MAX];
  char *name;
  char *account;                /* the key's account where it was made */
  uint64_t scrypt_n;
  uint32_t scrypt_r, scrypt_p;
  unsigned char salt[XS_KEYFILE_SALT_LEN];
  char *wrapped;                /* hex, as xs_key_wrap makes it */
};

extern void xs_keyfile_clear (struct xs_keyfile *kf);

/* Parse and check TEXT (LEN bytes, not NUL-terminated): its format and
 * version, every field's type and form, scrypt costs within bounds (a
 * hostile file cannot make the importer spend more than 128 MiB or many
 * seconds).  0, or -1 with an error.
 */
extern int xs_keyfile_parse (const char *text, size_t len,
                             struct xs_keyfile *out);

/* KF as a key file's JSON text (malloc'd), or NULL with an error. */
extern char *xs_keyfile_format (const struct xs_keyfile *kf);

/* Export key SPEC of ACCOUNT (as ACTOR: xsnap:ExportKey, audited) sealed
 * under PASSPHRASE (PASS_LEN bytes, at least 8): *TEXT is the file's
 * malloc'd JSON text.  0, or -1 with an error.
 */
extern int xs_keyfile_export (struct xs_store *store, const char *actor,
                              const char *account, const char *spec,
                              const char *passphrase, size_t pass_len,
                              char **text);

/* Import the key file TEXT (LEN bytes) into ACCOUNT (as ACTOR:
 * xsnap:ImportKey, audited), unsealing it with PASSPHRASE; named NAME, or
 * as it was named if NULL.  Refused if the passphrase is wrong, the file
 * was changed, or the store holds the key already.  0 with *OUT, or -1.
 */
extern int xs_keyfile_import (struct xs_store *store, const char *actor,
                              const char *account, const char *text,
                              size_t len, const char *passphrase,
                              size_t pass_len, const char *name,
                              struct xs_key *out);

#endif /* XSNAP_KEYFILE_H */
