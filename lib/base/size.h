/* xsnap: sizes as people type them ("64G", "512K") and as we print them. */
#ifndef XSNAP_SIZE_H
#define XSNAP_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Parse a size: decimal digits and an optional suffix K, M, G, T, P or E
 * (powers of 1024, either case, optionally followed by "iB" or "B"), or
 * "B" for bytes.  Returns the size, or -1 after reporting an error that
 * names WHAT ("size", "block size").  Zero is accepted here; callers that
 * need a positive size say so.
 */
extern int64_t xs_size_parse (const char *text, const char *what);

/* Format BYTES for people: "512K", "64G", "1.5G", "4097" (exact when the
 * value is a whole number of a unit, one decimal otherwise).
 */
extern void xs_size_format (uint64_t bytes, char *buf, size_t buflen);

/* True if N is a power of two (N > 0). */
static inline int
xs_is_power_of_2 (uint64_t n)
{
  return n != 0 && (n & (n - 1)) == 0;
}

#endif /* XSNAP_SIZE_H */
