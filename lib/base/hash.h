/* xsnap: block and stream hashing.
 *
 * Chunks are named by the XXH3-128 of their plaintext, manifests carry an
 * XXH3-128 root and every format carries XXH3-64 checksums.  This module
 * wraps xxHash (used header-only, so the vector code is inlined) and picks
 * the AVX2 build at run time when the CPU has it; the two builds give the
 * same answers, only faster.
 */
#ifndef XSNAP_HASH_H
#define XSNAP_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An XXH3-128 hash in xxHash's canonical (big-endian) form, which is the
 * form stored on disk and printed as hex.  All zero means "zero block" in a
 * manifest.
 */
struct xs_hash128 {
  uint8_t bytes[16];
};

#define XS_HASH128_HEX_LEN 32

/* One-shot hashes of a buffer. */
extern void xs_hash128 (const void *data, size_t len, struct xs_hash128 *out);
extern uint64_t xs_hash64 (const void *data, size_t len);

/* The XXH3-128 of first followed by second, without copying them. */
extern void xs_hash128_concat (const void *first, size_t first_len,
                               const void *second, size_t second_len,
                               struct xs_hash128 *out);

/* The value of one hex digit (either case), or -1. */
static inline int
xs_hex_digit_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* LEN bytes as 2 * LEN lower-case hex digits and a NUL. */
extern void xs_hex_encode (const void *bytes, size_t len, char *hex);

/* Exactly 2 * LEN hex digits (and nothing after them) into BYTES.  0, or
 * -1 (nothing reported: callers say what was malformed).
 */
extern int xs_hex_decode (const char *hex, void *bytes, size_t len);

/* Lower-case hex, NUL-terminated. */
extern void xs_hash128_to_hex (const struct xs_hash128 *h,
                               char hex[XS_HASH128_HEX_LEN + 1]);
/* Exactly 32 hex digits (either case); -1 with an error otherwise. */
extern int xs_hash128_from_hex (const char *hex, struct xs_hash128 *h);

extern bool xs_hash128_is_zero (const struct xs_hash128 *h);
extern bool xs_hash128_equal (const struct xs_hash128 *a,
                              const struct xs_hash128 *b);
/* memcmp order: <0, 0, >0. */
extern int xs_hash128_compare (const struct xs_hash128 *a,
                               const struct xs_hash128 *b);

/* Streaming XXH3-64 and XXH3-128 over one stream: both digests can be
 * taken from the same state at any point (they cover everything updated so
 * far).  A stream object belongs to one thread at a time.
 */
struct xs_hash_stream;

extern struct xs_hash_stream *xs_hash_stream_new (void);
extern void xs_hash_stream_reset (struct xs_hash_stream *s);
extern void xs_hash_stream_update (struct xs_hash_stream *s,
                                   const void *data, size_t len);
extern uint64_t xs_hash_stream_digest64 (const struct xs_hash_stream *s);
extern void xs_hash_stream_digest128 (const struct xs_hash_stream *s,
                                      struct xs_hash128 *out);
extern void xs_hash_stream_free (struct xs_hash_stream *s);

/* The two builds, for tests and benchmarks.  xs_hash_have_avx2 says
 * whether the AVX2 build is linked in and the CPU runs it; the *_avx2
 * functions must not be called otherwise.
 */
extern bool xs_hash_have_avx2 (void);
extern void xs_hash128_generic (const void *data, size_t len,
                                struct xs_hash128 *out);
extern uint64_t xs_hash64_generic (const void *data, size_t len);
extern void xs_hash128_avx2 (const void *data, size_t len,
                             struct xs_hash128 *out);
extern uint64_t xs_hash64_avx2 (const void *data, size_t len);

/* Internal to hash.c and hash-avx2.c: streaming update of an
 * XXH3_state_t, built for AVX2.
 */
extern void xs_hash_state_update_avx2 (void *xxh3_state,
                                       const void *data, size_t len);

#endif /* XSNAP_HASH_H */
