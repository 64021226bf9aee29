/* xsnap: little-endian encoding of integers in on-disk and wire formats.
 * Byte by byte, so it is correct on any host and needs no alignment.
 */
#ifndef XSNAP_BYTEORDER_H
#define XSNAP_BYTEORDER_H

#include <stdint.h>

static inline void
xs_put_le16 (unsigned char *p, uint16_t v)
{
  p[0] = (unsigned char) v;
  p[1] = (unsigned char) (v >> 8);
}

static inline uint16_t
xs_get_le16 (const unsigned char *p)
{
  return (uint16_t) (p[0] | (p[1] << 8));
}

static inline void
xs_put_le32 (unsigned char *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char) (v >> (8 * i));
}

static inline void
xs_put_le64 (unsigned char *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char) (v >> (8 * i));
}

static inline uint32_t
xs_get_le32 (const unsigned char *p)
{
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static inline uint64_t
xs_get_le64 (const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

#endif /* XSNAP_BYTEORDER_H */
