/* xsnap: the cipher of an encrypted volume's head (see headcrypt.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/error.h"
#include "crypto/headcrypt.h"
#include "base/lockorder.h"

/* Contexts kept for reuse, per direction: copying a keyed template costs
 * allocations on every request, which showed in 4K writes.
 */
#define POOL 16

struct ctx_pool {
  const EVP_CIPHER_CTX *template;   /* keyed, never used directly */
  pthread_mutex_t lock;
  EVP_CIPHER_CTX *free[POOL];
  unsigned nfree;
};

struct xs_head_cipher {
  EVP_CIPHER_CTX *encrypt;      /* the keyed templates */
  EVP_CIPHER_CTX *decrypt;
  struct ctx_pool pools[2];     /* 0: encrypt, 1: decrypt */
};

/* A context copied from POOL's template, or a kept one.  NULL reported. */
static EVP_CIPHER_CTX *
ctx_get (struct ctx_pool *pool)
{
  EVP_CIPHER_CTX *ctx = NULL;

  xs_lock_take (&pool->lock, XS_LOCK_HEADCRYPT_POOL, 0);
  if (pool->nfree > 0)
    ctx = pool->free[--pool->nfree];
  xs_lock_drop (&pool->lock);
  if (ctx)
    return ctx;
  ctx = EVP_CIPHER_CTX_new ();
  if (ctx == NULL || EVP_CIPHER_CTX_copy (ctx, pool->template) != 1) {
    xs_crypt_report ("set up the head cipher");
    EVP_CIPHER_CTX_free (ctx);
    return NULL;
  }
  return ctx;
}

static void
ctx_put (struct ctx_pool *pool, EVP_CIPHER_CTX *ctx)
{
  xs_lock_take (&pool->lock, XS_LOCK_HEADCRYPT_POOL, 0);
  if (pool->nfree < POOL) {
    pool->free[pool->nfree++] = ctx;
    ctx = NULL;
  }
  xs_lock_drop (&pool->lock);
  EVP_CIPHER_CTX_free (ctx);
}

static void
pool_clear (struct ctx_pool *pool)
{
  while (pool->nfree > 0)
    EVP_CIPHER_CTX_free (pool->free[--pool->nfree]);
  pthread_mutex_destroy (&pool->lock);
}

static EVP_CIPHER_CTX *
keyed (const unsigned char *key, int enc)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();

  if (ctx == NULL
      || EVP_CipherInit_ex (ctx, EVP_aes_128_xts (), NULL, key, NULL,
                            enc) != 1) {
    EVP_CIPHER_CTX_free (ctx);
    return NULL;
  }
  return ctx;
}

struct xs_head_cipher *
xs_head_cipher_new (const unsigned char *key)
{
  struct xs_head_cipher *c;

  if (CRYPTO_memcmp (key, key + XS_HEAD_KEY_LEN / 2,
                     XS_HEAD_KEY_LEN / 2) == 0) {
    xs_error ("cannot key the head cipher: the two halves of an XTS key "
              "must differ");
    return NULL;
  }
  c = calloc (1, sizeof *c);
  if (c == NULL) {
    xs_error ("cannot key the head cipher: out of memory");
    return NULL;
  }
  c->encrypt = keyed (key, 1);
  c->decrypt = keyed (key, 0);
  c->pools[0].template = c->encrypt;
  c->pools[1].template = c->decrypt;
  pthread_mutex_init (&c->pools[0].lock, NULL);
  pthread_mutex_init (&c->pools[1].lock, NULL);
  if (c->encrypt == NULL || c->decrypt == NULL) {
    xs_crypt_report ("key the head cipher (AES-128-XTS)");
    xs_head_cipher_free (c);
    return NULL;
  }
  return c;
}

void
xs_head_cipher_free (struct xs_head_cipher *c)
{
  if (c == NULL)
    return;
  pool_clear (&c->pools[0]);
  pool_clear (&c->pools[1]);
  EVP_CIPHER_CTX_free (c->encrypt);       /* cleanses the key schedule */
  EVP_CIPHER_CTX_free (c->decrypt);
  free (c);
}

static bool
sector_is_zero (const unsigned char *p)
{
  const uint64_t *w = (const uint64_t *) (const void *) p;
  size_t i;

  for (i = 0; i < XS_HEAD_SECTOR / sizeof *w; i++)
    if (w[i] != 0)
      return false;
  return true;
}

static int
run (struct ctx_pool *pool, const void *in, void *out, size_t len,
     uint64_t offset, bool decrypting)
{
  const unsigned char *from = in;
  unsigned char *to = out, tweak[16];
  EVP_CIPHER_CTX *ctx;
  uint64_t sector = offset / XS_HEAD_SECTOR;
  size_t done;
  int outl, r = 0;

  if (offset % XS_HEAD_SECTOR != 0 || len % XS_HEAD_SECTOR != 0) {
    xs_error ("head cipher: %zu bytes at %lu are not whole sectors", len,
              (unsigned long) offset);
    return -1;
  }
  ctx = ctx_get (pool);
  if (ctx == NULL)
    return -1;
  memset (tweak, 0, sizeof tweak);
  for (done = 0; done < len; done += XS_HEAD_SECTOR, sector++) {
    if (decrypting && sector_is_zero (from + done)) {
      if (to != from)
        memset (to + done, 0, XS_HEAD_SECTOR);
      continue;
    }
    for (unsigned i = 0; i < 8; i++)
      tweak[i] = (unsigned char) (sector >> (8 * i));
    if (EVP_CipherInit_ex (ctx, NULL, NULL, NULL, tweak, -1) != 1
        || EVP_CipherUpdate (ctx, to + done, &outl, from + done,
                             XS_HEAD_SECTOR) != 1
        || outl != (int) XS_HEAD_SECTOR) {
      xs_crypt_report (decrypting ? "decrypt a head sector"
                      : "encrypt a head sector");
      r = -1;
      break;
    }
  }
  if (r == 0)
    ctx_put (pool, ctx);
  else
    EVP_CIPHER_CTX_free (ctx);
  return r;
}

int
xs_head_encrypt (struct xs_head_cipher *c, const void *in, void *out,
                 size_t len, uint64_t offset)
{
  return run (&c->pools[0], in, out, len, offset, false);
}

int
xs_head_decrypt (struct xs_head_cipher *c, const void *in, void *out,
                 size_t len, uint64_t offset)
{
  return run (&c->pools[1], in, out, len, offset, true);
}
