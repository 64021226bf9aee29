/* xsnap: a qcow2 overlay carrying one persistent dirty bitmap (see
 * qcow2.h).
 *
 * The image is laid out in 64 KiB clusters, in this order:
 *
 *   0            header, header extensions (backing format, bitmaps),
 *                the backing file name
 *   1 ...        refcount table, then refcount blocks (16-bit counts)
 *   ...          L1 table (all zero: no cluster of the disk is allocated,
 *                so every read goes to the backing)
 *   ...          bitmap directory (one entry)
 *   ...          bitmap table
 *   ...          bitmap data: one cluster for each 512K bits that are
 *                neither all clear nor all set (those are table entries
 *                without a cluster)
 *
 * Every cluster written has refcount 1 and nothing else is counted, so
 * `qemu-img check` finds the image clean.  Only the clusters that hold
 * something are written; the L1 table is a hole of the sparse file.  All
 * numbers of qcow2 are big-endian; the bitmap's bits are in the order of
 * struct xs_bitmap (bit i is bit i % 8 of byte i / 8), which is QEMU's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "ops/qcow2.h"

#define CLUSTER_BITS 16
#define CLUSTER (UINT64_C (1) << CLUSTER_BITS)
#define REFCOUNT_ORDER 4                        /* 16-bit refcounts */
#define REFCOUNTS_PER_BLOCK (CLUSTER / 2)
#define L2_ENTRIES (CLUSTER / 8)
#define HEADER_LEN 104                          /* version 3, no more */
#define MAX_NAME 1023

#define EXT_END 0x00000000u
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_BITMAPS 0x23852875u
#define AUTOCLEAR_BITMAPS 1u
#define BITMAP_TYPE_DIRTY 1
#define TABLE_ALL_ONES 1u                       /* bitmap table entry */

static void
put_be16 (unsigned char *p, uint16_t v)
{
  p[0] = (unsigned char) (v >> 8);
  p[1] = (unsigned char) v;
}

static void
put_be32 (unsigned char *p, uint32_t v)
{
  put_be16 (p, (uint16_t) (v >> 16));
  put_be16 (p + 2, (uint16_t) v);
}

static void
put_be64 (unsigned char *p, uint64_t v)
{
  put_be32 (p, (uint32_t) (v >> 32));
  put_be32 (p + 4, (uint32_t) v);
}

static uint64_t
div_up (uint64_t a, uint64_t b)
{
  return (a + b - 1) / b;
}

static size_t
pad8 (size_t n)
{
  return (n + 7) & ~(size_t) 7;
}

/* What a bitmap data cluster holds. */
enum chunk { CHUNK_ZERO, CHUNK_ONES, CHUNK_DATA };

/* Where everything goes, in clusters from the start of the file. */
struct layout {
  uint64_t l1_size, l1_clusters;
  uint64_t table_size, table_clusters;
  uint64_t data_clusters;
  uint64_t refcount_blocks, refcount_table_clusters;
  uint64_t refcount_table, refcount_block, l1, directory, table, data;
  uint64_t total;
};

static enum chunk
chunk_kind (const struct xs_bitmap *bits, uint64_t i)
{
  const uint8_t *p = bits->bytes + i * CLUSTER;
  uint64_t len = bits->nbytes - i * CLUSTER;
  uint64_t j;

  if (len > CLUSTER)
    len = CLUSTER;
  if (p[0] == 0 && memcmp (p, p + 1, len - 1) == 0)
    return CHUNK_ZERO;
  /* All set, and a whole cluster of bits the disk has (the tail bits of
   * the last cluster must read as clear).
   */
  if (len == CLUSTER && (i + 1) * CLUSTER * 8 <= bits->nbits) {
    for (j = 0; j < len && p[j] == 0xff; j++)
      ;
    if (j == len)
      return CHUNK_ONES;
  }
  return CHUNK_DATA;
}

static void
plan_layout (const struct xs_qcow2_overlay *o, struct layout *l)
{
  uint64_t i, fixed, need;

  memset (l, 0, sizeof *l);
  l->l1_size = div_up (o->size, CLUSTER * L2_ENTRIES);
  l->l1_clusters = div_up (l->l1_size * 8, CLUSTER);
  l->table_size = div_up (o->bits->nbytes, CLUSTER);
  l->table_clusters = div_up (l->table_size * 8, CLUSTER);
  for (i = 0; i < l->table_size; i++)
    if (chunk_kind (o->bits, i) == CHUNK_DATA)
      l->data_clusters++;
  fixed = 1 + l->l1_clusters + 1 + l->table_clusters + l->data_clusters;
  /* The refcount blocks count themselves and the table that names them. */
  l->refcount_blocks = 1;
  for (;;) {
    l->refcount_table_clusters = div_up (l->refcount_blocks * 8, CLUSTER);
    l->total = fixed + l->refcount_table_clusters + l->refcount_blocks;
    need = div_up (l->total, REFCOUNTS_PER_BLOCK);
    if (need <= l->refcount_blocks)
      break;
    l->refcount_blocks = need;
  }
  l->refcount_table = 1;
  l->refcount_block = l->refcount_table + l->refcount_table_clusters;
  l->l1 = l->refcount_block + l->refcount_blocks;
  l->directory = l->l1 + l->l1_clusters;
  l->table = l->directory + 1;
  l->data = l->table + l->table_clusters;
}

static size_t
directory_entry_len (const struct xs_qcow2_overlay *o)
{
  return pad8 (24 + strlen (o->bitmap_name));
}

/* Cluster 0: the header, its extensions and the backing file name. */
static void
fill_header (unsigned char *c, const struct xs_qcow2_overlay *o,
             const struct layout *l)
{
  size_t backing_len = strlen (o->backing), fmt_len;
  unsigned char *p;

  memcpy (c, "QFI\xfb", 4);
  put_be32 (c + 4, 3);                          /* version */
  put_be32 (c + 16, (uint32_t) backing_len);
  put_be32 (c + 20, CLUSTER_BITS);
  put_be64 (c + 24, o->size);
  put_be32 (c + 32, 0);                         /* no encryption */
  put_be32 (c + 36, (uint32_t) l->l1_size);
  put_be64 (c + 40, l->l1 * CLUSTER);
  put_be64 (c + 48, l->refcount_table * CLUSTER);
  put_be32 (c + 56, (uint32_t) l->refcount_table_clusters);
  put_be64 (c + 88, AUTOCLEAR_BITMAPS);         /* the extension is valid */
  put_be32 (c + 96, REFCOUNT_ORDER);
  put_be32 (c + 100, HEADER_LEN);
  p = c + HEADER_LEN;
  fmt_len = strlen (o->backing_format);
  put_be32 (p, EXT_BACKING_FORMAT);
  put_be32 (p + 4, (uint32_t) fmt_len);
  memcpy (p + 8, o->backing_format, fmt_len);
  p += 8 + pad8 (fmt_len);
  put_be32 (p, EXT_BITMAPS);
  put_be32 (p + 4, 24);
  put_be32 (p + 8, 1);                          /* one bitmap */
  put_be64 (p + 16, directory_entry_len (o));
  put_be64 (p + 24, l->directory * CLUSTER);
  p += 8 + 24;
  put_be32 (p, EXT_END);
  p += 8;
  put_be64 (c + 8, (uint64_t) (p - c));         /* backing_file_offset */
  memcpy (p, o->backing, backing_len);
}

static void
fill_refcounts (unsigned char *table, unsigned char *blocks,
                const struct layout *l)
{
  uint64_t i;

  for (i = 0; i < l->refcount_blocks; i++)
    put_be64 (table + i * 8, (l->refcount_block + i) * CLUSTER);
  for (i = 0; i < l->total; i++)
    put_be16 (blocks + i * 2, 1);
}

static void
fill_directory (unsigned char *c, const struct xs_qcow2_overlay *o,
                const struct layout *l)
{
  size_t name_len = strlen (o->bitmap_name);
  int bits = __builtin_ctz (o->granularity);

  put_be64 (c, l->table * CLUSTER);
  put_be32 (c + 8, (uint32_t) l->table_size);
  put_be32 (c + 12, 0);                         /* not auto, not in use */
  c[16] = BITMAP_TYPE_DIRTY;
  c[17] = (unsigned char) bits;
  put_be16 (c + 18, (uint16_t) name_len);
  put_be32 (c + 20, 0);                         /* no extra data */
  memcpy (c + 24, o->bitmap_name, name_len);
}

static int
write_at (int fd, const char *path, const void *buf, uint64_t len,
          uint64_t cluster)
{
  if (xs_full_pwrite (fd, buf, len, cluster * CLUSTER) == 0)
    return 0;
  xs_error ("cannot write %s: %m", path);
  return -1;
}

/* The bitmap table and the data clusters it names. */
static int
write_bitmap (int fd, const char *path, const struct xs_qcow2_overlay *o,
              const struct layout *l)
{
  unsigned char *table = calloc (l->table_clusters, CLUSTER);
  unsigned char *data = calloc (1, CLUSTER);
  uint64_t i, next = l->data, len;
  int r = 0;

  if (table == NULL || data == NULL) {
    xs_error ("cannot write %s: %m", path);
    r = -1;
  }
  for (i = 0; r == 0 && i < l->table_size; i++) {
    switch (chunk_kind (o->bits, i)) {
    case CHUNK_ZERO:
      break;
    case CHUNK_ONES:
      put_be64 (table + i * 8, TABLE_ALL_ONES);
      break;
    case CHUNK_DATA:
      len = o->bits->nbytes - i * CLUSTER;
      memset (data, 0, CLUSTER);
      memcpy (data, o->bits->bytes + i * CLUSTER, len < CLUSTER ? len
              : CLUSTER);
      put_be64 (table + i * 8, next * CLUSTER);
      r = write_at (fd, path, data, CLUSTER, next++);
      break;
    }
  }
  if (r == 0)
    r = write_at (fd, path, table, l->table_clusters * CLUSTER, l->table);
  free (table);
  free (data);
  return r;
}

static int
write_metadata (int fd, const char *path, const struct xs_qcow2_overlay *o,
                const struct layout *l)
{
  unsigned char *header = calloc (1, CLUSTER);
  unsigned char *rtable = calloc (l->refcount_table_clusters, CLUSTER);
  unsigned char *rblocks = calloc (l->refcount_blocks, CLUSTER);
  unsigned char *directory = calloc (1, CLUSTER);
  int r = -1;

  if (header == NULL || rtable == NULL || rblocks == NULL
      || directory == NULL)
    xs_error ("cannot write %s: %m", path);
  else {
    fill_header (header, o, l);
    fill_refcounts (rtable, rblocks, l);
    fill_directory (directory, o, l);
    if (write_at (fd, path, header, CLUSTER, 0) == 0
        && write_at (fd, path, rtable, l->refcount_table_clusters * CLUSTER,
                     l->refcount_table) == 0
        && write_at (fd, path, rblocks, l->refcount_blocks * CLUSTER,
                     l->refcount_block) == 0
        && write_at (fd, path, directory, CLUSTER, l->directory) == 0)
      r = 0;
  }
  free (header);
  free (rtable);
  free (rblocks);
  free (directory);
  return r;
}

static int
check_overlay (const char *path, const struct xs_qcow2_overlay *o)
{
  size_t backing = strlen (o->backing), name = strlen (o->bitmap_name);
  uint64_t g = o->granularity;

  if (backing == 0 || backing > MAX_NAME || name == 0 || name > MAX_NAME
      || strlen (o->backing_format) > 64) {
    xs_error ("cannot write %s: a backing file name and a bitmap name "
              "must be 1 to %d bytes", path, MAX_NAME);
    return -1;
  }
  if (o->size == 0 || g < 512 || g > (UINT64_C (1) << 31)
      || (g & (g - 1)) != 0 || o->bits->nbits != div_up (o->size, g)) {
    xs_error ("cannot write %s: a bitmap of granularity %" PRIu64 " does "
              "not describe a disk of %" PRIu64 " bytes", path, g, o->size);
    return -1;
  }
  if (o->bits->nbytes > XS_QCOW2_MAX_BITMAP_BYTES) {
    xs_error ("cannot write %s: its bitmap would be %zu bytes, more than "
              "QEMU loads (%" PRIu64 "); a larger block size makes it "
              "smaller", path, o->bits->nbytes, XS_QCOW2_MAX_BITMAP_BYTES);
    return -1;
  }
  return 0;
}

int
xs_qcow2_write_overlay (const char *path, const struct xs_qcow2_overlay *o)
{
  struct layout l;
  int fd, r;

  if (check_overlay (path, o) == -1)
    return -1;
  plan_layout (o, &l);
  fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd == -1) {
    xs_error ("cannot create %s: %m", path);
    return -1;
  }
  r = ftruncate (fd, (off_t) (l.total * CLUSTER));
  if (r == -1)
    xs_error ("cannot size %s: %m", path);
  if (r == 0)
    r = write_metadata (fd, path, o, &l);
  if (r == 0)
    r = write_bitmap (fd, path, o, &l);
  if (close (fd) == -1 && r == 0) {
    xs_error ("cannot write %s: %m", path);
    r = -1;
  }
  if (r == -1)
    unlink (path);
  return r;
}
