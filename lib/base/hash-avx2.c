/* xsnap: the AVX2 build of the block hash.
 *
 * The Makefile compiles this file alone with -mavx2, so xxHash's inlined
 * XXH3 picks its AVX2 kernels here; hash.c calls these functions only when
 * the CPU reports AVX2.  Keeping them in their own file keeps AVX2
 * instructions out of every other function.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/hash.h"

#if defined(__x86_64__) && defined(__AVX2__)

#define XXH_INLINE_ALL
#include <xxhash.h>

void
xs_hash128_avx2 (const void *data, size_t len, struct xs_hash128 *out)
{
  XXH128_canonical_t canonical;

  XXH128_canonicalFromHash (&canonical, XXH3_128bits (data, len));
  memcpy (out->bytes, canonical.digest, sizeof out->bytes);
}

uint64_t
xs_hash64_avx2 (const void *data, size_t len)
{
  return XXH3_64bits (data, len);
}

void
xs_hash_state_update_avx2 (void *xxh3_state, const void *data, size_t len)
{
  XXH3_64bits_update (xxh3_state, data, len);
}

#endif /* __x86_64__ && __AVX2__ */
