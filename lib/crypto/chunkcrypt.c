/* xsnap: the cryptography of encrypted snapshots (see chunkcrypt.h).
 *
 * Thin wrappers over OpenSSL 3's EVP interfaces, so that the formats
 * (chunk.c, manifest.c, keys.c) say what they do and not how OpenSSL
 * wants to be asked.  Secrets on the stack are wiped before returning.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "crypto/chunkcrypt.h"
#include "base/error.h"

struct xs_crypt {
  EVP_CIPHER *cipher;           /* AES-256-GCM, fetched once */
  EVP_CIPHER_CTX *cipher_ctx;
  EVP_MAC *mac;                 /* HMAC, fetched once */
  EVP_MAC_CTX *mac_ctx;
};

void
xs_crypt_report (const char *what)
{
  unsigned long e = ERR_get_error ();
  char text[256];

  if (e == 0)
    xs_error ("cannot %s: OpenSSL failed", what);
  else {
    ERR_error_string_n (e, text, sizeof text);
    xs_error ("cannot %s: %s", what, text);
  }
  ERR_clear_error ();
}

/* HKDF-SHA256 of RAW with the label INFO into OUT (LEN bytes). */
static int
derive_one (const unsigned char *raw, const char *info, unsigned char *out,
            size_t len)
{
  EVP_KDF *kdf = EVP_KDF_fetch (NULL, "HKDF", NULL);
  EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new (kdf) : NULL;
  static const char salt[] = "xsnap-data-key-1";
  OSSL_PARAM params[5];
  int r = -1;

  if (ctx == NULL)
    goto out;
  params[0] = OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_DIGEST,
                                                (char *) "SHA256", 0);
  params[1] = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_KEY,
                                                 (void *) raw,
                                                 XS_DATA_KEY_LEN);
  params[2] = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_SALT,
                                                 (void *) salt,
                                                 sizeof salt - 1);
  params[3] = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_INFO,
                                                 (void *) info,
                                                 strlen (info));
  params[4] = OSSL_PARAM_construct_end ();
  if (EVP_KDF_derive (ctx, out, len, params) == 1)
    r = 0;
 out:
  if (r == -1)
    xs_crypt_report ("derive a key");
  EVP_KDF_CTX_free (ctx);
  EVP_KDF_free (kdf);
  return r;
}

struct xs_data_key *
xs_data_key_derive (const unsigned char *raw)
{
  struct xs_data_key *dk = calloc (1, sizeof *dk);

  if (dk == NULL) {
    xs_error ("cannot derive a data key: out of memory");
    return NULL;
  }
  if (derive_one (raw, "xsnap chunk encryption", dk->chunk_enc,
                  sizeof dk->chunk_enc) == -1
      || derive_one (raw, "xsnap chunk id", dk->chunk_id,
                     sizeof dk->chunk_id) == -1
      || derive_one (raw, "xsnap manifest mac", dk->manifest_mac,
                     sizeof dk->manifest_mac) == -1
      || derive_one (raw, "xsnap head sectors", dk->head,
                     sizeof dk->head) == -1) {
    xs_data_key_free (dk);
    return NULL;
  }
  return dk;
}

struct xs_data_key *
xs_data_key_dup (const struct xs_data_key *dk)
{
  struct xs_data_key *copy = calloc (1, sizeof *copy);

  if (copy == NULL) {
    xs_error ("cannot copy a data key: out of memory");
    return NULL;
  }
  memcpy (copy, dk, sizeof *copy);
  return copy;
}

void
xs_data_key_free (struct xs_data_key *dk)
{
  if (dk == NULL)
    return;
  OPENSSL_cleanse (dk, sizeof *dk);
  free (dk);
}

struct xs_crypt *
xs_crypt_new (void)
{
  struct xs_crypt *crypt = calloc (1, sizeof *crypt);

  if (crypt == NULL) {
    xs_error ("cannot allocate cipher contexts: out of memory");
    return NULL;
  }
  crypt->cipher = EVP_CIPHER_fetch (NULL, "AES-256-GCM", NULL);
  crypt->cipher_ctx = EVP_CIPHER_CTX_new ();
  crypt->mac = EVP_MAC_fetch (NULL, "HMAC", NULL);
  crypt->mac_ctx = crypt->mac ? EVP_MAC_CTX_new (crypt->mac) : NULL;
  if (crypt->cipher == NULL || crypt->cipher_ctx == NULL
      || crypt->mac_ctx == NULL) {
    xs_crypt_report ("set up AES-256-GCM and HMAC-SHA256");
    xs_crypt_free (crypt);
    return NULL;
  }
  return crypt;
}

void
xs_crypt_free (struct xs_crypt *crypt)
{
  if (crypt == NULL)
    return;
  EVP_CIPHER_CTX_free (crypt->cipher_ctx);
  EVP_CIPHER_free (crypt->cipher);
  EVP_MAC_CTX_free (crypt->mac_ctx);
  EVP_MAC_free (crypt->mac);
  free (crypt);
}

/* HMAC-SHA256 of DATA under KEY into MAC (32 bytes). */
static int
hmac_sha256 (EVP_MAC_CTX *ctx, const unsigned char *key, const void *data,
             size_t len, unsigned char mac[XS_MANIFEST_MAC_LEN])
{
  OSSL_PARAM params[2];
  size_t out_len = 0;

  params[0] = OSSL_PARAM_construct_utf8_string (OSSL_MAC_PARAM_DIGEST,
                                                (char *) "SHA256", 0);
  params[1] = OSSL_PARAM_construct_end ();
  if (EVP_MAC_init (ctx, key, XS_DATA_KEY_LEN, params) != 1
      || EVP_MAC_update (ctx, data, len) != 1
      || EVP_MAC_final (ctx, mac, &out_len, XS_MANIFEST_MAC_LEN) != 1
      || out_len != XS_MANIFEST_MAC_LEN) {
    xs_crypt_report ("compute an HMAC-SHA256");
    return -1;
  }
  return 0;
}

int
xs_data_key_manifest_mac (const struct xs_data_key *dk, const void *data,
                          size_t len, unsigned char mac[XS_MANIFEST_MAC_LEN])
{
  struct xs_crypt *crypt = xs_crypt_new ();
  int r;

  if (crypt == NULL)
    return -1;
  r = hmac_sha256 (crypt->mac_ctx, dk->manifest_mac, data, len, mac);
  xs_crypt_free (crypt);
  return r;
}

int
xs_crypt_chunk_id (struct xs_crypt *crypt, const struct xs_data_key *dk,
                   const void *plain, size_t len, struct xs_hash128 *id)
{
  unsigned char mac[XS_MANIFEST_MAC_LEN];

  if (hmac_sha256 (crypt->mac_ctx, dk->chunk_id, plain, len, mac) == -1)
    return -1;
  memcpy (id->bytes, mac, sizeof id->bytes);
  return 0;
}

int
xs_crypt_chunk_id_of_digest (struct xs_crypt *crypt,
                             const struct xs_data_key *dk,
                             const struct xs_hash128 *digest,
                             struct xs_hash128 *id)
{
  static const char label[] = "xsnap chunk id 2";
  unsigned char input[sizeof label + sizeof digest->bytes];
  unsigned char mac[XS_MANIFEST_MAC_LEN];

  memcpy (input, label, sizeof label);
  memcpy (input + sizeof label, digest->bytes, sizeof digest->bytes);
  if (hmac_sha256 (crypt->mac_ctx, dk->chunk_id, input, sizeof input,
                   mac) == -1)
    return -1;
  memcpy (id->bytes, mac, sizeof id->bytes);
  return 0;
}

/* GCM lengths are ints in EVP. */
static int
check_length (size_t len, const char *what)
{
  if (len > INT_MAX) {
    xs_error ("cannot %s %zu bytes at once", what, len);
    return -1;
  }
  return 0;
}

int
xs_crypt_seal (struct xs_crypt *crypt, const unsigned char *key,
               const unsigned char nonce[XS_CRYPT_NONCE_LEN],
               const void *aad, size_t aad_len, const void *in, size_t len,
               void *out, unsigned char tag[XS_CRYPT_TAG_LEN])
{
  EVP_CIPHER_CTX *ctx = crypt->cipher_ctx;
  int n = 0, fin = 0;

  if (check_length (len, "encrypt") == -1
      || check_length (aad_len, "authenticate") == -1)
    return -1;
  if (EVP_EncryptInit_ex2 (ctx, crypt->cipher, key, nonce, NULL) != 1
      || (aad_len > 0
          && EVP_EncryptUpdate (ctx, NULL, &n, aad, (int) aad_len) != 1)
      || (len > 0
          && EVP_EncryptUpdate (ctx, out, &n, in, (int) len) != 1)
      || EVP_EncryptFinal_ex (ctx, (unsigned char *) out + (len > 0 ? n : 0),
                              &fin) != 1
      || EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_GET_TAG, XS_CRYPT_TAG_LEN,
                              tag) != 1) {
    xs_crypt_report ("encrypt with AES-256-GCM");
    return -1;
  }
  return 0;
}

int
xs_crypt_open (struct xs_crypt *crypt, const unsigned char *key,
               const unsigned char nonce[XS_CRYPT_NONCE_LEN],
               const void *aad, size_t aad_len, const void *in, size_t len,
               void *out, const unsigned char tag[XS_CRYPT_TAG_LEN])
{
  EVP_CIPHER_CTX *ctx = crypt->cipher_ctx;
  int n = 0, fin = 0;

  if (check_length (len, "decrypt") == -1
      || check_length (aad_len, "authenticate") == -1)
    return -1;
  if (EVP_DecryptInit_ex2 (ctx, crypt->cipher, key, nonce, NULL) != 1
      || (aad_len > 0
          && EVP_DecryptUpdate (ctx, NULL, &n, aad, (int) aad_len) != 1)
      || (len > 0
          && EVP_DecryptUpdate (ctx, out, &n, in, (int) len) != 1)
      || EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_TAG, XS_CRYPT_TAG_LEN,
                              (void *) tag) != 1) {
    xs_crypt_report ("decrypt with AES-256-GCM");
    return -1;
  }
  /* The only failure left is a tag that does not match. */
  if (EVP_DecryptFinal_ex (ctx, (unsigned char *) out + (len > 0 ? n : 0),
                           &fin) != 1) {
    ERR_clear_error ();
    return 1;
  }
  return 0;
}

int
xs_crypt_random (void *buf, size_t len)
{
  if (check_length (len, "generate random") == -1)
    return -1;
  if (RAND_bytes (buf, (int) len) != 1) {
    xs_crypt_report ("generate random bytes");
    return -1;
  }
  return 0;
}

int
xs_crypt_equal (const void *a, const void *b, size_t len)
{
  return CRYPTO_memcmp (a, b, len) == 0;
}
