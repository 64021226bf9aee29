/* xsnap: block and stream hashing (see hash.h).
 *
 * This file holds the generic build (SSE2 on x86-64) and the run-time
 * choice of build: the AVX2 build in hash-avx2.c is used when the CPU has
 * AVX2.  The choice is made once, thread-safely, with pthread_once.  The
 * libFuzzer build compiles without hash-avx2.c and defines
 * XS_NO_AVX2_DISPATCH.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/error.h"
#include "base/hash.h"

#if defined(XS_NO_AVX2_DISPATCH) || !defined(__x86_64__)
#define XS_HASH_DISPATCH 0
#else
#define XS_HASH_DISPATCH 1
#endif

struct xs_hash_stream {
  XXH3_state_t *state;
};

void
xs_hash128_generic (const void *data, size_t len, struct xs_hash128 *out)
{
  XXH128_canonical_t canonical;

  XXH128_canonicalFromHash (&canonical, XXH3_128bits (data, len));
  memcpy (out->bytes, canonical.digest, sizeof out->bytes);
}

uint64_t
xs_hash64_generic (const void *data, size_t len)
{
  return XXH3_64bits (data, len);
}

static void
hash_state_update_generic (void *xxh3_state, const void *data, size_t len)
{
  XXH3_64bits_update (xxh3_state, data, len);
}

/* The build in use: a table of functions chosen once. */
struct hash_impl {
  void (*hash128) (const void *, size_t, struct xs_hash128 *);
  uint64_t (*hash64) (const void *, size_t);
  void (*state_update) (void *, const void *, size_t);
};

static const struct hash_impl generic_impl = {
  .hash128 = xs_hash128_generic,
  .hash64 = xs_hash64_generic,
  .state_update = hash_state_update_generic,
};

#if XS_HASH_DISPATCH

static const struct hash_impl avx2_impl = {
  .hash128 = xs_hash128_avx2,
  .hash64 = xs_hash64_avx2,
  .state_update = xs_hash_state_update_avx2,
};

/* Written once under pthread_once, read-only afterwards. */
static const struct hash_impl *chosen_impl = &generic_impl;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void
choose_impl (void)
{
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx2"))
    chosen_impl = &avx2_impl;
}

static const struct hash_impl *
impl (void)
{
  pthread_once (&choose_once, choose_impl);
  return chosen_impl;
}

bool
xs_hash_have_avx2 (void)
{
  return impl () == &avx2_impl;
}

#else /* !XS_HASH_DISPATCH */

static const struct hash_impl *
impl (void)
{
  return &generic_impl;
}

bool
xs_hash_have_avx2 (void)
{
  return false;
}

#endif /* !XS_HASH_DISPATCH */

void
xs_hash128 (const void *data, size_t len, struct xs_hash128 *out)
{
  impl ()->hash128 (data, len, out);
}

uint64_t
xs_hash64 (const void *data, size_t len)
{
  return impl ()->hash64 (data, len);
}

void
xs_hash128_concat (const void *first, size_t first_len,
                   const void *second, size_t second_len,
                   struct xs_hash128 *out)
{
  XXH3_state_t state;
  XXH128_canonical_t canonical;

  XXH3_128bits_reset (&state);
  if (first_len > 0)
    impl ()->state_update (&state, first, first_len);
  if (second_len > 0)
    impl ()->state_update (&state, second, second_len);
  XXH128_canonicalFromHash (&canonical, XXH3_128bits_digest (&state));
  memcpy (out->bytes, canonical.digest, sizeof out->bytes);
}

void
xs_hex_encode (const void *bytes, size_t len, char *hex)
{
  static const char digits[] = "0123456789abcdef";
  const unsigned char *b = bytes;

  for (size_t i = 0; i < len; i++) {
    hex[2 * i] = digits[b[i] >> 4];
    hex[2 * i + 1] = digits[b[i] & 0xf];
  }
  hex[2 * len] = '\0';
}

void
xs_hash128_to_hex (const struct xs_hash128 *h,
                   char hex[XS_HASH128_HEX_LEN + 1])
{
  xs_hex_encode (h->bytes, sizeof h->bytes, hex);
}

int
xs_hex_decode (const char *hex, void *bytes, size_t len)
{
  unsigned char *out = bytes;

  if (strlen (hex) != 2 * len)
    return -1;
  for (size_t i = 0; i < len; i++) {
    int high = xs_hex_digit_value (hex[2 * i]);
    int low = xs_hex_digit_value (hex[2 * i + 1]);

    if (high < 0 || low < 0)
      return -1;
    out[i] = (unsigned char) (high << 4 | low);
  }
  return 0;
}

int
xs_hash128_from_hex (const char *hex, struct xs_hash128 *h)
{
  size_t i;

  if (strlen (hex) != XS_HASH128_HEX_LEN) {
    xs_error ("invalid hash '%.40s': want %d hex digits",
              hex, XS_HASH128_HEX_LEN);
    return -1;
  }
  for (i = 0; i < sizeof h->bytes; i++) {
    int high = xs_hex_digit_value (hex[2 * i]);
    int low = xs_hex_digit_value (hex[2 * i + 1]);

    if (high < 0 || low < 0) {
      xs_error ("invalid hash '%s': not hexadecimal", hex);
      return -1;
    }
    h->bytes[i] = (uint8_t) (high << 4 | low);
  }
  return 0;
}

bool
xs_hash128_is_zero (const struct xs_hash128 *h)
{
  static const struct xs_hash128 zero;

  return memcmp (h->bytes, zero.bytes, sizeof zero.bytes) == 0;
}

bool
xs_hash128_equal (const struct xs_hash128 *a, const struct xs_hash128 *b)
{
  return memcmp (a->bytes, b->bytes, sizeof a->bytes) == 0;
}

int
xs_hash128_compare (const struct xs_hash128 *a, const struct xs_hash128 *b)
{
  return memcmp (a->bytes, b->bytes, sizeof a->bytes);
}

struct xs_hash_stream *
xs_hash_stream_new (void)
{
  struct xs_hash_stream *s = malloc (sizeof *s);

  if (s == NULL) {
    xs_error ("cannot allocate hash stream: %m");
    return NULL;
  }
  s->state = XXH3_createState ();
  if (s->state == NULL) {
    errno = ENOMEM;
    xs_error ("cannot allocate hash stream: %m");
    free (s);
    return NULL;
  }
  xs_hash_stream_reset (s);
  return s;
}

void
xs_hash_stream_reset (struct xs_hash_stream *s)
{
  /* The 64- and 128-bit resets are the same; one state gives both. */
  XXH3_64bits_reset (s->state);
}

void
xs_hash_stream_update (struct xs_hash_stream *s, const void *data, size_t len)
{
  if (len > 0)
    impl ()->state_update (s->state, data, len);
}

uint64_t
xs_hash_stream_digest64 (const struct xs_hash_stream *s)
{
  return XXH3_64bits_digest (s->state);
}

void
xs_hash_stream_digest128 (const struct xs_hash_stream *s,
                          struct xs_hash128 *out)
{
  XXH128_canonical_t canonical;

  XXH128_canonicalFromHash (&canonical, XXH3_128bits_digest (s->state));
  memcpy (out->bytes, canonical.digest, sizeof out->bytes);
}

void
xs_hash_stream_free (struct xs_hash_stream *s)
{
  if (s == NULL)
    return;
  XXH3_freeState (s->state);
  free (s);
}
