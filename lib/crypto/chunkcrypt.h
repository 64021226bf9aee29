/* xsnap: the cryptography of encrypted snapshots.
 *
 * An encrypted volume has one random data key (docs/ARCHITECTURE.md, "Keys
 * and encryption"), stored only wrapped by an account key.  Three keys are
 * derived from it with HKDF-SHA256, so that no key serves two purposes:
 * the AES-256-GCM key of chunk payloads, the AES-128-XTS key of the live
 * volume's data at rest, the HMAC-SHA256 key that names
 * chunks (a chunk id is the MAC of the plaintext truncated to 128 bits:
 * equal blocks under one key share a chunk, and ids say nothing about
 * the content to anyone without the key) and the HMAC-SHA256 key that
 * authenticates manifests.  Everything here is OpenSSL 3 EVP.
 *
 * A struct xs_data_key is immutable once made, so threads share it; the
 * contexts that do the work (struct xs_crypt) belong to one thread at a
 * time, like the chunk codec that holds one.
 */
#ifndef XSNAP_CHUNKCRYPT_H
#define XSNAP_CHUNKCRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

#define XS_DATA_KEY_LEN 32      /* a data key, an account key, the master */
#define XS_CRYPT_NONCE_LEN 12   /* AES-GCM nonce (random, 96 bits) */
#define XS_CRYPT_TAG_LEN 16     /* AES-GCM tag */
#define XS_MANIFEST_MAC_LEN 32  /* HMAC-SHA256 */
#define XS_HEAD_KEY_LEN 32      /* AES-128-XTS: two 128-bit keys */

/* The keys derived from one data key. */
struct xs_data_key {
  unsigned char chunk_enc[XS_DATA_KEY_LEN];
  unsigned char chunk_id[XS_DATA_KEY_LEN];
  unsigned char manifest_mac[XS_DATA_KEY_LEN];
  /* The AES-128-XTS key of the volume's head at rest (its live data
   * file), for a volume whose head is encrypted (head.h).
   */
  unsigned char head[XS_HEAD_KEY_LEN];
};

/* Derive the keys of RAW (XS_DATA_KEY_LEN bytes).  NULL with an error. */
extern struct xs_data_key *xs_data_key_derive (const unsigned char *raw);
extern struct xs_data_key *xs_data_key_dup (const struct xs_data_key *dk);
/* Wipes the keys and frees; NULL is fine. */
extern void xs_data_key_free (struct xs_data_key *dk);

/* HMAC-SHA256 of DATA under DK's manifest key.  0, or -1 with an error. */
extern int xs_data_key_manifest_mac (const struct xs_data_key *dk,
                                     const void *data, size_t len,
                                     unsigned char mac[XS_MANIFEST_MAC_LEN]);

/* Per-thread contexts: a cipher context and a MAC context. */
struct xs_crypt;
extern struct xs_crypt *xs_crypt_new (void);
extern void xs_crypt_free (struct xs_crypt *crypt);

/* The id of a chunk of PLAIN under DK as the first encrypted chunks had
 * it: HMAC-SHA256 of the plaintext truncated to 128 bits.  Still checked
 * for chunks without the digest-id flag (chunk.c).  0, or -1 with an
 * error.
 */
extern int xs_crypt_chunk_id (struct xs_crypt *crypt,
                              const struct xs_data_key *dk,
                              const void *plain, size_t len,
                              struct xs_hash128 *id);

/* The id of a chunk whose plaintext has XXH3-128 DIGEST, under DK:
 * HMAC-SHA256 of "xsnap chunk id 2", NUL and the digest, truncated to
 * 128 bits.  The MAC of the digest rather than of the plaintext: SHA-256
 * over every sealed byte cost sealing half its speed, and identity is the
 * XXH3-128 that unencrypted chunks are named by anyway; the key still
 * hides every id's content and keeps keys apart.  0, or -1.
 */
extern int xs_crypt_chunk_id_of_digest (struct xs_crypt *crypt,
                                        const struct xs_data_key *dk,
                                        const struct xs_hash128 *digest,
                                        struct xs_hash128 *id);

/* AES-256-GCM of LEN bytes of IN into OUT (may be IN) under KEY with
 * NONCE, authenticating AAD too.  0, or -1 with an error.
 */
extern int xs_crypt_seal (struct xs_crypt *crypt, const unsigned char *key,
                          const unsigned char nonce[XS_CRYPT_NONCE_LEN],
                          const void *aad, size_t aad_len,
                          const void *in, size_t len, void *out,
                          unsigned char tag[XS_CRYPT_TAG_LEN]);

/* The reverse: 0 authentic (OUT holds the plaintext), 1 not authentic
 * (OUT holds nothing useful; nothing reported), -1 error (reported).
 */
extern int xs_crypt_open (struct xs_crypt *crypt, const unsigned char *key,
                          const unsigned char nonce[XS_CRYPT_NONCE_LEN],
                          const void *aad, size_t aad_len,
                          const void *in, size_t len, void *out,
                          const unsigned char tag[XS_CRYPT_TAG_LEN]);

/* Report the failure of WHAT ("derive a key") with OpenSSL's reason,
 * once, and clear OpenSSL's error queue.
 */
extern void xs_crypt_report (const char *what);

/* Random bytes from OpenSSL's generator (thread-safe).  0 or -1. */
extern int xs_crypt_random (void *buf, size_t len);

/* Constant-time comparison: 1 equal, 0 not. */
extern int xs_crypt_equal (const void *a, const void *b, size_t len);

#endif /* XSNAP_CHUNKCRYPT_H */
