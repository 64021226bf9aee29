/* xsnap: a qcow2 overlay that carries one persistent dirty bitmap.
 *
 * The NBD ecosystem's convention for "what changed" is QEMU's: a server
 * answers block status on the meta context qemu:dirty-bitmap:NAME.  nbdkit
 * 1.32 serves only base:allocation, but qemu-nbd serves any persistent
 * bitmap of a qcow2 image (-B NAME).  serve-changes therefore has qemu-nbd
 * serve a qcow2 overlay of its own: empty (every read goes to its
 * backing, the snapshot served by the plugin) but for a bitmap that marks
 * the changed blocks.  The overlay is written here directly, in the
 * format QEMU documents (docs/interop/qcow2.txt: header, refcounts, L1
 * table, bitmaps extension, bitmap directory, bitmap table), at a cost
 * that follows the bitmap's size and what is set in it, never the
 * volume's (docs/ARCHITECTURE.md, "Changed blocks for NBD clients").
 */
#ifndef XSNAP_QCOW2_H
#define XSNAP_QCOW2_H

#include <stdint.h>

#include "base/bitmap.h"

/* The most bitmap data QEMU loads for one bitmap (BME_MAX_PHYS_SIZE in
 * block/qcow2-bitmap.c): a larger one could be written but not served.
 */
#define XS_QCOW2_MAX_BITMAP_BYTES (UINT64_C (512) << 20)

struct xs_qcow2_overlay {
  uint64_t size;                /* the virtual disk's size */
  const char *backing;          /* its backing file name (1 to 1023
                                   bytes: a path, or json:{...}) */
  const char *backing_format;   /* "raw" */
  const char *bitmap_name;      /* 1 to 1023 bytes */
  uint32_t granularity;         /* a power of two, 512 bytes to 2 GiB */
  const struct xs_bitmap *bits; /* bit i = bytes [i, i + 1) granularity */
};

/* Create PATH (which must not exist; mode 0600) as a qcow2 version 3
 * image of O->size bytes, backed by O->backing, holding nothing of its
 * own but one persistent dirty bitmap O->bitmap_name, disabled (it
 * records, it does not track), with O->bits.  Returns 0, or -1 with the
 * reason reported (and PATH removed).
 */
extern int xs_qcow2_write_overlay (const char *path,
                                   const struct xs_qcow2_overlay *o);

#endif /* XSNAP_QCOW2_H */
