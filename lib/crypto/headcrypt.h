/* xsnap: the cipher of an encrypted volume's head at rest.
 *
 * An encrypted volume's live data file is encrypted per 4 KiB sector
 * with AES-128-XTS, the tweak being the sector's number (its byte offset
 * / 4096) as a 128-bit little-endian integer: dm-crypt's and the nbdkit
 * `luks` filter's "aes-xts-plain64" with a 256-bit key, but with 4 KiB
 * sectors and no on-disk header (the key is derived from the volume's
 * data key, chunkcrypt.h).  Why AES-128 here and AES-256 for chunks:
 * docs/ARCHITECTURE.md, "The head at rest".
 * XTS keeps every sector the size it is, so the write path stays one
 * pwrite of the request plus a cipher pass; sectors are independent, so
 * any aligned range encrypts on its own.
 *
 * Holes: a sector whose stored bytes are all zero reads as zeros.  A
 * sparse file's holes, punched ranges and zeroed ranges stay what they
 * are (fallocate keeps working) without storing anything.  Real
 * ciphertext is all zero with probability 2^-32768.  What this shows —
 * which sectors were never written or were zeroed — the file's
 * allocation map shows anyway.
 *
 * XTS gives confidentiality, not integrity: a changed sector decrypts to
 * garbage, not to an error.  Snapshots carry the integrity (every chunk
 * and manifest is authenticated); the head is the live disk, as with
 * dm-crypt.
 *
 * One cipher serves many threads: each call works on a context of its
 * own, copied from keyed templates (the key schedule is computed once)
 * and kept for the next call.
 */
#ifndef XSNAP_HEADCRYPT_H
#define XSNAP_HEADCRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/chunkcrypt.h"

#define XS_HEAD_SECTOR 4096u

struct xs_head_cipher;

/* A cipher under KEY (XS_HEAD_KEY_LEN bytes: two AES-128 keys, which must
 * differ).  NULL with an error.
 */
extern struct xs_head_cipher *xs_head_cipher_new (const unsigned char *key);
/* Wipes the keys; NULL is fine. */
extern void xs_head_cipher_free (struct xs_head_cipher *c);

/* LEN bytes (a multiple of XS_HEAD_SECTOR) at byte OFFSET of the volume
 * (a multiple of it too), from IN to OUT (which may be IN).  Decrypting
 * leaves all-zero sectors zero.  0, or -1 with an error.
 */
extern int xs_head_encrypt (struct xs_head_cipher *c, const void *in,
                            void *out, size_t len, uint64_t offset);
extern int xs_head_decrypt (struct xs_head_cipher *c, const void *in,
                            void *out, size_t len, uint64_t offset);

#endif /* XSNAP_HEADCRYPT_H */
